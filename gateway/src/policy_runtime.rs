//! The live policy: loaded at start-up, swapped atomically on reload. In-flight
//! requests keep the policy they started with (they hold an `Arc`), so a reload never
//! fails or drops a request; an invalid file is rejected and the last good policy kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use policies::policy::{
    compile, format_errors, load_dir, parse_tests, run_tests, CompiledPolicy, PolicyDir,
    PolicySource, TargetCatalog, TestReport, BUILTIN_POLICY_TESTS_YAML, BUILTIN_POLICY_YAML,
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
    /// The policy and test files it was compiled from, as read: what the console diffs
    /// at a reload and runs the test cases of.
    pub files: PolicyDir,
}

/// What the last reload that changed a file changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub from_version: u64,
    pub to_version: u64,
    pub at_unix_s: u64,
    /// A unified diff of every policy and test file (`--- before/…`, `+++ after/…`).
    pub diff: String,
    pub lines_added: usize,
    pub lines_removed: usize,
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
    /// The last reload that changed a policy or test file (a reload of unchanged files
    /// keeps the one before).
    pub last_change: Option<PolicyChange>,
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
    compile_files(&read_files(dir)?, catalog)
}

/// The files of `dir`, or the built-in policy with its test cases.
fn read_files(dir: Option<&Path>) -> Result<PolicyDir, String> {
    match dir {
        Some(dir) => load_dir(dir).map_err(|errs| format_errors(&errs)),
        None => Ok(PolicyDir {
            policies: vec![PolicySource::new("<builtin policy>", BUILTIN_POLICY_YAML)],
            tests: vec![PolicySource::new(
                "<builtin policy tests>",
                BUILTIN_POLICY_TESTS_YAML,
            )],
        }),
    }
}

fn compile_files(
    files: &PolicyDir,
    catalog: &dyn TargetCatalog,
) -> Result<(CompiledPolicy, Classifier), String> {
    let policy = compile(&files.policies, catalog).map_err(|errs| format_errors(&errs))?;
    let classifier = policy
        .classifier()
        .map_err(|e| format!("classifier rules: {e}"))?;
    Ok((policy, classifier))
}

/// A unified diff of two file sets, file by file (added and removed files diff against
/// nothing); `None` when no file changed.
fn diff_files(before: &PolicyDir, after: &PolicyDir) -> Option<(String, usize, usize)> {
    use similar::{ChangeTag, TextDiff};
    fn texts(d: &PolicyDir) -> std::collections::BTreeMap<&str, &str> {
        d.policies
            .iter()
            .chain(&d.tests)
            .map(|f| (f.name.as_str(), f.text.as_str()))
            .collect()
    }
    let (old, new) = (texts(before), texts(after));
    let names: std::collections::BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    let (mut out, mut added, mut removed) = (String::new(), 0, 0);
    for name in names {
        let a = old.get(name).copied().unwrap_or("");
        let b = new.get(name).copied().unwrap_or("");
        if a == b {
            continue;
        }
        let diff = TextDiff::from_lines(a, b);
        for change in diff.iter_all_changes() {
            match change.tag() {
                ChangeTag::Insert => added += 1,
                ChangeTag::Delete => removed += 1,
                ChangeTag::Equal => {}
            }
        }
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("before/{name}"), &format!("after/{name}"))
                .missing_newline_hint(false)
                .to_string(),
        );
    }
    (!out.is_empty()).then_some((out, added, removed))
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
        let files = read_files(dir.as_deref())?;
        let (policy, classifier) = compile_files(&files, catalog.as_ref())?;
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
            files,
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

    /// Runs the live policy's test cases (its `*.test.yaml` files, or the built-in
    /// policy's) against it, as `switchyard policy test` does; a test file that does not
    /// parse is the error, with file:line:column.
    pub fn run_tests(&self) -> Result<TestReport, String> {
        let active = self.current();
        let cases = parse_tests(&active.files.tests).map_err(|errs| format_errors(&errs))?;
        Ok(run_tests(
            &active.policy,
            &active.classifier,
            &cases,
            self.inner.catalog.as_ref(),
        ))
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
        let result = read_files(Some(dir)).and_then(|files| {
            compile_files(&files, self.inner.catalog.as_ref()).map(|(p, c)| (p, c, files))
        });
        let mut status = self
            .inner
            .status
            .lock()
            .map_err(|_| "policy status lock poisoned".to_string())?;
        if let Ok(mut last) = self.inner.fingerprint.lock() {
            *last = fp;
        }
        match result {
            Ok((policy, classifier, files)) => {
                let previous = self.current();
                let version = previous.version + 1;
                if let Some((diff, lines_added, lines_removed)) =
                    diff_files(&previous.files, &files)
                {
                    status.last_change = Some(PolicyChange {
                        from_version: previous.version,
                        to_version: version,
                        at_unix_s: now_unix(),
                        diff,
                        lines_added,
                        lines_removed,
                    });
                }
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
                    files,
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

#[cfg(test)]
mod tests {
    use super::*;
    use policies::policy::StaticCatalog;

    const POLICY: &str = "version: 1\ntargets:\n  local:\n    model: local/smollm2-135m-instruct\nrules:\n  - id: ops-local\n    when: { team: ops }\n    route: local\ndefault:\n  route: requested\n";
    const TESTS: &str = "version: 1\ncases:\n  - name: ops stays local\n    request: { prompt: hello, model: gpt-4o, team: ops }\n    expect: { rule: ops-local, external: false }\n  - name: web goes where it asked\n    request: { prompt: hello, model: gpt-4o, team: web }\n    expect: { rule: default, model: gpt-4o }\n";

    fn handle(dir: &Path) -> PolicyHandle {
        PolicyHandle::load(Some(dir.to_path_buf()), Arc::new(StaticCatalog::builtin()))
            .expect("policy loads")
    }

    #[test]
    fn a_reload_that_changes_a_file_keeps_its_diff() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("policy.yaml"), POLICY).expect("write");
        let h = handle(dir.path());
        assert_eq!(h.status().last_change, None);

        std::fs::write(
            dir.path().join("policy.yaml"),
            POLICY.replace("team: ops", "team: [ops, batch]"),
        )
        .expect("write");
        assert_eq!(h.reload(), Ok(2));
        let change = h.status().last_change.expect("a change");
        assert_eq!((change.from_version, change.to_version), (1, 2));
        assert_eq!((change.lines_added, change.lines_removed), (1, 1));
        assert!(
            change.diff.contains("-    when: { team: ops }"),
            "{}",
            change.diff
        );
        assert!(
            change.diff.contains("+    when: { team: [ops, batch] }"),
            "{}",
            change.diff
        );
        assert!(change.diff.contains("+++ after/"), "{}", change.diff);

        // A reload of unchanged files keeps the diff of the last real change; a rejected
        // one changes nothing.
        assert_eq!(h.reload(), Ok(3));
        assert_eq!(h.status().last_change, Some(change.clone()));
        std::fs::write(dir.path().join("policy.yaml"), "version: 1\nrules: [").expect("write");
        assert!(h.reload().is_err());
        assert_eq!(h.status().last_change, Some(change));

        // A new test file is a change too, diffed against nothing.
        std::fs::write(dir.path().join("policy.yaml"), POLICY).expect("write");
        std::fs::write(dir.path().join("policy.test.yaml"), TESTS).expect("write");
        assert_eq!(h.reload(), Ok(4));
        let change = h.status().last_change.expect("a change");
        assert_eq!(change.from_version, 3);
        assert_eq!(change.lines_removed, 1);
        assert_eq!(change.lines_added, 1 + TESTS.lines().count());
    }

    #[test]
    fn the_live_policys_test_cases_run_against_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("policy.yaml"), POLICY).expect("write");
        std::fs::write(dir.path().join("policy.test.yaml"), TESTS).expect("write");
        let h = handle(dir.path());
        let report = h.run_tests().expect("tests parse");
        assert_eq!((report.passed, report.failed), (2, 0), "{report}");

        // After a reload that drops the rule, the same cases fail against the new policy.
        std::fs::write(
            dir.path().join("policy.yaml"),
            POLICY.replace("team: ops", "team: nobody"),
        )
        .expect("write");
        assert_eq!(h.reload(), Ok(2));
        let report = h.run_tests().expect("tests parse");
        assert_eq!((report.passed, report.failed), (1, 1), "{report}");
        assert!(report.cases[0].failures[0].contains("expected `ops-local`"));

        std::fs::write(
            dir.path().join("policy.test.yaml"),
            "version: 1\ncases: 7\n",
        )
        .expect("write");
        assert_eq!(h.reload(), Ok(3));
        let err = h.run_tests().expect_err("a broken test file");
        assert!(err.contains("policy.test.yaml"), "{err}");
    }

    #[test]
    fn the_builtin_policy_carries_its_own_test_cases() {
        let h = PolicyHandle::load(None, Arc::new(StaticCatalog::builtin())).expect("builtin");
        let report = h.run_tests().expect("builtin tests parse");
        assert!(report.passed > 0 && report.ok(), "{report}");
    }
}
