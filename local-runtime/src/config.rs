use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Process-wide runtime settings (which ONNX Runtime library to load).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Path to `libonnxruntime.so`. Default: `$SWITCHYARD_ORT_LIB`, else
    /// `$CACHE/onnxruntime/lib/libonnxruntime.so.1.31.1` (see [`default_cache_dir`]).
    pub ort_library: Option<PathBuf>,
}

/// Name of the ONNX Runtime library the set-up script installs.
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

impl RuntimeConfig {
    /// The library path that will be loaded.
    pub fn resolved_ort_library(&self) -> PathBuf {
        if let Some(p) = &self.ort_library {
            return p.clone();
        }
        if let Some(p) = std::env::var_os("SWITCHYARD_ORT_LIB").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        default_cache_dir()
            .join("onnxruntime")
            .join("lib")
            .join(ORT_LIBRARY_FILE)
    }
}

/// `$SWITCHYARD_CACHE`, else `$HOME/.cache/switchyard` (same rule as scripts/setup-models.sh).
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("switchyard")
}

/// Default directory of a model converted by the set-up script.
pub fn default_model_dir(model: &str) -> PathBuf {
    default_cache_dir().join("models").join(model)
}

/// Where a model runs. Tried in order; CPU is always the final fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    Cuda,
    Cpu,
}

/// Licence and provenance metadata shown in `/v1/models` and used by policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCatalog {
    pub family: String,
    /// Parameter count label, e.g. "135M".
    pub parameters: String,
    /// SPDX licence identifier, e.g. "Apache-2.0".
    pub license: String,
    pub commercial_use: bool,
    #[serde(default)]
    pub use_limits: Option<String>,
}

impl ModelCatalog {
    /// Catalog entry of the default model, SmolLM2-135M-Instruct.
    pub fn smollm2_135m() -> Self {
        ModelCatalog {
            family: "SmolLM2".into(),
            parameters: "135M".into(),
            license: "Apache-2.0".into(),
            commercial_use: true,
            use_limits: None,
        }
    }
}

fn default_eps() -> Vec<ExecutionProvider> {
    vec![ExecutionProvider::Cpu]
}
fn default_max_batch() -> usize {
    8
}
fn default_max_queue() -> usize {
    64
}
fn default_max_context() -> usize {
    2048
}

/// One local model. `dir` holds model.onnx, tokenizer.json, tokenizer_config.json,
/// config.json (as written by scripts/convert); relative paths are resolved by the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalModelConfig {
    /// Public name, e.g. "local/smollm2-135m-instruct".
    pub name: String,
    pub dir: PathBuf,
    #[serde(default = "default_eps")]
    pub execution_providers: Vec<ExecutionProvider>,
    /// Maximum number of sequences decoded together.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Maximum number of requests waiting for a batch slot; beyond it `generate` fails with QueueFull.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Maximum prompt + completion tokens per sequence.
    #[serde(default = "default_max_context")]
    pub max_context: usize,
    pub catalog: ModelCatalog,
    /// ONNX Runtime intra-op threads; default: number of cores (or `$SWITCHYARD_ORT_THREADS`).
    #[serde(default)]
    pub intra_op_threads: Option<usize>,
    /// KV positions kept from recent prompts for prefix reuse (a repeated system prompt is
    /// not prefilled again); 0 turns reuse off. Each position costs
    /// `Decoder::kv_bytes_per_token` (45 KB for SmolLM2-135M).
    #[serde(default = "default_prefix_cache_tokens")]
    pub prefix_cache_tokens: usize,
}

fn default_prefix_cache_tokens() -> usize {
    1024
}

impl LocalModelConfig {
    /// A config with defaults for everything but name, directory and catalog.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>, catalog: ModelCatalog) -> Self {
        LocalModelConfig {
            name: name.into(),
            dir: dir.into(),
            execution_providers: default_eps(),
            max_batch: default_max_batch(),
            max_queue: default_max_queue(),
            max_context: default_max_context(),
            catalog,
            intra_op_threads: None,
            prefix_cache_tokens: default_prefix_cache_tokens(),
        }
    }

    /// The default model (SmolLM2-135M-Instruct) in the set-up cache.
    pub fn default_smollm2() -> Self {
        Self::new(
            "local/smollm2-135m-instruct",
            default_model_dir("smollm2-135m-instruct"),
            ModelCatalog::smollm2_135m(),
        )
    }
}

pub(crate) fn resolve_threads(explicit: Option<usize>) -> usize {
    if let Some(n) = explicit.filter(|n| *n > 0) {
        return n;
    }
    if let Some(n) = std::env::var("SWITCHYARD_ORT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
