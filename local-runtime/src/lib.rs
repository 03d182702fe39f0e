//! Switchyard's in-process local model runtime: open-weights decoders exported to ONNX,
//! run through ONNX Runtime (`ort`, loaded dynamically) with `tokenizers`, chat templates,
//! a KV cache, sampling, token streaming and continuous batching of concurrent requests.
//!
//! Models are prepared by `scripts/setup-models.sh` into [`default_cache_dir`]; see
//! `docs/local-runtime.md`.

mod chat;
mod config;
mod constrain;
pub mod convert;
pub mod decoder;
mod embed;
mod env;
mod error;
mod files;
mod model;
pub mod ner;
mod prefix;
mod sampling;
mod text;
pub mod tools;

pub use chat::ChatMessage;
pub use config::{
    default_cache_dir, default_model_dir, ExecutionProvider, LocalModelConfig, ModelCatalog,
    RuntimeConfig, ORT_LIBRARY_FILE,
};
pub use constrain::OutputConstraint;
pub use embed::Embedder;
pub use error::RuntimeError;
pub use files::load_tokenizer;
pub use model::{
    FinishReason, GenerateEvent, GenerateRequest, LocalModel, ModelFormat, RuntimeStats,
};
pub use ner::{NerConfig, NerLabel, NerModel, NerSpan};
pub use sampling::SamplingParams;
pub use tools::ToolSpec;

/// Directory names the set-up script uses under `$CACHE/models/`.
pub mod model_names {
    /// SmolLM2-135M-Instruct, ONNX with KV cache, weights kept quantized and int8
    /// activations in the quantized matmuls, as llama.cpp computes (the default local model).
    pub const SMOLLM2_135M: &str = "smollm2-135m-instruct";
    /// The same weights with fp32 activations: the fully dequantized model's results at
    /// about half the speed (for comparisons; see docs/local-runtime.md).
    pub const SMOLLM2_135M_FP32A: &str = "smollm2-135m-instruct-fp32a";
    /// all-MiniLM-L6-v2 sentence embeddings.
    pub const MINILM_L6: &str = "all-minilm-l6-v2";
    /// 2-layer random-weight llama with SmolLM2's tokenizer, for fast tests.
    pub const TINY_LLAMA: &str = "tiny-llama";
    /// Rampart token-classification PII model (CC BY 4.0, National Design Studio).
    pub const RAMPART_NER: &str = "rampart-ner";
    /// The classifier's sentence heads over MiniLM embeddings (`scripts/train-heads.sh`).
    pub const SENTENCE_HEAD: &str = "sentence-head";
}
