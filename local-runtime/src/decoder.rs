//! Thin wrapper over an ONNX decoder with KV cache, plus the batch KV cache book-keeping used
//! by the scheduler. Two decoder layouts:
//!
//! * **GQA** (what scripts/convert writes by default): `com.microsoft.GroupQueryAttention`
//!   with inputs `input_ids`, `seqlens_k`, `total_sequence_length`. The cache is
//!   *preallocated* (`[batch, kv_heads, capacity, head_dim]` per layer) and bound through IO
//!   binding as both `past_key_values.*` and `present.*`, so each step writes its new key and
//!   value in place: no per-step copy of the cache (onnxruntime-genai's
//!   past_present_share_buffer). Rows are *right-padded*: row `b` holds `lens[b]` valid
//!   positions at `[0, lens[b])`; GQA reads each row's length from `seqlens_k`. The capacity
//!   doubles when a step would overflow it (amortised O(1) per token).
//! * **Standard** (HF/optimum exports): `attention_mask` and `position_ids`; every row is
//!   *left-padded*: row `b` holds its `lens[b]` valid positions at the end of the time axis,
//!   `[len - lens[b], len)`; the mask marks the padding as 0, position ids count only valid
//!   tokens, and each step's `present` (past + one column, copied by the graph) becomes the
//!   next `past`.
//!
//! In both layouts rows are added (after an individual prefill) and removed (when a sequence
//! finishes) by repacking the tensors.

use std::borrow::Cow;
use std::path::Path;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
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
    /// GroupQueryAttention layout (in-place, right-padded cache) rather than the standard one.
    gqa: bool,
}

/// KV cache of a batch of sequences (see the module docs for the layout).
pub struct KvCache {
    /// `2 * layers` tensors `[batch, kv_heads, cap, head_dim]`: key0, value0, key1, ...
    values: Vec<DynValue>,
    /// Longest row (standard layout: the padded length, = `cap`).
    len: usize,
    lens: Vec<usize>,
    /// Time capacity of the tensors (GQA layout; standard layout: = `len`).
    cap: usize,
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
    /// Positions the tensors hold per row (preallocated with the GQA layout).
    pub fn capacity(&self) -> usize {
        self.cap
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
        let gqa = has_input("seqlens_k");
        let layout: &[&str] = if gqa {
            &["input_ids", "seqlens_k", "total_sequence_length"]
        } else {
            &["input_ids", "attention_mask", "position_ids"]
        };
        for n in layout
            .iter()
            .copied()
            .chain(past_names.iter().map(|s| s.as_str()))
        {
            if !has_input(n) {
                return Err(RuntimeError::InvalidModel {
                    path: dir.join("model.onnx"),
                    reason: format!(
                        "decoder input `{n}` missing (expected the HF/optimum KV-cache layout, or seqlens_k/total_sequence_length for GroupQueryAttention)"
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
            gqa,
        })
    }

    /// Whether the model uses the GroupQueryAttention layout (in-place KV cache).
    pub fn in_place_kv_cache(&self) -> bool {
        self.gqa
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
            cap: 0,
        })
    }

    /// A GQA-layout cache of `lens.len()` rows with room for `cap` positions each, filled
    /// from `fill(tensor index, row, head) -> the row's valid positions` (`lens[row] * head_dim`).
    fn alloc_cache<'a>(
        &self,
        lens: Vec<usize>,
        cap: usize,
        fill: impl Fn(usize, usize, usize) -> &'a [f32],
    ) -> Result<KvCache, RuntimeError> {
        let (h, d) = (self.kv_heads, self.head_dim);
        let nb = lens.len();
        let alloc = Allocator::default();
        let mut values = Vec::with_capacity(2 * self.layers);
        for k in 0..2 * self.layers {
            // Owned by ONNX Runtime's allocator (not wrapping a Rust Vec): IO binding can only
            // bind such values as outputs, which is what lets present alias past.
            let mut t = Tensor::<f32>::new(&alloc, [nb, h, cap, d]).map_err(RuntimeError::ort)?;
            {
                let (_, data) = t
                    .try_extract_tensor_mut::<f32>()
                    .map_err(RuntimeError::ort)?;
                for (r, &l) in lens.iter().enumerate() {
                    for head in 0..h {
                        let src = fill(k, r, head);
                        let dst = (r * h + head) * cap * d;
                        data[dst..dst + l * d].copy_from_slice(&src[..l * d]);
                    }
                }
            }
            values.push(t.into_dyn());
        }
        let len = lens.iter().copied().max().unwrap_or(0);
        Ok(KvCache {
            values,
            len,
            lens,
            cap,
        })
    }

    /// Capacity for `need` positions: powers of two from 32, so growing is amortised O(1).
    fn capacity_for(need: usize) -> usize {
        need.max(32).next_power_of_two()
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
        if self.gqa {
            return self.forward_gqa(cache, tokens, all_positions);
        }
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
        cache.cap = total;
        for l in &mut cache.lens {
            *l += s;
        }
        Ok(logits)
    }

    fn check_rows(cache: &KvCache, tokens: &[&[u32]]) -> Result<(usize, usize), RuntimeError> {
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
        Ok((b, s))
    }

    fn forward_gqa(
        &mut self,
        cache: &mut KvCache,
        tokens: &[&[u32]],
        all_positions: bool,
    ) -> Result<Vec<f32>, RuntimeError> {
        let (b, s) = Self::check_rows(cache, tokens)?;
        if s > 1 && cache.lens.iter().any(|&l| l != cache.lens[0]) {
            // GQA's multi-token path takes one past length for the whole batch.
            return Err(RuntimeError::InvalidRequest(
                "forward: several new tokens need rows of equal length".into(),
            ));
        }
        let need = cache.len + s;
        if need > cache.cap {
            // Grow: the only copy of the cache, O(1) amortised per token.
            let cap = Self::capacity_for(need);
            let (h, d, old_cap) = (self.kv_heads, self.head_dim, cache.cap);
            let old: Vec<&[f32]> = cache
                .values
                .iter()
                .map(|v| {
                    if old_cap == 0 {
                        Ok(&[][..])
                    } else {
                        v.try_extract_tensor::<f32>().map(|(_, x)| x)
                    }
                })
                .collect::<Result<_, _>>()
                .map_err(RuntimeError::ort)?;
            let grown = self.alloc_cache(cache.lens.clone(), cap, |k, r, head| {
                let o = (r * h + head) * old_cap * d;
                &old[k][o..o + old_cap * d]
            })?;
            drop(old);
            *cache = grown;
        }
        let mut ids = Vec::with_capacity(b * s);
        for row in tokens {
            ids.extend(row.iter().map(|&t| t as i64));
        }
        let seqlens: Vec<i32> = cache.lens.iter().map(|&l| (l + s - 1) as i32).collect();
        let ids = Tensor::from_array((vec![b as i64, s as i64], ids)).map_err(RuntimeError::ort)?;
        let seqlens = Tensor::from_array((vec![b as i64], seqlens)).map_err(RuntimeError::ort)?;
        let total = Tensor::from_array((Vec::<i64>::new(), vec![need as i32]))
            .map_err(RuntimeError::ort)?;
        let mut binding = self.session.create_binding().map_err(RuntimeError::ort)?;
        binding
            .bind_input("input_ids", &ids)
            .map_err(RuntimeError::ort)?;
        binding
            .bind_input("seqlens_k", &seqlens)
            .map_err(RuntimeError::ort)?;
        binding
            .bind_input("total_sequence_length", &total)
            .map_err(RuntimeError::ort)?;
        for (k, v) in cache.values.iter_mut().enumerate() {
            // The same ONNX Runtime value as input and output: GQA sees past == present and
            // appends the new positions in place.
            binding
                .bind_input(self.past_names[k].as_str(), &*v)
                .map_err(RuntimeError::ort)?;
            binding
                .bind_output(self.present_names[k].as_str(), &mut *v)
                .map_err(RuntimeError::ort)?;
        }
        let cpu = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(RuntimeError::ort)?;
        binding
            .bind_output_to_device("logits", &cpu)
            .map_err(RuntimeError::ort)?;
        let outputs = self
            .session
            .run_binding(&binding)
            .map_err(RuntimeError::ort)?;
        let (shape, data) = outputs["logits"]
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
        drop(outputs);
        drop(binding);
        for l in &mut cache.lens {
            *l += s;
        }
        cache.len = need;
        Ok(logits)
    }

    /// A one-row copy of the first `len` positions of row `row` (GQA layout only: rows start
    /// at position 0 there). What prefix reuse starts a new sequence from; `None` for the
    /// standard layout or a `len` beyond the row.
    pub fn prefix(
        &self,
        cache: &KvCache,
        row: usize,
        len: usize,
    ) -> Result<Option<KvCache>, RuntimeError> {
        if !self.gqa || row >= cache.batch() || len == 0 || len > cache.lens[row] {
            return Ok(None);
        }
        let (h, d, cap) = (self.kv_heads, self.head_dim, cache.cap);
        let srcs: Vec<&[f32]> = cache
            .values
            .iter()
            .map(|v| v.try_extract_tensor::<f32>().map(|(_, x)| x))
            .collect::<Result<_, _>>()
            .map_err(RuntimeError::ort)?;
        let out = self.alloc_cache(vec![len], Self::capacity_for(len + 1), |k, _, head| {
            let o = (row * h + head) * cap * d;
            &srcs[k][o..o + cap * d]
        })?;
        Ok(Some(out))
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
        if self.gqa {
            let srcs: Vec<Vec<&[f32]>> = caches
                .iter()
                .map(|c| {
                    c.values
                        .iter()
                        .map(|v| {
                            if c.cap == 0 {
                                Ok(&[][..])
                            } else {
                                v.try_extract_tensor::<f32>().map(|(_, x)| x)
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()
                .map_err(RuntimeError::ort)?;
            let cap = Self::capacity_for(lens.iter().copied().max().unwrap_or(0) + 1);
            return self.alloc_cache(lens, cap, |k, i, head| {
                let (c, r) = rows[i];
                let src_cap = caches[c].cap;
                let o = (r * h + head) * src_cap * d;
                &srcs[c][k][o..o + src_cap * d]
            });
        }
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
            cap: new_len,
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
