//! Completion tokens -> harmony messages, one token at a time.
//!
//! Owns: the streaming parser ([`StreamParser`]), its events, and the
//! header grammar (role, `to=` recipient before or after the channel,
//! `<|channel|>`, content type, `<|constrain|>`). Does not own: rendering.
//!
//! Two modes:
//! - [`ParseMode::Strict`] reproduces openai-harmony 0.0.8's
//!   `StreamableParser` with `strict=True`: same messages, and an error at the
//!   same token where it errors. (Like the official parser it does *not*
//!   error on an out-of-vocabulary id inside message content: the rest of
//!   that message becomes one U+FFFD.)
//! - [`ParseMode::Lenient`] reproduces openai-harmony with `strict=False`
//!   wherever that succeeds (a header cut short by a stop token becomes
//!   content), and where the official parser would still fail it recovers
//!   instead and records a [`ParseWarning`]: tokens outside a message are
//!   skipped or start an implicit assistant message, out-of-vocabulary ids
//!   in headers are skipped, bad headers get their best reading, and a
//!   header cut off by the end of the stream becomes content.
//!
//! Nothing here panics, whatever the token sequence.

use crate::chat::{Author, Content, Message, Role, TextContent};
use crate::tokenizer::{Rank, Tokenizer, MAX_TOKEN_ID, MESSAGE, START, STOP_TOKENS};
use crate::Error;

const REPLACEMENT: &str = "\u{FFFD}";
const CHANNEL_MARKER: &str = "<|channel|>";
const CONSTRAIN_MARKER: &str = "<|constrain|>";

/// How to treat malformed completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Error exactly where openai-harmony (`strict=True`) errors.
    #[default]
    Strict,
    /// Never error; recover and record warnings.
    Lenient,
}

/// Something the lenient parser repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWarning {
    /// Index of the token that triggered it (the token count for end of stream).
    pub index: usize,
    pub message: String,
}

impl std::fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token {}: {}", self.index, self.message)
    }
}

/// A parsed message header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedHeader {
    pub author: Author,
    pub recipient: Option<String>,
    pub channel: Option<String>,
    pub content_type: Option<String>,
}

/// What the parser is waiting for (openai-harmony `StreamState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Between messages: waiting for `<|start|>`.
    ExpectStart,
    /// Reading a header, until `<|message|>`.
    Header,
    /// Reading content, until `<|end|>`, `<|call|>`, `<|return|>` or end of stream.
    Content,
}

impl StreamState {
    /// The name openai-harmony uses (`"ExpectStart"`, `"Header"`, `"Content"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamState::ExpectStart => "ExpectStart",
            StreamState::Header => "Header",
            StreamState::Content => "Content",
        }
    }
}

/// What one token (or the end of stream) produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseEvent {
    /// A header is complete; content follows.
    MessageStarted {
        author: Author,
        channel: Option<String>,
        recipient: Option<String>,
        content_type: Option<String>,
    },
    /// New complete UTF-8 text of the current message. All deltas of a
    /// message concatenate to its final text.
    ContentDelta(String),
    /// A message is complete (stop token or end of stream).
    MessageDone(Message),
}

/// Result of parsing a whole completion.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParseOutput {
    pub messages: Vec<Message>,
    /// Repairs made (lenient mode only; always empty in strict mode).
    pub warnings: Vec<ParseWarning>,
}

/// Parse a whole completion: feed every token, then end of stream
/// (openai-harmony `parse_messages_from_completion_tokens`). `role` is the
/// role already rendered in the prompt (`<|start|>assistant`), or `None` if
/// the tokens start with `<|start|>`. Lenient mode never returns `Err`.
pub fn parse_messages_from_completion_tokens(
    tokens: &[Rank],
    role: Option<Role>,
    mode: ParseMode,
) -> Result<ParseOutput, Error> {
    let mut parser = StreamParser::new(role, mode);
    for &t in tokens {
        parser.push(t)?;
    }
    parser.finish()?;
    Ok(ParseOutput {
        messages: parser.messages,
        warnings: parser.warnings,
    })
}

enum State {
    ExpectStart,
    Header {
        header_tokens: Vec<Rank>,
    },
    Content {
        header: ParsedHeader,
        content: String,
    },
}

/// Incremental harmony parser. Feed tokens with [`push`](Self::push), end
/// with [`finish`](Self::finish) (openai-harmony `process` / `process_eos`).
pub struct StreamParser {
    tokenizer: Tokenizer,
    mode: ParseMode,
    next_role: Option<Role>,
    tokens: Vec<Rank>,
    messages: Vec<Message>,
    state: State,
    last_content_delta: Option<String>,
    // Content tokens that did not decode (an out-of-vocabulary id was among
    // them); kept as openai-harmony does, they end up as one U+FFFD.
    undecoded_tokens: Vec<Rank>,
    // Decoded bytes not yet forming complete UTF-8.
    undecoded_bytes: Vec<u8>,
    warnings: Vec<ParseWarning>,
    failed: Option<Error>,
}

impl std::fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParser")
            .field("mode", &self.mode)
            .field("state", &self.state())
            .field("n_tokens", &self.tokens.len())
            .field("n_messages", &self.messages.len())
            .finish()
    }
}

fn is_stop(token: Rank) -> bool {
    STOP_TOKENS.contains(&token)
}

fn in_vocab(token: Rank) -> bool {
    token <= MAX_TOKEN_ID
}

impl StreamParser {
    /// `role`: the role of the first message if its `<|start|>ROLE` is already
    /// in the prompt (normally `Some(Role::Assistant)`); `None` when the
    /// tokens begin with `<|start|>`.
    pub fn new(role: Option<Role>, mode: ParseMode) -> Self {
        let state = match role {
            Some(_) => State::Header {
                header_tokens: Vec::new(),
            },
            None => State::ExpectStart,
        };
        StreamParser {
            tokenizer: Tokenizer::o200k_harmony(),
            mode,
            next_role: role,
            tokens: Vec::new(),
            messages: Vec::new(),
            state,
            last_content_delta: None,
            undecoded_tokens: Vec::new(),
            undecoded_bytes: Vec::new(),
            warnings: Vec::new(),
            failed: None,
        }
    }

    /// Feed one token. In strict mode an error ends the parse: later calls
    /// return the same error.
    pub fn push(&mut self, token: Rank) -> Result<Vec<ParseEvent>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.tokens.push(token);
        let mut events = Vec::new();
        match self.step(Some(token), &mut events) {
            Ok(()) => Ok(events),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// End of stream: completes a message cut off mid-content. In strict mode
    /// a header without `<|message|>` is an error.
    pub fn finish(&mut self) -> Result<Vec<ParseEvent>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut events = Vec::new();
        match self.step(None, &mut events) {
            Ok(()) => Ok(events),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Completed messages so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Consume the parser, returning the completed messages.
    pub fn into_messages(self) -> Vec<Message> {
        self.messages
    }

    /// Every token fed so far.
    pub fn tokens(&self) -> &[Rank] {
        &self.tokens
    }

    /// Repairs made so far (lenient mode).
    pub fn warnings(&self) -> &[ParseWarning] {
        &self.warnings
    }

    /// Take the warnings recorded so far, leaving none.
    pub fn take_warnings(&mut self) -> Vec<ParseWarning> {
        std::mem::take(&mut self.warnings)
    }

    pub fn mode(&self) -> ParseMode {
        self.mode
    }

    pub fn state(&self) -> StreamState {
        match self.state {
            State::ExpectStart => StreamState::ExpectStart,
            State::Header { .. } => StreamState::Header,
            State::Content { .. } => StreamState::Content,
        }
    }

    /// Role of the message being read, if known.
    pub fn current_role(&self) -> Option<Role> {
        match &self.state {
            State::Content { header, .. } => Some(header.author.role),
            _ => self.next_role,
        }
    }

    pub fn current_channel(&self) -> Option<&str> {
        match &self.state {
            State::Content { header, .. } => header.channel.as_deref(),
            _ => None,
        }
    }

    pub fn current_recipient(&self) -> Option<&str> {
        match &self.state {
            State::Content { header, .. } => header.recipient.as_deref(),
            _ => None,
        }
    }

    pub fn current_content_type(&self) -> Option<&str> {
        match &self.state {
            State::Content { header, .. } => header.content_type.as_deref(),
            _ => None,
        }
    }

    /// Header of the message being read, once `<|message|>` was seen.
    pub fn current_header(&self) -> Option<&ParsedHeader> {
        match &self.state {
            State::Content { header, .. } => Some(header),
            _ => None,
        }
    }

    /// Text of the current message decoded so far.
    pub fn current_content(&self) -> &str {
        match &self.state {
            State::Content { content, .. } => content,
            _ => "",
        }
    }

    /// Text the last token added to the current message (openai-harmony
    /// `last_content_delta`; `None` when it added nothing yet or a message
    /// just ended).
    pub fn last_content_delta(&self) -> Option<&str> {
        self.last_content_delta.as_deref()
    }

    fn warn(&mut self, message: impl Into<String>) {
        let index = self.tokens.len().saturating_sub(1);
        self.warnings.push(ParseWarning {
            index,
            message: message.into(),
        });
    }

    fn warn_at_eos(&mut self, message: impl Into<String>) {
        self.warnings.push(ParseWarning {
            index: self.tokens.len(),
            message: message.into(),
        });
    }

    fn error(&self, token: Option<Rank>, message: impl Into<String>) -> Error {
        let index = if token.is_some() {
            self.tokens.len().saturating_sub(1)
        } else {
            self.tokens.len()
        };
        Error::Parse {
            index,
            message: message.into(),
        }
    }

    fn lenient(&self) -> bool {
        self.mode == ParseMode::Lenient
    }

    fn step(&mut self, token: Option<Rank>, events: &mut Vec<ParseEvent>) -> Result<(), Error> {
        match &mut self.state {
            State::ExpectStart => match token {
                Some(START) => {
                    self.state = State::Header {
                        header_tokens: Vec::new(),
                    };
                }
                Some(t) => {
                    if !self.lenient() {
                        return Err(self.error(
                            token,
                            format!("Unexpected token {t} while expecting start token {START}"),
                        ));
                    }
                    if !in_vocab(t) {
                        self.warn(format!("skipped out-of-vocabulary token {t}"));
                    } else if is_stop(t) {
                        self.warn(format!("skipped stop token {t} outside a message"));
                    } else {
                        // The model left out `<|start|>assistant`: read what
                        // follows as an assistant header.
                        self.warn(format!(
                            "token {t} outside a message: reading it as the start of an assistant message"
                        ));
                        self.state = State::Header {
                            header_tokens: Vec::new(),
                        };
                        self.next_role = Some(Role::Assistant);
                        return self.step(token, events);
                    }
                }
                None => {}
            },
            State::Header { header_tokens } => match token {
                Some(MESSAGE) => {
                    let header_tokens = std::mem::take(header_tokens);
                    let header = self.header_from_tokens(&header_tokens, token)?;
                    self.next_role = None;
                    events.push(ParseEvent::MessageStarted {
                        author: header.author.clone(),
                        channel: header.channel.clone(),
                        recipient: header.recipient.clone(),
                        content_type: header.content_type.clone(),
                    });
                    self.state = State::Content {
                        header,
                        content: String::new(),
                    };
                }
                Some(t) if self.mode == ParseMode::Lenient && is_stop(t) => {
                    let header_tokens = std::mem::take(header_tokens);
                    self.salvage_header(&header_tokens, false, events);
                    self.state = State::ExpectStart;
                    self.next_role = None;
                }
                Some(t) => {
                    if self.mode == ParseMode::Lenient && !in_vocab(t) {
                        self.warn(format!("skipped out-of-vocabulary token {t} in a header"));
                    } else {
                        header_tokens.push(t);
                    }
                }
                None => {
                    let header_tokens = std::mem::take(header_tokens);
                    if self.mode == ParseMode::Strict {
                        return Err(self.error(
                            None,
                            "Unexpected EOS while waiting for message header to complete",
                        ));
                    }
                    self.salvage_header(&header_tokens, true, events);
                    self.state = State::ExpectStart;
                    self.next_role = None;
                }
            },
            State::Content { content, .. } => {
                let at_end = match token {
                    Some(t) if is_stop(t) => true,
                    Some(t) => {
                        let delta = decode_content_token(
                            self.tokenizer,
                            t,
                            &mut self.undecoded_tokens,
                            &mut self.undecoded_bytes,
                        );
                        match delta {
                            ContentStep::Text(s) => {
                                content.push_str(&s);
                                events.push(ParseEvent::ContentDelta(s.clone()));
                                self.last_content_delta = Some(s);
                            }
                            ContentStep::Waiting => self.last_content_delta = None,
                            ContentStep::Unknown => {
                                self.last_content_delta = None;
                                if self.lenient() {
                                    self.warn(format!(
                                        "out-of-vocabulary token {t} in message content: the rest of this message becomes U+FFFD"
                                    ));
                                }
                            }
                        }
                        false
                    }
                    None => true,
                };
                if at_end {
                    self.finish_message(events);
                }
            }
        }
        Ok(())
    }

    /// Close the current message (stop token or end of stream).
    fn finish_message(&mut self, events: &mut Vec<ParseEvent>) {
        let State::Content { header, content } =
            std::mem::replace(&mut self.state, State::ExpectStart)
        else {
            return;
        };
        // As openai-harmony: undecodable tokens become one U+FFFD, then any
        // held-back bytes, lossily.
        let mut tail = String::new();
        if !self.undecoded_tokens.is_empty() {
            tail.push_str(REPLACEMENT);
        }
        tail.push_str(&String::from_utf8_lossy(&self.undecoded_bytes));
        let mut text = content;
        if !tail.is_empty() {
            text.push_str(&tail);
            events.push(ParseEvent::ContentDelta(tail));
        }
        let message = message_from_header(header, text);
        events.push(ParseEvent::MessageDone(message.clone()));
        self.messages.push(message);
        self.last_content_delta = None;
        self.undecoded_tokens.clear();
        self.undecoded_bytes.clear();
    }

    /// Header complete (`<|message|>` seen).
    fn header_from_tokens(
        &mut self,
        header_tokens: &[Rank],
        token: Option<Rank>,
    ) -> Result<ParsedHeader, Error> {
        let role = self.next_role;
        let decoded = match self.tokenizer.decode_utf8(header_tokens) {
            Ok(s) => s,
            Err(e) => {
                if !self.lenient() {
                    return Err(self.error(token, format!("could not decode header: {e}")));
                }
                self.warn("header is not valid UTF-8; decoded lossily");
                // OOV ids were skipped on entry, so only UTF-8 can be wrong.
                self.tokenizer
                    .decode_lossy(header_tokens)
                    .unwrap_or_default()
            }
        };
        match parse_header(&decoded, role, true) {
            Ok((header, None)) => Ok(header),
            Ok((_, Some(rest))) if !self.lenient() => Err(self.error(
                token,
                format!("unexpected tokens remaining in message header: Some({rest:?})"),
            )),
            Err(e) if !self.lenient() => Err(self.error(token, e)),
            _ => {
                let (header, warnings) = parse_header_lenient(&decoded, role);
                for w in warnings {
                    self.warn(w);
                }
                Ok(header)
            }
        }
    }

    /// Lenient: a header ended by a stop token (`at_eos = false`, exactly
    /// openai-harmony `strict=False`) or by the end of the stream (`at_eos =
    /// true`, an error for openai-harmony). Its text becomes the content.
    fn salvage_header(
        &mut self,
        header_tokens: &[Rank],
        at_eos: bool,
        events: &mut Vec<ParseEvent>,
    ) {
        let warn = |this: &mut Self, msg: String| {
            if at_eos {
                this.warn_at_eos(msg)
            } else {
                this.warn(msg)
            }
        };
        if header_tokens.is_empty() {
            if at_eos {
                warn(self, "stream ended before a message header".to_string());
            } else {
                warn(
                    self,
                    "stop token right after a message start: nothing to keep".to_string(),
                );
            }
            return;
        }
        let role = match self.next_role {
            Some(r) => Some(r),
            None if !at_eos => {
                // openai-harmony drops such a header silently.
                warn(
                    self,
                    "message header ended by a stop token without <|message|>: dropped".to_string(),
                );
                return;
            }
            None => None,
        };
        let decoded = match self.tokenizer.decode_utf8(header_tokens) {
            Ok(s) => s,
            Err(_) => {
                warn(
                    self,
                    "header is not valid UTF-8; decoded lossily".to_string(),
                );
                self.tokenizer
                    .decode_lossy(header_tokens)
                    .unwrap_or_default()
            }
        };
        let (header, rest) = match parse_header(&decoded, role, false) {
            Ok(ok) => ok,
            Err(e) => {
                warn(self, format!("{e}; best reading kept"));
                salvage_header_lenient(&decoded, role)
            }
        };
        warn(
            self,
            if at_eos {
                "stream ended inside a message header: its text was kept as content".to_string()
            } else {
                "message header ended by a stop token without <|message|>: its text was kept as content".to_string()
            },
        );
        let text = rest.unwrap_or_default();
        events.push(ParseEvent::MessageStarted {
            author: header.author.clone(),
            channel: header.channel.clone(),
            recipient: header.recipient.clone(),
            content_type: header.content_type.clone(),
        });
        if !text.is_empty() {
            events.push(ParseEvent::ContentDelta(text.clone()));
        }
        let message = message_from_header(header, text);
        events.push(ParseEvent::MessageDone(message.clone()));
        self.messages.push(message);
    }
}

fn message_from_header(header: ParsedHeader, text: String) -> Message {
    Message {
        author: header.author,
        recipient: header.recipient,
        content: vec![Content::Text(TextContent { text })],
        channel: header.channel,
        content_type: header.content_type,
    }
}

enum ContentStep {
    /// Complete text (may contain U+FFFD for invalid bytes).
    Text(String),
    /// Bytes of an unfinished character held back.
    Waiting,
    /// The pending tokens contain an id outside the vocabulary.
    Unknown,
}

/// openai-harmony's content decoding, step for step: one invalid sequence is
/// replaced per token, and bytes after it wait for the next token.
fn decode_content_token(
    tokenizer: Tokenizer,
    token: Rank,
    undecoded_tokens: &mut Vec<Rank>,
    undecoded_bytes: &mut Vec<u8>,
) -> ContentStep {
    undecoded_tokens.push(token);
    let bytes = match tokenizer.decode_bytes(undecoded_tokens) {
        Ok(b) => b,
        Err(_) => return ContentStep::Unknown,
    };
    undecoded_tokens.clear();
    undecoded_bytes.extend_from_slice(&bytes);
    match std::str::from_utf8(undecoded_bytes) {
        Ok(s) => {
            let s = s.to_string();
            undecoded_bytes.clear();
            ContentStep::Text(s)
        }
        Err(e) => {
            let valid = e.valid_up_to();
            let mut delta = String::from_utf8_lossy(&undecoded_bytes[..valid]).into_owned();
            undecoded_bytes.drain(..valid);
            if let Some(bad) = e.error_len() {
                delta.push_str(REPLACEMENT);
                undecoded_bytes.drain(..bad.min(undecoded_bytes.len()));
            }
            if delta.is_empty() {
                ContentStep::Waiting
            } else {
                ContentStep::Text(delta)
            }
        }
    }
}

/// Cut `<|channel|>VALUE` out of the header (the value ends at whitespace or
/// `<`). Returns (rest of header, channel); `Err` when the value is empty.
fn extract_channel(header: &str) -> Result<(String, Option<String>), String> {
    let Some(idx) = header.find(CHANNEL_MARKER) else {
        return Ok((header.to_string(), None));
    };
    let after = &header[idx + CHANNEL_MARKER.len()..];
    let end = after
        .find(|c: char| c.is_whitespace() || c == '<')
        .unwrap_or(after.len());
    let value = &after[..end];
    if value.is_empty() {
        return Err("channel marker present but no channel value found in header".to_string());
    }
    let rest = format!("{}{}", &header[..idx], &after[end..]);
    Ok((rest, Some(value.to_string())))
}

/// Trim, then put a space before `<|constrain|>` so it splits off.
fn normalize_header(header: &str) -> String {
    let trimmed = header.trim();
    if trimmed.contains(CONSTRAIN_MARKER) {
        trimmed
            .replace(CONSTRAIN_MARKER, &format!(" {CONSTRAIN_MARKER}"))
            .trim()
            .to_string()
    } else {
        trimmed.to_string()
    }
}

/// openai-harmony's `parse_header_from_string`, faithfully. With
/// `parse_recipient_and_type`, the last part is the recipient (`to=…`) or
/// the content type (then the part before it is the recipient); any parts
/// left over are returned as the second value (an error for a real header).
pub(crate) fn parse_header(
    header: &str,
    role: Option<Role>,
    parse_recipient_and_type: bool,
) -> Result<(ParsedHeader, Option<String>), String> {
    let (rest, channel) = extract_channel(header)?;
    let normalized = normalize_header(&rest);
    let mut parts: Vec<&str> = normalized.split_ascii_whitespace().collect();

    let mut role_word: Option<String> = None;
    let role = match role {
        Some(r) => r,
        None => {
            let first = *parts
                .first()
                .ok_or_else(|| "message header did not contain a role".to_string())?;
            role_word = Some(first.to_string());
            match Role::from_name(first) {
                Some(r) => r,
                None => {
                    // An unknown first word followed by more is a tool's name.
                    if parts.len() > 1 || first.starts_with("to=") {
                        parts.remove(0);
                        Role::Tool
                    } else {
                        return Err(format!("Unknown role: {first}"));
                    }
                }
            }
        }
    };
    if parts.first() == Some(&role.as_str()) {
        parts.remove(0);
    }

    let mut recipient = None;
    let mut content_type = None;
    if parse_recipient_and_type {
        if let Some(last) = parts.pop() {
            if let Some(r) = last.strip_prefix("to=") {
                recipient = Some(r.to_string());
            } else if parts.is_empty() {
                // A single part is a recipient even without `to=`.
                recipient = Some(last.to_string());
            } else {
                content_type = Some(last.to_string());
                if let Some(raw) = parts.pop() {
                    recipient = Some(raw.strip_prefix("to=").unwrap_or(raw).to_string());
                }
            }
        }
    }
    let remaining = (!parts.is_empty()).then(|| parts.join(" "));
    let author = Author {
        role,
        name: if role == Role::Tool { role_word } else { None },
    };
    Ok((
        ParsedHeader {
            author,
            recipient,
            channel,
            content_type,
        },
        remaining,
    ))
}

const KNOWN_CHANNELS: [&str; 3] = ["analysis", "commentary", "final"];

/// Best reading of a header openai-harmony rejects. Never fails.
fn parse_header_lenient(header: &str, role: Option<Role>) -> (ParsedHeader, Vec<String>) {
    let mut warnings = Vec::new();
    let (rest, mut channel) = match extract_channel(header) {
        Ok(ok) => ok,
        Err(e) => {
            warnings.push(format!("{e}; channel ignored"));
            (header.replacen(CHANNEL_MARKER, " ", 1), None)
        }
    };
    let normalized = normalize_header(&rest);
    let mut parts: Vec<&str> = normalized.split_ascii_whitespace().collect();

    let mut role_word = None;
    let role = match role {
        Some(r) => r,
        None => match parts.first().copied() {
            None => {
                warnings.push("message header has no role: assuming assistant".to_string());
                Role::Assistant
            }
            Some(first) => match Role::from_name(first) {
                Some(r) => {
                    role_word = Some(first.to_string());
                    r
                }
                None if parts.len() == 1
                    && channel.is_none()
                    && KNOWN_CHANNELS.contains(&first) =>
                {
                    warnings.push(format!(
                        "header {first:?} is a channel name without <|channel|>: read as an assistant message on that channel"
                    ));
                    channel = Some(first.to_string());
                    parts.clear();
                    Role::Assistant
                }
                None => {
                    if parts.len() == 1 {
                        warnings.push(format!(
                            "unknown role {first:?}: read as a message from the tool of that name"
                        ));
                    }
                    role_word = Some(first.to_string());
                    parts.remove(0);
                    Role::Tool
                }
            },
        },
    };
    if parts.first() == Some(&role.as_str()) {
        parts.remove(0);
    }

    let mut recipient = None;
    let mut content_type = None;
    if let Some(pos) = parts.iter().position(|p| p.starts_with("to=")) {
        recipient = parts[pos].strip_prefix("to=").map(str::to_string);
        if pos + 1 < parts.len() {
            content_type = parts.last().map(|s| s.to_string());
        }
        let kept = 1 + usize::from(content_type.is_some());
        if parts.len() > kept {
            warnings.push(format!(
                    "dropped unexpected words in message header: {:?}",
                    parts
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != pos
                            && !(content_type.is_some() && *i == parts.len() - 1))
                        .map(|(_, p)| *p)
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
        }
    } else if let Some(last) = parts.pop() {
        if parts.is_empty() {
            recipient = Some(last.to_string());
        } else {
            content_type = Some(last.to_string());
            recipient = parts.pop().map(str::to_string);
            if !parts.is_empty() {
                warnings.push(format!(
                    "dropped unexpected words in message header: {:?}",
                    parts.join(" ")
                ));
            }
        }
    }
    let author = Author {
        role,
        name: if role == Role::Tool { role_word } else { None },
    };
    (
        ParsedHeader {
            author,
            recipient,
            channel,
            content_type,
        },
        warnings,
    )
}

/// Header text cut off without `<|message|>` that openai-harmony cannot
/// read: keep the channel if any, take a leading role word, and keep the
/// rest as content. Never fails.
fn salvage_header_lenient(header: &str, role: Option<Role>) -> (ParsedHeader, Option<String>) {
    let (rest, channel) = match extract_channel(header) {
        Ok(ok) => ok,
        Err(_) => (header.replacen(CHANNEL_MARKER, " ", 1), None),
    };
    let normalized = normalize_header(&rest);
    let mut parts: Vec<&str> = normalized.split_ascii_whitespace().collect();
    let role = match role {
        Some(r) => r,
        None => match parts.first().and_then(|w| Role::from_name(w)) {
            Some(r) => r,
            None => Role::Assistant,
        },
    };
    if parts.first() == Some(&role.as_str()) {
        parts.remove(0);
    }
    let remaining = (!parts.is_empty()).then(|| parts.join(" "));
    (
        ParsedHeader {
            author: Author::from(role),
            recipient: None,
            channel,
            content_type: None,
        },
        remaining,
    )
}
