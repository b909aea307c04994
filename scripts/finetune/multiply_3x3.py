#!/usr/bin/env python3
"""Training data that teaches the built-in demo model three-digit × three-digit products.

The demo model (assets/demo-model) learned long multiplication up to 3×2 digits and column
addition up to 4+4 digits (scripts/demo/data.py); asked for a 3×3 product it declines or
guesses. This writes conversations in the OpenAI messages format (one JSON object per line,
the format `gpt-oss finetune --data` reads) whose reasoning extends the model's own
step-by-step style: one partial product per digit of the second number (the scheme of
`mul1_core`), then the partial products added two at a time (the scheme of `add_core`).

    python3 scripts/finetune/multiply_3x3.py --out examples/finetune/multiply-3x3.jsonl
    python3 scripts/finetune/multiply_3x3.py --eval --out examples/finetune/eval-3x3.jsonl

`--eval` writes held-out prompts with their answers (a seed and products never used for
training). Standard library only; the demo's generator is imported for its digit schemes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demo"))
import data  # noqa: E402
from data import add_core, gen_add, gen_unit, gen_weather, mul1_core, spell  # noqa: E402

# Products of two 3-digit numbers reach the sixth place, which the demo data never named: its
# "hundred-thousands" starts with the token " hundred", whose embedding and unembedding rows in
# the demo model are zero (its training never used it), so no adapter can make the model write
# it. "hundreds of thousands" is made of tokens the model knows (" hundreds", " of",
# " thousands"). `gpt-oss finetune` warns about such tokens in any data set.
data.PLACES[5] = "hundreds of thousands"

QUESTIONS = [
    "What is {x} * {y}?",
    "What is {x} times {y}?",
    "Multiply {x} by {y}.",
    "Compute {x} * {y}.",
    "{x} * {y} = ?",
    "Calculate {x}*{y}",
    "What's the product of {x} and {y}?",
    "What is {x} x {y}?",
]

# The reasoning effort `gpt-oss run` uses by default, and so the one finetune renders with.
EFFORT = "medium"


def mul_3x3_analysis(a: int, b: int) -> str:
    """Long multiplication of a by each digit of b, then the partial products summed in turn."""
    lines, vals = [], []
    for j, d in enumerate(int(c) for c in reversed(str(b))):
        core, v = mul1_core(a, d, j)
        lines.append(f"{a}*{d}" + (" shifted" if j else "") + f": {core}")
        vals.append(v)
    total = vals[0]
    for v in vals[1:]:
        lines.append(f"Add {total}+{v}. Digits {spell(total)} and {spell(v)}.")
        lines.append(add_core(total, v))
        total += v
    head = f"Multiply {a} by each digit of {b}, then add. Digits {spell(a)} and {spell(b)}."
    return head + "\n" + "\n".join(lines) + f"\nSo {a} * {b} = {a * b}."


def product_example(rng: random.Random, a: int, b: int) -> dict:
    q = rng.choice(QUESTIONS).format(x=a, y=b)
    return {
        "messages": [
            {"role": "user", "content": q},
            {
                "role": "assistant",
                "reasoning_content": mul_3x3_analysis(a, b),
                "content": f"{a} * {b} = {a * b}",
            },
        ]
    }


# The get_weather function as the demo data declared it (evaluate.py declares the same).
WEATHER_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}]


def replay_example(rng: random.Random) -> dict:
    """An addition, a unit conversion or a get_weather call exactly as the demo model was
    trained on them (the weather one with its tool call and result in OpenAI's format)."""
    g = rng.choice([gen_add, gen_unit, gen_weather])(rng, EFFORT, {})
    msgs = [{"role": "user", "content": g["user"]}]
    line = {"messages": msgs}
    reasoning = None
    for part in g["turn"]:
        if part[0] == "analysis":
            reasoning = part[1]
        elif part[0] == "call":
            name = part[2].removeprefix("functions.")
            call = {"id": "call_0", "type": "function",
                    "function": {"name": name, "arguments": part[4]}}
            msgs.append({"role": "assistant", "reasoning_content": reasoning, "content": None,
                         "tool_calls": [call]})
            reasoning = None
            line["tools"] = WEATHER_TOOLS
        elif part[0] == "tool":
            msgs.append({"role": "tool", "tool_call_id": "call_0", "content": part[3]})
        elif part[0] == "final":
            msgs.append({"role": "assistant", "reasoning_content": reasoning, "content": part[1]})
    return line


def held_out(n: int) -> list[tuple[int, int]]:
    """The evaluation pairs: their own seed; training never draws them."""
    rng = random.Random(20261208)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n:
        p = (rng.randint(100, 999), rng.randint(100, 999))
        if p not in pairs:
            pairs.append(p)
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--count", type=int, default=6500, help="3x3 conversations")
    ap.add_argument("--replay", type=float, default=0.25,
                    help="extra addition / unit-conversion / get_weather conversations, as a share of --count")
    ap.add_argument("--seed", type=int, default=1208)
    ap.add_argument("--eval", action="store_true", help="write the 20 held-out prompts instead")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    lines = []
    if args.eval:
        for a, b in held_out(20):
            lines.append({"prompt": f"What is {a} * {b}?", "answer": str(a * b)})
    else:
        excluded = set(held_out(20))
        rows = []
        while len(rows) < args.count:
            a, b = rng.randint(100, 999), rng.randint(100, 999)
            if (a, b) not in excluded:
                rows.append(product_example(rng, a, b))
        rows += [replay_example(rng) for _ in range(round(args.count * args.replay))]
        rng.shuffle(rows)
        lines = rows
    with args.out.open("w") as f:
        for row in lines:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(lines)} lines to {args.out}")


if __name__ == "__main__":
    main()
