//! The engine's one error type. It names what failed with the numbers a user
//! needs to fix it (lengths, limits, token ids); it never carries text.

/// Everything that can go wrong while generating tokens.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The prompt alone does not fit in the session's context.
    #[error(
        "prompt is {prompt_tokens} tokens but the context holds at most {max_context} tokens \
         (shorten the prompt or raise the context size)"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        max_context: usize,
    },
    /// Generation needs at least one prompt token to condition on.
    #[error("the prompt is empty: generation needs at least one token")]
    EmptyPrompt,
    /// A token id outside the model's vocabulary.
    #[error("token id {token} is outside the model's vocabulary of {vocab_size} tokens")]
    InvalidToken { token: u32, vocab_size: usize },
    /// The requested context is larger than the model supports.
    #[error("a context of {requested} tokens was asked for but the model supports at most {max_context}")]
    ContextTooLarge {
        requested: usize,
        max_context: usize,
    },
    /// A sampling parameter is out of range.
    #[error("invalid sampling parameter {name} = {value}: {expected}")]
    InvalidSampling {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    /// Every logit was NaN or -inf, so no token can be drawn.
    #[error("the model produced no finite logit over {vocab_size} tokens")]
    NoFiniteLogit { vocab_size: usize },
    /// The model returned a logits buffer of the wrong size.
    #[error("the model returned {found} logits, expected {expected}")]
    LogitsShape { expected: usize, found: usize },
    /// The model's forward pass failed.
    #[error("forward pass failed: {0}")]
    Forward(String),
}
