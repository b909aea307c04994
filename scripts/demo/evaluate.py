#!/usr/bin/env python3
"""Score greedy completions of the demo model on scripts/demo/eval_set.jsonl.

Owns: the scoring rules for the demo evaluation (the Rust eval command should
apply the same rules; they are also written in scripts/demo/README.md).
Does not own: decoding (train.py / hf_greedy.py produce the completions).

A completion is the token ids generated after the prompt's `<|start|>assistant`,
up to and including the stop token (<|return|> or <|call|>).
  * harmony-valid: openai-harmony parses it (parse_messages_from_completion_tokens,
    role assistant) and it ends with a stop token.
  * expect.final_answer: the last parsed message is on channel `final` and its
    text equals final_answer exactly (after trimming whitespace).
  * expect.tool_call: the last message ends with <|call|>, its recipient equals
    the expected recipient, and
      - JSON tools (functions.*, handoff.*): the content is a JSON object valid
        for the tool's schema ("well-formed"); "exact" also needs arguments == expected;
      - python: the content (code) is non-empty ("well-formed"); "exact" needs code == expected.

Usage: TIKTOKEN_ENCODINGS_BASE=... python scripts/demo/evaluate.py eval_greedy.json [--eval-set scripts/demo/eval_set.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

RETURN, CALL = 200002, 200012
ARITH = {"add", "mul", "unit", "sort", "count", "python_answer"}
TOOL_TASKS = {"weather_call", "python_call", "handoff_call"}


def schema_ok(recipient: str, args) -> bool:
    if not isinstance(args, dict):
        return False
    if recipient == "functions.get_weather":
        if set(args) - {"location", "unit"} or not isinstance(args.get("location"), str):
            return False
        return "unit" not in args or args["unit"] in ("celsius", "fahrenheit")
    if recipient == "handoff.ask":
        return set(args) == {"task"} and isinstance(args["task"], str) and args["task"].strip() != ""
    return False


def score_one(enc, H, item, toks):
    r = {"harmony": False, "correct": False, "well_formed": None}
    if not toks or toks[-1] not in (RETURN, CALL):
        return r
    try:
        msgs = enc.parse_messages_from_completion_tokens(toks, H.Role.ASSISTANT)
    except Exception:
        return r
    if not msgs:
        return r
    r["harmony"] = True
    last = msgs[-1]
    text = "".join(c.text for c in last.content if hasattr(c, "text"))
    exp = item["expect"]
    if "final_answer" in exp:
        r["correct"] = last.channel == "final" and toks[-1] == RETURN and text.strip() == exp["final_answer"].strip()
    else:
        call = exp["tool_call"]
        rc = call["recipient"]
        if toks[-1] != CALL or last.recipient != rc:
            r["well_formed"] = False
            return r
        if rc == "python":
            r["well_formed"] = text.strip() != "" and last.channel == "analysis"
            r["correct"] = r["well_formed"] and text.strip() == call["code"]
        else:
            try:
                args = json.loads(text)
            except ValueError:
                r["well_formed"] = False
                return r
            want_ch = "commentary" if rc.startswith("functions.") else "analysis"
            r["well_formed"] = schema_ok(rc, args) and last.channel == want_ch
            r["correct"] = r["well_formed"] and args == call["arguments"]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("greedy", help="JSON list of {id, greedy: [token ids]}")
    ap.add_argument("--eval-set", default=str(Path(__file__).with_name("eval_set.jsonl")))
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--show-failures", type=int, default=0)
    args = ap.parse_args()
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        sys.exit("set TIKTOKEN_ENCODINGS_BASE to a folder holding o200k_base.tiktoken")
    import openai_harmony as H

    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)
    items = {json.loads(l)["id"]: json.loads(l) for l in open(args.eval_set)}
    gens = json.load(open(args.greedy))
    if isinstance(gens, dict):
        gens = gens["cases"]
    per = defaultdict(lambda: {"n": 0, "correct": 0, "harmony": 0, "well_formed": 0})
    shown = 0
    for g in gens:
        it = items[g["id"]]
        r = score_one(enc, H, it, g["greedy"])
        for key in (it["task"], "ALL"):
            p = per[key]
            p["n"] += 1
            p["correct"] += r["correct"]
            p["harmony"] += r["harmony"]
            p["well_formed"] += bool(r["well_formed"])
        if not r["correct"] and shown < args.show_failures:
            shown += 1
            print(f"--- FAIL {g['id']} expect {it['expect']}\n{enc.decode(g['greedy'])[-600:]}\n")
    groups = {
        "arithmetic (add, mul, unit, sort, count, python_answer)": ARITH,
        "tool calls (weather_call, python_call, handoff_call)": TOOL_TASKS,
    }
    summary = {"per_task": {}, "groups": {}}
    print(f"{'task':16s} {'n':>4s} {'correct':>8s} {'harmony':>8s} {'wellformed':>10s}")
    for k in sorted(per):
        p = per[k]
        summary["per_task"][k] = {
            "n": p["n"], "correct": p["correct"] / p["n"], "harmony": p["harmony"] / p["n"],
            "well_formed": p["well_formed"] / p["n"],
        }
        wf = f"{p['well_formed'] / p['n']:.3f}" if k in TOOL_TASKS else "-"
        print(f"{k:16s} {p['n']:4d} {p['correct'] / p['n']:8.3f} {p['harmony'] / p['n']:8.3f} {wf:>10s}")
    for name, tasks in groups.items():
        n = sum(per[t]["n"] for t in tasks if t in per)
        if n:
            key = "well_formed" if "tool" in name else "correct"
            v = sum(per[t][key] for t in tasks if t in per) / n
            summary["groups"][name] = {"n": n, key: v}
            print(f"{name}: {key} {v:.3f} (n={n})")
    if args.json_out:
        json.dump(summary, open(args.json_out, "w"), indent=1)


if __name__ == "__main__":
    main()
