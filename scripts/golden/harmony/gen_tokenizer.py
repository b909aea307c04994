"""Writes testdata/harmony/tokenizer.json from tiktoken and openai-harmony.

Owns: computing `ordinary` (tiktoken o200k_harmony encode_ordinary) and
`with_special` (openai-harmony encode with allowed_special="all") per text,
plus the cross-checks between the two libraries.
"""

from __future__ import annotations

from tokenizer_cases import all_texts

# Texts where tiktoken (all specials allowed) and openai-harmony legitimately
# differ: tiktoken maps "<|endofprompt|>" to 200018 while harmony has no such
# special (it names 200018 "<|reserved_200018|>"), and harmony has
# "<|reserved_201088|>" which tiktoken lacks.
KNOWN_SPECIAL_DIFFS = ("<|endofprompt|>", "<|reserved_201088|>")


def build(tik, harmony) -> list[dict]:
    cases = []
    n_special_diffs = 0
    for text in all_texts():
        ordinary = tik.encode_ordinary(text)
        # openai-harmony has no encode_ordinary in Python; encode with no
        # specials allowed and the disallowed check off is the same thing.
        h_ordinary = harmony.encode(text, allowed_special=set(), disallowed_special=())
        assert ordinary == h_ordinary, f"ordinary mismatch tiktoken vs harmony for {text!r}"
        assert tik.encode(text, disallowed_special=()) == ordinary, text
        assert harmony.decode_utf8(ordinary) == text, f"round-trip failed for {text!r}"
        with_special = harmony.encode(text, allowed_special="all")
        tik_special = tik.encode(text, allowed_special="all")
        if with_special != tik_special:
            assert any(s in text for s in KNOWN_SPECIAL_DIFFS), (
                f"unexpected special-token difference for {text!r}: "
                f"harmony {with_special} vs tiktoken {tik_special}"
            )
            n_special_diffs += 1
        cases.append({"text": text, "ordinary": ordinary, "with_special": with_special})
    assert len(cases) >= 300, len(cases)
    print(f"tokenizer: {len(cases)} cases, {n_special_diffs} differ between tiktoken/harmony with specials")
    return cases
