//! Property tests (bounded so they run in about a second in release):
//! the parser never panics on any token sequence, lenient never errors,
//! strict and lenient agree on well-formed completions, rendering then
//! parsing gives the messages back, and the incremental decoder equals a
//! lossy whole decode.

use gptoss_harmony::*;
use proptest::prelude::*;

/// Ids biased towards the interesting ones: harmony specials, reserved and
/// out-of-vocab ids, tokens that split UTF-8 characters, and ordinary text.
fn token() -> impl Strategy<Value = Rank> {
    prop_oneof![
        4 => prop::sample::select(vec![
            tokenizer::START, tokenizer::END, tokenizer::MESSAGE, tokenizer::CHANNEL,
            tokenizer::CONSTRAIN, tokenizer::RETURN, tokenizer::CALL,
        ]),
        1 => prop::sample::select(vec![199_998, 199_999, 200_000, 200_018, 201_087, 201_088, 201_089, 300_000, u32::MAX]),
        // assistant, analysis, final, " to", "=", "json", "python", space, 9552 (cut UTF-8)
        3 => prop::sample::select(vec![173_781, 35_644, 17_196, 316, 28, 4108, 29_010, 220, 9552, 1428, 12_606, 815]),
        4 => 0u32..199_998,
    ]
}

fn role() -> impl Strategy<Value = Option<Role>> {
    prop_oneof![
        Just(None),
        Just(Some(Role::Assistant)),
        Just(Some(Role::User))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_and_lenient_never_errors(tokens in prop::collection::vec(token(), 0..48), role in role()) {
        let strict = parse_messages_from_completion_tokens(&tokens, role, ParseMode::Strict);
        let lenient = parse_messages_from_completion_tokens(&tokens, role, ParseMode::Lenient);
        prop_assert!(lenient.is_ok());
        // Strict output without errors and without stop tokens in headers
        // is the lenient output too.
        if let (Ok(s), Ok(l)) = (&strict, &lenient) {
            if l.warnings.is_empty() {
                prop_assert_eq!(&s.messages, &l.messages);
            }
        }
        // Streaming with events gives the same messages as the batch call.
        let mut p = StreamParser::new(role, ParseMode::Lenient);
        let mut done = Vec::new();
        for &t in &tokens {
            for e in p.push(t).unwrap() {
                if let ParseEvent::MessageDone(m) = e { done.push(m); }
            }
        }
        for e in p.finish().unwrap() {
            if let ParseEvent::MessageDone(m) = e { done.push(m); }
        }
        prop_assert_eq!(&done, &lenient.unwrap().messages);
    }

    #[test]
    fn render_parse_round_trip(
        texts in prop::collection::vec("\\PC{0,24}", 1..4),
        channel in prop::sample::select(vec!["analysis", "commentary", "final"]),
        with_call in any::<bool>(),
    ) {
        let mut msgs = Vec::new();
        for t in &texts {
            let mut m = Message::from_role_and_content(Role::Assistant, t.as_str()).with_channel(channel);
            if with_call {
                m = m.with_recipient("functions.f").with_content_type("<|constrain|>json");
            }
            msgs.push(m);
        }
        let mut tokens = Vec::new();
        for m in &msgs {
            tokens.extend(render_message(m, &RenderOptions::default()).unwrap());
        }
        let out = parse_messages_from_completion_tokens(&tokens, None, ParseMode::Strict).unwrap();
        prop_assert_eq!(out.messages, msgs);
    }

    #[test]
    fn incremental_decoder_equals_lossy_decode(ids in prop::collection::vec(prop_oneof![0u32..199_998, Just(9552u32), 199_998u32..=201_088], 0..40)) {
        let tok = Tokenizer::o200k_harmony();
        let mut dec = tok.incremental_decoder();
        let mut s = String::new();
        for &id in &ids {
            s.push_str(&dec.push(id).unwrap());
        }
        s.push_str(&dec.finish());
        prop_assert_eq!(s, tok.decode_lossy(&ids).unwrap());
    }

    #[test]
    fn encode_decode_round_trip(text in "\\PC{0,64}") {
        let tok = Tokenizer::o200k_harmony();
        prop_assert_eq!(tok.decode_utf8(&tok.encode_ordinary(&text)).unwrap(), text.clone());
        prop_assert_eq!(tok.decode_utf8(&tok.encode_with_special_tokens(&text)).unwrap(), text);
    }
}
