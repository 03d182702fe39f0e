//! `LocalModel`: a loaded decoder served by one scheduler thread with continuous batching.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::config::{resolve_threads, LocalModelConfig, ModelCatalog, RuntimeConfig};
use crate::constrain::{self, Grammars, OutputConstraint, TokenMask};
use crate::decoder::{Decoder, KvCache};
use crate::error::RuntimeError;
use crate::files::{self, DecoderConfig, GenerationConfig, TokenizerConfig};
use crate::prefix::PrefixCache;
use crate::sampling::{Sampler, SamplingParams};
use crate::text::{Chunk, TextStream};
use crate::tools::ToolSpec;

/// How a loaded model is stored and run (for `/v1/models` and `/readyz`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFormat {
    /// `llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3`, or what an exporter wrote.
    pub architecture: String,
    /// e.g. "fp32 x61, int4 (from Q4_1) x210, int8 (from Q8_0) x1" (MatMulNBits weights);
    /// "fp32" for a model without converter metadata.
    pub weights: String,
    /// Activation precision of the quantized matmuls ("int8" or "fp32"), when quantized.
    pub activations: Option<String>,
    /// Tensor types of the source GGUF file and how many tensors had each.
    pub gguf_tensor_types: std::collections::BTreeMap<String, u64>,
    /// Effective context limit (prompt + completion tokens).
    pub max_context: usize,
    /// "cpu" or "cuda".
    pub execution_provider: String,
}

/// A generation request: chat messages (rendered with the model's chat template) and sampling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub params: SamplingParams,
    /// Tools offered to the model, rendered into the prompt (see `tools`).
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Constrained decoding: the answer must match this (see `constrain`).
    #[serde(default)]
    pub constraint: Option<OutputConstraint>,
}

impl GenerateRequest {
    /// Free text, no tools.
    pub fn new(messages: Vec<ChatMessage>, params: SamplingParams) -> Self {
        GenerateRequest {
            messages,
            params,
            tools: Vec::new(),
            constraint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-sequence token or a stop string.
    Stop,
    /// max_tokens or the context limit was reached.
    Length,
}

/// Events of one generation, in order: `Started`, any number of `Text`, then `Done` or `Error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GenerateEvent {
    Started {
        prompt_tokens: u32,
        /// Time spent waiting for a batch slot.
        queue_ms: f64,
    },
    /// Incrementally decoded text: never a broken UTF-8 character; text that may begin a
    /// stop string is withheld until disambiguated, and stop strings are never emitted.
    Text(String),
    Done {
        finish: FinishReason,
        /// The stop string that ended the answer (`finish` is then `Stop`).
        stop_sequence: Option<String>,
        prompt_tokens: u32,
        completion_tokens: u32,
        /// This sequence's share of compute time (prefill + its share of each batched step).
        busy_ms: f64,
    },
    Error(String),
}

/// Counters of one model (monotonic except the gauges `queue_depth`, `active_sequences`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeStats {
    /// Decode steps run (each over the whole running batch).
    pub batches_run: u64,
    /// Largest decode batch seen.
    pub max_batch_seen: usize,
    /// Prefills run.
    pub prefills_run: u64,
    /// Prefills that started from a cached prompt prefix.
    pub prefix_hits: u64,
    /// Prompt positions not computed because a cached prefix held them.
    pub prefix_tokens_reused: u64,
    pub sequences_completed: u64,
    /// Sequences dropped because their receiver was dropped.
    pub sequences_cancelled: u64,
    pub tokens_generated: u64,
    pub prompt_tokens: u64,
    /// Requests waiting for a batch slot.
    pub queue_depth: usize,
    /// Sequences in the running batch.
    pub active_sequences: usize,
    /// Total compute time of the scheduler (prefill + decode), milliseconds.
    pub busy_ms: f64,
    /// Tokens sampled under a grammar mask (constrained decoding).
    pub masked_tokens: u64,
    /// Time spent computing and applying those masks and advancing the grammars,
    /// milliseconds (not in `busy_ms`).
    pub mask_ms: f64,
}

#[derive(Default)]
struct Counters {
    batches_run: AtomicU64,
    max_batch_seen: AtomicUsize,
    prefills_run: AtomicU64,
    prefix_hits: AtomicU64,
    prefix_tokens_reused: AtomicU64,
    sequences_completed: AtomicU64,
    sequences_cancelled: AtomicU64,
    tokens_generated: AtomicU64,
    prompt_tokens: AtomicU64,
    queue_depth: AtomicUsize,
    active_sequences: AtomicUsize,
    busy_us: AtomicU64,
    masked_tokens: AtomicU64,
    mask_ns: AtomicU64,
}

struct Job {
    prompt: Vec<u32>,
    params: SamplingParams,
    mask: Option<TokenMask>,
    max_new: usize,
    tx: mpsc::Sender<GenerateEvent>,
    submitted: Instant,
}

struct Inner {
    name: String,
    format: ModelFormat,
    catalog: ModelCatalog,
    ep: &'static str,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    /// Built on first use: the vocabulary trie costs load time unconstrained requests
    /// should not pay.
    grammars: std::sync::OnceLock<Result<Grammars, String>>,
    tokenizer_path: std::path::PathBuf,
    vocab_size: usize,
    eos: Vec<u32>,
    max_context: usize,
    max_queue: usize,
    /// `None` asks the scheduler to stop (see `LocalModel::shutdown`).
    queue: SyncSender<Option<Job>>,
    counters: Arc<Counters>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A loaded local model. Cheap to clone; the scheduler thread stops when the last clone
/// is dropped and the running sequences have finished.
#[derive(Clone)]
pub struct LocalModel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("name", &self.inner.name)
            .field("execution_provider", &self.inner.ep)
            .finish()
    }
}

impl LocalModel {
    /// Loads the model from `cfg.dir` and starts its scheduler thread.
    pub fn load(rt: &RuntimeConfig, cfg: LocalModelConfig) -> Result<LocalModel, RuntimeError> {
        let dir = cfg.dir.as_path();
        files::require_files(dir, &["model.onnx", "tokenizer.json", "config.json"])?;
        files::check_manifest(dir)?;
        if cfg.max_batch == 0 {
            return Err(RuntimeError::InvalidRequest(
                "max_batch must be at least 1".into(),
            ));
        }
        let dcfg: DecoderConfig = files::read_json(&dir.join("config.json"))?;
        let tcfg: TokenizerConfig = files::read_optional_json(dir.join("tokenizer_config.json"))?;
        let gcfg: GenerationConfig = files::read_optional_json(dir.join("generation_config.json"))?;
        let tokenizer = Arc::new(files::load_tokenizer(&dir.join("tokenizer.json"))?);
        let template = ChatTemplate::new(
            tcfg.chat_template.clone(),
            tcfg.bos_token.clone(),
            tcfg.eos_token.clone(),
        )?;

        let mut eos: Vec<u32> = gcfg.eos_token_id.to_vec();
        eos.extend(dcfg.eos_token_id.to_vec());
        if let Some(id) = tcfg
            .eos_token
            .as_deref()
            .and_then(|t| tokenizer.token_to_id(t))
        {
            eos.push(id);
        }
        eos.sort_unstable();
        eos.dedup();

        let mut max_context = cfg.max_context.max(2);
        if let Some(m) = dcfg.max_position_embeddings {
            if max_context > m {
                tracing::warn!(model = %cfg.name, max_context, limit = m, "max_context above the model's position limit; clamped");
                max_context = m;
            }
        }

        let threads = resolve_threads(cfg.intra_op_threads);
        let t0 = Instant::now();
        let decoder = Decoder::load(rt, dir, &cfg.execution_providers, threads)?;
        let ep = decoder.execution_provider();
        tracing::info!(
            model = %cfg.name,
            dir = %dir.display(),
            execution_provider = ep,
            threads,
            load_ms = t0.elapsed().as_millis() as u64,
            "local model loaded"
        );

        let (queue, rx) = sync_channel::<Option<Job>>(cfg.max_queue);
        let counters = Arc::new(Counters::default());
        let vocab_size = decoder.vocab_size();
        let sched = Scheduler {
            decoder,
            rx,
            counters: counters.clone(),
            tokenizer: tokenizer.clone(),
            eos: eos.clone(),
            max_batch: cfg.max_batch,
            max_context,
            prefixes: PrefixCache::new(cfg.prefix_cache_tokens),
        };
        let thread = std::thread::Builder::new()
            .name(format!("local-model:{}", cfg.name))
            .spawn(move || sched.run())
            .map_err(|e| RuntimeError::Ort(format!("cannot start scheduler thread: {e}")))?;

        let conv = dcfg.switchyard.clone().unwrap_or_default();
        let format = ModelFormat {
            architecture: dcfg.model_type.clone().unwrap_or_else(|| "unknown".into()),
            weights: conv.weights.unwrap_or_else(|| "fp32".into()),
            activations: conv.activations,
            gguf_tensor_types: conv.gguf_tensor_types,
            max_context,
            execution_provider: ep.to_string(),
        };
        Ok(LocalModel {
            inner: Arc::new(Inner {
                name: cfg.name,
                format,
                catalog: cfg.catalog,
                ep,
                tokenizer,
                template,
                grammars: std::sync::OnceLock::new(),
                tokenizer_path: dir.join("tokenizer.json"),
                vocab_size,
                eos,
                max_context,
                max_queue: cfg.max_queue,
                queue,
                counters,
                thread: std::sync::Mutex::new(Some(thread)),
            }),
        })
    }

    /// Stops the scheduler thread and waits until its ONNX Runtime session is dropped.
    /// Call it before the process exits: tearing CUDA down while the session is still
    /// being dropped on another thread crashes the process at exit. Requests still
    /// running get an error; later `generate` calls get `RuntimeError::Stopped`.
    pub fn shutdown(&self) {
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            // Blocks only while the queue is full; the scheduler keeps draining it.
            let _ = self.inner.queue.send(None);
            let _ = handle.join();
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Architecture, weight format (quantization), context limit and execution provider.
    pub fn format(&self) -> &ModelFormat {
        &self.inner.format
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.inner.catalog
    }

    /// "cpu" or "cuda".
    pub fn execution_provider(&self) -> &str {
        self.inner.ep
    }

    /// Effective context limit (prompt + completion tokens).
    pub fn max_context(&self) -> usize {
        self.inner.max_context
    }

    /// The prompt exactly as fed to the model (chat template applied, tools included).
    pub fn render_prompt(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<String, RuntimeError> {
        self.inner.template.render(messages, tools)
    }

    /// Prompt token ids after the chat template (what `generate` feeds the model).
    pub fn prompt_token_ids(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<Vec<u32>, RuntimeError> {
        let text = self.render_prompt(messages, tools)?;
        let enc = self
            .inner
            .tokenizer
            .encode(text, false)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Number of prompt tokens after the chat template.
    pub fn count_prompt_tokens(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<usize, RuntimeError> {
        Ok(self.prompt_token_ids(messages, tools)?.len())
    }

    /// Compiles a constraint into a fresh per-sequence mask (the vocabulary trie is
    /// built on the first call).
    fn compile(&self, c: &OutputConstraint) -> Result<TokenMask, RuntimeError> {
        let inner = &self.inner;
        let grammars = inner.grammars.get_or_init(|| {
            let t0 = Instant::now();
            let g = Grammars::new(
                &inner.tokenizer_path,
                inner.tokenizer.clone(),
                inner.vocab_size,
                &inner.eos,
            )
            // RuntimeError is not Clone; every later request reports the same reason.
            .map_err(|e| match e {
                RuntimeError::InvalidModel { reason, .. } => reason,
                other => other.to_string(),
            });
            tracing::info!(model = %inner.name, ms = t0.elapsed().as_millis() as u64, "constrained decoding ready");
            g
        });
        match grammars {
            Ok(g) => g.compile(c),
            Err(reason) => Err(RuntimeError::InvalidModel {
                path: inner.tokenizer_path.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Starts generation; events flow through the receiver as tokens are produced.
    /// Dropping the receiver cancels the sequence and frees its batch slot.
    pub fn generate(
        &self,
        req: GenerateRequest,
    ) -> Result<mpsc::Receiver<GenerateEvent>, RuntimeError> {
        let p = &req.params;
        if !p.temperature.is_finite() || p.temperature < 0.0 {
            return Err(RuntimeError::InvalidRequest(
                "temperature must be >= 0".into(),
            ));
        }
        if !p.top_p.is_finite() || p.top_p <= 0.0 || p.top_p > 1.0 {
            return Err(RuntimeError::InvalidRequest(
                "top_p must be in (0, 1]".into(),
            ));
        }
        if !p.repetition_penalty.is_finite() || p.repetition_penalty <= 0.0 {
            return Err(RuntimeError::InvalidRequest(
                "repetition_penalty must be > 0".into(),
            ));
        }
        if p.max_tokens == Some(0) {
            return Err(RuntimeError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        let prompt = self.prompt_token_ids(&req.messages, &req.tools)?;
        let mask = req
            .constraint
            .as_ref()
            .map(|c| self.compile(c))
            .transpose()?;
        let max_context = self.inner.max_context;
        let max_new = match p.max_tokens {
            Some(m) => m as usize,
            None => max_context.saturating_sub(prompt.len()),
        };
        if prompt.len() + max_new > max_context || max_new == 0 {
            return Err(RuntimeError::ContextOverflow {
                prompt_tokens: prompt.len(),
                max_tokens: max_new.max(1),
                max_context,
            });
        }
        // Room for every event: Started, one Text per token, a final flush and Done.
        let (tx, rx) = mpsc::channel(max_new + 4);
        let job = Job {
            prompt,
            params: req.params,
            mask,
            max_new,
            tx,
            submitted: Instant::now(),
        };
        self.inner
            .counters
            .queue_depth
            .fetch_add(1, Ordering::Relaxed);
        match self.inner.queue.try_send(Some(job)) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.inner
                    .counters
                    .queue_depth
                    .fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => RuntimeError::QueueFull {
                        max_queue: self.inner.max_queue,
                    },
                    TrySendError::Disconnected(_) => RuntimeError::Stopped,
                })
            }
        }
    }

    pub fn stats(&self) -> RuntimeStats {
        let c = &self.inner.counters;
        RuntimeStats {
            batches_run: c.batches_run.load(Ordering::Relaxed),
            max_batch_seen: c.max_batch_seen.load(Ordering::Relaxed),
            prefills_run: c.prefills_run.load(Ordering::Relaxed),
            prefix_hits: c.prefix_hits.load(Ordering::Relaxed),
            prefix_tokens_reused: c.prefix_tokens_reused.load(Ordering::Relaxed),
            sequences_completed: c.sequences_completed.load(Ordering::Relaxed),
            sequences_cancelled: c.sequences_cancelled.load(Ordering::Relaxed),
            tokens_generated: c.tokens_generated.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
            active_sequences: c.active_sequences.load(Ordering::Relaxed),
            busy_ms: c.busy_us.load(Ordering::Relaxed) as f64 / 1000.0,
            masked_tokens: c.masked_tokens.load(Ordering::Relaxed),
            mask_ms: c.mask_ns.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------------------

struct Seq {
    tx: mpsc::Sender<GenerateEvent>,
    sampler: Sampler,
    mask: Option<TokenMask>,
    text: TextStream,
    prompt_tokens: usize,
    completion: usize,
    max_new: usize,
    last: u32,
    busy_ms: f64,
}

enum Outcome {
    Continue,
    Finished,
}

struct Scheduler {
    decoder: Decoder,
    rx: Receiver<Option<Job>>,
    counters: Arc<Counters>,
    tokenizer: Arc<Tokenizer>,
    eos: Vec<u32>,
    max_batch: usize,
    max_context: usize,
    prefixes: PrefixCache,
}

impl Scheduler {
    /// Ends every running sequence with an error and returns, dropping the ONNX
    /// session on this thread before `shutdown` joins it.
    fn stop(self, seqs: Vec<Seq>) {
        for s in seqs {
            let _ = s.tx.try_send(GenerateEvent::Error(
                "the local model is shutting down".into(),
            ));
        }
        tracing::debug!("local model scheduler stopped");
    }

    fn run(mut self) {
        let mut cache = match self.decoder.empty_cache(0) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "local model scheduler cannot start");
                return;
            }
        };
        let mut seqs: Vec<Seq> = Vec::new();
        let mut disconnected = false;
        loop {
            // 1. Admit waiting requests into free batch slots (prefill each individually).
            while seqs.len() < self.max_batch && !disconnected {
                let job = if seqs.is_empty() {
                    match self.rx.recv() {
                        Ok(Some(j)) => j,
                        Ok(None) => return self.stop(seqs),
                        Err(_) => {
                            disconnected = true;
                            break;
                        }
                    }
                } else {
                    match self.rx.try_recv() {
                        Ok(Some(j)) => j,
                        Ok(None) => return self.stop(seqs),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                };
                self.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
                if let Some(seq) = self.admit(job, &mut cache) {
                    seqs.push(seq);
                }
            }
            if seqs.is_empty() {
                self.counters.active_sequences.store(0, Ordering::Relaxed);
                if disconnected {
                    return;
                }
                continue;
            }
            self.counters
                .active_sequences
                .store(seqs.len(), Ordering::Relaxed);

            // 2. Drop cancelled sequences before spending compute on them.
            let keep: Vec<bool> = seqs.iter().map(|s| !s.tx.is_closed()).collect();
            if keep.iter().any(|k| !k) {
                let n = keep.iter().filter(|k| !**k).count() as u64;
                self.counters
                    .sequences_cancelled
                    .fetch_add(n, Ordering::Relaxed);
                if !self.retain(&mut cache, &mut seqs, &keep) {
                    continue;
                }
                if seqs.is_empty() {
                    continue;
                }
            }

            // 3. One decode step for the whole batch.
            let tokens: Vec<[u32; 1]> = seqs.iter().map(|s| [s.last]).collect();
            let refs: Vec<&[u32]> = tokens.iter().map(|t| &t[..]).collect();
            let t0 = Instant::now();
            let result = self.decoder.forward(&mut cache, &refs, false);
            let dt = t0.elapsed();
            self.counters
                .busy_us
                .fetch_add(dt.as_micros() as u64, Ordering::Relaxed);
            let mut logits = match result {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "decode step failed");
                    for s in seqs.drain(..) {
                        let _ = s.tx.try_send(GenerateEvent::Error(e.to_string()));
                    }
                    cache = match self.decoder.empty_cache(0) {
                        Ok(c) => c,
                        Err(_) => return,
                    };
                    continue;
                }
            };
            self.counters.batches_run.fetch_add(1, Ordering::Relaxed);
            self.counters
                .max_batch_seen
                .fetch_max(seqs.len(), Ordering::Relaxed);
            let share = dt.as_secs_f64() * 1000.0 / seqs.len() as f64;
            let vocab = self.decoder.vocab_size();
            let mut keep = vec![true; seqs.len()];
            for (i, seq) in seqs.iter_mut().enumerate() {
                seq.busy_ms += share;
                let row = &mut logits[i * vocab..(i + 1) * vocab];
                if let Outcome::Finished = self.sample_and_emit(seq, row) {
                    keep[i] = false;
                }
            }
            if keep.iter().any(|k| !k) {
                self.retain(&mut cache, &mut seqs, &keep);
            }
        }
    }

    /// Removes rows; on failure errors out every sequence (returns false).
    fn retain(&self, cache: &mut KvCache, seqs: &mut Vec<Seq>, keep: &[bool]) -> bool {
        let mut it = keep.iter();
        seqs.retain(|_| *it.next().unwrap_or(&false));
        if let Err(e) = self.decoder.retain(cache, keep) {
            tracing::error!(error = %e, "kv cache repack failed");
            for s in seqs.drain(..) {
                let _ = s.tx.try_send(GenerateEvent::Error(e.to_string()));
            }
            if let Ok(c) = self.decoder.empty_cache(0) {
                *cache = c;
            }
            return false;
        }
        self.counters
            .active_sequences
            .store(seqs.len(), Ordering::Relaxed);
        true
    }

    fn admit(&mut self, job: Job, cache: &mut KvCache) -> Option<Seq> {
        if job.tx.is_closed() {
            self.counters
                .sequences_cancelled
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let queue_ms = job.submitted.elapsed().as_secs_f64() * 1000.0;
        let _ = job.tx.try_send(GenerateEvent::Started {
            prompt_tokens: job.prompt.len() as u32,
            queue_ms,
        });
        self.counters
            .prompt_tokens
            .fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
        let t0 = Instant::now();
        let prefill = (|| {
            let (mut c, start) = match self.prefixes.lookup(&self.decoder, &job.prompt)? {
                Some(r) => (r.cache, r.reused),
                None => (self.decoder.empty_cache(1)?, 0),
            };
            let logits = self
                .decoder
                .forward(&mut c, &[&job.prompt[start..]], false)?;
            Ok::<_, RuntimeError>((c, logits, start))
        })();
        let dt = t0.elapsed();
        self.counters
            .busy_us
            .fetch_add(dt.as_micros() as u64, Ordering::Relaxed);
        self.counters.prefills_run.fetch_add(1, Ordering::Relaxed);
        let (seq_cache, mut logits, reused) = match prefill {
            Ok(x) => x,
            Err(e) => {
                let _ = job.tx.try_send(GenerateEvent::Error(e.to_string()));
                return None;
            }
        };
        let mut seq = Seq {
            sampler: Sampler::new(job.params.clone(), self.decoder.vocab_size(), &job.prompt),
            text: TextStream::new(job.params.stop.clone()),
            mask: job.mask,
            tx: job.tx,
            prompt_tokens: job.prompt.len(),
            completion: 0,
            max_new: job.max_new,
            last: 0,
            busy_ms: dt.as_secs_f64() * 1000.0,
        };
        if reused > 0 {
            self.counters.prefix_hits.fetch_add(1, Ordering::Relaxed);
            self.counters
                .prefix_tokens_reused
                .fetch_add(reused as u64, Ordering::Relaxed);
        }
        let finished = matches!(
            self.sample_and_emit(&mut seq, &mut logits),
            Outcome::Finished
        );
        // The batch gets a copy of the row, so the prefill's own cache can be kept as is.
        let appended = if finished {
            Ok(())
        } else {
            self.decoder.append(cache, &seq_cache)
        };
        self.prefixes.insert(job.prompt, seq_cache);
        if finished {
            return None;
        }
        if let Err(e) = appended {
            let _ = seq.tx.try_send(GenerateEvent::Error(e.to_string()));
            return None;
        }
        Some(seq)
    }

    fn finish(&self, seq: &mut Seq, finish: FinishReason, flush: bool) -> Outcome {
        self.finish_with(seq, finish, None, flush)
    }

    fn finish_with(
        &self,
        seq: &mut Seq,
        finish: FinishReason,
        stop_sequence: Option<String>,
        flush: bool,
    ) -> Outcome {
        if flush {
            let rest = seq.text.finish();
            if !rest.is_empty() {
                let _ = seq.tx.try_send(GenerateEvent::Text(rest));
            }
        }
        let sent = seq.tx.try_send(GenerateEvent::Done {
            finish,
            stop_sequence,
            prompt_tokens: seq.prompt_tokens as u32,
            completion_tokens: seq.completion as u32,
            busy_ms: seq.busy_ms,
        });
        if sent.is_ok() {
            self.counters
                .sequences_completed
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters
                .sequences_cancelled
                .fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Finished
    }

    /// Samples the next token (under the sequence's grammar mask, if any) and emits it.
    fn sample_and_emit(&self, seq: &mut Seq, logits: &mut [f32]) -> Outcome {
        let Some(mask) = seq.mask.as_mut() else {
            let tok = seq.sampler.sample(logits);
            return self.on_token(seq, tok);
        };
        let t0 = Instant::now();
        let closing = constrain::closing(seq.max_new.saturating_sub(seq.completion), seq.max_new);
        let applied = mask.apply(logits, closing);
        self.counters
            .mask_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.counters.masked_tokens.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = applied {
            let _ = seq.tx.try_send(GenerateEvent::Error(e.to_string()));
            return Outcome::Finished;
        }
        let tok = seq.sampler.sample(logits);
        if self.eos.contains(&tok) {
            return self.on_token(seq, tok);
        }
        let t1 = Instant::now();
        let committed = mask.commit(tok);
        self.counters
            .mask_ns
            .fetch_add(t1.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if let Err(e) = committed {
            let _ = seq.tx.try_send(GenerateEvent::Error(e.to_string()));
            return Outcome::Finished;
        }
        let complete = mask.is_finished();
        match self.on_token(seq, tok) {
            // Nothing can follow a complete answer: end now rather than spend a step
            // on the end-of-sequence token the mask would force.
            Outcome::Continue if complete => self.finish(seq, FinishReason::Stop, true),
            other => other,
        }
    }

    fn on_token(&self, seq: &mut Seq, tok: u32) -> Outcome {
        seq.completion += 1;
        seq.last = tok;
        self.counters
            .tokens_generated
            .fetch_add(1, Ordering::Relaxed);
        if self.eos.contains(&tok) {
            return self.finish(seq, FinishReason::Stop, true);
        }
        match seq.text.push(&self.tokenizer, tok) {
            Ok(Chunk::Text(t)) => {
                if !t.is_empty() && seq.tx.try_send(GenerateEvent::Text(t)).is_err() {
                    self.counters
                        .sequences_cancelled
                        .fetch_add(1, Ordering::Relaxed);
                    return Outcome::Finished;
                }
            }
            Ok(Chunk::Stop { text, stop }) => {
                if !text.is_empty() {
                    let _ = seq.tx.try_send(GenerateEvent::Text(text));
                }
                return self.finish_with(seq, FinishReason::Stop, Some(stop), false);
            }
            Err(e) => {
                let _ = seq.tx.try_send(GenerateEvent::Error(e.to_string()));
                return Outcome::Finished;
            }
        }
        if seq.completion >= seq.max_new || seq.prompt_tokens + seq.completion >= self.max_context {
            return self.finish(seq, FinishReason::Length, true);
        }
        Outcome::Continue
    }
}
