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
    #[error("the KV cache names LoRA adapter {id}, which the model does not hold")]
    UnknownAdapter { id: u32 },
}

/// A PEFT LoRA adapter that cannot be used (`lora.rs`): the file at fault and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("LoRA adapter {}: {problem}", path.display())]
pub struct LoraError {
    /// The adapter folder, or the file in it at fault (adapter_config.json or
    /// adapter_model.safetensors).
    pub path: PathBuf,
    pub problem: LoraProblem,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoraProblem {
    #[error("not a folder (a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors)")]
    NotAFolder,
    #[error("the file is missing (a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors)")]
    MissingFile,
    #[error("cannot read it: {0}")]
    Io(String),
    #[error("missing; only adapter_model.bin (PyTorch pickle) is there: save the adapter with safe_serialization=True")]
    PickleOnly,
    #[error("{0}")]
    BadConfig(String),
    #[error("r = {0} is not a valid rank (a positive integer)")]
    BadRank(String),
    #[error("`{field}` = {value} is not supported ({why})")]
    Unsupported {
        field: String,
        value: String,
        why: String,
    },
    #[error("target_modules names `{module}`, which is not a LoRA target of gpt-oss here (supported: q_proj, k_proj, v_proj, o_proj; the experts go in target_parameters)")]
    UnknownModule { module: String },
    #[error("target_parameters names `{name}` (supported: mlp.experts.gate_up_proj, mlp.experts.down_proj)")]
    UnknownParameter { name: String },
    #[error("{0}")]
    BadFile(String),
    #[error("tensor `{name}` is not a LoRA weight of a gpt-oss attention projection (q/k/v/o_proj) or expert parameter (mlp.experts)")]
    UnknownTensor { name: String },
    #[error("tensor `{name}` is for layer {layer}, but the model has {n_layers} layers")]
    LayerOutOfRange {
        name: String,
        layer: usize,
        n_layers: usize,
    },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?} ({why})")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        why: String,
    },
    #[error("tensor `{name}` has dtype {found}, expected F32, BF16 or F16")]
    WrongDtype { name: String, found: String },
    #[error("tensor `{name}`: element {index} is {value} (not finite)")]
    NotFinite {
        name: String,
        index: usize,
        value: String,
    },
    #[error("tensor `{name}` has no lora_A/lora_B partner")]
    Unpaired { name: String },
    #[error("layer {layer} updates {param} twice")]
    Duplicate { layer: usize, param: String },
    #[error("it holds no LoRA tensors")]
    Empty,
    #[error("it was validated against a model of other shapes")]
    OtherModel,
}
