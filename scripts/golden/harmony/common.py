"""Shared setup for the harmony golden generators.

Owns: locating the o200k_base vocabulary offline, pointing tiktoken and
openai-harmony at it (before either library loads it), loading both
encodings, and writing fixtures in the agreed compact-pretty JSON layout.
Does not own: the test cases themselves (tokenizer_cases.py, render_cases.py,
parse_cases.py).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

# Both libraries pin this digest; a different file would silently give other ids.
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken caches downloads under sha1(url); we pre-seed that cache entry.
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"

PINNED = {"tiktoken": "0.14.0", "openai-harmony": "0.0.8"}


def find_vocab(explicit: str | None) -> Path:
    """Return the o200k_base.tiktoken path: explicit argument, $O200K_BASE_PATH,
    or the copy shipped by the tiktoken-rs crate in the cargo registry."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    elif os.environ.get("O200K_BASE_PATH"):
        candidates.append(os.environ["O200K_BASE_PATH"])
    else:
        cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
        pattern = os.path.join(
            cargo_home, "registry", "src", "*", "tiktoken-rs-*", "assets", "o200k_base.tiktoken"
        )
        candidates.extend(sorted(glob.glob(pattern), reverse=True))
    for cand in candidates:
        path = Path(cand)
        if path.is_file() and sha256_of(path) == O200K_SHA256:
            return path
    raise SystemExit(
        "could not find o200k_base.tiktoken with sha256 "
        f"{O200K_SHA256}; tried {candidates or '(nothing found in the cargo registry)'}. "
        "Fetch the tiktoken-rs crate (e.g. `cargo fetch` in the workspace) or pass --vocab PATH."
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup_offline_vocab(vocab: Path) -> str:
    """Copy the vocabulary into a fresh temp dir under both expected names and
    point the two libraries at it. Must run before tiktoken/openai_harmony load
    an encoding. Returns the temp dir (caller may delete it at exit)."""
    tmp = tempfile.mkdtemp(prefix="o200k-")
    shutil.copyfile(vocab, os.path.join(tmp, "o200k_base.tiktoken"))
    shutil.copyfile(vocab, os.path.join(tmp, hashlib.sha1(O200K_URL.encode()).hexdigest()))
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = tmp  # read by openai-harmony
    os.environ["TIKTOKEN_CACHE_DIR"] = tmp  # read by tiktoken
    return tmp


def check_versions() -> dict[str, str]:
    found = {name: metadata.version(name) for name in PINNED}
    wrong = {k: v for k, v in found.items() if v != PINNED[k]}
    if wrong:
        raise SystemExit(f"wrong reference versions installed: {wrong}; expected {PINNED}")
    return found


def generator_string(script: str) -> str:
    vers = check_versions()
    return f"scripts/golden/harmony/{script} (tiktoken=={vers['tiktoken']}, openai-harmony=={vers['openai-harmony']})"


def load_encodings():
    """Return (tiktoken o200k_harmony, openai-harmony HARMONY_GPT_OSS)."""
    import tiktoken
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    tik = tiktoken.get_encoding("o200k_harmony")
    harmony = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    return tik, harmony


def _is_int_list(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in value
    )


def dumps_compact_pretty(value, indent: int = 0) -> str:
    """JSON with one-space indentation, but lists of ints, small objects and
    short lists on a single line, so token id arrays stay compact."""
    pad = " " * indent
    inner = " " * (indent + 1)
    if _is_int_list(value):
        return "[" + ",".join(str(x) for x in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        flat = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(flat) <= 240:
            return flat
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}:{dumps_compact_pretty(v, indent + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        flat = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(flat) <= 100:
            return flat
        items = [f"{inner}{dumps_compact_pretty(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def write_fixture(out_dir: Path, name: str, generator: str, cases: list) -> Path:
    doc = {"generator": generator, "cases": cases}
    text = dumps_compact_pretty(doc) + "\n"
    # Round-trip guard: the custom printer must produce exactly the same data.
    if json.loads(text) != doc:
        raise SystemExit(f"internal error: {name} does not round-trip through JSON")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: consumers never see a half-written file
    print(f"wrote {path} ({len(cases)} cases, {path.stat().st_size} bytes)")
    return path
