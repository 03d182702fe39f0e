//! The learned sentence head on the request path (`classifier.sentence_head`): a MiniLM
//! embedding of the newest user message, read by `policies::classify::head::SentenceHead`
//! (logistic read-outs for difficulty and for sensitive data referred to without a
//! literal value). When it runs (mode), what it costs (metrics, trace), and what happens
//! when it fails (fail closed), like the NER model beside it (`crate::ner`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use local_runtime::{Embedder, RuntimeConfig};
use policies::classify::head::{first_person, HeadTarget, SentenceHead};
use policies::{Category, Classification, Detector, Finding, SegmentRole};
use serde::Deserialize;

use crate::telemetry::metrics::Metrics;

/// When the head runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HeadMode {
    /// On every request.
    Always,
    /// Only where it can change the outcome: not when the rules' decision is a block, or
    /// keeps the request inside the organization with nothing to redact; and, when the
    /// policy reads no difficulty, only on a message with a first-person word (the head's
    /// findings need one).
    #[default]
    Auto,
    /// Only when the rules found nothing sensitive.
    WhenRulesSilent,
    Off,
}

impl HeadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadMode::Always => "always",
            HeadMode::Auto => "auto",
            HeadMode::WhenRulesSilent => "when_rules_silent",
            HeadMode::Off => "off",
        }
    }
}

/// `classifier.sentence_head` in the gateway config (docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSettings {
    #[serde(default)]
    pub mode: HeadMode,
    /// Directory of `head.json`; default `$SWITCHYARD_CACHE/models/sentence-head`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The encoder the head was trained on; default `$SWITCHYARD_CACHE/models/all-minilm-l6-v2`.
    #[serde(default)]
    pub embedding_dir: Option<PathBuf>,
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_threads() -> usize {
    1
}

impl Default for HeadSettings {
    fn default() -> Self {
        HeadSettings {
            mode: HeadMode::default(),
            dir: None,
            embedding_dir: None,
            threads: default_threads(),
        }
    }
}

impl HeadSettings {
    pub fn resolved_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            local_runtime::default_model_dir(local_runtime::model_names::SENTENCE_HEAD)
        })
    }

    pub fn resolved_embedding_dir(&self) -> PathBuf {
        self.embedding_dir.clone().unwrap_or_else(|| {
            local_runtime::default_model_dir(local_runtime::model_names::MINILM_L6)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("cannot load the sentence head (classifier.sentence_head, mode {mode}) from {path}: {reason}; run scripts/setup-models.sh (it trains the head), or set classifier.sentence_head.mode: off to run without it")]
    Load {
        mode: &'static str,
        path: String,
        reason: String,
    },
}

/// What one request's head pass did (metrics label, trace field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadOutcome {
    Ran,
    /// The rules' decision cannot change (mode), or there is no text to read.
    SkippedMode,
    SkippedEmpty,
    /// Mode `auto`, the policy reads no difficulty and the message has no first-person
    /// word, so no head finding could count (see `policies::classify::head::first_person`).
    SkippedGate,
    /// The encoder failed: the request is treated as sensitive (fail closed).
    Error,
}

impl HeadOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadOutcome::Ran => "ran",
            HeadOutcome::SkippedMode => "skipped_mode",
            HeadOutcome::SkippedEmpty => "skipped_empty",
            HeadOutcome::SkippedGate => "skipped_gate",
            HeadOutcome::Error => "error",
        }
    }
}

/// The loaded encoder and head. Shared by every request (`Send + Sync`).
pub struct HeadDetector {
    embedder: Embedder,
    head: SentenceHead,
    mode: HeadMode,
    metrics: OnceLock<Arc<Metrics>>,
}

impl std::fmt::Debug for HeadDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDetector")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Loads the head unless the mode is `off`. A configured head that does not load, or was
/// trained on another encoder than the one found, is an error: the gateway must not start
/// with a silently weaker classifier.
pub fn load(
    settings: &HeadSettings,
    runtime: &RuntimeConfig,
) -> Result<Option<Arc<HeadDetector>>, HeadError> {
    if settings.mode == HeadMode::Off {
        tracing::warn!("classifier.sentence_head.mode is off: data referred to without a value and difficulty are read by the rules and the lexical model only");
        return Ok(None);
    }
    let mode = settings.mode.as_str();
    let fail = |path: &std::path::Path, reason: String| HeadError::Load {
        mode,
        path: path.display().to_string(),
        reason,
    };
    let file = settings.resolved_dir().join("head.json");
    let json = std::fs::read_to_string(&file).map_err(|e| fail(&file, e.to_string()))?;
    let head = SentenceHead::from_json(&json).map_err(|e| fail(&file, e.to_string()))?;
    let edir = settings.resolved_embedding_dir();
    let manifest = edir.join("manifest.json");
    let sha = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .and_then(|m| {
            m.pointer("/files/model.onnx/sha256")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| fail(&manifest, "no files.\"model.onnx\".sha256".into()))?;
    if sha != head.embedding.model_sha256 {
        return Err(fail(
            &file,
            format!(
                "trained on encoder {} ({}), but {} holds {sha}; re-run scripts/train-heads.sh",
                head.embedding.model,
                head.embedding.model_sha256,
                edir.display()
            ),
        ));
    }
    let embedder = Embedder::load_with_threads(runtime, &edir, Some(settings.threads.max(1)))
        .map_err(|e| fail(&edir, e.to_string()))?;
    if embedder.dims() != head.dim() {
        return Err(fail(
            &edir,
            format!("encoder has {} dims, head {}", embedder.dims(), head.dim()),
        ));
    }
    tracing::info!(
        mode,
        encoder = %head.embedding.model,
        "sentence head loaded"
    );
    Ok(Some(Arc::new(HeadDetector {
        embedder,
        head,
        mode: settings.mode,
        metrics: OnceLock::new(),
    })))
}

impl HeadDetector {
    pub fn mode(&self) -> HeadMode {
        self.mode
    }

    /// Where time spent shows (`switchyard_sentence_head_duration_seconds`).
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Whether the mode lets the head run, given what the rules found and decided.
    pub fn mode_allows(&self, rules: &Classification, settled: bool) -> bool {
        match self.mode {
            HeadMode::Off => false,
            HeadMode::Always => true,
            HeadMode::Auto => !settled,
            HeadMode::WhenRulesSilent => !rules.sensitive,
        }
    }

    /// Embeds the newest user message (the text this request adds; the last segment when
    /// there is no user message) and merges the head's reading into `c`. Returns whether
    /// the categories changed. `difficulty_matters`: the policy reads the difficulty (in
    /// mode `auto` the head then runs even on a message with no first-person word, which
    /// can only move the difficulty). Never fails: an encoder error is logged, counted and
    /// turns into a pii finding over that message (confidence 0.5), so the request is
    /// handled as sensitive (fail closed).
    pub fn apply(
        &self,
        segments: &[(SegmentRole, &str)],
        c: &mut Classification,
        mode_allows: bool,
        difficulty_matters: bool,
    ) -> bool {
        let started = Instant::now();
        let span = crate::telemetry::spans::sentence_head();
        let _enter = span.enter();
        let before = c.categories.clone();
        let target = target_segment(segments);
        let (outcome, findings) = match target {
            _ if !mode_allows => (HeadOutcome::SkippedMode, 0),
            None => (HeadOutcome::SkippedEmpty, 0),
            Some((si, _))
                if self.mode == HeadMode::Auto
                    && !difficulty_matters
                    && !first_person(segments[si].1) =>
            {
                (HeadOutcome::SkippedGate, 0)
            }
            Some((si, offset)) => {
                let text = segments[si].1;
                let target = HeadTarget {
                    segment: si,
                    offset,
                    len: text.len(),
                };
                match crate::ner::with_blocking(|| self.embedder.embed(&[text])) {
                    Ok(v) => match v.first() {
                        Some(v) => (
                            HeadOutcome::Ran,
                            self.head.apply(c, v, text, target).findings,
                        ),
                        None => (HeadOutcome::Error, fail_closed(c, target)),
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "sentence head encoder failed; treating the request as sensitive (fail closed)");
                        (HeadOutcome::Error, fail_closed(c, target))
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        crate::telemetry::spans::record_sentence_head(
            &span,
            outcome.as_str(),
            elapsed.as_secs_f64() * 1e3,
            findings,
            c.difficulty,
        );
        self.observe(outcome, elapsed);
        c.categories != before
    }

    fn observe(&self, outcome: HeadOutcome, elapsed: Duration) {
        if let Some(m) = self.metrics.get() {
            m.observe_sentence_head(outcome.as_str(), elapsed);
        }
    }
}

/// The newest non-empty user segment (else the last non-empty one) and its offset in the
/// canonical text (segments joined with `"\n"`).
fn target_segment(segments: &[(SegmentRole, &str)]) -> Option<(usize, usize)> {
    let mut offsets = Vec::with_capacity(segments.len());
    let mut at = 0;
    for (_, t) in segments {
        offsets.push(at);
        at += t.len() + 1;
    }
    let non_empty = |i: &usize| !segments[*i].1.trim().is_empty();
    let pick = (0..segments.len())
        .rev()
        .filter(non_empty)
        .find(|&i| segments[i].0 == SegmentRole::User)
        .or_else(|| (0..segments.len()).rev().find(non_empty))?;
    Some((pick, offsets[pick]))
}

fn fail_closed(c: &mut Classification, t: HeadTarget) -> usize {
    c.merge_findings([Finding {
        category: Category::Pii,
        detector: Detector::Head,
        kind: "head_unavailable".into(),
        start: t.offset,
        end: t.offset + t.len,
        segment: t.segment,
        seg_start: 0,
        seg_end: t.len,
        confidence: 0.5,
    }]);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_user_message_is_read() {
        let segs = [
            (SegmentRole::System, "be brief"),
            (SegmentRole::User, "first"),
            (SegmentRole::Assistant, "ok"),
            (SegmentRole::User, "second"),
            (SegmentRole::Assistant, ""),
        ];
        // offsets: system 0, user 9, assistant 15, user 18
        assert_eq!(target_segment(&segs), Some((3, 18)));
        let no_user = [(SegmentRole::System, "sys"), (SegmentRole::Tool, "out")];
        assert_eq!(target_segment(&no_user), Some((1, 4)));
        assert_eq!(target_segment(&[(SegmentRole::User, "  ")]), None);
        assert_eq!(target_segment(&[]), None);
    }

    #[test]
    fn settings_parse_with_defaults_and_reject_unknown_fields() {
        let s: HeadSettings = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(s.mode, HeadMode::Auto);
        assert_eq!(s.threads, 1);
        assert!(s.resolved_dir().ends_with("models/sentence-head"));
        assert!(s
            .resolved_embedding_dir()
            .ends_with("models/all-minilm-l6-v2"));
        let s: HeadSettings = serde_yaml_ng::from_str("mode: when_rules_silent").unwrap();
        assert_eq!(s.mode, HeadMode::WhenRulesSilent);
        assert!(serde_yaml_ng::from_str::<HeadSettings>("mode: sometimes").is_err());
        assert!(serde_yaml_ng::from_str::<HeadSettings>("threshold: 0.5").is_err());
    }

    #[test]
    fn a_missing_head_is_a_loud_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let s = HeadSettings {
            dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let e = load(&s, &RuntimeConfig::default()).unwrap_err().to_string();
        assert!(
            e.contains("head.json") && e.contains("scripts/setup-models.sh"),
            "{e}"
        );
        assert!(e.contains("mode: off"), "{e}");
        let off = HeadSettings {
            mode: HeadMode::Off,
            ..s
        };
        assert!(load(&off, &RuntimeConfig::default()).unwrap().is_none());
    }
}
