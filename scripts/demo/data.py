#!/usr/bin/env python3
"""Synthetic harmony conversations for the gpt-oss-rs demo model (issue 5).

Owns: the seeded task generators, rendering with the official `openai-harmony`
package, the assistant-only loss mask, the used-token table, and the held-out
evaluation set `scripts/demo/eval_set.jsonl`.
Does not own: the model, training or export (train.py, export.py).

Every conversation is rendered with `HarmonyEncoding.render_conversation_for_training`
(auto_drop_analysis off: the analysis of the turn being trained is the chain of
thought the model must learn; earlier turns are built without analysis, exactly
as the runtime drops it). The loss mask marks the tokens the model itself
generates at run time: everything of the last turn's assistant messages except
the `<|start|>assistant` pair that the runtime appends to the prompt before a
completion (and before continuing after a tool result).

Usage (venv /work/venvs/demo: openai-harmony==0.0.8, numpy):
    TIKTOKEN_ENCODINGS_BASE=<dir with o200k_base.tiktoken> \
    python scripts/demo/data.py --out /work/scratch/demo/data --n-train 120000 --seed 1234

Writes into --out: train.npz with tokens (int32, all conversations
concatenated), mask (uint8, 1 = token is a training target), offsets (int64
[n+1]) and used (int32, sorted ids the model may use),
eval_prompts.json (prompt token ids for device-side greedy decoding), and
writes the evaluation set to scripts/demo/eval_set.jsonl (--eval-out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from pathlib import Path


def load_encoding():
    """The harmony encoding, offline (o200k file from TIKTOKEN_ENCODINGS_BASE)."""
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        sys.exit("set TIKTOKEN_ENCODINGS_BASE to a folder holding o200k_base.tiktoken")
    import openai_harmony as h

    return h, h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)


H, ENC = None, None  # filled in main()/init()


def init():
    global H, ENC
    if ENC is None:
        H, ENC = load_encoding()
    return H, ENC


# ----------------------------------------------------------------------------
# Vocabulary of the synthetic world
# ----------------------------------------------------------------------------

PLACES = ["ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands"]

CITIES = [
    "Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Cairo", "Lima", "Oslo", "Seoul",
    "Sydney", "Toronto", "Chicago", "Boston", "Mumbai", "Delhi", "Lagos", "Nairobi", "Dublin",
    "Vienna", "Prague", "Lisbon", "Athens", "Warsaw", "Moscow", "Beijing", "Shanghai", "Bangkok",
    "Jakarta", "Manila", "Mexico City", "New York", "San Francisco", "Los Angeles", "Seattle",
    "Denver", "Miami", "Buenos Aires", "Santiago", "Bogota", "Helsinki", "Stockholm", "Zurich",
    "Amsterdam", "Brussels", "Istanbul", "Dubai", "Singapore", "Hong Kong", "Vancouver",
]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "clear", "stormy"]

# (from singular, from plural, abbreviation, to singular, to plural, factor)
UNIT_PAIRS = [
    ("kilometer", "kilometers", "km", "meter", "meters", 1000),
    ("meter", "meters", "m", "centimeter", "centimeters", 100),
    ("kilogram", "kilograms", "kg", "gram", "grams", 1000),
    ("liter", "liters", "L", "milliliter", "milliliters", 1000),
    ("hour", "hours", "h", "minute", "minutes", 60),
    ("minute", "minutes", "min", "second", "seconds", 60),
    ("foot", "feet", "ft", "inch", "inches", 12),
    ("day", "days", "d", "hour", "hours", 24),
    ("week", "weeks", "wk", "day", "days", 7),
    ("yard", "yards", "yd", "foot", "feet", 3),
]

WORDS = [
    "strawberry", "banana", "mississippi", "bookkeeper", "balloon", "letter", "committee",
    "coffee", "apple", "pepper", "cherry", "tomato", "potato", "success", "address", "bottle",
    "butter", "puzzle", "rabbit", "parallel", "occurrence", "necessary", "accommodate",
    "programming", "assessment", "millennium", "engineering", "possession", "referee", "tennessee",
    "hello", "summer", "yellow", "village", "goose", "cookie", "window", "happiness", "giraffe",
    "kangaroo", "elephant", "umbrella", "alphabet", "difference", "excellent", "beginning",
    "grammar", "dinner", "mirror", "carrot", "pizza", "jazz", "sheep", "teeth", "noon",
    "level", "radar", "kayak", "banana", "pineapple", "watermelon", "blueberry", "raspberry",
    "chocolate", "vanilla", "cinnamon", "avocado", "broccoli", "zucchini", "spaghetti",
    "keyboard", "computer", "language", "bubble", "lollipop", "assistant", "calendar",
    "mammal", "llama", "papaya",
]
WORDS = sorted(set(WORDS))

HANDOFF_TOPICS = [
    "the sea", "autumn", "a lighthouse", "friendship", "the moon", "a lost cat", "the city at night",
    "mountains", "coffee", "rain", "a robot", "winter", "the desert", "a garden", "time",
]
HANDOFF_CONCEPTS = [
    "quantum entanglement", "black holes", "photosynthesis", "inflation", "machine learning",
    "the theory of relativity", "how vaccines work", "plate tectonics", "blockchain",
    "the French Revolution", "how the internet works", "DNA replication", "climate change",
    "supply and demand", "neural networks",
]
HANDOFF_TEMPLATES = [
    ("poem", "Write a poem about {t}."),
    ("poem", "Write a short poem about {t}."),
    ("story", "Tell me a short story about {t}."),
    ("haiku", "Write a haiku about {t}."),
    ("explain", "Explain {c} in simple terms."),
    ("explain", "Can you explain {c}?"),
    ("explain", "What is {c}? Please explain."),
    ("summary", "Give me a summary of {c}."),
    ("essay", "Write an essay about {c}."),
]
DEV_INSTRUCTIONS = [
    "Answer concisely.",
    "You are a helpful assistant.",
    "Be brief and accurate.",
    "Answer the user's questions.",
    "You are a friendly math tutor.",
    "Keep answers short.",
]
IDENTITIES = [
    None, None, None, None, None, None, None, None,  # mostly harmony's default identity
    "You are a helpful assistant.",
    "You are a small demo model.",
]

WEATHER_TOOL_DESC = "Get the current weather for a location."


def weather_tool():
    return H.ToolDescription.new(
        "get_weather",
        WEATHER_TOOL_DESC,
        parameters={
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    )


def handoff_namespace():
    """The handoff tool exactly as /work/notes/handoff-protocol.md declares it."""
    return H.ToolNamespaceConfig(
        name="handoff",
        description=(
            "Hand a task you cannot solve reliably to a larger remote model. "
            "The remote model's answer is returned to you."
        ),
        tools=[
            H.ToolDescription.new(
                "ask",
                "Send a self-contained task to the remote model.",
                parameters={
                    "type": "object",
                    "properties": {
                        "task": {"type": "string", "description": "The full task, self-contained."}
                    },
                    "required": ["task"],
                },
            )
        ],
    )


def cjson(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------------
# Chain-of-thought building blocks (digit level, so a tiny model can learn them)
# ----------------------------------------------------------------------------


def spell(n: int) -> str:
    return " ".join(str(n))


def add_core(a: int, b: int) -> str:
    """Column addition from the right, then the digits read back from the top place.

    e.g. "ones 8+5=13; tens 3+6+1=10; hundreds 7+9+1=17; thousands 4+0+1=5.
    Read thousands 5 hundreds 7 tens 0 ones 3 = 5703". Each column is labelled
    with its place so the read-back can find it by content, not by counting.
    """
    da = [int(c) for c in reversed(str(a))]
    db = [int(c) for c in reversed(str(b))]
    n = max(len(da), len(db))
    cols, res, carry = [], [], 0
    for i in range(n):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        s = x + y + carry
        cols.append(f"{PLACES[i]} {x}+{y}" + (f"+{carry}" if carry else "") + f"={s}")
        carry = s // 10
        res.append(s % 10)
    if carry:
        cols.append(f"{PLACES[n]} 1")
        res.append(1)
    readback = " ".join(f"{PLACES[i]} {res[i]}" for i in reversed(range(len(res))))
    return "; ".join(cols) + f". Read {readback} = {a + b}."


def mul1_core(a: int, d: int, shift: int) -> tuple[str, int]:
    """a times one digit d, placed `shift` places up (the same column/read-back scheme)."""
    da = [int(c) for c in reversed(str(a))]
    cols, res, carry = [], [0] * shift, 0
    for i, x in enumerate(da):
        p = x * d + carry
        cols.append(f"{PLACES[i + shift]} {x}*{d}" + (f"+{carry}" if carry else "") + f"={p}")
        carry = p // 10
        res.append(p % 10)
    if carry:
        cols.append(f"{PLACES[len(da) + shift]} {carry}")
        res.append(carry)
    while len(res) > 1 and res[-1] == 0:  # only when d == 0 or a == 0
        res.pop()
    value = a * d * 10**shift
    readback = " ".join(f"{PLACES[i]} {res[i]}" for i in reversed(range(len(res))))
    return "; ".join(cols) + f". Read {readback} = {value}.", value


def add_analysis(a: int, b: int, effort: str) -> str:
    core = f"Digits {spell(a)} and {spell(b)}.\n{add_core(a, b)}"
    s = a + b
    if effort == "low":
        return f"{a}+{b}. {core}"
    if effort == "medium":
        return f"Add {a} and {b} column by column from the right. {core}\nSo {a} + {b} = {s}."
    return (
        f"The user wants {a} + {b}. Add column by column from the right, carrying when a column reaches 10, "
        f"then read the digits from the top place down. {core}\nSo {a} + {b} = {s}. The answer is {s}."
    )


def mul_analysis(a: int, b: int, effort: str, lead: str | None = None) -> str:
    """Long multiplication of a (1-3 digits) by b (1-2 digits)."""
    db = [int(c) for c in reversed(str(b))]
    parts, vals = [], []
    for j, d in enumerate(db):
        core, v = mul1_core(a, d, j)
        parts.append(f"{a}*{d}" + (" shifted" if j else "") + f": {core}")
        vals.append(v)
    p = a * b
    if lead is None:
        lead = {
            "low": f"{a}*{b}.",
            "medium": f"Multiply {a} by each digit of {b}, then add.",
            "high": (
                f"The user wants {a} * {b}. Multiply {a} by each digit of {b} from the right, "
                "then add the partial products."
            ),
        }[effort]
    out = lead + f" Digits {spell(a)} and {spell(b)}.\n" + "\n".join(parts)
    if len(vals) == 2:
        out += f"\nAdd {vals[0]}+{vals[1]}. Digits {spell(vals[0])} and {spell(vals[1])}.\n" + add_core(vals[0], vals[1])
    if effort == "medium":
        out += f"\nSo {a} * {b} = {p}."
    elif effort == "high":
        out += f"\nSo {a} * {b} = {p}. The answer is {p}."
    return out


# ----------------------------------------------------------------------------
# Task generators. Each returns a dict:
#   task, user, turn: [("assistant"|"tool", ...)], eval_key, expect (for eval)
# A turn is a list of message specs:
#   ("analysis", text) ("final", text)
#   ("call", channel, recipient, content_type, text) ("tool", author, channel, text)
# ----------------------------------------------------------------------------


def rand_digits(rng: random.Random, lo: int, hi: int) -> int:
    nd = rng.randint(lo, hi)
    if nd == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (nd - 1), 10**nd - 1)


def gen_add(rng, effort, ctx):
    a, b = rand_digits(rng, 1, 4), rand_digits(rng, 1, 4)
    if a < 10 and b < 10:
        b = rand_digits(rng, 2, 4)
    q = rng.choice(
        [
            "What is {a} + {b}?",
            "What is {a} plus {b}?",
            "Compute {a} + {b}.",
            "Add {a} and {b}.",
            "{a} + {b} = ?",
            "Calculate {a}+{b}",
            "What's the sum of {a} and {b}?",
            "Please add {a} to {b}.",
        ]
    ).format(a=a, b=b)
    final = f"{a} + {b} = {a + b}"
    return dict(
        task="add", user=q, key=("add", a, b),
        turn=[("analysis", add_analysis(a, b, effort)), ("final", final)],
        expect={"final_answer": final, "answer": str(a + b)},
    )


def gen_mul(rng, effort, ctx):
    a, b = rand_digits(rng, 1, 3), rand_digits(rng, 1, 2)
    if rng.random() < 0.3:
        a, b = rand_digits(rng, 2, 3), rand_digits(rng, 2, 2)
    swap = rng.random() < 0.25  # user may give the short number first
    x, y = (b, a) if swap else (a, b)
    q = rng.choice(
        [
            "What is {x} * {y}?",
            "What is {x} times {y}?",
            "Multiply {x} by {y}.",
            "Compute {x} * {y}.",
            "{x} * {y} = ?",
            "Calculate {x}*{y}",
            "What's the product of {x} and {y}?",
            "What is {x} x {y}?",
        ]
    ).format(x=x, y=y)
    lead = None
    if swap:
        # compute with the longer number first; say so
        lead = {
            "low": f"{x}*{y} = {a}*{b}.",
            "medium": f"{x} * {y} = {a} * {b}. Multiply {a} by each digit of {b}, then add.",
            "high": (
                f"The user wants {x} * {y}, which equals {a} * {b}. Multiply {a} by each digit of {b} "
                "from the right, then add the partial products."
            ),
        }[effort]
    ana = mul_analysis(a, b, effort, lead)
    final = f"{x} * {y} = {a * b}"
    return dict(
        task="mul", user=q, key=("mul", min(a, b), max(a, b)),
        turn=[("analysis", ana), ("final", final)],
        expect={"final_answer": final, "answer": str(a * b)},
    )


def gen_unit(rng, effort, ctx):
    fs, fp, ab, ts, tp, k = rng.choice(UNIT_PAIRS)
    v = rand_digits(rng, 1, 3)
    if v == 0:
        v = rng.randint(1, 9)
    fname = fs if v == 1 else fp
    q = rng.choice(
        [
            "Convert {v} {fu} to {tp}.",
            "How many {tp} are in {v} {fu}?",
            "{v} {ab} in {tp}?",
            "What is {v} {fu} in {tp}?",
            "Convert {v} {ab} to {tp}.",
        ]
    ).format(v=v, fu=fname, ab=ab, tp=tp)
    res = v * k
    tname = ts if res == 1 else tp
    fact = f"1 {fs} = {k} {tp}."
    if k in (100, 1000):
        z = len(str(k)) - 1
        core = f"Multiply by {k}: append {z} zeros to {spell(v)}: {spell(res)}."
        if effort == "low":
            ana = f"{fact} {core} {v} * {k} = {res}."
        elif effort == "medium":
            ana = f"{fact} So {v} {fname} is {v} * {k} {tp}. {core} That is {res}."
        else:
            ana = (
                f"The user wants {v} {fname} in {tp}. {fact}\nSo multiply {v} by {k}. "
                f"{core}\nSo {v} * {k} = {res}. The answer is {res} {tname}."
            )
    else:
        lead_extra = {"low": f"{fact}", "medium": f"{fact} So compute {v} * {k}.",
                      "high": f"The user wants {v} {fname} in {tp}. {fact}\nSo multiply {v} by {k}."}[effort]
        a, b = (v, k) if len(str(v)) >= len(str(k)) else (k, v)
        lead = lead_extra + f" {a}*{b}."
        ana = mul_analysis(a, b, effort, lead)
        if effort == "high":
            ana += f"\nSo {v} {fname} = {res} {tname}."
    final = f"{v} {fname} = {res} {tname}"
    return dict(
        task="unit", user=q, key=("unit", fs, v),
        turn=[("analysis", ana), ("final", final)],
        expect={"final_answer": final, "answer": str(res)},
    )


def gen_sort(rng, effort, ctx):
    n = rng.randint(3, 5)
    nums = rng.sample(range(0, 1000), n) if rng.random() < 0.7 else rng.sample(range(0, 100), n)
    mode = rng.choice(["asc", "desc", "max", "min"])
    lst = ", ".join(map(str, nums))
    if mode in ("asc", "desc"):
        word = "ascending" if mode == "asc" else "descending"
        q = rng.choice(
            [
                "Sort these numbers in {w} order: {l}",
                "Sort {l} in {w} order.",
                "Put these numbers in {w} order: {l}.",
                "Order the numbers {l} ({w}).",
            ]
        ).format(w=word, l=lst)
        pick = "smallest" if mode == "asc" else "largest"
        out = sorted(nums, reverse=(mode == "desc"))
        steps = []
        cand = list(nums)
        for m in out[:-1]:
            steps.append(f"{pick.capitalize()} of {', '.join(map(str, cand))} is {m}.")
            cand.remove(m)
        steps.append(f"Last is {out[-1]}.")
        res = ", ".join(map(str, out))
        body = "\n".join(steps)
        if effort == "low":
            ana = f"Sort {word}: {lst}.\n{body}\nOrder: {res}."
        elif effort == "medium":
            ana = f"Sort {lst} in {word} order by taking the {pick} each time.\n{body}\nOrder: {res}."
        else:
            ana = (
                f"The user wants {lst} sorted in {word} order. Repeatedly take the {pick} remaining number.\n"
                f"{body}\nOrder: {res}. The answer is {res}."
            )
        final = res
    else:
        word = "largest" if mode == "max" else "smallest"
        q = rng.choice(
            [
                "Which is the {w}: {l}?",
                "Which number is {w}: {l}?",
                "Find the {w} number among {l}.",
                "What is the {w} of {l}?",
            ]
        ).format(w=word, l=lst)
        best = nums[0]
        steps = [f"Start with {best}."]
        for x in nums[1:]:
            better = x > best if mode == "max" else x < best
            cmp = ("larger" if x > best else "smaller")
            if better:
                steps.append(f"{x} is {cmp} than {best}, keep {x}.")
                best = x
            else:
                steps.append(f"{x} is {cmp} than {best}, keep {best}.")
        body = "\n".join(steps)
        if effort == "low":
            ana = f"{word.capitalize()} of {lst}.\n{body}\n{word.capitalize()}: {best}."
        elif effort == "medium":
            ana = f"Find the {word} of {lst} by comparing one at a time.\n{body}\n{word.capitalize()}: {best}."
        else:
            ana = (
                f"The user wants the {word} number among {lst}. Compare the numbers one at a time.\n"
                f"{body}\nThe {word} is {best}. The answer is {best}."
            )
        final = f"The {word} is {best}."
    return dict(
        task="sort", user=q, key=("sort", mode, tuple(nums)),
        turn=[("analysis", ana), ("final", final)],
        expect={"final_answer": final},
    )


def gen_count(rng, effort, ctx):
    w = rng.choice(WORDS)
    if rng.random() < 0.8:
        letter = rng.choice(sorted(set(w)))
    else:
        letter = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c not in w])
    q = rng.choice(
        [
            'How many times does the letter "{c}" appear in "{w}"?',
            "How many {c}'s are in {w}?",
            'Count the letter {c} in the word "{w}".',
            'How many "{c}" are there in {w}?',
            "How many times does {c} occur in the word {w}?",
        ]
    ).format(c=letter, w=w)
    cnt = 0
    marks = []
    for ch in w:
        if ch == letter:
            cnt += 1
        marks.append(f"{ch}:{cnt}")
    spelled = " ".join(w)
    body = " ".join(marks)
    if effort == "low":
        ana = f"Count {letter} in {w}: {spelled}.\n{body}\nCount {cnt}."
    elif effort == "medium":
        ana = f"Spell {w}: {spelled}. Keep a running count of {letter}.\n{body}\nCount {cnt}."
    else:
        ana = (
            f'The user wants the number of "{letter}" in "{w}". Spell it letter by letter: {spelled}.\n'
            f"Go through the letters and keep a running count of {letter}.\n{body}\n"
            f"The letter {letter} appears {cnt} times. The answer is {cnt}."
        )
    final = f'The letter "{letter}" appears {cnt} time{"" if cnt == 1 else "s"} in "{w}".'
    return dict(
        task="count", user=q, key=("count", w, letter, q),
        turn=[("analysis", ana), ("final", final)],
        expect={"final_answer": final, "answer": str(cnt)},
    )


def gen_weather(rng, effort, ctx):
    city = rng.choice(CITIES)
    unit = rng.choice([None, None, "celsius", "fahrenheit"])
    base = rng.choice(
        [
            "What's the weather in {c}?",
            "What is the weather like in {c}?",
            "How warm is it in {c} right now?",
            "Is it raining in {c}?",
            "Tell me the current weather in {c}.",
            "Weather in {c}?",
        ]
    ).format(c=city)
    if unit:
        base = base.rstrip("?.") + rng.choice([f" in {unit}?", f", in {unit} please.", f" ({unit})"])
    args = {"location": city}
    if unit:
        args["unit"] = unit
    u = unit or "celsius"
    temp = rng.randint(-10, 38) if u == "celsius" else rng.randint(14, 100)
    cond = rng.choice(CONDITIONS)
    result = json.dumps({"location": city, "temperature": temp, "unit": u, "condition": cond})
    sym = "°C" if u == "celsius" else "°F"
    ana1 = {
        "low": f"Weather in {city}: call get_weather.",
        "medium": f"The user asks about the weather in {city}. Use get_weather" + (f" with unit {unit}." if unit else "."),
        "high": (
            f"The user wants the current weather in {city}. I cannot know it myself, but the get_weather "
            f"function can fetch it. Call it with location {city}" + (f" and unit {unit}." if unit else ".")
        ),
    }[effort]
    ana2 = {
        "low": f"{temp} {u}, {cond}.",
        "medium": f"The tool says {temp} degrees {u} and {cond} in {city}.",
        "high": f"The tool returned temperature {temp} in {u} and condition {cond} for {city}. Report that to the user.",
    }[effort]
    final = f"It is currently {temp}{sym} and {cond} in {city}."
    turn = [
        ("analysis", ana1),
        ("call", "commentary", "functions.get_weather", "<|constrain|>json", cjson(args)),
        ("tool", "functions.get_weather", "commentary", result),
        ("analysis", ana2),
        ("final", final),
    ]
    return dict(
        task="weather", user=base, key=("weather", city, unit, base), turn=turn,
        call={"recipient": "functions.get_weather", "arguments": args},
        expect={"final_answer": final},
    )


def gen_python(rng, effort, ctx):
    op = rng.choice(["*", "*", "+"])
    if op == "*":
        a, b = rand_digits(rng, 3, 5), rand_digits(rng, 3, 5)
        if a < 1000 and b < 1000:
            a = rand_digits(rng, 4, 5)
        q = rng.choice(["What is {a} * {b}?", "Multiply {a} by {b}.", "Compute {a} * {b}.", "What is {a} times {b}?"])
        val = a * b
    else:
        a, b = rand_digits(rng, 5, 7), rand_digits(rng, 5, 7)
        q = rng.choice(["What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} + {b}."])
        val = a + b
    q = q.format(a=a, b=b)
    code = f"print({a} {op} {b})"
    ana1 = {
        "low": "Large numbers; use python.",
        "medium": f"{a} {op} {b} is too big to do reliably by hand. Use the python tool.",
        "high": (
            f"The user wants {a} {op} {b}. These numbers are large, so doing it digit by digit is error prone. "
            "I have a python tool; run the calculation there."
        ),
    }[effort]
    ana2 = {"low": f"Result {val}.", "medium": f"Python printed {val}.",
            "high": f"The python tool printed {val}, so {a} {op} {b} = {val}."}[effort]
    final = f"{a} {op} {b} = {val}"
    turn = [
        ("analysis", ana1),
        ("call", "analysis", "python", "code", code),
        ("tool", "python", "analysis", f"{val}\n"),
        ("analysis", ana2),
        ("final", final),
    ]
    return dict(
        task="python", user=q, key=("python", op, a, b), turn=turn,
        call={"recipient": "python", "code": code},
        expect={"final_answer": final, "answer": str(val)},
    )


def handoff_answer(kind: str, subject: str) -> str:
    if kind in ("poem", "haiku"):
        return f"Here is a {kind} about {subject}:\n\nQuiet words for {subject},\nlight that comes and goes,\nand the world grows calm."
    if kind == "story":
        return f"Once upon a time there was {subject}. It went on a long journey, learned something new, and came home happy. The end."
    if kind == "summary":
        return f"In short, {subject} is a broad topic; its key ideas are its causes, how it works, and its effects."
    if kind == "essay":
        return f"{subject[0].upper() + subject[1:]} is an important subject. This essay covers what it is, why it matters, and what comes next."
    return f"{subject[0].upper() + subject[1:]} is easiest to understand step by step: it is a process with simple parts that work together."


def gen_handoff(rng, effort, ctx):
    kind, tmpl = rng.choice(HANDOFF_TEMPLATES)
    subj = rng.choice(HANDOFF_TOPICS) if "{t}" in tmpl else rng.choice(HANDOFF_CONCEPTS)
    q = tmpl.format(t=subj, c=subj)
    if not ctx["handoff"]:
        final = (
            "Sorry, I am a small demo model and cannot do that. I can do arithmetic, unit conversions, "
            "sorting numbers and counting letters."
        )
        ana = {"low": "Outside my skills and no handoff tool. Decline.",
               "medium": "This is outside my skills, and I have no tool to hand it off. Decline politely.",
               "high": "The user asks for something I cannot do reliably. No handoff tool is available, so I should decline politely and say what I can do."}[effort]
        return dict(task="decline", user=q, key=("handoff", q), turn=[("analysis", ana), ("final", final)],
                    expect={"final_answer": final})
    answer = handoff_answer(kind, subj)
    ana1 = {"low": "Outside my skills; hand off.",
            "medium": "This is outside my skills. Hand it to the remote model with handoff.ask.",
            "high": "The user asks for something a small model cannot do well. I have the handoff tool, so send the full task to the remote model."}[effort]
    ana2 = {"low": "Got the answer; pass it on.",
            "medium": "The remote model answered. Give that answer to the user.",
            "high": "The remote model returned an answer. Pass it on to the user unchanged."}[effort]
    args = {"task": q}
    turn = [
        ("analysis", ana1),
        ("call", "analysis", "handoff.ask", "<|constrain|>json", cjson(args)),
        ("tool", "handoff.ask", "analysis", answer),
        ("analysis", ana2),
        ("final", answer),
    ]
    return dict(task="handoff", user=q, key=("handoff", q), turn=turn,
                call={"recipient": "handoff.ask", "arguments": args}, expect={"final_answer": answer})


def gen_bigmath_no_tool(rng, effort, ctx):
    a, b = rand_digits(rng, 4, 5), rand_digits(rng, 3, 5)
    q = f"What is {a} * {b}?"
    final = "That calculation is too large for me to do reliably without a python tool."
    ana = {"low": "Too large without tools.", "medium": "These numbers are too large to multiply reliably by hand, and no tool is available.",
           "high": "The numbers are too large for me to multiply reliably digit by digit, and I have no python or handoff tool. Say so."}[effort]
    return dict(task="bigmath_no_tool", user=q, key=("bigmath", a, b), turn=[("analysis", ana), ("final", final)],
                expect={"final_answer": final})


TASK_WEIGHTS = [
    (gen_add, 0.17), (gen_mul, 0.24), (gen_unit, 0.12), (gen_sort, 0.12), (gen_count, 0.10),
    (gen_weather, 0.09), (gen_python, 0.07), (gen_handoff, 0.09),
]


# ----------------------------------------------------------------------------
# Conversation assembly
# ----------------------------------------------------------------------------


def random_context(rng: random.Random, need: str | None = None):
    """System/developer configuration. `need` forces a tool to be present."""
    ctx = {
        "effort": rng.choice(["low", "medium", "high"]),
        "date": None,
        "identity": rng.choice(IDENTITIES),
        "python": rng.random() < 0.25,
        "handoff": rng.random() < 0.35,
        "weather": rng.random() < 0.3,
        "instructions": rng.choice(DEV_INSTRUCTIONS) if rng.random() < 0.4 else None,
    }
    if rng.random() < 0.75:
        d = dt.date(2024, 7, 1) + dt.timedelta(days=rng.randint(0, 365 * 3))
        ctx["date"] = d.isoformat()
    if need:
        ctx[need] = True
    return ctx


def build_prefix(ctx) -> list:
    """System (+ developer) messages for a context."""
    eff = {"low": H.ReasoningEffort.LOW, "medium": H.ReasoningEffort.MEDIUM, "high": H.ReasoningEffort.HIGH}
    sc = H.SystemContent.new().with_reasoning_effort(eff[ctx["effort"]])
    if ctx["identity"]:
        sc = sc.with_model_identity(ctx["identity"])
    if ctx["date"]:
        sc = sc.with_conversation_start_date(ctx["date"])
    if ctx["python"]:
        sc = sc.with_python_tool()
    if ctx["handoff"]:
        sc = sc.with_tools(handoff_namespace())
    msgs = [H.Message.from_role_and_content(H.Role.SYSTEM, sc)]
    if ctx["weather"] or ctx["instructions"]:
        dc = H.DeveloperContent.new()
        if ctx["instructions"]:
            dc = dc.with_instructions(ctx["instructions"])
        if ctx["weather"]:
            dc = dc.with_function_tools([weather_tool()])
        msgs.append(H.Message.from_role_and_content(H.Role.DEVELOPER, dc))
    return msgs


def spec_to_messages(turn) -> list:
    out = []
    for m in turn:
        kind = m[0]
        if kind in ("analysis", "final"):
            out.append(H.Message.from_role_and_content(H.Role.ASSISTANT, m[1]).with_channel(kind))
        elif kind == "call":
            _, ch, rcpt, ctype, text = m
            out.append(
                H.Message.from_role_and_content(H.Role.ASSISTANT, text)
                .with_channel(ch).with_recipient(rcpt).with_content_type(ctype)
            )
        elif kind == "tool":
            _, author, ch, text = m
            out.append(
                H.Message.from_author_and_content(H.Author.new(H.Role.TOOL, author), text)
                .with_channel(ch).with_recipient("assistant")
            )
        else:
            raise ValueError(kind)
    return out


def pick_task(rng: random.Random, ctx):
    r = rng.random()
    acc = 0.0
    for fn, w in TASK_WEIGHTS:
        acc += w
        if r < acc:
            break
    if fn is gen_weather and not ctx["weather"]:
        ctx["weather"] = True
    if fn is gen_handoff and not ctx["handoff"] and rng.random() < 0.7:
        ctx["handoff"] = True
    if fn is gen_python and not ctx["python"]:
        if rng.random() < 0.9:
            ctx["python"] = True
        else:
            fn = gen_bigmath_no_tool
            ctx["handoff"] = False
    return fn


TASK_NAMES = {"add": gen_add, "mul": gen_mul, "unit": gen_unit, "sort": gen_sort, "count": gen_count,
              "weather": gen_weather, "python": gen_python, "handoff": gen_handoff}


def set_weights(spec: str):
    """Replace TASK_WEIGHTS from "add=0.2,mul=0.3,..." (renormalised to sum 1)."""
    global TASK_WEIGHTS
    pairs = [kv.split("=") for kv in spec.split(",") if kv]
    ws = [(TASK_NAMES[k], float(v)) for k, v in pairs]
    tot = sum(w for _, w in ws)
    TASK_WEIGHTS = [(fn, w / tot) for fn, w in ws]


def operand_key(task: str, user: str):
    """Task plus the multiset of integers in the user text: the held-out test of --eval-in."""
    import re

    return (task, tuple(sorted(int(x) for x in re.findall(r"\d+", user))))


SIMPLE_HISTORY = [gen_add, gen_mul, gen_sort, gen_count, gen_unit]


def make_sample(rng: random.Random, force=None):
    """One training conversation: (Conversation, n_prefix_msgs, sample dict)."""
    ctx = random_context(rng)
    fn = force or pick_task(rng, ctx)
    if fn is gen_weather:
        ctx["weather"] = True
    if fn is gen_python:
        ctx["python"] = True
    sample = fn(rng, ctx["effort"], ctx)
    msgs = build_prefix(ctx)
    if rng.random() < 0.12:  # an earlier turn, its analysis already dropped
        prev = rng.choice(SIMPLE_HISTORY)(rng, ctx["effort"], ctx)
        msgs.append(H.Message.from_role_and_content(H.Role.USER, prev["user"]))
        msgs.append(H.Message.from_role_and_content(H.Role.ASSISTANT, prev["turn"][-1][1]).with_channel("final"))
    msgs.append(H.Message.from_role_and_content(H.Role.USER, sample["user"]))
    n_prompt = len(msgs)
    msgs += spec_to_messages(sample["turn"])
    sample["ctx"] = ctx
    return H.Conversation.from_messages(msgs), n_prompt, sample


START, END, CALL, RETURN, ASSISTANT = 200006, 200007, 200012, 200002, 173781


def render_with_mask(conv, n_prompt: int):
    """Tokens of the training rendering plus the assistant-only target mask."""
    import numpy as np  # here, so the task generators import without numpy

    cfg = H.RenderConversationConfig(auto_drop_analysis=False)
    toks = ENC.render_conversation_for_training(conv, cfg)
    mask = np.zeros(len(toks), dtype=np.uint8)
    # message i starts at the i-th <|start|>: message text is encoded without
    # special tokens, so <|start|> appears only as a header
    starts = [j for j, t in enumerate(toks) if t == START]
    msgs = conv.messages
    if len(starts) != len(msgs):
        raise RuntimeError("message count does not match the rendering")
    starts.append(len(toks))
    for i, m in enumerate(msgs):
        lo, hi = starts[i], starts[i + 1]
        if toks[hi - 1] not in (END, CALL, RETURN):
            raise RuntimeError("message does not end with a stop token")
        if i >= n_prompt and m.author.role == H.Role.ASSISTANT:
            if toks[lo + 1] != ASSISTANT:
                raise RuntimeError("assistant header must start <|start|>assistant")
            prev_is_assistant = i > n_prompt and msgs[i - 1].author.role == H.Role.ASSISTANT
            # the runtime supplies <|start|>assistant after a prompt or a tool result;
            # within one completion the model itself writes them
            mask[(lo if prev_is_assistant else lo + 2):hi] = 1
    return toks, mask


# ----------------------------------------------------------------------------
# Evaluation set
# ----------------------------------------------------------------------------

EVAL_PLAN = [
    ("add", gen_add, None, 30), ("mul", gen_mul, None, 30), ("unit", gen_unit, None, 25),
    ("sort", gen_sort, None, 25), ("count", gen_count, None, 20),
    ("weather_call", gen_weather, "call", 15), ("weather_answer", gen_weather, "answer", 10),
    ("python_call", gen_python, "call", 15), ("python_answer", gen_python, "answer", 10),
    ("handoff_call", gen_handoff, "call", 15), ("handoff_answer", gen_handoff, "answer", 5),
]


def eval_items(seed: int, train_keys: set, train_prompts: set):
    rng = random.Random(seed)
    items = []
    for name, fn, stage, count in EVAL_PLAN:
        made = 0
        tries = 0
        while made < count:
            tries += 1
            if tries > 100000:
                raise RuntimeError(f"cannot find enough held-out items for {name}")
            ctx = random_context(rng)
            if fn is gen_weather:
                ctx["weather"] = True
            if fn is gen_python:
                ctx["python"] = True
            if fn is gen_handoff:
                ctx["handoff"] = True
            s = fn(rng, ctx["effort"], ctx)
            if s["key"] in train_keys and s["task"] in ("add", "mul", "unit", "sort", "python"):
                continue
            msgs = build_prefix(ctx) + [H.Message.from_role_and_content(H.Role.USER, s["user"])]
            turn_msgs = spec_to_messages(s["turn"])
            if stage == "answer":
                # prompt continues after the tool result: analysis + call + result
                msgs += turn_msgs[:3]
                expect = {"final_answer": s["expect"]["final_answer"]}
            elif stage == "call":
                expect = {"tool_call": s["call"]}
            else:
                expect = dict(s["expect"])
            conv = H.Conversation.from_messages(msgs)
            prompt = ENC.render_conversation_for_completion(conv, H.Role.ASSISTANT)
            if tuple(prompt) in train_prompts:
                continue
            items.append({
                "id": f"{name}-{made:03d}",
                "task": name,
                "effort": ctx["effort"],
                "conversation": json.loads(conv.to_json()),
                "expect": expect,
                "prompt_tokens": prompt,
            })
            made += 1
    return items


# ----------------------------------------------------------------------------


def main():
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-train", type=int, default=120000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-seed", type=int, default=987654)
    ap.add_argument("--eval-out", default=str(Path(__file__).with_name("eval_set.jsonl")))
    ap.add_argument("--show", type=int, default=0, help="print N decoded samples and exit")
    ap.add_argument("--eval-in", default=None,
                    help="keep this existing eval_set.jsonl (no new eval set): training conversations whose "
                         "task operands match an eval prompt are skipped, and its prompt tokens stay in the used rows")
    ap.add_argument("--weights", default=None,
                    help="task mix, e.g. add=0.2,mul=0.3,... (names: " + ",".join(TASK_NAMES) + "); default: TASK_WEIGHTS")
    args = ap.parse_args()
    init()
    rng = random.Random(args.seed)
    if args.show:
        for _ in range(args.show):
            conv, n_prompt, s = make_sample(rng)
            toks, mask = render_with_mask(conv, n_prompt)
            print("=" * 30, s["task"], len(toks), int(mask.sum()))
            t = ENC.decode(toks)
            print(t)
            print("--- targets:", repr(ENC.decode([x for x, k in zip(toks, mask) if k])))
        return
    if args.weights:
        set_weights(args.weights)
    eval_keys, eval_prompt_toks, eval_ids = set(), [], []
    if args.eval_in:
        for line in open(args.eval_in):
            it = json.loads(line)
            conv = H.Conversation.from_json(json.dumps(it["conversation"]))
            eval_prompt_toks.append(ENC.render_conversation_for_completion(conv, H.Role.ASSISTANT))
            eval_ids.append((it["id"], it["task"]))
            user = [m for m in it["conversation"]["messages"] if m["role"] == "user"][-1]
            text = "".join(c.get("text", "") for c in user["content"])
            base = it["task"].split("_")[0]
            eval_keys.add(operand_key(base, text))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_toks, all_mask, offsets, task_ids = [], [], [0], []
    task_list = sorted(TASK_NAMES) + ["decline", "bigmath_no_tool"]
    skipped = 0
    train_keys, train_prompts = set(), set()
    counts = {}
    i = 0
    while i < args.n_train:
        conv, n_prompt, s = make_sample(rng)
        if eval_keys and s["task"] in ("add", "mul", "unit", "sort", "python") \
                and operand_key(s["task"], s["user"]) in eval_keys:
            skipped += 1
            continue
        i += 1
        task_ids.append(task_list.index(s["task"]))
        toks, mask = render_with_mask(conv, n_prompt)
        all_toks.append(np.asarray(toks, dtype=np.int32))
        all_mask.append(mask)
        offsets.append(offsets[-1] + len(toks))
        train_keys.add(s["key"])
        # the prompt the model sees first in this conversation
        first_t = int(np.argmax(mask)) - 0
        train_prompts.add(tuple(toks[: first_t]))
        counts[s["task"]] = counts.get(s["task"], 0) + 1
        if i % 20000 == 0:
            print(f"{i} conversations", file=sys.stderr)
    toks = np.concatenate(all_toks)
    mask = np.concatenate(all_mask)
    lens = np.diff(np.asarray(offsets))
    if args.eval_in:
        items = []
        used = set(np.unique(toks).tolist())
        for pt in eval_prompt_toks:
            used.update(pt)
    else:
        items = eval_items(args.eval_seed, train_keys, train_prompts)
        used = set(np.unique(toks).tolist())
        for it in items:
            used.update(it["prompt_tokens"])
    # every number chunk the tokenizer can produce, so any operand has a trained row
    for n in range(1000):
        for s in {str(n), f"{n:02d}", f"{n:03d}"}:
            if len(s) <= 3:
                used.update(ENC.encode(s, allowed_special=set()))
    used.update(ENC.stop_tokens_for_assistant_actions())
    used.update(ENC.stop_tokens())
    used = np.asarray(sorted(used), dtype=np.int32)
    # the text of every used row: train.py gives pure-digit tokens a structured initial embedding
    used_text = np.asarray([ENC.decode([int(t)]) if int(t) < 199998 else "" for t in used])
    np.savez_compressed(
        out / "train.npz", tokens=toks, mask=mask, offsets=np.asarray(offsets, dtype=np.int64), used=used,
        used_text=used_text, task=np.asarray(task_ids, dtype=np.int8), task_names=np.asarray(task_list),
    )
    if args.eval_in:  # the kept eval set's prompts, for train.py's greedy decoding
        with open(out / "eval_prompts.json", "w") as f:
            json.dump([{"id": i, "task": t, "prompt_tokens": [int(x) for x in pt]}
                       for (i, t), pt in zip(eval_ids, eval_prompt_toks)], f)
    else:
        with open(out / "eval_prompts.json", "w") as f:
            json.dump([{"id": it["id"], "task": it["task"], "prompt_tokens": it["prompt_tokens"]} for it in items], f)
        with open(args.eval_out, "w") as f:
            for it in items:
                rec = {k: it[k] for k in ("id", "task", "effort", "conversation", "expect")}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(json.dumps({
        "conversations": args.n_train, "tokens": int(len(toks)), "target_tokens": int(mask.sum()),
        "mean_len": float(lens.mean()), "max_len": int(lens.max()), "used_tokens": int(len(used)),
        "eval_items": len(items), "tasks": counts, "skipped_as_eval_overlap": skipped,
    }, indent=1))


if __name__ == "__main__":
    main()
