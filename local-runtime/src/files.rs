//! Reading a converted model directory (config.json, tokenizer files, manifest.json).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::RuntimeError;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DecoderConfig {
    pub num_hidden_layers: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub eos_token_id: EosIds,
    /// Architecture name (`llama`, `qwen2`, `gemma3`, ...).
    #[serde(default)]
    pub model_type: Option<String>,
    /// What scripts/convert wrote about the weights' format.
    #[serde(default)]
    pub switchyard: Option<ConvertedFormat>,
}

/// The `switchyard` block of a converted model's config.json.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConvertedFormat {
    #[serde(default)]
    pub weights: Option<String>,
    #[serde(default)]
    pub activations: Option<String>,
    #[serde(default)]
    pub gguf_tensor_types: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum EosIds {
    One(u32),
    Many(Vec<u32>),
    #[default]
    None,
}

impl EosIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            EosIds::One(x) => vec![*x],
            EosIds::Many(v) => v.clone(),
            EosIds::None => vec![],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TokenizerConfig {
    #[serde(default)]
    pub chat_template: Option<String>,
    #[serde(default)]
    pub bos_token: Option<String>,
    #[serde(default)]
    pub eos_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: EosIds,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestFile {
    bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    files: std::collections::BTreeMap<String, ManifestFile>,
}

/// Fails with ModelNotFound when the directory or one of `required` is missing.
pub(crate) fn require_files(dir: &Path, required: &[&str]) -> Result<(), RuntimeError> {
    if !dir.is_dir() {
        return Err(RuntimeError::ModelNotFound {
            path: dir.to_path_buf(),
        });
    }
    for f in required {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(RuntimeError::ModelNotFound { path: p });
        }
    }
    Ok(())
}

/// Cheap integrity check against manifest.json (file sizes; the set-up script checks sha256).
pub(crate) fn check_manifest(dir: &Path) -> Result<(), RuntimeError> {
    let path = dir.join("manifest.json");
    if !path.is_file() {
        return Ok(()); // hand-made model directories need no manifest
    }
    let m: Manifest = read_json(&path)?;
    for (name, f) in &m.files {
        let p = dir.join(name);
        let len = std::fs::metadata(&p)
            .map_err(|_| RuntimeError::ModelNotFound { path: p.clone() })?
            .len();
        if len != f.bytes {
            return Err(RuntimeError::InvalidModel {
                path: p,
                reason: format!(
                    "size {len} differs from manifest ({}); re-run scripts/setup-models.sh",
                    f.bytes
                ),
            });
        }
    }
    Ok(())
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::InvalidModel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| RuntimeError::InvalidModel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub(crate) fn read_optional_json<T: for<'de> Deserialize<'de> + Default>(
    path: PathBuf,
) -> Result<T, RuntimeError> {
    if path.is_file() {
        read_json(&path)
    } else {
        Ok(T::default())
    }
}

/// The model directory's `tokenizer.json`, as the runtime loads it (also what the tokenizer
/// parity test checks against llama.cpp).
pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, RuntimeError> {
    tokenizers::Tokenizer::from_file(path).map_err(|e| RuntimeError::InvalidModel {
        path: path.to_path_buf(),
        reason: format!("tokenizer: {e}"),
    })
}
