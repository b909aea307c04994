"""Writes testdata/harmony/parse.json from openai-harmony.

Owns: the completion token sequences (well-formed model output, malformed and
truncated output, stray special tokens, split UTF-8) and, per sequence, the
official parser's results: parse_messages_from_completion_tokens with
strict=True and strict=False, and the StreamableParser state after every
token plus after process_eos. Also asserts the exact completion token vector
of example 1 in the reference (gpt-oss.md section 5.8).
"""

from __future__ import annotations

import json

from openai_harmony import Conversation, Message, Role, StreamableParser

import gen_render

START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL = 200006, 200007, 200008, 200005, 200003, 200002, 200012
ENDOFTEXT, STARTOFTEXT = 199999, 199998

# gpt-oss.md section 5.8: the completion tokens of example 1.
EXAMPLE1_COMPLETION = [
    200005, 35644, 200008, 1844, 31064, 4705, 81645, 13, 30985, 220, 19, 13, 200007, 200006, 173781,
    200005, 17196, 200008, 17, 659, 220, 17, 314, 220, 19, 13, 200002,
]


def tokens_of(enc, *parts) -> list[int]:
    """Concatenate parts: str is encoded with every special token allowed,
    int is a raw token id, list is spliced in as raw ids."""
    out: list[int] = []
    for p in parts:
        if isinstance(p, str):
            out.extend(enc.encode(p, allowed_special="all"))
        elif isinstance(p, int):
            out.append(p)
        else:
            out.extend(p)
    return out


def split_char_tokens(enc, ch: str) -> list[int]:
    """Ordinary tokens of `ch`, asserting the first one alone is not valid UTF-8
    (so the sequence really splits a multi-byte character)."""
    toks = enc.encode(ch, disallowed_special=())
    assert len(toks) >= 2, (ch, toks)
    try:
        enc.decode_utf8(toks[:1])
    except Exception:
        return toks
    raise AssertionError(f"{ch!r}: first token decodes on its own")


def cases(enc) -> list[tuple[str, list[int], Role | None]]:
    A = Role.ASSISTANT
    T = lambda *p: tokens_of(enc, *p)  # noqa: E731
    kanji = split_char_tokens(enc, "𠮷")  # 4 single-byte tokens
    party = split_char_tokens(enc, "🎉")  # 3 bytes + 1 byte
    c: list[tuple[str, list[int], Role | None]] = []

    ex1 = T("<|channel|>analysis<|message|>User asks simple arithmetic. Answer 4.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>")
    assert ex1 == EXAMPLE1_COMPLETION, "example 1 completion (gpt-oss.md 5.8) mismatch"
    c.append(("example1_analysis_final", ex1, A))
    c.append(("example2_function_call_constrain_json", T(
        "<|channel|>analysis<|message|>Need weather for Tokyo; call get_current_weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_current_weather <|constrain|>json"
        '<|message|>{"location":"Tokyo, Japan"}<|call|>'), A))
    c.append(("example3_browser_search_on_analysis", T(
        "<|channel|>analysis<|message|>Need to look up the 2024 physics laureates.<|end|>"
        "<|start|>assistant<|channel|>analysis to=browser.search"
        '<|message|>{"query": "2024 Nobel Prize in Physics winners", "topn": 5}<|call|>'), A))
    c.append(("recipient_before_channel", T(
        " to=functions.get_location<|channel|>commentary <|constrain|>json<|message|>{}<|call|>"), A))
    c.append(("recipient_before_channel_constrain_glued", T(
        " to=functions.f<|constrain|>json<|channel|>commentary<|message|>{\"a\":1}<|call|>"), A))
    c.append(("recipient_after_channel_constrain_glued", T(
        "<|channel|>commentary to=functions.f<|constrain|>json<|message|>{}<|call|>"), A))
    c.append(("python_call_with_code_content_type", T(
        "<|channel|>analysis to=python code<|message|>print(2**100)<|call|>"), A))
    c.append(("python_call_no_content_type", T("<|channel|>analysis to=python<|message|>import math\nmath.pi<|call|>"), A))
    c.append(("commentary_preamble_then_call", T(
        "<|channel|>commentary<|message|>Let me check that for you.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_location <|constrain|>json<|message|>{}<|call|>"), A))
    c.append(("analysis_commentary_final", T(
        "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>commentary<|message|>Working…<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Done: ação ✅ 你好<|return|>"), A))
    c.append(("final_ends_with_end", T("<|channel|>final<|message|>Hello.<|end|>"), A))
    c.append(("final_ends_with_call", T("<|channel|>final<|message|>Hello.<|call|>"), A))
    c.append(("final_ends_with_return", T("<|channel|>final<|message|>Hello.<|return|>"), A))
    c.append(("missing_end_eos_in_content", T("<|channel|>final<|message|>Hello, no end token"), A))
    c.append(("missing_end_then_start", T("<|channel|>analysis<|message|>a<|start|>assistant<|channel|>final<|message|>b<|end|>"), A))
    c.append(("truncated_mid_header", T("<|channel|>fin"), A))
    c.append(("truncated_after_channel_token", T("<|channel|>"), A))
    c.append(("truncated_second_message_header", T("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>"), A))
    c.append(("truncated_after_end", T("<|channel|>analysis<|message|>x<|end|><|start|>"), A))
    c.append(("empty_tokens", [], A))
    c.append(("empty_tokens_role_none", [], None))
    c.append(("split_utf8_in_content", T("<|channel|>final<|message|>a", kanji, "b", party, "c<|return|>"), A))
    c.append(("truncated_mid_utf8_char", T("<|channel|>final<|message|>ok ", kanji[:2]), A))
    c.append(("mid_utf8_char_then_end", T("<|channel|>final<|message|>ok ", party[:1], "<|end|>"), A))
    c.append(("invalid_utf8_continuation_in_content", T("<|channel|>final<|message|>x", kanji[1:3], "y", party[:1], "z<|end|>"), A))
    c.append(("split_utf8_in_header", T("<|channel|>fin", kanji[:2], "<|message|>x<|end|>"), A))
    c.append(("junk_in_header_three_words", T("<|channel|>final extra junk words<|message|>hi<|end|>"), A))
    c.append(("header_two_words_recipient_and_type", T("<|channel|>final extra junk<|message|>hi<|end|>"), A))
    c.append(("header_single_word_is_recipient", T("<|channel|>final json<|message|>{}<|end|>"), A))
    c.append(("header_constrain_only_content_type", T("<|channel|>final <|constrain|>json<|message|>{}<|end|>"), A))
    c.append(("header_repeats_role", T("assistant<|channel|>final<|message|>x<|end|>"), A))
    c.append(("unknown_recipient", T("<|channel|>commentary to=unknown.tool<|message|>x<|call|>"), A))
    c.append(("final_without_channel_markup", T("<|message|>Just text.<|return|>"), A))
    c.append(("double_start", T("<|channel|>analysis<|message|>a<|end|><|start|><|start|>assistant<|channel|>final<|message|>b<|end|>"), A))
    c.append(("message_without_header_after_start", T("<|channel|>analysis<|message|>a<|end|><|start|><|message|>b<|end|>"), A))
    c.append(("constrain_in_content", T("<|channel|>final<|message|>a <|constrain|> b <|channel|> c <|message|> d<|end|>"), A))
    c.append(("channel_twice_in_header", T("<|channel|>analysis<|channel|>final<|message|>x<|end|>"), A))
    c.append(("empty_channel_value", T("<|channel|><|message|>x<|end|>"), A))
    c.append(("channel_value_after_space", T("<|channel|> final<|message|>x<|end|>"), A))
    c.append(("reserved_token_in_content", T("<|channel|>final<|message|>a", 200500, "b", 200018, "c<|end|>"), A))
    c.append(("reserved_token_in_header", T("<|channel|>final", 200500, "<|message|>x<|end|>"), A))
    c.append(("endoftext_in_content", T("<|channel|>final<|message|>a", ENDOFTEXT, STARTOFTEXT, "b<|end|>"), A))
    c.append(("out_of_vocab_ids_in_content", T("<|channel|>final<|message|>a", 201088, 201089, 300000, "b<|end|>"), A))
    c.append(("empty_content", T("<|channel|>final<|message|><|return|>"), A))
    c.append(("empty_content_then_more", T("<|channel|>analysis<|message|><|end|><|start|>assistant<|channel|>final<|message|><|end|>"), A))
    c.append(("stop_token_in_header_end", T("<|channel|>final<|end|>"), A))
    c.append(("stop_token_in_header_with_text", T("<|channel|>analysis some leftover text<|end|>"), A))
    c.append(("stop_token_in_header_then_next", T("<|channel|>commentary to=functions.f<|call|><|start|>assistant<|channel|>final<|message|>ok<|return|>"), A))
    c.append(("tokens_after_return", T("<|channel|>final<|message|>x<|return|>trailing"), A))
    c.append(("multiple_messages_after_return", T("<|channel|>final<|message|>x<|return|><|start|>assistant<|channel|>final<|message|>y<|return|>"), A))
    c.append(("role_none_user_then_assistant", T(
        "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>"), None))
    c.append(("role_none_tool_result", T(
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"t": 20}<|end|>'), None))
    c.append(("role_none_unknown_single_word_role", T("<|start|>robot<|message|>beep<|end|>"), None))
    c.append(("role_none_assistant_with_name", T("<|start|>assistant:bot<|channel|>final<|message|>x<|end|>"), None))
    c.append(("role_none_missing_start", T("user<|message|>hi<|end|>"), None))
    c.append(("role_none_system_developer", T(
        "<|start|>system<|message|>sys text<|end|><|start|>developer<|message|># Instructions\n\nBe nice.<|end|>"), None))
    # Round trip of a whole rendered conversation (drop the trailing `<|start|>assistant`).
    rendered = enc.render_conversation(Conversation.from_messages(
        [m for name, msgs in gen_render.cases() if name == "example2_function_call_and_result" for m in msgs]))
    c.append(("role_none_rendered_example2_conversation", rendered, None))
    c.append(("long_json_content", T("<|channel|>commentary to=functions.save <|constrain|>json<|message|>"
                                     + json.dumps({"items": [{"id": i, "name": f"item {i}", "ok": i % 2 == 0}
                                                             for i in range(12)]}) + "<|call|>"), A))
    c.append(("multiline_unicode_content", T("<|channel|>final<|message|>Linha 1: ação\nLinha 2: 👨‍👩‍👧‍👦 🇧🇷\r\n\tنص عربي<|return|>"), A))
    return c


def _msgs(messages: list[Message]) -> list[dict]:
    return [m.to_dict() for m in messages]


def _parse(enc, tokens, role, strict):
    try:
        return {"messages": _msgs(enc.parse_messages_from_completion_tokens(tokens, role, strict=strict))}
    except Exception as e:  # noqa: BLE001 - the reference's error is the expected output
        return {"error": str(e)}


def _stream(enc, tokens, role) -> list[dict]:
    parser = StreamableParser(enc, role=role)
    states = []
    for tok in tokens:
        try:
            parser.process(tok)
        except Exception as e:  # noqa: BLE001
            states.append({"error": str(e)})
            return states  # the parser is unusable after an error: stop here
        cur_role = parser.current_role
        states.append({
            "current_role": None if cur_role is None else cur_role.value,
            "current_channel": parser.current_channel,
            "current_recipient": parser.current_recipient,
            "current_content_type": parser.current_content_type,
            "last_content_delta": parser.last_content_delta,
            "state": str(parser.state),
        })
    try:
        parser.process_eos()
        states.append({"eos": True, "messages": _msgs(parser.messages)})
    except Exception as e:  # noqa: BLE001
        states.append({"eos": True, "error": str(e)})
    return states


def build(enc) -> list[dict]:
    out = []
    names = set()
    for name, tokens, role in cases(enc):
        assert name not in names, name
        names.add(name)
        strict = _parse(enc, tokens, role, True)
        non_strict = _parse(enc, tokens, role, False)
        stream = _stream(enc, tokens, role)
        # The streaming parser (strict) must agree with the batch strict parse.
        last = stream[-1] if stream else None
        if "messages" in strict:
            assert last == {"eos": True, "messages": strict["messages"]}, name
        out.append({
            "name": name,
            "tokens": tokens,
            "role": None if role is None else role.value,
            "strict": strict,
            "non_strict": non_strict,
            "stream": stream,
        })
    assert len(out) >= 30, len(out)
    n_err = sum("error" in c["strict"] for c in out)
    n_diff = sum(c["strict"] != c["non_strict"] for c in out)
    print(f"parse: {len(out)} cases, {n_err} strict errors, {n_diff} differ strict/non-strict")
    return out
