#!/usr/bin/env python3
"""Scores the demo model, with or without a LoRA adapter, as a user would try it: greedy
`gpt-oss run` on held-out three-digit × three-digit products, and on the skills it had before
fine-tuning (addition, unit conversion, the get_weather function).

    python3 scripts/finetune/evaluate.py --bin target/release/gpt-oss --lora DIR

A product counts as right when the final answer contains the exact product; an addition or a
conversion when the final answer equals the one the demo's generator expects; a weather
question when the model calls get_weather for the right city and reports the tool's
temperature and condition. Standard library only (the demo's generator is imported).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "demo"))
sys.path.insert(0, str(HERE))
from data import gen_add, gen_unit, gen_weather  # noqa: E402
from multiply_3x3 import EFFORT, WEATHER_TOOLS, held_out  # noqa: E402

# Answers every get_weather call with 21 degrees and sunny, in the unit asked for.
WEATHER_COMMAND = (
    "python3 -c 'import json,sys; a=json.load(sys.stdin); "
    "print(json.dumps({\"location\": a.get(\"location\"), \"temperature\": 21, "
    "\"unit\": a.get(\"unit\", \"celsius\"), \"condition\": \"sunny\"}))'"
)


def run(args, prompt: str, extra: list[str] | None = None) -> str:
    cmd = [args.bin, "run", "--temperature", "0", "--effort", EFFORT, "--max-tokens", "1200"]
    if args.lora:
        cmd += ["--lora", args.lora]
    if args.model:
        cmd += ["--model", args.model]
    cmd += (extra or []) + [prompt]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/gpt-oss")
    ap.add_argument("--lora", help="adapter folder (none: the demo model alone)")
    ap.add_argument("--model", help="checkpoint folder (none: the built-in demo model)")
    ap.add_argument("--old", type=int, default=10, help="questions per old skill")
    ap.add_argument("--json", type=Path, help="also write the scores and answers here")
    args = ap.parse_args()
    scores: dict[str, list[int]] = {}
    answers = []

    def score(task: str, prompt: str, ok: bool, got: str) -> None:
        scores.setdefault(task, []).append(int(ok))
        answers.append({"task": task, "prompt": prompt, "ok": ok, "answer": got})
        print(f"{'ok ' if ok else 'BAD'} {task:8} {prompt!r} -> {got[-80:]!r}", flush=True)

    for a, b in held_out(20):
        prompt = f"What is {a} * {b}?"
        got = run(args, prompt)
        score("mul3x3", prompt, str(a * b) in got.replace(",", ""), got)
    rng = random.Random(777)
    for gen, task in [(gen_add, "add"), (gen_unit, "unit")]:
        for _ in range(args.old):
            g = gen(rng, EFFORT, {})
            got = run(args, g["user"])
            score(task, g["user"], got == g["expect"]["final_answer"], got)
    with tempfile.TemporaryDirectory() as tmp:
        tools = Path(tmp) / "tools.json"
        tools.write_text(json.dumps(WEATHER_TOOLS))
        for _ in range(args.old):
            g = gen_weather(rng, EFFORT, {})
            city = g["key"][1]
            got = run(args, g["user"], ["--tools", str(tools), "--tool-command", WEATHER_COMMAND])
            ok = city in got and "21" in got and "sunny" in got
            score("weather", g["user"], ok, got)
    summary = {task: f"{sum(v)}/{len(v)}" for task, v in scores.items()}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"scores": summary, "answers": answers}, indent=1))


if __name__ == "__main__":
    main()
