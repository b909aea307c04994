//! Exact official outputs quoted in /work/shared/reference/gpt-oss.md §4 and
//! §5.8–5.10 (generated there with openai-harmony 0.0.8): rendering, parsing
//! and single-token ids.

use gptoss_harmony::*;

fn tok() -> Tokenizer {
    Tokenizer::o200k_harmony()
}

fn render_text(tokens: &[Rank]) -> String {
    tok().decode_utf8(tokens).expect("rendered tokens decode")
}

const EXAMPLE1_PROMPT_IDS: [Rank; 87] = [
    200006, 17360, 200008, 3575, 553, 17554, 162016, 11, 261, 4410, 6439, 2359, 22203, 656, 7788,
    17527, 558, 87447, 100594, 25, 220, 1323, 19, 12, 3218, 198, 6576, 3521, 25, 220, 1323, 20, 12,
    3062, 12, 2922, 279, 30377, 289, 25, 4465, 279, 2, 13888, 18403, 25, 8450, 11, 49159, 11, 1721,
    13, 21030, 2804, 413, 7360, 395, 1753, 3176, 13, 200007, 200006, 77944, 200008, 2, 68406, 279,
    17045, 4468, 276, 1151, 13, 200007, 200006, 1428, 200008, 4827, 382, 220, 17, 659, 220, 17, 30,
    200007, 200006, 173781,
];

const EXAMPLE1_COMPLETION_IDS: [Rank; 27] = [
    200005, 35644, 200008, 1844, 31064, 4705, 81645, 13, 30985, 220, 19, 13, 200007, 200006,
    173781, 200005, 17196, 200008, 17, 659, 220, 17, 314, 220, 19, 13, 200002,
];

fn example1_conversation() -> Conversation {
    Conversation::from_messages([
        Message::from_role_and_content(
            Role::System,
            SystemContent::new()
                .with_reasoning_effort(ReasoningEffort::Low)
                .with_conversation_start_date("2025-08-05"),
        ),
        Message::from_role_and_content(
            Role::Developer,
            DeveloperContent::new().with_instructions("Answer concisely."),
        ),
        Message::from_role_and_content(Role::User, "What is 2 + 2?"),
    ])
}

#[test]
fn single_token_ids() {
    let t = tok();
    assert_eq!(t.encode_ordinary("system"), vec![17360]);
    assert_eq!(t.encode_ordinary("developer"), vec![77944]);
    assert_eq!(t.encode_ordinary("user"), vec![1428]);
    assert_eq!(t.encode_ordinary("assistant"), vec![173781]);
    assert_eq!(t.encode_ordinary("analysis"), vec![35644]);
    assert_eq!(t.encode_ordinary("final"), vec![17196]);
    assert_eq!(t.encode_ordinary("commentary"), vec![12606, 815]);
    assert_eq!(t.encode_ordinary(" to=assistant"), vec![316, 28, 173781]);
    assert_eq!(t.encode_ordinary("json"), vec![4108]);
    assert_eq!(t.encode_ordinary("python"), vec![29010]);
}

#[test]
fn example1_prompt_tokens() {
    let ids = render_conversation_for_completion(
        &example1_conversation(),
        Role::Assistant,
        &RenderConfig::default(),
    )
    .unwrap();
    assert_eq!(ids, EXAMPLE1_PROMPT_IDS.to_vec());
}

#[test]
fn example1_completion_parses_and_next_turn_drops_analysis() {
    for mode in [ParseMode::Strict, ParseMode::Lenient] {
        let out = parse_messages_from_completion_tokens(
            &EXAMPLE1_COMPLETION_IDS,
            Some(Role::Assistant),
            mode,
        )
        .unwrap();
        assert!(out.warnings.is_empty());
        assert_eq!(
            out.messages,
            vec![
                Message::from_role_and_content(
                    Role::Assistant,
                    "User asks simple arithmetic. Answer 4."
                )
                .with_channel("analysis"),
                Message::from_role_and_content(Role::Assistant, "2 + 2 = 4.").with_channel("final"),
            ]
        );
    }
    let mut conv = example1_conversation();
    let out = parse_messages_from_completion_tokens(
        &EXAMPLE1_COMPLETION_IDS,
        Some(Role::Assistant),
        ParseMode::Strict,
    )
    .unwrap();
    conv.messages.extend(out.messages);
    conv.messages
        .push(Message::from_role_and_content(Role::User, "And 3 + 3?"));
    let ids = render_conversation_for_completion(&conv, Role::Assistant, &RenderConfig::default())
        .unwrap();
    let expected = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: low\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>developer<|message|># Instructions\n\nAnswer concisely.<|end|><|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|end|><|start|>user<|message|>And 3 + 3?<|end|><|start|>assistant";
    assert_eq!(render_text(&ids), expected);
    // Keeping analysis renders it back.
    let kept = render_conversation_for_completion(
        &conv,
        Role::Assistant,
        &RenderConfig {
            auto_drop_analysis: false,
        },
    )
    .unwrap();
    assert!(
        render_text(&kept).contains("<|channel|>analysis<|message|>User asks simple arithmetic.")
    );
}

const WEATHER_DEV_AND_SYSTEM: &str = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.\nCalls to these tools must go to the commentary channel: 'functions'.<|end|><|start|>developer<|message|># Instructions\n\nYou are a helpful weather assistant.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n// Gets the current weather in the provided location.\ntype get_current_weather = (_: {\n// The city and state, e.g. San Francisco, CA\nlocation: string,\nformat?: \"celsius\" | \"fahrenheit\", // default: celsius\n}) => any;\n\n// Gets the location of the user.\ntype get_location = () => any;\n\n} // namespace functions<|end|><|start|>user<|message|>What is the weather in Tokyo?<|end|>";

fn weather_conversation() -> Conversation {
    let params = serde_json::json!({
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}
        },
        "required": ["location"]
    });
    Conversation::from_messages([
        Message::from_role_and_content(
            Role::System,
            SystemContent::new().with_conversation_start_date("2025-08-05"),
        ),
        Message::from_role_and_content(
            Role::Developer,
            DeveloperContent::new()
                .with_instructions("You are a helpful weather assistant.")
                .with_function_tools(vec![
                    ToolDescription::new(
                        "get_current_weather",
                        "Gets the current weather in the provided location.",
                        Some(params),
                    ),
                    ToolDescription::new("get_location", "Gets the location of the user.", None),
                ]),
        ),
        Message::from_role_and_content(Role::User, "What is the weather in Tokyo?"),
    ])
}

#[test]
fn example2_function_call_round_trip() {
    let mut conv = weather_conversation();
    let ids = render_conversation_for_completion(&conv, Role::Assistant, &RenderConfig::default())
        .unwrap();
    assert_eq!(
        render_text(&ids),
        format!("{WEATHER_DEV_AND_SYSTEM}<|start|>assistant")
    );

    let completion = tok().encode_with_special_tokens("<|channel|>analysis<|message|>Need weather for Tokyo; call get_current_weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_current_weather <|constrain|>json<|message|>{\"location\":\"Tokyo, Japan\"}<|call|>");
    let out = parse_messages_from_completion_tokens(
        &completion,
        Some(Role::Assistant),
        ParseMode::Strict,
    )
    .unwrap();
    assert_eq!(out.messages.len(), 2);
    let call = &out.messages[1];
    assert_eq!(call.channel.as_deref(), Some("commentary"));
    assert_eq!(
        call.recipient.as_deref(),
        Some("functions.get_current_weather")
    );
    assert_eq!(call.content_type.as_deref(), Some("<|constrain|>json"));
    assert_eq!(call.text(), "{\"location\":\"Tokyo, Japan\"}");

    conv.messages.extend(out.messages);
    conv.messages.push(
        Message::from_author_and_content(
            Author::new(Role::Tool, "functions.get_current_weather"),
            "{\"temperature\": 21, \"unit\": \"celsius\", \"sky\": \"sunny\"}",
        )
        .with_recipient("assistant")
        .with_channel("commentary"),
    );
    let ids = render_conversation_for_completion(&conv, Role::Assistant, &RenderConfig::default())
        .unwrap();
    let expected = format!("{WEATHER_DEV_AND_SYSTEM}<|start|>assistant<|channel|>analysis<|message|>Need weather for Tokyo; call get_current_weather.<|end|><|start|>assistant to=functions.get_current_weather<|channel|>commentary <|constrain|>json<|message|>{{\"location\":\"Tokyo, Japan\"}}<|call|><|start|>functions.get_current_weather to=assistant<|channel|>commentary<|message|>{{\"temperature\": 21, \"unit\": \"celsius\", \"sky\": \"sunny\"}}<|end|><|start|>assistant");
    assert_eq!(render_text(&ids), expected);
    // <|constrain|> is the special token in the rendered prompt.
    assert!(ids.contains(&tokenizer::CONSTRAIN));
}

#[test]
fn example3_browser_tool_system_message() {
    let conv = Conversation::from_messages([
        Message::from_role_and_content(
            Role::System,
            SystemContent::new()
                .with_conversation_start_date("2025-08-05")
                .with_browser_tool(),
        ),
        Message::from_role_and_content(Role::User, "Who won the 2024 Nobel Prize in Physics?"),
    ]);
    let ids = render_conversation_for_completion(&conv, Role::Assistant, &RenderConfig::default())
        .unwrap();
    let expected = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: medium\n\n# Tools\n\n## browser\n\n// Tool for browsing.\n// The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n// Cite information from the tool using the following format:\n// `【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\n// Do not quote more than 10 words directly from the tool output.\n// sources=web (default: web)\nnamespace browser {\n\n// Searches for information related to `query` and displays `topn` results.\ntype search = (_: {\nquery: string,\ntopn?: number, // default: 10\nsource?: string,\n}) => any;\n\n// Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` lines.\n// Valid link ids are displayed with the formatting: `【{id}†.*】`.\n// If `cursor` is not provided, the most recent page is implied.\n// If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n// If `loc` is not provided, the viewport will be positioned at the beginning of the document or centered on the most relevant passage, if available.\n// Use this function without `id` to scroll to a new location of an opened page.\ntype open = (_: {\nid?: number | string, // default: -1\ncursor?: number, // default: -1\nloc?: number, // default: -1\nnum_lines?: number, // default: -1\nview_source?: boolean, // default: false\nsource?: string,\n}) => any;\n\n// Finds exact matches of `pattern` in the current page, or the page given by `cursor`.\ntype find = (_: {\npattern: string,\ncursor?: number, // default: -1\n}) => any;\n\n} // namespace browser\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>user<|message|>Who won the 2024 Nobel Prize in Physics?<|end|><|start|>assistant";
    assert_eq!(render_text(&ids), expected);

    // The model's browser call: recipient after the channel, no content type.
    let completion = tok().encode_with_special_tokens("<|channel|>analysis<|message|>Need to look up the 2024 physics laureates.<|end|><|start|>assistant<|channel|>analysis to=browser.search<|message|>{\"query\": \"2024 Nobel Prize in Physics winners\", \"topn\": 5}<|call|>");
    let out = parse_messages_from_completion_tokens(
        &completion,
        Some(Role::Assistant),
        ParseMode::Strict,
    )
    .unwrap();
    assert_eq!(out.messages[1].recipient.as_deref(), Some("browser.search"));
    assert_eq!(out.messages[1].channel.as_deref(), Some("analysis"));
    assert_eq!(out.messages[1].content_type, None);
}

#[test]
fn python_tool_section() {
    let sys = Message::from_role_and_content(Role::System, SystemContent::new().with_python_tool());
    let text = render_text(&render_message(&sys, &RenderOptions::default()).unwrap());
    assert!(text.contains("\n\n# Tools\n\n## python\n\nUse this tool to execute Python code in your chain of thought."));
    assert!(text.contains(
        "Internet access for this session is UNKNOWN. Depends on the cluster.\n\n# Valid channels"
    ));
}
