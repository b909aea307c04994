"""Golden cases for the browser's 80-column wrapping (crates/tools/src/textwrap.rs).

The gpt-oss browser reference wraps page text with
textwrap.wrap(line, width=80, replace_whitespace=False, drop_whitespace=False)
per line. This writes seeded random lines (words, hyphens, em-dashes, tabs,
runs of spaces, long words, non-ASCII) and CPython's wrapping of each.

Regenerate: python3 scripts/golden/textwrap_cases.py > testdata/textwrap/cases.json
"""
import json
import random
import sys
import textwrap

rng = random.Random(7)
pieces = ["word", "hyphen-ated", "a", "--", "em--dash", "x" * 95, "re-re-re-entry", "\t", "  ", " ",
          "Ünïcödé", "数据", "end.", "-lead", "trail-", "1-2", "a-b-c", "—", "well-known", "e.g.", "?!"]
cases = []
for width in (80, 20, 7):
    for _ in range(120):
        n = rng.randint(1, 40)
        line = "".join(rng.choice(pieces) + (" " if rng.random() < 0.6 else "") for _ in range(n))
        line = line.replace("\n", " ")
        cases.append({"width": width, "line": line,
                      "wrapped": textwrap.wrap(line, width=width, replace_whitespace=False, drop_whitespace=False)})
json.dump({"generator": "scripts/golden/textwrap_cases.py", "python": sys.version.split()[0], "cases": cases},
          sys.stdout, ensure_ascii=False, indent=0)
