//! `Chat`: one conversation bound to one engine session. It renders the
//! history with harmony, generates with the engine, feeds every generated
//! token through harmony's lenient streaming parser, turns parser events into
//! `ChatEvent`s, and appends the parsed assistant messages to the history.
//!
//! History rule (harmony docs/format.md): a finished turn is stored as parsed
//! messages, so its closing `<|return|>` is rendered as `<|end|>` next time;
//! analysis messages of closed turns (any turn followed by a later user
//! message) are left out of later prompts. The turn in progress (the model
//! called a tool and waits for the result) keeps its analysis, because the
//! model continues its chain of thought after the tool result.
//!
//! Tool loop seam: `generate` stops on `<|call|>` and returns the call in
//! `TurnOutcome::tool_call`; a caller runs the tool, adds the result with
//! `push_tool_result` and calls `generate` again. No tool is run here.

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use gptoss_engine::{
    LanguageModel, Sampler, SamplingParams, Session, StopConditions, HARMONY_STOP_TOKENS,
};
use gptoss_harmony::tokenizer::{CHANNEL, MESSAGE};
use gptoss_harmony::{
    render_conversation, render_conversation_for_completion, Author, Content, Conversation,
    DeveloperContent, Message, ParseEvent, ParseMode, RenderConfig, Role, StreamParser,
    SystemContent, Tokenizer,
};

use crate::event::{ChatEvent, ChatUsage, ToolCall, TurnOutcome, TurnStop, TurnSummary};
use crate::{ChatError, Effort};

/// Default KV cache size of a chat, like the reference chat CLI (`-c 8192`).
pub const DEFAULT_CONTEXT_TOKENS: usize = 8192;

/// Settings of a chat.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    pub effort: Effort,
    pub sampling: SamplingParams,
    /// Most tokens generated per `generate` call; `None`: until a stop token
    /// or the end of the context.
    pub max_tokens: Option<usize>,
    /// KV cache size; capped at the model's maximum context.
    pub context_tokens: usize,
    /// The system message's content (identity, dates, built-in tools). Its
    /// reasoning effort is replaced by `effort` when rendering.
    pub system: SystemContent,
    /// Developer instructions (what APIs call the "system prompt").
    pub instructions: Option<String>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            effort: Effort::default(),
            sampling: SamplingParams::default(),
            max_tokens: None,
            context_tokens: DEFAULT_CONTEXT_TOKENS,
            system: SystemContent::new(),
            instructions: None,
        }
    }
}

/// How a message of the assistant's output is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Answer,
    Preamble,
    ToolCall,
}

/// Where an assistant message goes: a recipient other than `all` makes it a
/// tool call; otherwise the channel decides. No channel counts as the answer
/// (a model that skipped the channel is talking to the user); an unknown
/// channel counts as reasoning, so nothing unvetted reaches the answer.
fn classify(channel: Option<&str>, recipient: Option<&str>) -> Kind {
    if recipient.is_some_and(|r| r != "all") {
        return Kind::ToolCall;
    }
    match channel {
        Some("final") | None => Kind::Answer,
        Some("commentary") => Kind::Preamble,
        Some(_) => Kind::Reasoning,
    }
}

/// A conversation bound to a model.
pub struct Chat<M: LanguageModel> {
    session: Session<M>,
    sampler: Sampler,
    options: ChatOptions,
    developer: DeveloperContent,
    // user / assistant / tool messages after the system and developer messages
    history: Vec<Message>,
}

impl<M: LanguageModel> Chat<M> {
    /// A new, empty chat.
    pub fn new(model: M, options: ChatOptions) -> Result<Chat<M>, ChatError> {
        let context = options.context_tokens.min(model.max_context());
        let session = Session::new(model, context)?;
        let sampler = Sampler::new(options.sampling.clone())?;
        let developer = DeveloperContent {
            instructions: options.instructions.clone(),
            ..DeveloperContent::new()
        };
        Ok(Chat {
            session,
            sampler,
            options,
            developer,
            history: Vec::new(),
        })
    }

    /// The engine session (counters, cached tokens, the model).
    pub fn session(&self) -> &Session<M> {
        &self.session
    }

    pub fn effort(&self) -> Effort {
        self.options.effort
    }

    /// Change the reasoning effort for the next turns.
    pub fn set_effort(&mut self, effort: Effort) {
        self.options.effort = effort;
    }

    pub fn options(&self) -> &ChatOptions {
        &self.options
    }

    /// Replace the sampling settings (a fresh generator with their seed).
    pub fn set_sampling(&mut self, sampling: SamplingParams) -> Result<(), ChatError> {
        self.sampler = Sampler::new(sampling.clone())?;
        self.options.sampling = sampling;
        Ok(())
    }

    pub fn set_max_tokens(&mut self, max_tokens: Option<usize>) {
        self.options.max_tokens = max_tokens;
    }

    /// Set (or clear) the developer instructions.
    pub fn set_instructions(&mut self, instructions: Option<String>) {
        self.developer.instructions = instructions.clone();
        self.options.instructions = instructions;
    }

    /// Declare the caller's function tools (the developer message's
    /// `functions` namespace); an empty list removes them. The model calls
    /// them as `functions.NAME` on the commentary channel.
    pub fn set_function_tools(&mut self, tools: Vec<gptoss_harmony::ToolDescription>) {
        if let Some(namespaces) = self.developer.tools.as_mut() {
            namespaces.remove("functions");
            if namespaces.is_empty() {
                self.developer.tools = None;
            }
        }
        if !tools.is_empty() {
            self.developer = std::mem::take(&mut self.developer).with_function_tools(tools);
        }
    }

    /// The messages after the system and developer messages.
    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Forget the conversation (settings stay). The KV cache is kept: the
    /// next prompt reuses the system and developer messages from it.
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// The whole conversation as it is recorded (analysis included), in
    /// openai-harmony's types: the system message, the developer message if
    /// any, then the history.
    pub fn conversation(&self) -> Conversation {
        let mut messages = self.preamble_messages();
        messages.extend(self.history.iter().cloned());
        Conversation::from_messages(messages)
    }

    /// Replace the conversation. A leading system message becomes the
    /// system content (its reasoning effort, if set, becomes the chat's);
    /// a developer message right after it becomes the developer content.
    pub fn load_conversation(&mut self, conversation: Conversation) -> Result<(), ChatError> {
        let mut messages = conversation.messages.into_iter().peekable();
        if let Some(system) = messages.next_if(|m| m.author.role == Role::System) {
            let content = system.content.into_iter().find_map(|c| match c {
                Content::SystemContent(s) => Some(s),
                _ => None,
            });
            let content = content.ok_or_else(|| {
                ChatError::BadConversation("the system message has no system content".to_string())
            })?;
            if let Some(effort) = content.reasoning_effort {
                self.options.effort = match effort {
                    gptoss_harmony::ReasoningEffort::Low => Effort::Low,
                    gptoss_harmony::ReasoningEffort::Medium => Effort::Medium,
                    gptoss_harmony::ReasoningEffort::High => Effort::High,
                };
            }
            self.options.system = content;
        }
        if let Some(developer) = messages.next_if(|m| m.author.role == Role::Developer) {
            let content = developer.content.into_iter().find_map(|c| match c {
                Content::DeveloperContent(d) => Some(d),
                Content::Text(t) => Some(DeveloperContent::new().with_instructions(t.text)),
                _ => None,
            });
            self.developer = content.unwrap_or_default();
            self.options.instructions = self.developer.instructions.clone();
        }
        let history: Vec<Message> = messages.collect();
        if let Some(m) = history
            .iter()
            .find(|m| matches!(m.author.role, Role::System | Role::Developer))
        {
            return Err(ChatError::BadConversation(format!(
                "a {} message may only come first (system) or right after the system message (developer)",
                m.author.role
            )));
        }
        self.history = history;
        Ok(())
    }

    /// Add a user message.
    pub fn push_user(&mut self, text: impl Into<String>) {
        self.history
            .push(Message::from_role_and_content(Role::User, text.into()));
    }

    /// Add any message (for callers that manage the history themselves).
    pub fn push_message(&mut self, message: Message) {
        self.history.push(message);
    }

    /// Add a tool's result for `call`: author = the tool's name, recipient
    /// `assistant`, the call's channel (harmony's rule for tool results).
    pub fn push_tool_result(&mut self, call: &ToolCall, output: impl Into<String>) {
        let mut message = Message::from_author_and_content(
            Author::new(Role::Tool, call.recipient.clone()),
            output.into(),
        )
        .with_recipient("assistant");
        message.channel = call.channel.clone();
        self.history.push(message);
    }

    /// The prompt for the next assistant message: the rendered conversation
    /// (closed turns without their analysis), `<|start|>assistant`, and for
    /// effort `none` also `<|channel|>final<|message|>`.
    pub fn prompt_tokens(&self) -> Result<Vec<u32>, ChatError> {
        let mut messages = self.preamble_messages();
        messages.extend(history_for_prompt(&self.history).into_iter().cloned());
        let conversation = Conversation::from_messages(messages);
        // The analysis rule is applied above; harmony's own (narrower) rule is off.
        let config = RenderConfig {
            auto_drop_analysis: false,
        };
        let mut tokens =
            render_conversation_for_completion(&conversation, Role::Assistant, &config)?;
        if self.options.effort.opens_final_channel() {
            tokens.extend(final_channel_opening());
        }
        Ok(tokens)
    }

    /// Add a user message and generate the assistant's reply. On error the
    /// user message is taken back out of the history.
    pub fn send(
        &mut self,
        text: impl Into<String>,
        cancel: Option<&AtomicBool>,
        on_event: impl FnMut(ChatEvent),
    ) -> Result<TurnOutcome, ChatError> {
        self.push_user(text);
        let outcome = self.generate(cancel, on_event);
        if outcome.is_err() {
            // Nothing was generated: leave the history as it was, so a
            // refused message (too long, say) does not poison later turns.
            self.history.pop();
        }
        outcome
    }

    /// Generate assistant messages until `<|return|>`, `<|call|>`, the token
    /// limit, the end of the context, cancellation, or the model starting a
    /// message for another role. The parsed messages are appended to the
    /// history and returned; events stream through `on_event`.
    pub fn generate(
        &mut self,
        cancel: Option<&AtomicBool>,
        mut on_event: impl FnMut(ChatEvent),
    ) -> Result<TurnOutcome, ChatError> {
        let prompt = self.prompt_tokens()?;
        let mut parser = StreamParser::new(Some(Role::Assistant), ParseMode::Lenient);
        if self.options.effort.opens_final_channel() {
            // The opening is in the prompt; the parser must see it to know
            // that what follows is final-channel content.
            for token in final_channel_opening() {
                parser.push(token)?;
            }
        }
        let stop = StopConditions {
            max_tokens: self.options.max_tokens,
            stop_tokens: HARMONY_STOP_TOKENS.to_vec(),
        };
        self.session.set_snapshot_points(&[self.preamble_len()?]);

        let mut tracker = Tracker::default();
        if let Some(header) = parser.current_header() {
            tracker.kind = Some(classify(
                header.channel.as_deref(),
                header.recipient.as_deref(),
            ));
        }
        let generation =
            self.session
                .generate(&prompt, &stop, &mut self.sampler, cancel, |token| {
                    if tracker.kind == Some(Kind::Reasoning) {
                        tracker.reasoning_tokens += 1;
                    }
                    // Lenient mode never fails; an error here would be a parser bug,
                    // and the raw tokens are still returned in the outcome.
                    if let Ok(events) = parser.push(token) {
                        for event in events {
                            tracker.handle(event, &mut on_event);
                        }
                    }
                    if tracker.other_role.is_some() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
        if tracker.other_role.is_none() {
            if let Ok(events) = parser.finish() {
                for event in events {
                    tracker.handle(event, &mut on_event);
                }
            }
        }

        let messages: Vec<Message> = parser
            .into_messages()
            .into_iter()
            .filter(|m| m.author.role == Role::Assistant)
            .collect();
        self.history.extend(messages.iter().cloned());

        let stop = match tracker.other_role {
            Some(role) => TurnStop::OtherRole(role),
            None => TurnStop::from_engine(generation.stop_reason),
        };
        let tool_call = if stop == TurnStop::Call {
            tracker.last_tool_call.clone()
        } else {
            None
        };
        let summary = TurnSummary {
            stop,
            usage: ChatUsage {
                prompt_tokens: generation.usage.prompt_tokens,
                reused_tokens: generation.usage.reused_tokens,
                computed_tokens: generation.usage.computed_tokens,
                completion_tokens: generation.usage.completion_tokens,
                reasoning_tokens: tracker.reasoning_tokens,
            },
            timings: generation.timings,
        };
        on_event(ChatEvent::Done(summary));
        Ok(TurnOutcome {
            messages,
            tool_call,
            summary,
            tokens: generation.tokens,
        })
    }

    /// The system message and, if any, the developer message.
    fn preamble_messages(&self) -> Vec<Message> {
        let mut messages = vec![Message::from_role_and_content(
            Role::System,
            self.system_content(),
        )];
        if self.has_developer_message() {
            messages.push(Message::from_role_and_content(
                Role::Developer,
                self.developer.clone(),
            ));
        }
        messages
    }

    /// Tokens of the system and developer messages: every conversation with
    /// the same settings starts with them, so the engine keeps a snapshot
    /// there (a new conversation after `reset` reuses them even once the
    /// sliding-window rings have wrapped).
    fn preamble_len(&self) -> Result<usize, ChatError> {
        let conversation = Conversation::from_messages(self.preamble_messages());
        Ok(render_conversation(
            &conversation,
            &RenderConfig {
                auto_drop_analysis: false,
            },
        )?
        .len())
    }

    fn system_content(&self) -> SystemContent {
        let mut system = self.options.system.clone();
        system.reasoning_effort = Some(self.options.effort.harmony_effort());
        system
    }

    fn has_developer_message(&self) -> bool {
        self.developer.instructions.is_some()
            || self.developer.tools.as_ref().is_some_and(|t| !t.is_empty())
    }
}

/// `<|channel|>final<|message|>`: the tokens that open the final channel.
pub fn final_channel_opening() -> Vec<u32> {
    let mut tokens = vec![CHANNEL];
    tokens.extend(Tokenizer::o200k_harmony().encode_ordinary("final"));
    tokens.push(MESSAGE);
    tokens
}

/// The history as it goes into a prompt: analysis messages of closed turns
/// (those followed by a later user message) are dropped.
pub fn history_for_prompt(history: &[Message]) -> Vec<&Message> {
    let last_user = history.iter().rposition(|m| m.author.role == Role::User);
    history
        .iter()
        .enumerate()
        .filter(|(idx, m)| {
            let closed = last_user.is_some_and(|u| *idx < u);
            let is_analysis =
                m.author.role == Role::Assistant && m.channel.as_deref() == Some("analysis");
            !(closed && is_analysis)
        })
        .map(|(_, m)| m)
        .collect()
}

/// Turns parser events into chat events while a turn runs.
#[derive(Default)]
struct Tracker {
    kind: Option<Kind>,
    reasoning_tokens: usize,
    current_call: Option<ToolCall>,
    last_tool_call: Option<ToolCall>,
    other_role: Option<Role>,
}

impl Tracker {
    fn handle(&mut self, event: ParseEvent, on_event: &mut impl FnMut(ChatEvent)) {
        if self.other_role.is_some() {
            return;
        }
        match event {
            ParseEvent::MessageStarted {
                author,
                channel,
                recipient,
                content_type,
            } => {
                if author.role != Role::Assistant {
                    self.other_role = Some(author.role);
                    self.kind = None;
                    return;
                }
                let kind = classify(channel.as_deref(), recipient.as_deref());
                self.kind = Some(kind);
                if kind == Kind::ToolCall {
                    let recipient = recipient.unwrap_or_default();
                    on_event(ChatEvent::ToolCallStarted {
                        recipient: recipient.clone(),
                        channel: channel.clone(),
                        content_type: content_type.clone(),
                    });
                    self.current_call = Some(ToolCall {
                        recipient,
                        channel,
                        content_type,
                        arguments: String::new(),
                    });
                }
            }
            ParseEvent::ContentDelta(text) => match self.kind {
                Some(Kind::Reasoning) => on_event(ChatEvent::ReasoningDelta(text)),
                Some(Kind::Answer) | None => on_event(ChatEvent::AnswerDelta(text)),
                Some(Kind::Preamble) => on_event(ChatEvent::PreambleDelta(text)),
                Some(Kind::ToolCall) => {
                    if let Some(call) = &mut self.current_call {
                        call.arguments.push_str(&text);
                    }
                    on_event(ChatEvent::ToolCallArgumentsDelta(text));
                }
            },
            ParseEvent::MessageDone(message) => {
                if self.kind == Some(Kind::ToolCall) {
                    if let Some(mut call) = self.current_call.take() {
                        // The parsed message is authoritative (it includes
                        // text flushed at the end of the message).
                        call.arguments = message.text();
                        on_event(ChatEvent::ToolCallDone(call.clone()));
                        self.last_tool_call = Some(call);
                    }
                }
                self.kind = None;
            }
        }
    }
}
