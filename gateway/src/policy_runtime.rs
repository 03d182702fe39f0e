//! The live policy: loaded at start-up, swapped atomically on reload. In-flight
//! requests keep the policy they started with (they hold an `Arc`), so a reload never
//! fails or drops a request; an invalid file is rejected and the last good policy kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use policies::policy::{
    check, compile_str, format_errors, CompiledPolicy, TargetCatalog, BUILTIN_POLICY_YAML,
};
use policies::Classifier;
use serde::Serialize;

use crate::audit::{Action, Actor, AuditEvent, AuditLog};

/// A compiled policy with the classifier its `classifier:` section configures.
pub struct ActivePolicy {
    pub policy: CompiledPolicy,
    pub classifier: Classifier,
    /// The directory it came from, or `builtin`.
    pub source: String,
    /// Increases by one with every successful load.
    pub version: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyStatus {
    pub source: String,
    pub version: u64,
    pub files: Vec<String>,
    pub rules: usize,
    pub loaded_at_unix_s: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The last rejected load, with file:line:column messages; cleared by a good load.
    pub last_error: Option<String>,
    pub last_error_at_unix_s: Option<u64>,
}

struct Inner {
    current: ArcSwap<ActivePolicy>,
    status: Mutex<PolicyStatus>,
    dir: Option<PathBuf>,
    catalog: Arc<dyn TargetCatalog + Send + Sync>,
    fingerprint: Mutex<Vec<(PathBuf, Option<SystemTime>, u64)>>,
    /// Told the outcome of every reload (metrics).
    on_reload: Mutex<Option<ReloadHook>>,
    /// Where reloads that nobody asked for through the API (file watcher, SIGHUP) are
    /// recorded.
    audit: Mutex<Option<AuditLog>>,
}

type ReloadHook = Arc<dyn Fn(bool) + Send + Sync>;

/// What one reload attempt did, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new version, or the error messages (file:line:column) of a rejected load.
    pub result: Result<u64, String>,
    pub previous_version: u64,
    pub source: String,
    /// SHA-256 of the policy files as read (`None` for the built-in policy).
    pub files_sha256: Option<String>,
}

impl ReloadReport {
    /// The audit entry of this reload: reloaded (before/after version and file hash) or
    /// rejected (the errors, and the version kept).
    pub fn audit_event(&self, actor: Actor) -> AuditEvent {
        let before = serde_json::json!({"version": self.previous_version});
        match &self.result {
            Ok(version) => AuditEvent::new(actor, Action::PolicyReloaded, &self.source)
                .before(before)
                .after(serde_json::json!({"version": version, "files_sha256": self.files_sha256})),
            Err(errors) => AuditEvent::new(actor, Action::PolicyRejected, &self.source)
                .before(before)
                .after(serde_json::json!({
                    "kept_version": self.previous_version,
                    "files_sha256": self.files_sha256,
                    "errors": errors,
                })),
        }
    }
}

#[derive(Clone)]
pub struct PolicyHandle {
    inner: Arc<Inner>,
}

fn now_unix() -> u64 {
    crate::store::time::now_s()
}

/// Compiles the policy of `dir` (or the built-in one) against the catalog.
pub fn compile_policy(
    dir: Option<&Path>,
    catalog: &dyn TargetCatalog,
) -> Result<(CompiledPolicy, Classifier), String> {
    let policy = match dir {
        Some(dir) => check(dir, catalog).map_err(|errs| format_errors(&errs))?,
        None => compile_str("<builtin policy>", BUILTIN_POLICY_YAML, catalog)
            .map_err(|errs| format_errors(&errs))?,
    };
    let classifier = policy
        .classifier()
        .map_err(|e| format!("classifier rules: {e}"))?;
    Ok((policy, classifier))
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml")
        })
        .map(|e| {
            let meta = e.metadata().ok();
            (
                e.path(),
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    out
}

impl PolicyHandle {
    /// Loads the policy at start-up; an invalid policy is a start-up error.
    pub fn load(
        dir: Option<PathBuf>,
        catalog: Arc<dyn TargetCatalog + Send + Sync>,
    ) -> Result<PolicyHandle, String> {
        let fp = dir.as_deref().map(fingerprint).unwrap_or_default();
        let (policy, classifier) = compile_policy(dir.as_deref(), catalog.as_ref())?;
        let source = dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "builtin".to_string());
        let status = PolicyStatus {
            source: source.clone(),
            version: 1,
            files: policy.files().to_vec(),
            rules: policy.rule_ids().len(),
            loaded_at_unix_s: now_unix(),
            ..PolicyStatus::default()
        };
        let active = ActivePolicy {
            policy,
            classifier,
            source,
            version: 1,
        };
        Ok(PolicyHandle {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(active),
                status: Mutex::new(status),
                dir,
                catalog,
                fingerprint: Mutex::new(fp),
                on_reload: Mutex::new(None),
                audit: Mutex::new(None),
            }),
        })
    }

    /// Calls `hook(ok)` after every reload attempt.
    pub fn set_reload_hook(&self, hook: impl Fn(bool) + Send + Sync + 'static) {
        if let Ok(mut h) = self.inner.on_reload.lock() {
            *h = Some(Arc::new(hook));
        }
    }

    fn notify(&self, ok: bool) {
        let hook = self.inner.on_reload.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(ok);
        }
    }

    /// Records the reloads of the file watcher and SIGHUP in `audit`.
    pub fn set_audit(&self, audit: AuditLog) {
        if let Ok(mut a) = self.inner.audit.lock() {
            *a = Some(audit);
        }
    }

    pub fn current(&self) -> Arc<ActivePolicy> {
        self.inner.current.load_full()
    }

    pub fn status(&self) -> PolicyStatus {
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Re-reads the policy directory (file watcher, SIGHUP): [`reload_report`]
    /// (Self::reload_report), recorded in the audit trail as the gateway's own action.
    pub fn reload(&self) -> Result<u64, String> {
        let report = self.reload_report();
        let audit = self.inner.audit.lock().ok().and_then(|a| a.clone());
        if let (Some(audit), Ok(rt)) = (audit, tokio::runtime::Handle::try_current()) {
            let event = report.audit_event(Actor::System("policy-reload".into()));
            rt.spawn(async move {
                if let Err(e) = audit.record(event).await {
                    tracing::error!(error = %e, "cannot record the policy reload in the audit trail");
                }
            });
        }
        report.result
    }

    /// Re-reads the policy directory. On success the new policy serves the next
    /// request; on failure the current one stays and the error is recorded. The caller
    /// records the report in the audit trail.
    pub fn reload_report(&self) -> ReloadReport {
        let previous_version = self.current().version;
        let Some(dir) = self.inner.dir.as_deref() else {
            return ReloadReport {
                result: Ok(previous_version),
                previous_version,
                source: "builtin".into(),
                files_sha256: None,
            };
        };
        let files_sha256 = crate::audit::policy_files_hash(Some(dir));
        let result = self.reload_dir(dir);
        ReloadReport {
            result,
            previous_version,
            source: dir.display().to_string(),
            files_sha256,
        }
    }

    fn reload_dir(&self, dir: &Path) -> Result<u64, String> {
        let fp = fingerprint(dir);
        let result = compile_policy(Some(dir), self.inner.catalog.as_ref());
        let mut status = self
            .inner
            .status
            .lock()
            .map_err(|_| "policy status lock poisoned".to_string())?;
        if let Ok(mut last) = self.inner.fingerprint.lock() {
            *last = fp;
        }
        match result {
            Ok((policy, classifier)) => {
                let version = self.current().version + 1;
                status.version = version;
                status.files = policy.files().to_vec();
                status.rules = policy.rule_ids().len();
                status.loaded_at_unix_s = now_unix();
                status.reloads_ok += 1;
                status.last_error = None;
                status.last_error_at_unix_s = None;
                self.inner.current.store(Arc::new(ActivePolicy {
                    policy,
                    classifier,
                    source: dir.display().to_string(),
                    version,
                }));
                tracing::info!(version, dir = %dir.display(), "policy reloaded");
                drop(status);
                self.notify(true);
                Ok(version)
            }
            Err(message) => {
                status.reloads_failed += 1;
                status.last_error = Some(message.clone());
                status.last_error_at_unix_s = Some(now_unix());
                tracing::error!(dir = %dir.display(), "policy reload rejected; keeping version {}:\n{message}", status.version);
                drop(status);
                self.notify(false);
                Err(message)
            }
        }
    }

    /// Polls the directory and reloads when a policy file changes.
    pub fn spawn_watcher(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let dir = self.inner.dir.clone()?;
        let handle = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let fp = fingerprint(&dir);
                let changed = handle
                    .inner
                    .fingerprint
                    .lock()
                    .map(|last| *last != fp)
                    .unwrap_or(false);
                if changed {
                    let _ = handle.reload();
                }
            }
        }))
    }
}
