//! Thin wrapper over an ONNX decoder with KV cache (HF/optimum layout), plus the batch KV
//! cache book-keeping used by the scheduler.
//!
//! Batch layout: every row of a [`KvCache`] is *left-padded*: row `b` holds its `lens[b]`
//! valid positions at the end of the time axis, `[len - lens[b], len)`. The attention mask
//! fed to the model marks the padding as 0, positions ids count only valid tokens, and each
//! step appends one column to every row, so rows stay contiguous. Rows are added (after an
//! individual prefill) and removed (when a sequence finishes) by repacking the tensors.

use std::borrow::Cow;
use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use crate::config::{ExecutionProvider, RuntimeConfig};
use crate::error::RuntimeError;
use crate::files::DecoderConfig;

/// A loaded decoder session (one per model, owned by the scheduler thread).
pub struct Decoder {
    session: Session,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    past_names: Vec<String>,
    present_names: Vec<String>,
    ep: &'static str,
}

/// KV cache of a batch of sequences (see the module docs for the layout).
pub struct KvCache {
    /// `2 * layers` tensors `[batch, kv_heads, len, head_dim]`: key0, value0, key1, ...
    values: Vec<DynValue>,
    len: usize,
    lens: Vec<usize>,
}

impl KvCache {
    /// Number of rows (sequences).
    pub fn batch(&self) -> usize {
        self.lens.len()
    }
    /// Padded time length of the cache.
    pub fn padded_len(&self) -> usize {
        self.len
    }
    /// Valid (unpadded) length of row `b`.
    pub fn seq_len(&self, b: usize) -> usize {
        self.lens[b]
    }
}

impl Decoder {
    /// Loads `dir/model.onnx` (config from `dir/config.json`).
    pub fn load(
        rt: &RuntimeConfig,
        dir: &Path,
        eps: &[ExecutionProvider],
        threads: usize,
    ) -> Result<Decoder, RuntimeError> {
        crate::files::require_files(dir, &["model.onnx", "config.json"])?;
        let cfg: DecoderConfig = crate::files::read_json(&dir.join("config.json"))?;
        let env = crate::env::environment(rt)?;
        let (session, ep) =
            crate::env::create_session(&env, &dir.join("model.onnx"), eps, threads)?;
        Self::from_session(session, &cfg, ep, dir)
    }

    pub(crate) fn from_session(
        session: Session,
        cfg: &DecoderConfig,
        ep: &'static str,
        dir: &Path,
    ) -> Result<Decoder, RuntimeError> {
        let mut past_names = Vec::new();
        let mut present_names = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            for kv in ["key", "value"] {
                past_names.push(format!("past_key_values.{i}.{kv}"));
                present_names.push(format!("present.{i}.{kv}"));
            }
        }
        let has_input = |n: &str| session.inputs().iter().any(|o| o.name() == n);
        let has_output = |n: &str| session.outputs().iter().any(|o| o.name() == n);
        for n in ["input_ids", "attention_mask", "position_ids"]
            .iter()
            .copied()
            .chain(past_names.iter().map(|s| s.as_str()))
        {
            if !has_input(n) {
                return Err(RuntimeError::InvalidModel {
                    path: dir.join("model.onnx"),
                    reason: format!(
                        "decoder input `{n}` missing (expected the HF/optimum KV-cache layout)"
                    ),
                });
            }
        }
        for n in std::iter::once("logits").chain(present_names.iter().map(|s| s.as_str())) {
            if !has_output(n) {
                return Err(RuntimeError::InvalidModel {
                    path: dir.join("model.onnx"),
                    reason: format!("decoder output `{n}` missing"),
                });
            }
        }
        Ok(Decoder {
            session,
            layers: cfg.num_hidden_layers,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            vocab: cfg.vocab_size,
            past_names,
            present_names,
            ep,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    pub fn execution_provider(&self) -> &'static str {
        self.ep
    }

    /// Bytes of one position of KV cache (all layers, keys and values).
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim * 4
    }

    /// An empty cache with `batch` rows.
    pub fn empty_cache(&self, batch: usize) -> Result<KvCache, RuntimeError> {
        let mut values = Vec::with_capacity(2 * self.layers);
        for _ in 0..2 * self.layers {
            let t = Tensor::<f32>::from_array((
                vec![batch as i64, self.kv_heads as i64, 0, self.head_dim as i64],
                Vec::<f32>::new(),
            ))
            .map_err(RuntimeError::ort)?;
            values.push(t.into_dyn());
        }
        Ok(KvCache {
            values,
            len: 0,
            lens: vec![0; batch],
        })
    }

    /// Feeds `tokens` (one equally long slice per row of `cache`) and extends the cache.
    /// Returns logits as a flat `[rows, positions, vocab]` array where `positions` is the
    /// number of new tokens if `all_positions`, else 1 (the last position only).
    pub fn forward(
        &mut self,
        cache: &mut KvCache,
        tokens: &[&[u32]],
        all_positions: bool,
    ) -> Result<Vec<f32>, RuntimeError> {
        let b = cache.batch();
        if tokens.len() != b || b == 0 {
            return Err(RuntimeError::InvalidRequest(format!(
                "forward: {} token rows for a cache of {b} rows",
                tokens.len()
            )));
        }
        let s = tokens[0].len();
        if s == 0 || tokens.iter().any(|t| t.len() != s) {
            return Err(RuntimeError::InvalidRequest(
                "forward: rows must have the same, non-zero number of tokens".into(),
            ));
        }
        let total = cache.len + s;
        let mut ids = Vec::with_capacity(b * s);
        let mut pos = Vec::with_capacity(b * s);
        let mut mask = vec![0i64; b * total];
        for (r, row) in tokens.iter().enumerate() {
            ids.extend(row.iter().map(|&t| t as i64));
            let l = cache.lens[r];
            pos.extend((l..l + s).map(|p| p as i64));
            for m in &mut mask[r * total + (cache.len - l)..(r + 1) * total] {
                *m = 1;
            }
        }
        let ids = Tensor::from_array((vec![b as i64, s as i64], ids)).map_err(RuntimeError::ort)?;
        let pos = Tensor::from_array((vec![b as i64, s as i64], pos)).map_err(RuntimeError::ort)?;
        let mask =
            Tensor::from_array((vec![b as i64, total as i64], mask)).map_err(RuntimeError::ort)?;

        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(3 + cache.values.len());
        inputs.push((Cow::Borrowed("input_ids"), ids.into()));
        inputs.push((Cow::Borrowed("attention_mask"), mask.into()));
        inputs.push((Cow::Borrowed("position_ids"), pos.into()));
        for (name, v) in self.past_names.iter().zip(cache.values.iter()) {
            inputs.push((Cow::Borrowed(name.as_str()), v.into()));
        }
        let mut outputs = self.session.run(inputs).map_err(RuntimeError::ort)?;

        let logits_v = outputs
            .remove("logits")
            .ok_or_else(|| RuntimeError::Ort("no logits output".into()))?;
        let (shape, data) = logits_v
            .try_extract_tensor::<f32>()
            .map_err(RuntimeError::ort)?;
        let v = self.vocab;
        if shape.len() != 3 || shape[2] as usize != v || shape[1] as usize != s {
            return Err(RuntimeError::Ort(format!(
                "unexpected logits shape {shape:?}"
            )));
        }
        let logits = if all_positions {
            data.to_vec()
        } else {
            let mut out = Vec::with_capacity(b * v);
            for r in 0..b {
                let off = (r * s + s - 1) * v;
                out.extend_from_slice(&data[off..off + v]);
            }
            out
        };
        let mut new_values = Vec::with_capacity(self.present_names.len());
        for name in &self.present_names {
            new_values.push(
                outputs
                    .remove(name.as_str())
                    .ok_or_else(|| RuntimeError::Ort(format!("missing output {name}")))?,
            );
        }
        drop(outputs);
        cache.values = new_values;
        cache.len = total;
        for l in &mut cache.lens {
            *l += s;
        }
        Ok(logits)
    }

    /// Builds a new cache from rows of existing caches: `rows[i] = (cache index, row)`.
    /// The result is left-padded to the longest selected row (leading all-padding columns
    /// are dropped).
    pub fn repack(
        &self,
        caches: &[&KvCache],
        rows: &[(usize, usize)],
    ) -> Result<KvCache, RuntimeError> {
        if rows.is_empty() {
            return self.empty_cache(0);
        }
        let (h, d) = (self.kv_heads, self.head_dim);
        let lens: Vec<usize> = rows.iter().map(|&(c, r)| caches[c].lens[r]).collect();
        let new_len = lens.iter().copied().max().unwrap_or(0);
        let nb = rows.len();
        let mut values = Vec::with_capacity(2 * self.layers);
        for k in 0..2 * self.layers {
            let srcs: Vec<&[f32]> = caches
                .iter()
                .map(|c| c.values[k].try_extract_tensor::<f32>().map(|(_, s)| s))
                .collect::<Result<_, _>>()
                .map_err(RuntimeError::ort)?;
            let mut data = vec![0f32; nb * h * new_len * d];
            for (i, &(c, r)) in rows.iter().enumerate() {
                let src_len = caches[c].len;
                let l = lens[i];
                for head in 0..h {
                    let so = ((r * h + head) * src_len + (src_len - l)) * d;
                    let dst = ((i * h + head) * new_len + (new_len - l)) * d;
                    data[dst..dst + l * d].copy_from_slice(&srcs[c][so..so + l * d]);
                }
            }
            let t = Tensor::from_array((vec![nb as i64, h as i64, new_len as i64, d as i64], data))
                .map_err(RuntimeError::ort)?;
            values.push(t.into_dyn());
        }
        Ok(KvCache {
            values,
            len: new_len,
            lens,
        })
    }

    /// Appends the rows of `other` to `cache` (left-padding whichever is shorter).
    pub fn append(&self, cache: &mut KvCache, other: &KvCache) -> Result<(), RuntimeError> {
        if cache.batch() == 0 {
            *cache = self.repack(
                &[other],
                &(0..other.batch()).map(|r| (0, r)).collect::<Vec<_>>(),
            )?;
            return Ok(());
        }
        let mut rows: Vec<(usize, usize)> = (0..cache.batch()).map(|r| (0, r)).collect();
        rows.extend((0..other.batch()).map(|r| (1, r)));
        *cache = self.repack(&[cache, other], &rows)?;
        Ok(())
    }

    /// Keeps only the rows where `keep[r]` is true (in order).
    pub fn retain(&self, cache: &mut KvCache, keep: &[bool]) -> Result<(), RuntimeError> {
        if keep.iter().all(|k| *k) {
            return Ok(());
        }
        let rows: Vec<(usize, usize)> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(r, _)| (0, r))
            .collect();
        *cache = self.repack(&[cache], &rows)?;
        Ok(())
    }
}
