//! JSON grammars: a response format ([`Format`]) compiled into a [`Grammar`],
//! and the per-generation [`Matcher`] that says which token ids may come
//! next. The grammar engine is llguidance; this file fixes how we use it:
//! whitespace between JSON tokens is bounded (a gap of at most
//! [`MAX_WHITESPACE`] whitespace characters, so a model cannot loop forever on
//! spaces), special tokens are never part of JSON, and a value can be steered
//! to its shortest close when the token budget runs out.
//!
//! Does not own: harmony structure (`harmony`) or the vocabulary (`vocab`).

use gptoss_harmony::tokenizer::{FIRST_SPECIAL_ID, RETURN};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::SimpleVob;
use serde_json::{json, Value};

use crate::vocab::Vocab;
use crate::Error;

/// Most whitespace characters allowed in one gap between JSON tokens
/// (enough for pretty-printing a few levels deep).
pub const MAX_WHITESPACE: usize = 24;

/// What the output must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// A JSON value valid for this JSON schema.
    JsonSchema(Value),
}

/// A compiled format. Cheap to turn into fresh [`Matcher`]s.
pub struct Grammar {
    template: llguidance::Matcher,
    vocab: &'static Vocab,
    /// Whether the grammar writes control tokens itself (headers); JSON never does.
    special: bool,
}

impl std::fmt::Debug for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Grammar(json)")
    }
}

impl Clone for Grammar {
    fn clone(&self) -> Self {
        Grammar {
            template: self.template.deep_clone(),
            vocab: self.vocab,
            special: self.special,
        }
    }
}

impl Grammar {
    /// Compile `format` over the o200k_harmony vocabulary. A schema the
    /// engine cannot compile (unknown type, bad `$ref`, unsatisfiable...)
    /// is [`Error::InvalidSchema`].
    pub fn compile(format: &Format) -> Result<Grammar, Error> {
        let vocab = Vocab::o200k_harmony()?;
        let schema = match format {
            Format::JsonObject => json!({"type": "object"}),
            Format::JsonSchema(schema) => schema.clone(),
        };
        let schema = match schema {
            Value::Object(mut map) => {
                // Our whitespace policy, whatever the client sent.
                map.insert("x-guidance".to_string(), guidance_options());
                Value::Object(map)
            }
            Value::Bool(true) => json!({ "x-guidance": guidance_options() }),
            other => {
                return Err(Error::InvalidSchema {
                    message: format!(
                        "a JSON schema must be an object (or true), found {}",
                        kind(&other)
                    ),
                })
            }
        };
        Grammar::build(vocab, TopLevelGrammar::from_json_schema(schema), false)
    }

    /// Compile an llguidance lark grammar whose rules may name control
    /// tokens (`<|channel|>`): harmony headers.
    pub(crate) fn compile_lark(lark: &str) -> Result<Grammar, Error> {
        let vocab = Vocab::o200k_harmony()?;
        Grammar::build(vocab, TopLevelGrammar::from_lark(lark.to_string()), true)
    }

    fn build(
        vocab: &'static Vocab,
        grammar: TopLevelGrammar,
        special: bool,
    ) -> Result<Grammar, Error> {
        let parser = vocab
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::InvalidSchema {
                message: e.to_string(),
            })?;
        let mut template = llguidance::Matcher::new(Ok(parser));
        if let Some(message) = template.get_error() {
            return Err(Error::InvalidSchema { message });
        }
        // An unsatisfiable grammar shows up as an empty first mask.
        match template.compute_mask() {
            Ok(mask) if !mask.is_zero() => {}
            Ok(_) => {
                return Err(Error::InvalidSchema {
                    message: "no JSON value satisfies this schema".to_string(),
                })
            }
            Err(e) => {
                return Err(Error::InvalidSchema {
                    message: e.to_string(),
                })
            }
        }
        Ok(Grammar {
            template,
            vocab,
            special,
        })
    }

    /// A fresh matcher at the start of the value.
    pub fn matcher(&self) -> Matcher {
        Matcher {
            inner: self.template.deep_clone(),
            vocab: self.vocab,
            special: self.special,
        }
    }
}

/// llguidance's JSON options: bounded whitespace, and `\uXXXX` escapes of
/// any character (models write them; llguidance allows only control-character
/// escapes by default).
fn guidance_options() -> Value {
    json!({
        "whitespace_pattern": format!("[\\x20\\x0A\\x0D\\x09]{{1,{MAX_WHITESPACE}}}"),
        "json_allow_general_unicode_escapes": true,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A set of token ids (one bit per id of the vocabulary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    bits: SimpleVob,
}

impl TokenSet {
    pub(crate) fn from_vob(bits: SimpleVob) -> Self {
        TokenSet { bits }
    }

    /// Empty set over `n_vocab` ids.
    pub fn empty(n_vocab: usize) -> Self {
        TokenSet {
            bits: SimpleVob::alloc(n_vocab),
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        (id as usize) < self.bits.len() && self.bits.is_allowed(id)
    }

    pub fn insert(&mut self, id: u32) {
        if (id as usize) < self.bits.len() {
            self.bits.allow_token(id);
        }
    }

    pub fn remove(&mut self, id: u32) {
        if (id as usize) < self.bits.len() {
            self.bits.disallow_token(id);
        }
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        self.bits.num_set()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_zero()
    }

    /// The ids in the set, ascending.
    pub fn to_vec(&self) -> Vec<u32> {
        self.bits.to_list()
    }

    /// Keep only ids also in `other`.
    pub(crate) fn intersect(&mut self, other: &SimpleVob) {
        self.bits.and(other);
    }

    pub(crate) fn intersects(&self, other: &SimpleVob) -> bool {
        !self.bits.and_is_zero(other)
    }

    /// Set `logits[id]` to -inf for every id not in the set (ids past the
    /// set's end too). Goes 32 ids at a time: whole words of allowed or
    /// forbidden ids cost one compare.
    pub fn apply(&self, logits: &mut [f32]) {
        let words = self.bits.as_slice();
        for (word_idx, chunk) in logits.chunks_mut(32).enumerate() {
            let bits = words.get(word_idx).copied().unwrap_or(0);
            if bits == u32::MAX {
                continue;
            }
            if bits == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            for (bit, logit) in chunk.iter_mut().enumerate() {
                if bits & (1 << bit) == 0 {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// Where one generated JSON value stands: which tokens may come next.
pub struct Matcher {
    inner: llguidance::Matcher,
    vocab: &'static Vocab,
    special: bool,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Matcher(json)")
    }
}

impl Matcher {
    /// The ordinary (non-special) tokens that keep the output a valid
    /// prefix of a value of the grammar. Empty once the value can go no
    /// further.
    pub fn allowed(&mut self) -> Result<TokenSet, Error> {
        if let Some(message) = self.inner.get_error() {
            return Err(Error::Engine { message });
        }
        // A value that can go no further stops the parser; then the mask is
        // just llguidance's end-of-sequence id (dropped below).
        let mut bits = self
            .inner
            .compute_mask_or_eos()
            .map_err(|e| Error::Engine {
                message: e.to_string(),
            })?;
        // llguidance adds its end-of-sequence id (`<|return|>`) when the
        // value may end here; the harmony layer decides which control token
        // ends a body. Only header grammars write control tokens themselves.
        if self.special {
            bits.disallow_token(RETURN);
        } else {
            let n = bits.len().min(self.vocab.n_vocab) as u32;
            for id in FIRST_SPECIAL_ID..n {
                bits.disallow_token(id);
            }
        }
        Ok(TokenSet::from_vob(bits))
    }

    /// Advance by one token. A token the grammar does not allow is an error
    /// (and the matcher is unusable afterwards).
    pub fn accept(&mut self, token: u32) -> Result<(), Error> {
        if token >= FIRST_SPECIAL_ID && !self.special {
            return Err(Error::Rejected {
                token,
                message: "control tokens are never part of JSON".to_string(),
            });
        }
        self.inner
            .consume_token(token)
            .map_err(|e| Error::Rejected {
                token,
                message: e.to_string(),
            })
    }

    /// Whether the tokens so far form a complete value (it may still be
    /// extendable, like the number `12`).
    pub fn is_complete(&mut self) -> bool {
        !self.inner.is_error() && self.inner.is_accepting().unwrap_or(false)
    }

    /// One step of the greedy close, from the allowed set: the best token
    /// of the first class that has one. (1) Where a string ends or starts,
    /// the closers and separators led by `"` (`"`, `":"`, `","`, `"}`...).
    /// (2) Pure closers (`}`, `]`, `}]`...). (3) Closers with `,`/`:`
    /// (`,`, `,"`, `:`...). (4) The shortest values (`0`, `""`, `null`,
    /// `{}`...). (5) Otherwise (a key name, a minimum length) any allowed
    /// token. In each class the best is the one that closes a container,
    /// then one without `,` (so an array ends rather than grows), then the
    /// one with the most non-space bytes, then the lowest id.
    pub fn closing_token(&self, allowed: TokenSet) -> Option<u32> {
        let v = self.vocab;
        for class in [&v.quote_led, &v.closers, &v.separators, &v.short_values] {
            if !allowed.intersects(class) {
                continue;
            }
            let mut candidates = allowed.clone();
            candidates.intersect(class);
            return self.best_token(&candidates);
        }
        self.best_token(&allowed)
    }

    fn best_token(&self, candidates: &TokenSet) -> Option<u32> {
        let mut best: Option<((bool, bool, u8), u32)> = None;
        candidates.bits.iter_set_entries(|id| {
            let shape = self.vocab.shape.get(id).copied().unwrap_or_default();
            let key = (shape.closes_container, !shape.has_comma, shape.solid_len);
            if best.is_none_or(|(k, _)| key > k) {
                best = Some((key, id as u32));
            }
        });
        best.map(|(_, id)| id)
    }

    /// The tokens that close the value greedily ([`Matcher::closing_token`]
    /// at each step), or `None` if that takes
    /// more than `limit` tokens. Works on a copy; this matcher does not move.
    /// Deterministic: from the state after its first token, the path is the
    /// rest of this one.
    pub fn closing_path(&self, limit: usize) -> Option<Vec<u32>> {
        let mut sim = Matcher {
            inner: self.inner.deep_clone(),
            vocab: self.vocab,
            special: self.special,
        };
        let mut path = Vec::new();
        while !sim.is_complete() {
            if path.len() >= limit {
                return None;
            }
            let allowed = sim.allowed().ok()?;
            let next = sim.closing_token(allowed)?;
            sim.accept(next).ok()?;
            path.push(next);
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gptoss_harmony::Tokenizer;

    fn feed(grammar: &Grammar, text: &str) -> Result<Matcher, Error> {
        let tok = Tokenizer::o200k_harmony();
        let mut m = grammar.matcher();
        for id in tok.encode_ordinary(text) {
            m.accept(id)?;
        }
        Ok(m)
    }

    #[test]
    fn whitespace_is_bounded() {
        let g = Grammar::compile(&Format::JsonObject).unwrap();
        let ok = format!("{{{}\"a\": 1}}", " ".repeat(MAX_WHITESPACE));
        assert!(feed(&g, &ok).unwrap().is_complete());
        let long = format!("{{{}\"a\": 1}}", " ".repeat(MAX_WHITESPACE + 1));
        assert!(feed(&g, &long).is_err());
    }

    #[test]
    fn apply_masks_exactly_the_complement() {
        let mut set = TokenSet::empty(100);
        for id in [0, 31, 32, 63, 64, 99] {
            set.insert(id);
        }
        let mut logits = vec![1.0f32; 100];
        set.apply(&mut logits);
        for (id, l) in logits.iter().enumerate() {
            assert_eq!(l.is_finite(), set.contains(id as u32), "{id}");
        }
        assert_eq!(set.len(), 6);
    }
}
