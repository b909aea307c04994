//! The `o200k_harmony` tokenizer: a thin, cheap-to-copy handle over the
//! process-wide `tiktoken-rs` instance, plus the special-token table and an
//! incremental (streaming) UTF-8 decoder.
//!
//! Owns: token ids <-> bytes/text. Does not own: anything about messages or
//! headers (see `render` and `parse`).
//!
//! Why a wrapper: openai-harmony's tokenizer reserves ids up to **201088**
//! (`<|reserved_201088|>`), one more than tiktoken-rs does, and treats
//! `<|endofprompt|>` as plain text. The wrapper adds 201088 so that encoding
//! with specials allowed and decoding agree with openai-harmony exactly.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::Error;

/// A token id, as used everywhere in this crate.
pub type Rank = u32;

/// First id of the special/reserved range (`<|startoftext|>`).
pub const FIRST_SPECIAL_ID: Rank = 199_998;
/// Highest id openai-harmony knows (`<|reserved_201088|>`). It has no
/// embedding row in the gpt-oss checkpoints (those have 201088 rows).
pub const MAX_TOKEN_ID: Rank = 201_088;
/// Number of ids openai-harmony can decode (0..=201088).
pub const N_VOCAB: usize = MAX_TOKEN_ID as usize + 1;

/// `<|startoftext|>`
pub const STARTOFTEXT: Rank = 199_998;
/// `<|endoftext|>`
pub const ENDOFTEXT: Rank = 199_999;
/// `<|return|>`: end of the final answer; a sampling stop token.
pub const RETURN: Rank = 200_002;
/// `<|constrain|>`: introduces a constrained content type in a header.
pub const CONSTRAIN: Rank = 200_003;
/// `<|channel|>`: introduces the channel in a header.
pub const CHANNEL: Rank = 200_005;
/// `<|start|>`: starts a message.
pub const START: Rank = 200_006;
/// `<|end|>`: ends a message.
pub const END: Rank = 200_007;
/// `<|message|>`: header -> content boundary.
pub const MESSAGE: Rank = 200_008;
/// `<|call|>`: end of a tool call; a sampling stop token.
pub const CALL: Rank = 200_012;

/// Tokens that end a message for the parser: `<|return|>`, `<|call|>`, `<|end|>`
/// (openai-harmony `stop_tokens()`).
pub const STOP_TOKENS: [Rank; 3] = [RETURN, CALL, END];
/// Tokens on which sampling stops: `<|return|>`, `<|call|>`
/// (openai-harmony `stop_tokens_for_assistant_actions()`).
pub const STOP_TOKENS_FOR_ASSISTANT_ACTIONS: [Rank; 2] = [RETURN, CALL];

/// The special token tiktoken-rs does not know but openai-harmony does.
const EXTRA_RESERVED: &str = "<|reserved_201088|>";

/// Name of a special token id, as openai-harmony spells it, or `None` for an
/// ordinary (or out-of-vocabulary) id.
pub fn special_token_name(id: Rank) -> Option<String> {
    let name = match id {
        199_998 => "<|startoftext|>",
        199_999 => "<|endoftext|>",
        200_002 => "<|return|>",
        200_003 => "<|constrain|>",
        200_005 => "<|channel|>",
        200_006 => "<|start|>",
        200_007 => "<|end|>",
        200_008 => "<|message|>",
        200_012 => "<|call|>",
        200_000..=MAX_TOKEN_ID => return Some(format!("<|reserved_{id}|>")),
        _ => return None,
    };
    Some(name.to_string())
}

/// Id of a special token given its name (`"<|start|>"`), openai-harmony's table.
pub fn special_token_id(name: &str) -> Option<Rank> {
    let id = match name {
        "<|startoftext|>" => 199_998,
        "<|endoftext|>" => 199_999,
        "<|return|>" => 200_002,
        "<|constrain|>" => 200_003,
        "<|channel|>" => 200_005,
        "<|start|>" => 200_006,
        "<|end|>" => 200_007,
        "<|message|>" => 200_008,
        "<|call|>" => 200_012,
        _ => {
            let digits = name.strip_prefix("<|reserved_")?.strip_suffix("|>")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let id: Rank = digits.parse().ok()?;
            // Only ids that really carry a `reserved_` name in the table.
            return (special_token_name(id).as_deref() == Some(name)).then_some(id);
        }
    };
    Some(id)
}

/// Whether `id` is in the special/reserved range (199998..=201088).
pub fn is_special_token(id: Rank) -> bool {
    (FIRST_SPECIAL_ID..=MAX_TOKEN_ID).contains(&id)
}

/// Handle to the shared `o200k_harmony` tokenizer. `Copy`; all handles share
/// one instance built on first use (building it takes ~0.3 s, it is ~100 MB
/// of hash tables, so never build it twice).
#[derive(Clone, Copy)]
pub struct Tokenizer {
    bpe: &'static CoreBPE,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(o200k_harmony)")
    }
}

impl Tokenizer {
    /// The shared o200k_harmony tokenizer (vocabulary embedded in the binary;
    /// nothing is downloaded).
    pub fn o200k_harmony() -> Tokenizer {
        static BPE: OnceLock<&'static CoreBPE> = OnceLock::new();
        let bpe = BPE.get_or_init(tiktoken_rs::o200k_harmony_singleton);
        Tokenizer { bpe }
    }

    /// Encode `text` with every special-token string treated as plain text
    /// (tiktoken `encode_ordinary`). This is how harmony encodes all message
    /// text.
    pub fn encode_ordinary(&self, text: &str) -> Vec<Rank> {
        let mut segments = safe_segments(text);
        match (segments.next(), segments.next()) {
            (Some(only), None) => self.bpe.encode_ordinary(only),
            (first, second) => {
                let mut out = Vec::new();
                for seg in first.into_iter().chain(second).chain(segments) {
                    out.extend(self.bpe.encode_ordinary(seg));
                }
                out
            }
        }
    }

    /// Encode `text`, turning every special-token string openai-harmony knows
    /// into its id (openai-harmony `encode(text, allowed_special="all")`).
    /// `<|endofprompt|>` stays plain text, as in openai-harmony.
    pub fn encode_with_special_tokens(&self, text: &str) -> Vec<Rank> {
        // tiktoken-rs lacks id 201088. No other special token can overlap
        // its text (every name starts with "<|" and ends with "|>", and
        // "|>" occurs in it only at the end), so splitting on it first gives
        // the same result as one special-token regex over everything.
        let mut out = Vec::new();
        for segment in safe_segments(text) {
            self.encode_segment_with_special_tokens(segment, &mut out);
        }
        out
    }

    fn encode_segment_with_special_tokens(&self, text: &str, out: &mut Vec<Rank>) {
        let mut pieces = text.split(EXTRA_RESERVED).peekable();
        while let Some(piece) = pieces.next() {
            if !piece.is_empty() {
                out.extend(self.bpe.encode_with_special_tokens(piece));
            }
            if pieces.peek().is_some() {
                out.push(MAX_TOKEN_ID);
            }
        }
    }

    /// The bytes of one token, or an error for an id outside the vocabulary.
    pub fn token_bytes(&self, id: Rank) -> Result<Vec<u8>, Error> {
        if id == MAX_TOKEN_ID {
            return Ok(EXTRA_RESERVED.as_bytes().to_vec());
        }
        self.bpe
            .decode_bytes(&[id])
            .map_err(|_| Error::UnknownToken { id })
    }

    /// Concatenated bytes of `tokens` (special tokens give their names).
    pub fn decode_bytes(&self, tokens: &[Rank]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(tokens.len() * 4);
        // Decode runs between occurrences of 201088 in one call each.
        for run in tokens.split(|&t| t == MAX_TOKEN_ID).enumerate() {
            let (idx, run) = run;
            if idx > 0 {
                out.extend_from_slice(EXTRA_RESERVED.as_bytes());
            }
            let bytes = self
                .bpe
                .decode_bytes(run)
                .map_err(|e| Error::UnknownToken { id: e.token })?;
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Decode to a `String`, failing on unknown ids or invalid UTF-8
    /// (openai-harmony `decode_utf8`).
    pub fn decode_utf8(&self, tokens: &[Rank]) -> Result<String, Error> {
        let bytes = self.decode_bytes(tokens)?;
        String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            valid_up_to: e.utf8_error().valid_up_to(),
        })
    }

    /// Decode to a `String`, replacing invalid UTF-8 with U+FFFD (Python
    /// `decode(errors="replace")`). Unknown ids are still an error.
    pub fn decode_lossy(&self, tokens: &[Rank]) -> Result<String, Error> {
        let bytes = self.decode_bytes(tokens)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A fresh streaming decoder over this tokenizer.
    pub fn incremental_decoder(&self) -> IncrementalDecoder {
        IncrementalDecoder {
            tokenizer: *self,
            pending: Vec::new(),
        }
    }
}

/// Longest whitespace run (in chars) handed to the pre-tokenizer regex in
/// one piece. fancy-regex gives up ("StackOverflow", which tiktoken turns
/// into a panic, in Python too) on a run of about a million spaces; texts
/// below this limit are encoded exactly as tiktoken does, longer runs are cut
/// into pieces of this size (tiktoken itself has no answer for those).
const MAX_WHITESPACE_RUN: usize = 250_000;

/// Split `text` so that no segment holds a whitespace run longer than
/// [`MAX_WHITESPACE_RUN`]. Almost always yields `text` itself.
fn safe_segments(text: &str) -> impl Iterator<Item = &str> {
    let mut cuts: Vec<usize> = Vec::new();
    // A run that long needs at least that many bytes.
    if text.len() > MAX_WHITESPACE_RUN {
        let mut run = 0usize;
        for (idx, ch) in text.char_indices() {
            if ch.is_whitespace() {
                if run == MAX_WHITESPACE_RUN {
                    cuts.push(idx);
                    run = 0;
                }
                run += 1;
            } else {
                run = 0;
            }
        }
    }
    cuts.push(text.len());
    let mut start = 0;
    cuts.into_iter().map(move |end| {
        let seg = &text[start..end];
        start = end;
        seg
    })
}

/// Turns token ids, fed one at a time, into text as soon as it is complete
/// UTF-8. Bytes of an unfinished multi-byte character are held back until
/// the next token completes them; bytes that can never become valid UTF-8 are
/// replaced by U+FFFD. Concatenating every `push` result and `finish` gives
/// exactly `String::from_utf8_lossy` of all the bytes.
#[derive(Debug, Clone)]
pub struct IncrementalDecoder {
    tokenizer: Tokenizer,
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// Add one token; returns the text that became complete (maybe empty).
    /// An unknown id is an error and leaves the decoder unchanged.
    pub fn push(&mut self, id: Rank) -> Result<String, Error> {
        let bytes = self.tokenizer.token_bytes(id)?;
        self.pending.extend_from_slice(&bytes);
        Ok(self.take_complete())
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// End of stream: whatever is held back, with U+FFFD for the incomplete
    /// tail. The decoder is empty afterwards and can be reused.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            let rest = &self.pending[consumed..];
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix up to `valid` was just validated, so this copies it as is.
                    out.push_str(&String::from_utf8_lossy(&rest[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            consumed += valid + bad;
                        }
                        None => {
                            // Incomplete character at the end: wait for more.
                            consumed += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_whitespace_runs_do_not_panic() {
        let tok = Tokenizer::o200k_harmony();
        // tiktoken (Rust and Python) panics on this; we cut the run.
        let text = format!("{}x", " ".repeat(600_000));
        let ids = tok.encode_ordinary(&text);
        assert_eq!(tok.decode_utf8(&ids).unwrap(), text);
        let ids = tok.encode_with_special_tokens(&format!("<|start|>{text}"));
        assert_eq!(ids[0], START);
        // Below the limit the text is one segment, as tiktoken sees it.
        let text = format!("{}y", " ".repeat(MAX_WHITESPACE_RUN));
        assert_eq!(safe_segments(&text).count(), 1);
        assert_eq!(safe_segments(&format!(" {text}")).count(), 2);
    }

    #[test]
    fn special_token_table() {
        assert_eq!(special_token_id("<|start|>"), Some(START));
        assert_eq!(special_token_id("<|reserved_201088|>"), Some(201_088));
        assert_eq!(special_token_id("<|reserved_200018|>"), Some(200_018));
        assert_eq!(special_token_id("<|reserved_200002|>"), None);
        assert_eq!(special_token_id("<|reserved_0201088|>"), None);
        assert_eq!(special_token_id("<|endofprompt|>"), None);
        assert_eq!(special_token_name(201_089), None);
        let tok = Tokenizer::o200k_harmony();
        for id in FIRST_SPECIAL_ID..=MAX_TOKEN_ID {
            let name = special_token_name(id).unwrap();
            assert_eq!(tok.decode_utf8(&[id]).unwrap(), name);
            assert_eq!(tok.encode_with_special_tokens(&name), vec![id]);
            assert_eq!(special_token_id(&name), Some(id));
        }
        assert!(tok.decode_bytes(&[MAX_TOKEN_ID + 1]).is_err());
        // <|endofprompt|> is text for openai-harmony.
        assert!(tok.encode_with_special_tokens("<|endofprompt|>").len() > 1);
    }

    #[test]
    fn incremental_decoder_holds_back_cut_characters() {
        let tok = Tokenizer::o200k_harmony();
        let mut dec = tok.incremental_decoder();
        // 9552 = [0x20, 0xF0, 0x9F]: a space, then the start of a 4-byte char.
        assert_eq!(dec.push(9552).unwrap(), " ");
        assert_eq!(dec.pending_bytes(), &[0xF0, 0x9F]);
        assert!(dec.push(u32::MAX).is_err());
        assert_eq!(dec.finish(), "\u{FFFD}");
        assert_eq!(dec.finish(), "");
    }
}
