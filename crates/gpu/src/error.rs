//! What can go wrong on a device, in words a user can act on.

/// An error of the GPU backend.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (wgpu looked for Vulkan, Metal and DX12 devices); install the \
         GPU's Vulkan driver (or Mesa's lavapipe, Debian package mesa-vulkan-drivers, for a \
         slow CPU stand-in) or run with --device cpu"
    )]
    NoAdapter,
    #[error("no GPU adapter number {index}: {found} found (see `gpt-oss devices`)")]
    NoSuchAdapter { index: usize, found: usize },
    #[error("could not open {adapter}: {reason}")]
    OpenDevice { adapter: String, reason: String },
    #[error(
        "the model does not fit on {adapter}: it needs {needed} bytes of device memory and \
         {allocated} were allocated before the device refused ({what}); use a smaller model, \
         a smaller --context, or --device cpu"
    )]
    OutOfMemory {
        adapter: String,
        needed: u64,
        allocated: u64,
        what: String,
    },
    #[error(
        "{what} needs {bytes} bytes in one buffer binding, but {adapter} allows at most {limit}"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        adapter: String,
    },
    #[error("the model shape is not supported on the GPU backend: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Input(#[from] gptoss_model::ForwardError),
    #[error("GPU error: {0}")]
    Device(String),
}
