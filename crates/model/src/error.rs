//! Errors of the model crate: loading a checkpoint (`LoadError`, each naming the file, tensor or
//! config field at fault) and running the forward pass (`ForwardError`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} is not a gpt-oss checkpoint folder: {problem}")]
    MissingFiles { dir: PathBuf, problem: String },
    #[error("config field `{field}`: {problem}")]
    BadConfig { field: String, problem: String },
    #[error("{file}: bad safetensors header: {problem}")]
    BadHeader { file: String, problem: String },
    #[error("{file}: file is truncated: {problem}")]
    Truncated { file: String, problem: String },
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has dtype {found}, expected {expected}")]
    WrongDtype {
        name: String,
        expected: String,
        found: String,
    },
    #[error("tensor `{name}`: {problem}")]
    BadValue { name: String, problem: String },
    #[error("unsupported quantization: {problem}")]
    UnsupportedQuantization { problem: String },
    /// The container itself is damaged. (Not a `source` chain: the message
    /// already says it, and a chain would print it twice.)
    #[error("{file}: {problem}")]
    Gguf {
        file: String,
        problem: crate::gguf::GgufError,
    },
    #[error("tensor `{name}` is stored as {ty}, which gpt-oss-rs does not read (MXFP4, Q8_0, BF16, F16 and F32 are supported)")]
    UnsupportedTensorType { name: String, ty: String },
    #[error("the file's tokenizer is not o200k_harmony: {problem}")]
    TokenizerMismatch { problem: String },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForwardError {
    #[error("context full: {needed} positions needed, the cache holds at most {max}")]
    ContextFull { needed: usize, max: usize },
    #[error("token id {token} is out of range (vocab_size {vocab_size})")]
    InvalidToken { token: u32, vocab_size: usize },
    #[error("no tokens given")]
    EmptyInput,
    #[error("the KV cache was made for a different model ({problem})")]
    CacheMismatch { problem: String },
}
