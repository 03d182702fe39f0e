use std::path::PathBuf;

/// Everything that can go wrong in the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library could not be loaded.
    #[error("cannot load the ONNX Runtime library {path}: {reason} (run scripts/setup-models.sh, or set SWITCHYARD_ORT_LIB)")]
    LibraryLoad { path: PathBuf, reason: String },
    /// The model directory (or a required file inside it) is missing.
    #[error("local model files not found at {path}: run scripts/setup-models.sh to download and convert the models")]
    ModelNotFound { path: PathBuf },
    /// The model directory exists but its contents are unusable.
    #[error("invalid model at {path}: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    /// An ONNX Runtime call failed.
    #[error("onnx runtime: {0}")]
    Ort(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bounded request queue is full (back-pressure; map to 429/503).
    #[error("local model queue is full ({max_queue} waiting)")]
    QueueFull { max_queue: usize },
    /// prompt tokens + max_tokens exceed the model's configured context.
    #[error("context overflow: {prompt_tokens} prompt tokens + {max_tokens} max tokens > {max_context} context")]
    ContextOverflow {
        prompt_tokens: usize,
        max_tokens: usize,
        max_context: usize,
    },
    /// `switchyard models add` could not convert the file (the reason is the converter's).
    #[error("convert: {0}")]
    Convert(String),
    /// The scheduler thread is gone (model unloaded or crashed).
    #[error("local model scheduler has stopped")]
    Stopped,
}

impl RuntimeError {
    pub(crate) fn ort(e: impl std::fmt::Display) -> Self {
        RuntimeError::Ort(e.to_string())
    }
}
