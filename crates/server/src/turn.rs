//! One assistant turn as the HTTP layer sees it: engine tokens in, a stream
//! of [`TurnEvent`]s out (reasoning, answer content, tool calls, finish).
//!
//! Runs on the async side: it feeds every token through harmony's lenient
//! streaming parser and classifies each message by recipient and channel.
//! Both endpoints and both modes (stream and not) consume these same events,
//! so a non-streamed answer is by construction the concatenation of the
//! streamed deltas: same split of reasoning / content / tool calls.
//!
//! Invariants: control tokens never reach text (the parser strips them);
//! analysis text only ever goes to `Reasoning` segments; the model's malformed
//! output is never an error here (lenient parser, warnings logged), and a
//! tool call with an unknown name or non-JSON arguments is still returned as
//! a tool call with its raw arguments.

use std::collections::VecDeque;

use gptoss_harmony::tokenizer::{special_token_id, CALL, END, FIRST_SPECIAL_ID, START};
use gptoss_harmony::{Message, ParseEvent, ParseMode, Role, StreamParser, StreamState};

use crate::ids;
use crate::scheduler::{FinishReason, RequestHandle, TokenEvent, TokenLogprob, TokenUsage};

/// What kind of text a segment (one harmony message) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// Chain of thought (`analysis`, or any unknown channel, no recipient).
    Reasoning,
    /// Text for the user (`final`, no channel, or a `commentary` preamble).
    Content,
    /// A call to a tool: `name` without the `functions.` prefix.
    ToolCall { id: String, name: String },
}

/// Why the turn ended, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `<|return|>`, a stop string, or the model starting another role's message.
    Stop,
    /// The turn ended with a tool call (`<|call|>`).
    ToolCalls,
    /// `max_tokens` or the end of the context.
    Length,
    /// The request was cancelled (client gone or server shutting down).
    Cancelled,
}

impl Finish {
    /// Chat Completions' `finish_reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::Cancelled => "stop",
            Finish::ToolCalls => "tool_calls",
            Finish::Length => "length",
        }
    }
}

/// Token counts reported to the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnUsage {
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub reasoning_tokens: usize,
}

/// One event of a turn, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// A new segment starts; deltas that follow belong to it.
    Start(SegmentKind),
    /// More text of the current segment (arguments, for tool calls).
    Delta(String),
    /// The current segment is complete; `text` is all its deltas joined.
    End { kind: SegmentKind, text: String },
    /// Log probabilities of the answer tokens just given as content deltas
    /// (only when the request asked for them; reasoning and tool-call tokens
    /// have none).
    Logprobs(Vec<TokenLogprob>),
    /// The turn is over (always the last event, unless `Error`).
    Finished { finish: Finish, usage: TurnUsage },
    /// The engine failed (a forward error): the turn is over.
    Error(String),
}

/// Options of a turn that live above the engine.
#[derive(Debug, Clone, Default)]
pub struct TurnOptions {
    /// Strings that end the answer (OpenAI `stop`); never part of the output.
    pub stop: Vec<String>,
    /// Function names declared in the request, to warn about unknown calls.
    pub tool_names: Vec<String>,
    /// Log probabilities of the answer tokens, with this many alternatives
    /// each (`None`: not asked for).
    pub logprobs: Option<usize>,
}

struct Open {
    kind: SegmentKind,
    text: String,
}

/// Drives one turn: call [`next`](Turn::next) until it returns `None`.
pub struct Turn {
    handle: RequestHandle,
    parser: StreamParser,
    options: TurnOptions,
    queue: VecDeque<TurnEvent>,
    open: Option<Open>,
    // content held back because it may be the start of a stop string
    held: String,
    reasoning_tokens: usize,
    stopped: bool,
    // the stop string that ended the turn, if one did
    stop_sequence: Option<String>,
    saw_tool_call: bool,
    done: bool,
    // log probability of the token about to arrive
    logprob: Option<TokenLogprob>,
}

impl Turn {
    /// `prefeed`: tokens at the end of the prompt, after `<|start|>assistant`,
    /// that the parser must see (an opened channel or a forced tool call).
    pub fn new(handle: RequestHandle, prefeed: &[u32], options: TurnOptions) -> Turn {
        let mut turn = Turn {
            handle,
            parser: StreamParser::new(Some(Role::Assistant), ParseMode::Lenient),
            options,
            queue: VecDeque::new(),
            open: None,
            held: String::new(),
            reasoning_tokens: 0,
            stopped: false,
            stop_sequence: None,
            saw_tool_call: false,
            done: false,
            logprob: None,
        };
        for &token in prefeed {
            if let Ok(events) = turn.parser.push(token) {
                turn.on_parse_events(events);
            }
        }
        turn
    }

    /// The next event, or `None` after `Finished` / `Error`.
    pub async fn next(&mut self) -> Option<TurnEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            match self.handle.events.recv().await {
                Some(TokenEvent::Logprob(lp)) => self.logprob = Some(lp),
                Some(TokenEvent::Token(token)) => {
                    self.on_token(token);
                    self.after_token(token);
                }
                Some(TokenEvent::Finished { reason, usage }) => self.on_finished(reason, usage),
                Some(TokenEvent::Failed(message)) => {
                    self.done = true;
                    self.queue.push_back(TurnEvent::Error(message));
                }
                None => {
                    self.done = true;
                    self.queue
                        .push_back(TurnEvent::Error("the engine stopped unexpectedly".into()));
                }
            }
        }
    }

    /// The stop string (of [`TurnOptions::stop`]) that ended the turn, if
    /// one did (Anthropic's `stop_sequence`).
    pub fn stop_sequence(&self) -> Option<&str> {
        self.stop_sequence.as_deref()
    }

    /// The assistant messages parsed so far (complete ones), for storing the
    /// turn in a conversation.
    pub fn messages(&self) -> Vec<Message> {
        self.parser
            .messages()
            .iter()
            .filter(|m| m.author.role == Role::Assistant)
            .cloned()
            .collect()
    }

    fn on_token(&mut self, token: u32) {
        if self.stopped {
            return;
        }
        if matches!(
            self.open,
            Some(Open {
                kind: SegmentKind::Reasoning,
                ..
            })
        ) {
            self.reasoning_tokens += 1;
        }
        if token == START && self.parser.state() == StreamState::Content {
            // The model began a new message without closing the current one
            // (a missing `<|end|>`): close it, so the new header is read as
            // a header instead of as text of the open message.
            eprintln!("warning: malformed model output repaired: <|start|> inside a message; closed the message first");
            if let Ok(events) = self.parser.push(END) {
                self.on_parse_events(events);
            }
        }
        if let Ok(events) = self.parser.push(token) {
            self.on_parse_events(events);
        }
        for warning in self.parser.take_warnings() {
            eprintln!("warning: malformed model output repaired: {warning}");
        }
    }

    /// Pass on the token's log probability if it was answer text.
    fn after_token(&mut self, token: u32) {
        let Some(lp) = self.logprob.take() else {
            return;
        };
        let in_answer = matches!(
            self.open,
            Some(Open {
                kind: SegmentKind::Content,
                ..
            })
        );
        if in_answer && !self.stopped && token < FIRST_SPECIAL_ID {
            self.queue.push_back(TurnEvent::Logprobs(vec![lp]));
        }
    }

    fn on_finished(&mut self, reason: FinishReason, usage: TokenUsage) {
        if !self.stopped {
            if let Ok(events) = self.parser.finish() {
                self.on_parse_events(events);
            }
            for warning in self.parser.take_warnings() {
                eprintln!("warning: malformed model output repaired: {warning}");
            }
            self.close_open();
        }
        let finish = if self.stopped {
            Finish::Stop
        } else {
            match reason {
                FinishReason::StopToken(CALL) => Finish::ToolCalls,
                FinishReason::StopToken(_) if self.saw_tool_call => Finish::ToolCalls,
                FinishReason::StopToken(_) => Finish::Stop,
                FinishReason::MaxTokens | FinishReason::ContextFull => Finish::Length,
                FinishReason::Cancelled => Finish::Cancelled,
            }
        };
        let usage = TurnUsage {
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: usage.reused_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: self.reasoning_tokens,
        };
        self.done = true;
        self.queue.push_back(TurnEvent::Finished { finish, usage });
    }

    fn on_parse_events(&mut self, events: Vec<ParseEvent>) {
        for event in events {
            if self.stopped {
                return;
            }
            match event {
                ParseEvent::MessageStarted {
                    author,
                    channel,
                    recipient,
                    ..
                } => {
                    self.close_open();
                    if author.role != Role::Assistant {
                        // The model began writing another role's message (the
                        // user's next turn): the assistant's turn is over.
                        self.stop_now();
                        return;
                    }
                    let kind = self.classify(channel.as_deref(), recipient.as_deref());
                    self.queue.push_back(TurnEvent::Start(kind.clone()));
                    self.open = Some(Open {
                        kind,
                        text: String::new(),
                    });
                }
                ParseEvent::ContentDelta(text) => self.on_delta(text),
                ParseEvent::MessageDone(message) => {
                    if let Some(Open {
                        kind: SegmentKind::ToolCall { name, .. },
                        ..
                    }) = &self.open
                    {
                        check_arguments(name, &message.text());
                    }
                    self.close_open();
                }
            }
        }
    }

    fn classify(&mut self, channel: Option<&str>, recipient: Option<&str>) -> SegmentKind {
        if let Some(recipient) = recipient.filter(|r| *r != "all") {
            let name = recipient
                .strip_prefix("functions.")
                .unwrap_or(recipient)
                .to_string();
            if !self.options.tool_names.contains(&name) {
                eprintln!("warning: the model called an undeclared tool {recipient:?}; returned as a tool call");
            }
            self.saw_tool_call = true;
            return SegmentKind::ToolCall {
                id: ids::new_id("call_"),
                name,
            };
        }
        match channel {
            Some("final") | Some("commentary") | None => SegmentKind::Content,
            Some(_) => SegmentKind::Reasoning,
        }
    }

    fn on_delta(&mut self, text: String) {
        let text = strip_control_tokens(&text);
        if text.is_empty() {
            return;
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if open.kind != SegmentKind::Content || self.options.stop.is_empty() {
            open.text.push_str(&text);
            self.queue.push_back(TurnEvent::Delta(text));
            return;
        }
        self.held.push_str(&text);
        let found = self
            .options
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.held.find(s.as_str()).map(|idx| (idx, s)))
            .min_by_key(|(idx, _)| *idx)
            .map(|(idx, s)| (idx, s.clone()));
        if let Some((idx, stop)) = found {
            self.stop_sequence = Some(stop);
            let before = self.held[..idx].to_string();
            self.held.clear();
            self.emit_content(before);
            self.stop_now();
            return;
        }
        // Keep back the longest tail that could still start a stop string.
        let keep = self
            .options
            .stop
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut cut = self.held.len().saturating_sub(keep);
        while !self.held.is_char_boundary(cut) {
            cut -= 1;
        }
        let ready: String = self.held.drain(..cut).collect();
        self.emit_content(ready);
    }

    fn emit_content(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        if let Some(open) = self.open.as_mut() {
            open.text.push_str(&text);
            self.queue.push_back(TurnEvent::Delta(text));
        }
    }

    fn close_open(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.emit_content(held);
        if let Some(open) = self.open.take() {
            self.queue.push_back(TurnEvent::End {
                kind: open.kind,
                text: open.text,
            });
        }
    }

    /// End the turn early (stop string or another role): close the segment
    /// and ask the engine to stop; later tokens are ignored.
    fn stop_now(&mut self) {
        if let Some(open) = self.open.take() {
            self.queue.push_back(TurnEvent::End {
                kind: open.kind,
                text: open.text,
            });
        }
        self.stopped = true;
        self.handle.cancel();
    }
}

/// Remove the text of harmony special tokens (`<|channel|>`, `<|start|>`,
/// `<|reserved_200013|>`, ...). The lenient parser keeps a malformed header's
/// tokens as message text, and a special token decodes to its name; none of
/// that may reach a client as text.
pub fn strip_control_tokens(text: &str) -> String {
    if !text.contains("<|") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<|") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match tail.find("|>") {
            Some(end) if special_token_id(&tail[..end + 2]).is_some() => rest = &tail[end + 2..],
            _ => {
                out.push_str("<|");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Log (never reject) tool-call arguments that are not a JSON object.
fn check_arguments(name: &str, arguments: &str) {
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(serde_json::Value::Array(_)) => {
            eprintln!("warning: tool call {name:?}: arguments are a JSON array, not an object; returned raw")
        }
        Ok(_) => {
            eprintln!("warning: tool call {name:?}: arguments are not a JSON object; returned raw")
        }
        Err(e) => eprintln!(
            "warning: tool call {name:?}: arguments are not valid JSON ({e}); returned raw"
        ),
    }
}

/// Everything a turn produced, folded from its events (the non-streaming view).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnOutput {
    /// Segments in order: (kind, full text).
    pub segments: Vec<(SegmentKind, String)>,
    pub finish: Option<Finish>,
    pub usage: TurnUsage,
    pub error: Option<String>,
    /// Log probabilities of the answer tokens (when asked for).
    pub logprobs: Vec<TokenLogprob>,
}

impl TurnOutput {
    /// Fold one event in.
    pub fn push(&mut self, event: &TurnEvent) {
        match event {
            TurnEvent::Start(_) | TurnEvent::Delta(_) => {}
            TurnEvent::Logprobs(lps) => self.logprobs.extend(lps.iter().cloned()),
            TurnEvent::End { kind, text } => self.segments.push((kind.clone(), text.clone())),
            TurnEvent::Finished { finish, usage } => {
                self.finish = Some(*finish);
                self.usage = *usage;
            }
            TurnEvent::Error(message) => self.error = Some(message.clone()),
        }
    }

    pub fn reasoning(&self) -> String {
        self.text_of(|k| *k == SegmentKind::Reasoning)
    }

    pub fn content(&self) -> String {
        self.text_of(|k| *k == SegmentKind::Content)
    }

    /// (id, name, arguments) of each tool call.
    pub fn tool_calls(&self) -> Vec<(String, String, String)> {
        self.segments
            .iter()
            .filter_map(|(k, text)| match k {
                SegmentKind::ToolCall { id, name } => {
                    Some((id.clone(), name.clone(), text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn text_of(&self, pick: impl Fn(&SegmentKind) -> bool) -> String {
        self.segments
            .iter()
            .filter(|(k, _)| pick(k))
            .map(|(_, t)| t.as_str())
            .collect()
    }
}

/// One token's log probability as OpenAI writes it (Chat `logprobs.content[]`,
/// Responses `output_text.logprobs[]`): the token's text, its UTF-8 bytes,
/// and the alternatives. Impossible tokens (masked) get OpenAI's -9999.
pub fn logprob_json(lp: &TokenLogprob) -> serde_json::Value {
    let tok = gptoss_harmony::Tokenizer::o200k_harmony();
    let entry = |id: u32, logprob: f32| {
        let bytes = tok.token_bytes(id).unwrap_or_default();
        let logprob = if logprob.is_finite() {
            f64::from(logprob)
        } else {
            -9999.0
        };
        serde_json::json!({
            "token": String::from_utf8_lossy(&bytes),
            "logprob": logprob,
            "bytes": bytes,
        })
    };
    let mut v = entry(lp.token, lp.logprob);
    v["top_logprobs"] = lp.top.iter().map(|&(id, l)| entry(id, l)).collect();
    v
}

#[cfg(test)]
mod tests {
    use super::strip_control_tokens;

    #[test]
    fn control_token_text_is_removed() {
        assert_eq!(
            strip_control_tokens("a<|channel|>b<|reserved_200013|>c"),
            "abc"
        );
        assert_eq!(strip_control_tokens("x <| y |> z"), "x <| y |> z");
        assert_eq!(
            strip_control_tokens("<|notatoken|><|end|>"),
            "<|notatoken|>"
        );
        assert_eq!(strip_control_tokens("tail <|"), "tail <|");
        assert_eq!(strip_control_tokens("é<|start|>ü"), "éü");
    }
}
