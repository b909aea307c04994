//! Parser behaviour beyond the fixtures: lenient recoveries (what openai-
//! harmony rejects), events, UTF-8 across tokens, and cases from
//! openai-harmony's own test suite restated.

use gptoss_harmony::*;

fn enc(text: &str) -> Vec<Rank> {
    Tokenizer::o200k_harmony().encode_with_special_tokens(text)
}

fn lenient(tokens: &[Rank], role: Option<Role>) -> ParseOutput {
    parse_messages_from_completion_tokens(tokens, role, ParseMode::Lenient)
        .expect("lenient never fails")
}

fn strict(tokens: &[Rank], role: Option<Role>) -> Result<ParseOutput, Error> {
    parse_messages_from_completion_tokens(tokens, role, ParseMode::Strict)
}

#[test]
fn missing_message_token_recovers_only_when_lenient() {
    let tokens = enc("<|channel|>commentary Hello<|end|>");
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(
        out.messages,
        vec![Message::from_role_and_content(Role::Assistant, "Hello").with_channel("commentary")]
    );
    assert!(!out.warnings.is_empty());
}

#[test]
fn final_with_no_channel_markup() {
    // The model skipped the header entirely and stopped.
    let tokens = enc("The answer is 4.<|return|>");
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].text(), "The answer is 4.");
    assert_eq!(out.messages[0].author.role, Role::Assistant);
}

#[test]
fn truncated_header_at_end_of_stream() {
    let tokens =
        enc("<|channel|>analysis<|message|>thinking<|end|><|start|>assistant<|channel|>final");
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages.len(), 2);
    assert_eq!(out.messages[0].text(), "thinking");
    assert_eq!(out.messages[1].channel.as_deref(), Some("final"));
    assert_eq!(out.messages[1].text(), "");
    assert!(!out.warnings.is_empty());
    // Nothing at all: no message, a warning, no error.
    let out = lenient(&[], Some(Role::Assistant));
    assert!(out.messages.is_empty());
    assert_eq!(out.warnings.len(), 1);
}

#[test]
fn truncated_content_is_kept() {
    let tokens = enc("<|channel|>final<|message|>Partial answ");
    for mode in [ParseMode::Strict, ParseMode::Lenient] {
        let out =
            parse_messages_from_completion_tokens(&tokens, Some(Role::Assistant), mode).unwrap();
        assert_eq!(out.messages[0].text(), "Partial answ");
        assert_eq!(out.messages[0].channel.as_deref(), Some("final"));
    }
}

#[test]
fn junk_after_a_message_starts_an_assistant_message() {
    // `<|start|>assistant` forgotten between messages.
    let tokens =
        enc("<|channel|>analysis<|message|>a<|end|><|channel|>final<|message|>b<|return|>");
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(
        out.messages,
        vec![
            Message::from_role_and_content(Role::Assistant, "a").with_channel("analysis"),
            Message::from_role_and_content(Role::Assistant, "b").with_channel("final"),
        ]
    );
    // Text after <|return|> without any header.
    let tokens = enc("<|channel|>final<|message|>a<|return|> trailing words<|end|>");
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages.len(), 2);
    assert_eq!(out.messages[1].text(), "trailing words");
}

#[test]
fn junk_headers_get_a_best_reading() {
    // Three words after the channel: openai-harmony fails.
    let tokens =
        enc("<|channel|>commentary to=functions.f junk <|constrain|>json<|message|>{}<|call|>");
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    let m = &out.messages[0];
    assert_eq!(m.recipient.as_deref(), Some("functions.f"));
    assert_eq!(m.content_type.as_deref(), Some("<|constrain|>json"));
    assert_eq!(m.channel.as_deref(), Some("commentary"));
    assert_eq!(m.text(), "{}");

    // Empty channel value.
    let tokens = enc("<|channel|><|message|>hi<|end|>");
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages[0].channel, None);
    assert_eq!(out.messages[0].text(), "hi");

    // A channel name used as a header without <|channel|>.
    let tokens = enc("<|start|>final<|message|>hi<|end|>");
    assert!(strict(&tokens, None).is_err());
    let out = lenient(&tokens, None);
    assert_eq!(out.messages[0].author.role, Role::Assistant);
    assert_eq!(out.messages[0].channel.as_deref(), Some("final"));

    // An unknown single-word author is taken as a tool name.
    let tokens = enc("<|start|>robot<|message|>beep<|end|>");
    assert!(strict(&tokens, None).is_err());
    let out = lenient(&tokens, None);
    assert_eq!(out.messages[0].author, Author::new(Role::Tool, "robot"));

    // No role at all.
    let tokens = enc("<|start|><|message|>x<|end|>");
    assert!(strict(&tokens, None).is_err());
    assert_eq!(
        lenient(&tokens, None).messages[0].author.role,
        Role::Assistant
    );
}

#[test]
fn out_of_vocab_ids() {
    // Between messages and in headers: strict fails, lenient skips.
    let mut tokens = enc("<|channel|>final<|message|>ok<|end|>");
    tokens.push(999_999);
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.warnings.len(), 1);

    let mut tokens = enc("<|channel|>fin");
    tokens.push(u32::MAX);
    tokens.extend(enc("al<|message|>ok<|end|>"));
    assert!(strict(&tokens, Some(Role::Assistant)).is_err());
    let out = lenient(&tokens, Some(Role::Assistant));
    assert_eq!(out.messages[0].channel.as_deref(), Some("final"));

    // In content both modes follow openai-harmony: one U+FFFD that swallows
    // the rest of the message.
    let mut tokens = enc("<|channel|>analysis<|message|>Practice invalid token handling.");
    tokens.push(u32::MAX);
    tokens.extend(enc(" lost<|end|>"));
    for mode in [ParseMode::Strict, ParseMode::Lenient] {
        let out =
            parse_messages_from_completion_tokens(&tokens, Some(Role::Assistant), mode).unwrap();
        assert_eq!(
            out.messages[0].text(),
            "Practice invalid token handling.\u{FFFD}"
        );
    }
}

#[test]
fn utf8_split_across_tokens_streams_whole_characters() {
    let tok = Tokenizer::o200k_harmony();
    let emoji = tok.encode_ordinary("💖");
    assert!(emoji.len() >= 2, "the emoji spans several tokens");
    let mut p = StreamParser::new(None, ParseMode::Strict);
    for t in enc("<|start|>assistant<|message|>") {
        p.push(t).unwrap();
    }
    let ev = p.push(emoji[0]).unwrap();
    assert!(ev.is_empty());
    assert_eq!(p.last_content_delta(), None);
    let mut text = String::new();
    for &t in &emoji[1..] {
        for e in p.push(t).unwrap() {
            if let ParseEvent::ContentDelta(d) = e {
                text.push_str(&d);
            }
        }
    }
    assert_eq!(text, "💖");
    assert_eq!(p.current_content(), "💖");
    let ev = p.push(tokenizer::END).unwrap();
    assert!(matches!(&ev[..], [ParseEvent::MessageDone(m)] if m.text() == "💖"));
}

#[test]
fn invalid_utf8_is_replaced_like_openai_harmony() {
    // Token 9552 is the bytes [0x20, 0xF0, 0x9F]: a space and a cut 4-byte char.
    let mut tokens = enc("<|start|>assistant<|message|>");
    tokens.extend([9552, 9552]);
    tokens.extend(enc("worked<|end|>"));
    let out = strict(&tokens, None).unwrap();
    assert_eq!(out.messages[0].text(), " \u{FFFD} \u{FFFD}worked");

    let mut tokens = enc("<|start|>assistant<|message|>");
    tokens.push(9552);
    tokens.extend(enc("Hi"));
    let out = strict(&tokens, None).unwrap();
    assert_eq!(out.messages[0].text(), " \u{FFFD}Hi");
}

#[test]
fn events_for_a_tool_call() {
    let mut p = StreamParser::new(Some(Role::Assistant), ParseMode::Strict);
    let mut events = Vec::new();
    for t in enc("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"a\":1}<|call|>") {
        events.extend(p.push(t).unwrap());
    }
    events.extend(p.finish().unwrap());
    let ParseEvent::MessageStarted {
        author,
        channel,
        recipient,
        content_type,
    } = &events[0]
    else {
        panic!("first event must be MessageStarted: {events:?}");
    };
    assert_eq!(author, &Author::from(Role::Assistant));
    assert_eq!(channel.as_deref(), Some("commentary"));
    assert_eq!(recipient.as_deref(), Some("functions.get_weather"));
    assert_eq!(content_type.as_deref(), Some("<|constrain|>json"));
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ParseEvent::ContentDelta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "{\"a\":1}");
    assert!(matches!(events.last(), Some(ParseEvent::MessageDone(m)) if m.text() == text));
    assert_eq!(p.state(), StreamState::ExpectStart);
}

#[test]
fn tool_result_header_and_both_header_orders() {
    let tokens =
        enc("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{}<|end|>");
    let out = strict(&tokens, None).unwrap();
    assert_eq!(
        out.messages[0].author,
        Author::new(Role::Tool, "functions.get_weather")
    );
    assert_eq!(out.messages[0].recipient.as_deref(), Some("assistant"));

    let a = strict(
        &enc("<|channel|>commentary to=functions.x <|constrain|>json<|message|>{}<|call|>"),
        Some(Role::Assistant),
    )
    .unwrap();
    let b = strict(
        &enc(" to=functions.x<|channel|>commentary <|constrain|>json<|message|>{}<|call|>"),
        Some(Role::Assistant),
    )
    .unwrap();
    assert_eq!(a.messages, b.messages);
}

#[test]
fn render_then_parse_round_trips() {
    let msgs = vec![
        Message::from_role_and_content(Role::Assistant, "think").with_channel("analysis"),
        Message::from_role_and_content(Role::Assistant, "{\"q\": 1}")
            .with_channel("commentary")
            .with_recipient("functions.lookup")
            .with_content_type("<|constrain|>json"),
        Message::from_author_and_content(Author::new(Role::Tool, "functions.lookup"), "42")
            .with_recipient("assistant")
            .with_channel("commentary"),
        Message::from_role_and_content(Role::Assistant, "It is 42 ✓").with_channel("final"),
    ];
    let mut tokens = Vec::new();
    for m in &msgs {
        tokens.extend(render_message(m, &RenderOptions::default()).unwrap());
    }
    let out = strict(&tokens, None).unwrap();
    assert_eq!(out.messages, msgs);
}
