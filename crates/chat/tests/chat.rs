//! Chat-layer tests: a `ScriptedModel` plays harmony completions (encoded
//! with the real o200k_harmony tokenizer) and the tests check the events,
//! the history rule, the `none` extension and prefix reuse across turns.
//! Expected prompts come from openai-harmony 0.0.8 (reference §5.8).

use gptoss_chat::{Chat, ChatEvent, ChatOptions, Effort, TurnStop};
use gptoss_engine::{SamplingParams, ScriptedModel};
use gptoss_harmony::{Conversation, Role, SystemContent, Tokenizer};

const VOCAB: usize = 201_088;

fn tokens(text: &str) -> Vec<u32> {
    Tokenizer::o200k_harmony().encode_with_special_tokens(text)
}

fn options(effort: Effort) -> ChatOptions {
    ChatOptions {
        effort,
        sampling: SamplingParams::greedy(),
        max_tokens: Some(200),
        context_tokens: 4096,
        system: SystemContent::new().with_conversation_start_date("2025-08-05"),
        instructions: Some("Answer concisely.".to_string()),
    }
}

/// Collected events of one turn, by kind.
#[derive(Default, Debug)]
struct Seen {
    reasoning: String,
    answer: String,
    preamble: String,
    tool_args: String,
    order: Vec<&'static str>,
    done: usize,
}

impl Seen {
    fn push(&mut self, event: ChatEvent) {
        let kind = match event {
            ChatEvent::ReasoningDelta(t) => {
                self.reasoning.push_str(&t);
                "reasoning"
            }
            ChatEvent::AnswerDelta(t) => {
                self.answer.push_str(&t);
                "answer"
            }
            ChatEvent::PreambleDelta(t) => {
                self.preamble.push_str(&t);
                "preamble"
            }
            ChatEvent::ToolCallStarted { .. } => "call_started",
            ChatEvent::ToolCallArgumentsDelta(t) => {
                self.tool_args.push_str(&t);
                "call_args"
            }
            ChatEvent::ToolCallDone(_) => "call_done",
            ChatEvent::Done(_) => {
                self.done += 1;
                "done"
            }
        };
        if self.order.last() != Some(&kind) {
            self.order.push(kind);
        }
    }
}

const ANALYSIS_THEN_FINAL: &str =
    "<|channel|>analysis<|message|>User asks simple arithmetic. Answer 4.<|end|>\
<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>";

#[test]
fn prompt_matches_openai_harmony_and_reasoning_stays_out_of_the_answer() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens(ANALYSIS_THEN_FINAL));
    let mut chat = Chat::new(&model, options(Effort::Low)).unwrap();
    chat.push_user("What is 2 + 2?");
    // openai-harmony 0.0.8 rendering of this conversation (reference §5.8).
    let expected_prompt: Vec<u32> = vec![
        200006, 17360, 200008, 3575, 553, 17554, 162016, 11, 261, 4410, 6439, 2359, 22203, 656,
        7788, 17527, 558, 87447, 100594, 25, 220, 1323, 19, 12, 3218, 198, 6576, 3521, 25, 220,
        1323, 20, 12, 3062, 12, 2922, 279, 30377, 289, 25, 4465, 279, 2, 13888, 18403, 25, 8450,
        11, 49159, 11, 1721, 13, 21030, 2804, 413, 7360, 395, 1753, 3176, 13, 200007, 200006,
        77944, 200008, 2, 68406, 279, 17045, 4468, 276, 1151, 13, 200007, 200006, 1428, 200008,
        4827, 382, 220, 17, 659, 220, 17, 30, 200007, 200006, 173781,
    ];
    assert_eq!(chat.prompt_tokens().unwrap(), expected_prompt);

    let mut seen = Seen::default();
    let outcome = chat.generate(None, |e| seen.push(e)).unwrap();
    assert_eq!(seen.reasoning, "User asks simple arithmetic. Answer 4.");
    assert_eq!(seen.answer, "2 + 2 = 4.");
    assert_eq!(seen.order, vec!["reasoning", "answer", "done"]);
    assert_eq!(seen.done, 1);
    assert_eq!(outcome.summary.stop, TurnStop::Return);
    assert_eq!(outcome.answer(), "2 + 2 = 4.");
    assert_eq!(
        outcome.reasoning(),
        "User asks simple arithmetic. Answer 4."
    );
    // reasoning tokens: the analysis content plus its <|end|>
    let analysis_content = tokens("User asks simple arithmetic. Answer 4.").len();
    assert_eq!(outcome.summary.usage.reasoning_tokens, analysis_content + 1);
    assert_eq!(
        outcome.summary.usage.completion_tokens,
        tokens(ANALYSIS_THEN_FINAL).len()
    );
    assert_eq!(outcome.messages.len(), 2);

    // Next turn: analysis dropped, <|return|> stored as <|end|> (reference §5.8).
    chat.push_user("And 3 + 3?");
    let expected_next = tokens(
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n\
Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: low\n\n\
# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>\
<|start|>developer<|message|># Instructions\n\nAnswer concisely.<|end|>\
<|start|>user<|message|>What is 2 + 2?<|end|>\
<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|end|>\
<|start|>user<|message|>And 3 + 3?<|end|><|start|>assistant",
    );
    assert_eq!(chat.prompt_tokens().unwrap(), expected_next);
}

#[test]
fn effort_none_opens_the_final_channel_and_generates_no_reasoning() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens("4.<|return|>"));
    let mut chat = Chat::new(&model, options(Effort::None)).unwrap();
    chat.push_user("What is 2 + 2?");
    let prompt = chat.prompt_tokens().unwrap();
    // ... <|start|>assistant<|channel|>final<|message|>
    assert_eq!(
        &prompt[prompt.len() - 5..],
        &[200006, 173781, 200005, 17196, 200008]
    );
    // The system message says "Reasoning: low".
    let text = Tokenizer::o200k_harmony().decode_utf8(&prompt).unwrap();
    assert!(text.contains("Reasoning: low"), "{text}");

    let mut seen = Seen::default();
    let outcome = chat.generate(None, |e| seen.push(e)).unwrap();
    assert_eq!(seen.order, vec!["answer", "done"]);
    assert_eq!(seen.answer, "4.");
    assert_eq!(outcome.summary.usage.reasoning_tokens, 0);
    assert_eq!(
        outcome.summary.usage.completion_tokens,
        tokens("4.<|return|>").len()
    );
    assert_eq!(outcome.messages.len(), 1);
    assert_eq!(outcome.messages[0].channel.as_deref(), Some("final"));
    assert_eq!(
        chat.history().last().map(|m| m.text()),
        Some("4.".to_string())
    );
}

#[test]
fn second_turn_recomputes_only_the_new_tokens_with_effort_none() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens("The answer is 4.<|return|>"));
    let mut chat = Chat::new(&model, options(Effort::None)).unwrap();
    let first = chat.send("What is 2 + 2?", None, |_| {}).unwrap();
    let first_prompt = first.summary.usage.prompt_tokens;
    assert_eq!(first.summary.usage.reused_tokens, 0);

    chat.push_user("And 3 + 3?");
    let prompt2 = chat.prompt_tokens().unwrap();
    model.clear_calls();
    let second = chat.generate(None, |_| {}).unwrap();
    let usage = second.summary.usage;
    // Everything of turn 1 is reused: its prompt and every generated token
    // except <|return|> (stored as <|end|>, which is new).
    assert_eq!(usage.reused_tokens, first_prompt + first.tokens.len() - 1);
    assert_eq!(usage.computed_tokens, prompt2.len() - usage.reused_tokens);
    assert_eq!(model.forward_calls()[0], usage.computed_tokens);
    // what is new: <|end|>, the user message, and <|start|>assistant<|channel|>final<|message|>
    let new_part = tokens("<|end|><|start|>user<|message|>And 3 + 3?<|end|><|start|>assistant<|channel|>final<|message|>");
    assert_eq!(usage.computed_tokens, new_part.len());
    assert_eq!(&prompt2[usage.reused_tokens..], &new_part[..]);
}

#[test]
fn second_turn_with_reasoning_reuses_the_first_prompt() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens(ANALYSIS_THEN_FINAL));
    let mut chat = Chat::new(&model, options(Effort::Low)).unwrap();
    let first = chat.send("What is 2 + 2?", None, |_| {}).unwrap();
    let second = chat.send("And 3 + 3?", None, |_| {}).unwrap();
    // The first turn's analysis is dropped from the history, so the prompt
    // diverges right after turn 1's prompt and its `<|channel|>` (analysis
    // there, final now): that much is reused.
    assert_eq!(
        second.summary.usage.reused_tokens,
        first.summary.usage.prompt_tokens + 1
    );

    // Third turn: analysis of neither turn comes back (openai-harmony 0.0.8
    // would keep the second turn's, which follows the first final message).
    chat.push_user("Thanks");
    let text = Tokenizer::o200k_harmony()
        .decode_utf8(&chat.prompt_tokens().unwrap())
        .unwrap();
    assert!(!text.contains("analysis<|message|>"), "{text}");
    assert_eq!(
        text.matches("<|channel|>final<|message|>2 + 2 = 4.<|end|>")
            .count(),
        2
    );
    // ... but the record keeps it
    assert_eq!(
        chat.history()
            .iter()
            .filter(|m| m.channel.as_deref() == Some("analysis"))
            .count(),
        2
    );
}

#[test]
fn tool_call_events_and_the_continuation_keep_the_turns_analysis() {
    let script = "<|channel|>analysis<|message|>Need weather.<|end|>\
<|start|>assistant<|channel|>commentary<|message|>Checking the weather.<|end|>\
<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>";
    let model = ScriptedModel::new(VOCAB, 131_072, tokens(script));
    let mut chat = Chat::new(&model, options(Effort::Medium)).unwrap();
    let mut seen = Seen::default();
    let mut started = None;
    let mut done = None;
    let outcome = chat
        .send("Weather in Paris?", None, |e| {
            match &e {
                ChatEvent::ToolCallStarted {
                    recipient,
                    channel,
                    content_type,
                } => started = Some((recipient.clone(), channel.clone(), content_type.clone())),
                ChatEvent::ToolCallDone(call) => done = Some(call.clone()),
                _ => {}
            }
            seen.push(e)
        })
        .unwrap();
    assert_eq!(
        seen.order,
        vec![
            "reasoning",
            "preamble",
            "call_started",
            "call_args",
            "call_done",
            "done"
        ]
    );
    assert_eq!(seen.reasoning, "Need weather.");
    assert_eq!(seen.preamble, "Checking the weather.");
    assert_eq!(seen.answer, "");
    assert_eq!(seen.tool_args, "{\"city\":\"Paris\"}");
    assert_eq!(
        started,
        Some((
            "functions.get_weather".to_string(),
            Some("commentary".to_string()),
            Some("<|constrain|>json".to_string())
        ))
    );
    assert_eq!(outcome.summary.stop, TurnStop::Call);
    let call = outcome.tool_call.clone().unwrap();
    assert_eq!(Some(&call), done.as_ref());
    assert_eq!(call.arguments, "{\"city\":\"Paris\"}");

    chat.push_tool_result(&call, "{\"temp\":20}");
    let text = Tokenizer::o200k_harmony()
        .decode_utf8(&chat.prompt_tokens().unwrap())
        .unwrap();
    // in-progress turn: analysis kept; the call rendered recipient-first with <|call|>
    assert!(
        text.contains("<|start|>assistant<|channel|>analysis<|message|>Need weather.<|end|>"),
        "{text}"
    );
    assert!(text.contains(
        "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"
    ));
    assert!(text.ends_with(
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"temp\":20}<|end|><|start|>assistant"
    ));
}

#[test]
fn a_message_for_another_role_stops_the_turn() {
    let model = ScriptedModel::new(
        VOCAB,
        131_072,
        tokens("<|channel|>final<|message|>Hi.<|end|><|start|>user<|message|>more"),
    );
    let mut chat = Chat::new(&model, options(Effort::Low)).unwrap();
    let outcome = chat.send("Hello", None, |_| {}).unwrap();
    assert_eq!(outcome.summary.stop, TurnStop::OtherRole(Role::User));
    assert_eq!(outcome.answer(), "Hi.");
    assert_eq!(chat.history().len(), 2);
    // generation stopped at the user header: "more" was never generated
    let generated = Tokenizer::o200k_harmony()
        .decode_utf8(&outcome.tokens)
        .unwrap();
    assert!(
        generated.ends_with("<|start|>user<|message|>"),
        "{generated}"
    );
}

#[test]
fn max_tokens_and_cancellation_end_the_turn() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens(ANALYSIS_THEN_FINAL));
    let mut chat = Chat::new(
        &model,
        ChatOptions {
            max_tokens: Some(5),
            ..options(Effort::Low)
        },
    )
    .unwrap();
    let outcome = chat.send("What is 2 + 2?", None, |_| {}).unwrap();
    assert_eq!(outcome.summary.stop, TurnStop::MaxTokens);
    assert_eq!(outcome.summary.usage.completion_tokens, 5);

    let flag = std::sync::atomic::AtomicBool::new(true);
    let outcome = chat.send("again", Some(&flag), |_| {}).unwrap();
    assert_eq!(outcome.summary.stop, TurnStop::Cancelled);
    assert_eq!(outcome.summary.usage.completion_tokens, 0);
}

#[test]
fn conversation_json_round_trips_through_save_and_load() {
    let model = ScriptedModel::new(VOCAB, 131_072, tokens(ANALYSIS_THEN_FINAL));
    let mut chat = Chat::new(&model, options(Effort::High)).unwrap();
    chat.send("What is 2 + 2?", None, |_| {}).unwrap();
    chat.push_user("And 3 + 3?");
    let json = chat.conversation().to_json();
    let prompt = chat.prompt_tokens().unwrap();

    let mut other = Chat::new(&model, options(Effort::Low)).unwrap();
    other.set_instructions(None);
    other
        .load_conversation(Conversation::from_json(&json).unwrap())
        .unwrap();
    assert_eq!(other.effort(), Effort::High);
    assert_eq!(other.prompt_tokens().unwrap(), prompt);
    assert_eq!(other.history().len(), chat.history().len());

    // a system message in the middle is refused
    let mut bad = Conversation::from_json(&json).unwrap();
    let system = bad.messages[0].clone();
    bad.messages.push(system);
    assert!(other.load_conversation(bad).is_err());
}

#[test]
fn reset_keeps_settings_and_reuses_the_system_prefix() {
    // A sliding window of 4: once the rings wrap, only snapshots can be
    // rolled back to; the chat marks one after the system + developer messages.
    let model = ScriptedModel::new(VOCAB, 131_072, tokens("Hi.<|return|>")).with_sliding_window(4);
    let mut chat = Chat::new(&model, options(Effort::None)).unwrap();
    chat.send("Hello", None, |_| {}).unwrap();
    chat.reset();
    assert!(chat.history().is_empty());
    let prompt = chat.prompt_tokens().unwrap();
    // system and developer messages: up to the second <|end|>
    let preamble = prompt
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 200007)
        .nth(1)
        .unwrap()
        .0
        + 1;
    let again = chat.send("Hello again", None, |_| {}).unwrap();
    assert_eq!(again.summary.usage.reused_tokens, preamble);
    assert_eq!(
        again.summary.usage.computed_tokens,
        again.summary.usage.prompt_tokens - preamble
    );
    assert_eq!(chat.effort(), Effort::None);
}

#[test]
fn effort_parses_from_text() {
    assert_eq!("none".parse::<Effort>().unwrap(), Effort::None);
    assert_eq!("HIGH".parse::<Effort>().unwrap(), Effort::High);
    assert!("extreme".parse::<Effort>().is_err());
}
