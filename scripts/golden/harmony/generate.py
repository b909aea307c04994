#!/usr/bin/env python3
"""Generate the harmony golden fixtures (testdata/harmony/*.json).

Owns: argument parsing, offline vocabulary setup and calling the three
fixture builders in order (tokenizer, render, parse), writing each file as
soon as it is ready. References: tiktoken and openai-harmony at the versions
pinned in requirements.txt. Usage: see testdata/harmony/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

REPO_ROOT = HERE.parents[2]
SCRIPT = "generate.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vocab", help="path to o200k_base.tiktoken (default: tiktoken-rs copy in the cargo registry)")
    ap.add_argument("--out", default=str(REPO_ROOT / "testdata" / "harmony"), help="output folder")
    ap.add_argument(
        "--only", choices=["tokenizer", "render", "parse"], action="append",
        help="generate only these fixtures (repeatable); default all",
    )
    args = ap.parse_args()
    which = args.only or ["tokenizer", "render", "parse"]

    vocab = common.find_vocab(args.vocab)
    tmp = common.setup_offline_vocab(vocab)
    try:
        generator = common.generator_string(SCRIPT)
        tik, harmony = common.load_encodings()
        out = Path(args.out)
        if "tokenizer" in which:
            import gen_tokenizer

            common.write_fixture(out, "tokenizer.json", generator, gen_tokenizer.build(tik, harmony))
        if "render" in which:
            import gen_render

            common.write_fixture(out, "render.json", generator, gen_render.build(harmony))
        if "parse" in which:
            import gen_parse

            common.write_fixture(out, "parse.json", generator, gen_parse.build(harmony))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
