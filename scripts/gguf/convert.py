#!/usr/bin/env python3
"""Convert a Hugging Face gpt-oss checkpoint folder to GGUF with llama.cpp's own converter.

Usage: convert.py LLAMA_CPP_DIR HF_DIR OUT.gguf OUTTYPE   (OUTTYPE: bf16 | q8_0 | f16 | f32)

Runs `LLAMA_CPP_DIR/convert_hf_to_gguf.py` (its `main()`, with its own gguf-py) unchanged on the
weights. Two things around it, both about the test models, never the tensors:

* Tokenizer. The converter reads the tokenizer from HF_DIR. Our golden checkpoints have a
  vocabulary of a few hundred ids and no tokenizer files (nor has `gpt-oss synth`'s output),
  so when HF_DIR has no tokenizer.json this writes one holding the first 256 ids of
  o200k_harmony (fewer if the vocabulary is smaller), which are the 256 single bytes in
  GPT-2's byte-level order (ids above are padded by the converter as unused `[PADn]` tokens),
  and tells the converter the pre-tokenizer is o200k's (`gpt-4o`): its hash check only knows
  full published tokenizers. A real checkpoint brings its own tokenizer.json and is untouched.
* swiglu limit. llama.cpp's gpt-oss metadata has no swiglu limit (it hard-codes 7.0, the value
  of the released models). A checkpoint with another `swiglu_limit` gets the standard per-layer
  key `gpt-oss.swiglu_clamp_exp`, which gpt-oss-rs honours.
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path


def bytes_to_unicode_order():
    """GPT-2's byte order: the bytes whose ids 0..255 are in o200k (printable ones first)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = {}
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    order = printable + [b for b in range(256) if b not in printable]
    return [chars[b] for b in order]


def write_byte_tokenizer(folder: Path, vocab_size: int):
    # A vocabulary smaller than 256 (synth's tiny shape) keeps its first ids only.
    vocab = {c: i for i, c in enumerate(bytes_to_unicode_order()[:vocab_size])}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": []},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))


def main():
    llama_cpp, hf_dir, out, outtype = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    sys.path.insert(0, str(llama_cpp))
    sys.path.insert(1, str(llama_cpp / "gguf-py"))
    import convert_hf_to_gguf  # noqa: E402  (llama.cpp's converter)
    from conversion.base import TextModel  # noqa: E402
    from conversion.gpt_oss import GptOssModel  # noqa: E402

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "hf"
        shutil.copytree(hf_dir, work)
        config = json.loads((work / "config.json").read_text())
        if not (work / "tokenizer.json").exists():
            write_byte_tokenizer(work, int(config["vocab_size"]))
            TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-4o"
        limit = config.get("swiglu_limit", 7.0)
        if limit != 7.0:
            base = GptOssModel.set_gguf_parameters

            def with_limit(self):
                base(self)
                self.gguf_writer.add_swiglu_clamp_exp([float(limit)] * self.block_count)

            GptOssModel.set_gguf_parameters = with_limit
        sys.argv = ["convert_hf_to_gguf.py", str(work), "--outfile", str(out), "--outtype", outtype]
        convert_hf_to_gguf.main()


if __name__ == "__main__":
    main()
