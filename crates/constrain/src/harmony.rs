//! [`HarmonyConstraint`]: structured output that knows the harmony format.
//! It follows the tokens the assistant generates (a small state machine over
//! the control-token ids, reading each header when `<|message|>` closes it).
//!
//! With guarded headers ([`StructuredOutput::headers`], the server sets them
//! on every request) the harmony structure itself is enforced: a header can
//! only be one of [`HeaderGrammar`]'s shapes, naming a declared tool or no
//! recipient at all; inside a message body no control token but the one that
//! closes that body may appear (`<|end|>` after analysis and preambles,
//! `<|return|>` after the final answer, `<|call|>` after a call), and after
//! `<|end|>` only `<|start|>` may follow. So no header text, channel name or
//! stray control token can reach a client as content, and no call can name a
//! tool that does not exist.
//!
//! It constrains exactly two kinds of message body to JSON:
//! - a `final` message (or one with no channel), when a response format is
//!   set: the body must be the format's JSON, then `<|return|>`;
//! - a call to a function with an argument grammar (`to=functions.NAME`, on
//!   any channel): the body must be JSON for that function's parameters,
//!   then `<|call|>`.
//!
//! Analysis, commentary preambles and built-in tool bodies (python code) are
//! free text. So with `tool_choice: auto` only the branch the model takes is
//! constrained.
//!
//! Inside a constrained body no control token is allowed until the JSON is
//! complete; then only the body's closing token (or more JSON, for values
//! that can go on, like numbers). After a final answer only `<|return|>` is
//! allowed, not `<|end|>`: a second final message would make the answer two
//! concatenated JSON values.
//!
//! Token budget: given the generation's `max_tokens`, once the budget left is
//! about what the shortest close of the value needs, the body is steered to
//! a close (see [`Matcher::closing_path`]), so a long
//! answer still ends as complete JSON when the model would not end it itself.
//!
//! Never panics on what the model does: a token the grammar rejects (possible
//! only if the caller ignored the mask) ends constraining for that body.

use gptoss_harmony::tokenizer::{
    is_special_token, special_token_name, CALL, END, FIRST_SPECIAL_ID, MESSAGE, RETURN, START,
};
use gptoss_harmony::Tokenizer;

use crate::header::HeaderGrammar;
use crate::json::{Grammar, Matcher, TokenSet};
use crate::vocab::Vocab;
use crate::Error;

/// Below this many tokens left, the constraint checks whether the JSON
/// value must be steered to a close.
const STEER_WINDOW: usize = 64;
/// Extra tokens kept in hand when deciding to steer (one sampled token can
/// open more than one level).
const STEER_MARGIN: usize = 4;

/// How a JSON body is being brought to its end under a token budget.
enum Steer {
    /// Not yet: the model chooses among all allowed tokens.
    No,
    /// Forced along the shortest close found (the next tokens, reversed).
    Path(Vec<u32>),
    /// No close fits the budget: take the greedy closing token each step.
    BestEffort,
}

/// What to constrain in one generation.
#[derive(Debug, Clone, Default)]
pub struct StructuredOutput {
    /// The grammar of the final answer (`response_format`), if any.
    pub final_answer: Option<Grammar>,
    /// Function tools: name (without `functions.`; other namespaces' tools
    /// by full recipient, `crm.lookup`) and the grammar of its
    /// arguments.
    pub tool_args: Vec<(String, Grammar)>,
    /// Guard the harmony structure: headers from this grammar (declared
    /// recipients only), no stray control tokens in bodies.
    pub headers: Option<HeaderGrammar>,
}

impl StructuredOutput {
    /// Nothing to constrain.
    pub fn is_empty(&self) -> bool {
        self.final_answer.is_none() && self.tool_args.is_empty() && self.headers.is_none()
    }

    fn tool(&self, name: &str) -> Option<&Grammar> {
        self.tool_args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| g)
    }
}

enum State {
    /// Reading a header (unguarded: also between `<|end|>` and the next
    /// `<|start|>`). `matcher`: the header grammar, when guarded.
    Header { matcher: Option<Box<Matcher>> },
    /// Guarded, after `<|end|>`: only `<|start|>` may follow.
    Between,
    /// A free-text body; guarded: `close` is the one control token allowed in it.
    Free { close: Option<u32> },
    /// A constrained body; `end` is the token that closes it.
    Json {
        matcher: Box<Matcher>,
        end: u32,
        steer: Steer,
    },
    /// After `<|return|>` or `<|call|>`: generation is over.
    Done,
}

/// The harmony-aware constraint of one generation. Feed it the tokens the
/// prompt already opened the assistant message with ([`Self::prefeed`]),
/// then for every step call [`Self::mask`] (or [`Self::allowed`]) and
/// [`Self::accept`] with the sampled token.
pub struct HarmonyConstraint {
    spec: StructuredOutput,
    state: State,
    /// Bytes of the current header (control tokens as their names).
    header: Vec<u8>,
    /// Generation tokens left (`max_tokens` minus tokens accepted).
    remaining: Option<usize>,
    tokenizer: Tokenizer,
    n_vocab: usize,
    /// Every ordinary token (a free body's mask, before its closing token).
    ordinary: &'static TokenSet,
    warnings: Vec<String>,
    /// A JSON body was steered to a close by the token budget.
    cut_short: bool,
}

impl std::fmt::Debug for HarmonyConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Header { .. } => "header",
            State::Between => "between",
            State::Free { .. } => "free",
            State::Json { .. } => "json",
            State::Done => "done",
        };
        write!(f, "HarmonyConstraint({state})")
    }
}

impl HarmonyConstraint {
    /// A constraint for an assistant turn whose prompt ends with
    /// `<|start|>assistant` (the header of the first message is next).
    pub fn new(spec: StructuredOutput) -> Result<Self, Error> {
        let vocab = Vocab::o200k_harmony()?;
        let matcher = spec.headers.as_ref().map(|h| Box::new(h.first.matcher()));
        Ok(HarmonyConstraint {
            spec,
            state: State::Header { matcher },
            header: Vec::new(),
            remaining: None,
            tokenizer: Tokenizer::o200k_harmony(),
            n_vocab: vocab.n_vocab(),
            ordinary: &vocab.ordinary,
            warnings: Vec::new(),
            cut_short: false,
        })
    }

    /// Whether the token budget forced a JSON body to close early (the
    /// answer is complete JSON but was cut: report it as a length stop).
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// Steer the JSON to a close within this many generated tokens.
    pub fn with_token_budget(mut self, max_tokens: Option<usize>) -> Self {
        self.remaining = max_tokens;
        self
    }

    /// Tokens the prompt already put after `<|start|>assistant` (like
    /// `<|channel|>final<|message|>`): advance the state without counting
    /// them against the budget.
    pub fn prefeed(&mut self, tokens: &[u32]) {
        let remaining = self.remaining;
        for &t in tokens {
            self.accept(t);
        }
        self.remaining = remaining;
    }

    /// Whether the next token is being constrained.
    pub fn is_constraining(&self) -> bool {
        matches!(self.state, State::Json { .. })
    }

    /// Problems met so far (a rejected token), for the server's log.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The tokens allowed next, or `None` when any token is.
    pub fn allowed(&mut self) -> Option<TokenSet> {
        match &mut self.state {
            State::Header {
                matcher: Some(matcher),
            } => match matcher.allowed() {
                Ok(set) if !set.is_empty() => return Some(set),
                Ok(_) => {
                    self.warnings
                        .push("the header grammar allows nothing here".to_string());
                    self.state = State::Header { matcher: None };
                    return None;
                }
                Err(e) => {
                    self.warnings.push(format!("header: {e}"));
                    self.state = State::Header { matcher: None };
                    return None;
                }
            },
            State::Between => {
                let mut set = TokenSet::empty(self.n_vocab);
                set.insert(START);
                return Some(set);
            }
            State::Free { close: Some(close) } => {
                let mut set = self.ordinary.clone();
                set.insert(*close);
                return Some(set);
            }
            _ => {}
        }
        let remaining = self.remaining;
        let State::Json {
            matcher,
            end,
            steer,
        } = &mut self.state
        else {
            return None;
        };
        let mut allowed = match matcher.allowed() {
            Ok(a) => a,
            Err(e) => {
                self.warnings.push(e.to_string());
                self.state = State::Free { close: None };
                return None;
            }
        };
        let complete = matcher.is_complete();
        if let Some(left) = remaining {
            if matches!(steer, Steer::No) && left <= STEER_WINDOW {
                // One token is kept for the closing control token.
                *steer = match matcher.closing_path(left.saturating_sub(1)) {
                    Some(path) if path.len() + 1 + STEER_MARGIN >= left => {
                        self.cut_short = true;
                        Steer::Path(path.into_iter().rev().collect())
                    }
                    Some(_) => Steer::No,
                    None => {
                        self.cut_short = true;
                        Steer::BestEffort
                    }
                };
            }
            match steer {
                Steer::No => {}
                Steer::Path(path) => {
                    allowed = TokenSet::empty(self.n_vocab);
                    match path.last() {
                        Some(&next) => allowed.insert(next),
                        None => allowed.insert(*end),
                    }
                    return Some(allowed);
                }
                Steer::BestEffort if complete => allowed = TokenSet::empty(self.n_vocab),
                Steer::BestEffort => {
                    if let Some(next) = matcher.closing_token(allowed.clone()) {
                        allowed = TokenSet::empty(self.n_vocab);
                        allowed.insert(next);
                    }
                }
            }
        }
        if complete || allowed.is_empty() {
            // Complete: the body may end. Empty and incomplete cannot happen
            // for a compiled grammar; ending beats a dead end.
            allowed.insert(*end);
        }
        Some(allowed)
    }

    /// Set the logits (f32 `[vocab]`) of forbidden tokens to -inf.
    pub fn mask(&mut self, logits: &mut [f32]) {
        // Free bodies (most of a turn) and the gap between messages forbid
        // only control tokens: touch those ~1100 logits, build no set.
        let keep = match self.state {
            State::Free { close: Some(close) } => Some(close),
            State::Between => Some(START),
            _ => None,
        };
        if let Some(keep) = keep {
            let first = FIRST_SPECIAL_ID as usize;
            for (offset, logit) in logits.iter_mut().skip(first).enumerate() {
                if first + offset != keep as usize {
                    *logit = f32::NEG_INFINITY;
                }
            }
            if matches!(self.state, State::Between) {
                let ordinary = first.min(logits.len());
                logits[..ordinary].fill(f32::NEG_INFINITY);
            }
            return;
        }
        if let Some(allowed) = self.allowed() {
            allowed.apply(logits);
        }
    }

    /// The token that was sampled.
    pub fn accept(&mut self, token: u32) {
        if let Some(left) = self.remaining.as_mut() {
            *left = left.saturating_sub(1);
        }
        let guarded = self.spec.headers.is_some();
        match &mut self.state {
            State::Done => {}
            State::Header { matcher } => {
                if let Some(m) = matcher {
                    if let Err(e) = m.accept(token) {
                        self.warnings.push(format!("header: {e}"));
                        *matcher = None;
                    }
                }
                match token {
                    MESSAGE => {
                        self.state = self.body_state();
                        self.header.clear();
                    }
                    START | END => self.header.clear(),
                    RETURN | CALL => self.state = State::Done,
                    _ => self.push_header(token),
                }
            }
            State::Between => match token {
                START => self.state = self.next_header(),
                RETURN | CALL => self.state = State::Done,
                _ => {
                    self.warnings.push(format!(
                        "token {token} between messages (expected <|start|>)"
                    ));
                    self.state = State::Header { matcher: None };
                    self.push_header(token);
                }
            },
            State::Free { close } => {
                if close.is_some_and(|c| c != token) && is_special_token(token) {
                    self.warnings
                        .push(format!("control token {token} inside a message body"));
                }
                match token {
                    END if guarded => self.state = State::Between,
                    END => self.state = State::Header { matcher: None },
                    START => self.state = self.next_header(),
                    RETURN | CALL => self.state = State::Done,
                    _ => {}
                }
            }
            State::Json {
                matcher,
                end,
                steer,
            } => {
                if let Steer::Path(path) = steer {
                    if path.last() == Some(&token) {
                        path.pop();
                    } else {
                        *steer = Steer::BestEffort;
                    }
                }
                if token == *end {
                    self.state = State::Done;
                } else if is_special_token(token) {
                    // Only reachable if the mask was ignored: recover.
                    self.warnings.push(format!(
                        "control token {token} inside a constrained JSON body"
                    ));
                    self.state = match token {
                        END if guarded => State::Between,
                        END => State::Header { matcher: None },
                        START => self.next_header(),
                        _ => State::Done,
                    };
                } else if let Err(e) = matcher.accept(token) {
                    self.warnings.push(e.to_string());
                    self.state = State::Free { close: None };
                }
            }
        }
    }

    fn push_header(&mut self, token: u32) {
        // Headers are short; a runaway one (malformed output) is capped.
        if self.header.len() > 4096 {
            return;
        }
        if let Some(name) = special_token_name(token) {
            self.header.extend_from_slice(name.as_bytes());
        } else if let Ok(bytes) = self.tokenizer.token_bytes(token) {
            self.header.extend_from_slice(&bytes);
        }
    }

    /// The header after a generated `<|start|>` (guarded: role and header
    /// from the grammar).
    fn next_header(&self) -> State {
        State::Header {
            matcher: self
                .spec
                .headers
                .as_ref()
                .map(|h| Box::new(h.next.matcher())),
        }
    }

    /// The body that follows the header just closed by `<|message|>`.
    fn body_state(&self) -> State {
        let guarded = self.spec.headers.is_some();
        let header = String::from_utf8_lossy(&self.header);
        let fields = HeaderFields::parse(&header);
        if fields.role.is_some_and(|r| r != "assistant") {
            return State::Free { close: None };
        }
        let (grammar, end) = match fields.recipient {
            // `functions.NAME` is keyed by NAME; other namespaces' tools
            // by their full recipient (`crm.lookup`); built-ins have none.
            Some(recipient) => (
                self.spec
                    .tool(recipient.strip_prefix("functions.").unwrap_or(recipient)),
                CALL,
            ),
            None => match fields.channel {
                None | Some("final") => (self.spec.final_answer.as_ref(), RETURN),
                Some(_) => (None, END),
            },
        };
        match grammar {
            Some(g) => State::Json {
                matcher: Box::new(g.matcher()),
                end,
                steer: Steer::No,
            },
            None => State::Free {
                close: guarded.then_some(end),
            },
        }
    }
}

/// The parts of a header that decide the body: `ROLE [to=R]
/// <|channel|>CHANNEL [to=R] [<|constrain|>TYPE]`.
#[derive(Debug, Default, PartialEq)]
struct HeaderFields<'a> {
    role: Option<&'a str>,
    channel: Option<&'a str>,
    recipient: Option<&'a str>,
}

impl<'a> HeaderFields<'a> {
    fn parse(header: &'a str) -> Self {
        let word = |s: &'a str| -> &'a str {
            let end = s
                .find(|c: char| c.is_whitespace() || c == '<')
                .unwrap_or(s.len());
            &s[..end]
        };
        let mut fields = HeaderFields::default();
        let first = word(header.trim_start());
        // The role is written only after a `<|start|>` inside the generation.
        if !first.is_empty() && !first.starts_with("to=") {
            fields.role = Some(first);
        }
        if let Some(pos) = header.find("<|channel|>") {
            let channel = word(&header[pos + "<|channel|>".len()..]);
            fields.channel = (!channel.is_empty()).then_some(channel);
        }
        if let Some(pos) = header.find("to=") {
            let recipient = word(&header[pos + 3..]);
            fields.recipient = (!recipient.is_empty()).then_some(recipient);
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let f = HeaderFields::parse("<|channel|>final");
        assert_eq!(f.channel, Some("final"));
        assert_eq!(f.role, None);
        let f =
            HeaderFields::parse("<|channel|>commentary to=functions.get_weather <|constrain|>json");
        assert_eq!(f.channel, Some("commentary"));
        assert_eq!(f.recipient, Some("functions.get_weather"));
        let f = HeaderFields::parse("assistant to=functions.x<|channel|>analysis");
        assert_eq!(f.role, Some("assistant"));
        assert_eq!(f.recipient, Some("functions.x"));
        assert_eq!(f.channel, Some("analysis"));
        let f = HeaderFields::parse("user");
        assert_eq!(f.role, Some("user"));
    }
}
