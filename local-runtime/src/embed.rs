//! Sentence embeddings (BERT-style encoder, mean pooling + L2 normalisation in Rust).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::config::{resolve_threads, ExecutionProvider, RuntimeConfig};
use crate::error::RuntimeError;
use crate::files;

/// A loaded sentence-embedding model (e.g. all-MiniLM-L6-v2). Send + Sync.
pub struct Embedder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    dims: usize,
    token_type_ids: bool,
}

#[derive(serde::Deserialize, Default)]
struct EmbedConfig {
    #[serde(default)]
    hidden_size: Option<usize>,
    #[serde(default)]
    max_seq_length: Option<usize>,
}

impl Embedder {
    /// Loads `dir/model.onnx` + `dir/tokenizer.json` (+ optional `dir/config.json`).
    pub fn load(rt: &RuntimeConfig, dir: &Path) -> Result<Self, RuntimeError> {
        Self::load_with_threads(rt, dir, None)
    }

    /// [`Embedder::load`] with an explicit intra-op thread count (`None`: the default,
    /// `SWITCHYARD_ORT_THREADS` or every core). The classifier's sentence head uses one,
    /// leaving the other cores to the request path.
    pub fn load_with_threads(
        rt: &RuntimeConfig,
        dir: &Path,
        threads: Option<usize>,
    ) -> Result<Self, RuntimeError> {
        files::require_files(dir, &["model.onnx", "tokenizer.json"])?;
        files::check_manifest(dir)?;
        let cfg: EmbedConfig = files::read_optional_json(dir.join("config.json"))?;
        let mut tokenizer = files::load_tokenizer(&dir.join("tokenizer.json"))?;
        let max_len = cfg.max_seq_length.unwrap_or(256);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        let pad = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..pad
        }));
        let env = crate::env::environment(rt)?;
        let (session, _) = crate::env::create_session(
            &env,
            &dir.join("model.onnx"),
            &[ExecutionProvider::Cpu],
            resolve_threads(threads),
        )?;
        let token_type_ids = session
            .inputs()
            .iter()
            .any(|i| i.name() == "token_type_ids");
        let dims = cfg.hidden_size.unwrap_or(384);
        Ok(Embedder {
            session: Mutex::new(session),
            tokenizer,
            dims,
            token_type_ids,
        })
    }

    /// Embedding size (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// L2-normalised mean-pooled embeddings, one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        let b = encs.len();
        let s = encs
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![0i64; b * s];
        let mut mask = vec![0i64; b * s];
        let mut types = vec![0i64; b * s];
        for (r, e) in encs.iter().enumerate() {
            for (j, ((&id, &m), &t)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .zip(e.get_type_ids())
                .enumerate()
            {
                ids[r * s + j] = id as i64;
                mask[r * s + j] = m as i64;
                types[r * s + j] = t as i64;
            }
        }
        let shape = vec![b as i64, s as i64];
        let ids_t = Tensor::from_array((shape.clone(), ids)).map_err(RuntimeError::ort)?;
        let mask_t =
            Tensor::from_array((shape.clone(), mask.clone())).map_err(RuntimeError::ort)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = if self.token_type_ids {
            let types_t = Tensor::from_array((shape, types)).map_err(RuntimeError::ort)?;
            session.run(ort::inputs! {
                "input_ids" => ids_t,
                "attention_mask" => mask_t,
                "token_type_ids" => types_t,
            })
        } else {
            session.run(ort::inputs! {
                "input_ids" => ids_t,
                "attention_mask" => mask_t,
            })
        }
        .map_err(RuntimeError::ort)?;
        let (oshape, hidden) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(RuntimeError::ort)?;
        let d = *oshape.last().unwrap_or(&0) as usize;
        if oshape.len() != 3 || d != self.dims {
            return Err(RuntimeError::Ort(format!(
                "unexpected embedding output shape {oshape:?}"
            )));
        }
        let mut out = Vec::with_capacity(b);
        for r in 0..b {
            let mut v = vec![0f32; d];
            let mut n = 0f32;
            for j in 0..s {
                if mask[r * s + j] == 0 {
                    continue;
                }
                n += 1.0;
                let row = &hidden[(r * s + j) * d..(r * s + j + 1) * d];
                for (a, x) in v.iter_mut().zip(row) {
                    *a += x;
                }
            }
            let n = n.max(1.0);
            v.iter_mut().for_each(|a| *a /= n);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
        }
        Ok(out)
    }
}
