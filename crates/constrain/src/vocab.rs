//! The o200k_harmony vocabulary as llguidance sees it: every token id's
//! bytes in a token trie (special tokens marked with toktrie's 0xFF prefix so
//! no grammar over text can ever produce them), the shared grammar compiler,
//! and the small token classes used to steer a JSON value to a close.
//!
//! Owns: building that state once per process. Does not own: grammars
//! (`json`) or harmony structure (`harmony`).

use std::sync::{Arc, OnceLock};

use gptoss_harmony::tokenizer::{
    is_special_token, special_token_name, FIRST_SPECIAL_ID, N_VOCAB, RETURN,
};
use gptoss_harmony::Tokenizer;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{
    InferenceCapabilities, SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv,
};
use llguidance::ParserFactory;

use crate::json::TokenSet;
use crate::Error;

/// llguidance's tokenizer environment over o200k_harmony.
struct HarmonyTokEnv {
    trie: TokTrie,
    tokenizer: Tokenizer,
}

impl TokenizerEnv for HarmonyTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Not canonical for llguidance's purposes: where a grammar forces bytes
    /// (a header's `functions.get_weather`, a JSON key) every tokenization of
    /// them stays allowed, not just ours. A prompt may end mid-way (the
    /// prefilled `to=functions.`), and the model may split text its own way.
    fn tokenize_is_canonical(&self) -> bool {
        false
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Special-token names stay text (harmony encodes message text with
        // `encode_ordinary`); bytes that are not UTF-8 fall back to the
        // trie's greedy split, which is still a valid (if not canonical) one.
        match std::str::from_utf8(s) {
            Ok(text) => self.tokenizer.encode_ordinary(text),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// The vocabulary, the grammar compiler built over it, and token classes.
/// Built once per process ([`Vocab::o200k_harmony`]): ~201k token byte
/// strings into a trie plus llguidance's slice tables.
pub struct Vocab {
    pub(crate) factory: ParserFactory,
    /// Ids 0..n_vocab (201089, every id openai-harmony knows).
    pub(crate) n_vocab: usize,
    /// Tokens of `"}],:` that start with `"`: they end (or start) a string.
    pub(crate) quote_led: SimpleVob,
    /// Tokens made only of `"`, `}` and `]`: they end strings and containers.
    pub(crate) closers: SimpleVob,
    /// Tokens of closers with `,` or `:` (`,`, `:`, `":`, `","`...).
    pub(crate) separators: SimpleVob,
    /// The shortest values: `0`, `""`, `null`, `true`, `false`, `{}`, `[]`.
    pub(crate) short_values: SimpleVob,
    /// Per token: what the greedy close looks at.
    pub(crate) shape: Vec<TokenShape>,
    /// Every ordinary (non-control) token.
    pub(crate) ordinary: TokenSet,
}

/// What the greedy close (`Matcher::closing_token`) knows of a token.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenShape {
    /// Bytes that are not whitespace (capped at 255).
    pub solid_len: u8,
    /// Contains `}` or `]`.
    pub closes_container: bool,
    pub has_comma: bool,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vocab(o200k_harmony, {} ids)", self.n_vocab)
    }
}

impl Vocab {
    /// The shared o200k_harmony vocabulary (built on first use).
    pub fn o200k_harmony() -> Result<&'static Vocab, Error> {
        static VOCAB: OnceLock<Result<Vocab, Error>> = OnceLock::new();
        VOCAB
            .get_or_init(Vocab::build)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Number of token ids covered (masks have this many entries).
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn build() -> Result<Vocab, Error> {
        let tokenizer = Tokenizer::o200k_harmony();
        let n_vocab = N_VOCAB;
        let mut words: Vec<Vec<u8>> = Vec::with_capacity(n_vocab);
        for id in 0..n_vocab as u32 {
            let word = if is_special_token(id) {
                let name = special_token_name(id).unwrap_or_default();
                let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                w.extend_from_slice(name.as_bytes());
                w
            } else {
                // Every ordinary id below 199998 has bytes; an empty word
                // (never allowed by any grammar) keeps ids aligned otherwise.
                tokenizer.token_bytes(id).unwrap_or_default()
            };
            words.push(word);
        }
        let info = TokRxInfo::new(n_vocab as u32, RETURN);
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(HarmonyTokEnv { trie, tokenizer });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities::default(),
            &SlicedBiasComputer::json_slices(),
        )
        .map_err(|e| Error::Engine {
            message: format!("could not build the token trie: {e}"),
        })?;
        factory.quiet();

        let class = |pred: &dyn Fn(&[u8]) -> bool| {
            let mut set = SimpleVob::alloc(n_vocab);
            for (id, w) in words.iter().enumerate() {
                if !w.is_empty() && w[0] != TokTrie::SPECIAL_TOKEN_MARKER && pred(w) {
                    set.allow_token(id as TokenId);
                }
            }
            set
        };
        let closers = class(&|w| w.iter().all(|b| matches!(b, b'"' | b'}' | b']')));
        let separators = class(&|w| {
            w.iter()
                .all(|b| matches!(b, b'"' | b'}' | b']' | b',' | b':'))
                && w.iter().any(|b| matches!(b, b',' | b':'))
        });
        let quote_led = class(&|w| {
            w[0] == b'"'
                && w.iter()
                    .all(|b| matches!(b, b'"' | b'}' | b']' | b',' | b':'))
        });
        let short_values = class(&|w| {
            matches!(
                w,
                b"0" | b"\"\"" | b"null" | b"true" | b"false" | b"{}" | b"[]"
            )
        });
        let shape = words
            .iter()
            .map(|w| TokenShape {
                solid_len: w
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .count()
                    .min(255) as u8,
                closes_container: w.iter().any(|b| matches!(b, b'}' | b']')),
                has_comma: w.contains(&b','),
            })
            .collect();
        // Every id below the control tokens (a byte-0xFF token looks like
        // toktrie's special marker to `class`, so count ids instead).
        let mut ordinary = SimpleVob::alloc(n_vocab);
        for id in 0..FIRST_SPECIAL_ID {
            ordinary.allow_token(id);
        }
        let ordinary = TokenSet::from_vob(ordinary);
        Ok(Vocab {
            ordinary,
            shape,
            quote_led,
            factory,
            n_vocab,
            closers,
            separators,
            short_values,
        })
    }
}
