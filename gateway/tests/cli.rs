//! The `switchyard` command line: policy check / test / explain and batch classification.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    // Offline tools must not depend on the caller's provider environment.
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SWITCHYARD_CONFIG",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "error");
    c
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("switchyard runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn examples(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/examples")
        .join(name)
}

#[test]
fn policy_check_reports_file_line_column_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("sy-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\nrules:\n  - id: a\n    when: { dificulty: { gte: 0.5 } }\n    route: nowhere\ndefault: { route: local }\n",
    )
    .unwrap();
    let out = bin().args(["policy", "check"]).arg(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("policy.yaml:6:"), "{stderr}");
    assert!(stderr.contains("did you mean `difficulty`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);

    let ok = bin()
        .args(["policy", "check"])
        .arg(examples("default"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn policy_check_warns_about_a_redacting_rule_with_no_local_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\n  gpt: { model: gpt-4o }\nrules:\n  - id: redact-pii\n    when: { sensitivity: { categories: [pii] } }\n    route: gpt\n    redact: [pii]\ndefault: { route: local }\n",
    )
    .expect("write");
    let out = bin()
        .args(["policy", "check"])
        .arg(dir.path())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Valid, so it passes; but it says what will be refused.
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    assert!(
        stdout.contains(
            "warning: rule `redact-pii` redacts pii but its chain (gpt-4o) has no local target"
        ),
        "{stdout}"
    );
}

#[test]
fn policy_test_runs_the_shipped_cases() {
    for name in ["builtin", "default", "healthcare", "cost-saver"] {
        let out = bin()
            .args(["policy", "test"])
            .arg(examples(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" passed, 0 failed"), "{name}: {stdout}");
    }
}

#[test]
fn policy_explain_prints_the_decision_without_calling_models() {
    let mut cmd = bin();
    cmd.args(["policy", "explain", "--policy"])
        .arg(examples("default"));
    let out = run_with_stdin(
        cmd,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Email me at dana.whitfield@corpmail.org"}]}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["rule"], "privacy-local");
    assert!(v["decision"]["trace"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("dana.whitfield"));
}

#[test]
fn classify_reads_jsonl_and_writes_one_result_per_line() {
    let input = concat!(
        r#"{"id":"a","prompt":"My card number is 4539 5780 1234 5671"}"#,
        "\n",
        r#"{"id":"b","messages":[{"role":"user","content":"Write a haiku about autumn"}]}"#,
        "\n"
    );
    let mut cmd = bin();
    cmd.arg("classify");
    let out = run_with_stdin(cmd, input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["sensitive"], true);
    assert_eq!(lines[0]["categories"], serde_json::json!(["financial"]));
    assert_eq!(lines[1]["sensitive"], false);
    assert!(lines[1]["difficulty"].as_f64().unwrap() < 0.5);

    let mut cmd = bin();
    cmd.arg("classify");
    // A bad line is an error row in place; the batch goes on and the exit status fails.
    let bad = run_with_stdin(
        cmd,
        "{\"id\": 1, \"prompt\": \"ok\"}\nnot json\n{\"id\": 3, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]}]}\n",
    );
    assert!(!bad.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&bad.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[1]["line"], 2);
    assert!(rows[1]["error"].is_string(), "{:?}", rows[1]);
    assert_eq!(rows[2]["id"], 3, "content parts are accepted");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("1 line(s) could not be classified"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn calibrate_prints_the_curve_and_the_threshold_to_set() {
    use switchyard::shadow::store::{insert, PairRecord, Side};
    let dir = std::env::temp_dir().join(format!("switchyard-calibrate-{}", std::process::id()));
    let policy_dir = dir.join("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    std::fs::write(
        policy_dir.join("route.yaml"),
        "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\n  frontier: { model: gpt-4o }\nrules:\n  - id: hard\n    when: { difficulty: { gte: 0.8 } }\n    route: frontier\ndefault: { route: local }\n",
    )
    .unwrap();
    let db_url = format!("sqlite:{}", dir.join("ledger.db").display());
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "accounting: {{ database_url: \"{db_url}\" }}\npolicy_dir: {:?}\n",
            policy_dir.display().to_string()
        ),
    )
    .unwrap();
    // Synthetic traffic with a known optimum: the local model matches the frontier
    // below difficulty 0.6 and fails above it. At 95% quality, five of the forty hard
    // requests may stay local: the threshold is 0.65.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = switchyard::store::Db::connect(&db_url).await.unwrap();
        for i in 0..100 {
            let d = f64::from(i) / 100.0;
            let rec = PairRecord {
                id: format!("p{i}"),
                request_id: format!("r{i}"),
                ts_ms: switchyard::store::time::now_ms(),
                team: if i % 2 == 0 { "a" } else { "b" }.into(),
                rule: "default".into(),
                difficulty: d,
                primary: Side {
                    model: "local/smollm2-135m-instruct".into(),
                    cost_micros: 1,
                    ..Side::default()
                },
                shadow: Side {
                    model: "gpt-4o".into(),
                    external: true,
                    cost_micros: 100,
                    ..Side::default()
                },
                shadow_status: 200,
                quality: Some(if d < 0.6 { 1.0 } else { 0.0 }),
                ..PairRecord::default()
            };
            insert(&db, &rec).await.unwrap();
        }
        db.close().await;
    });
    let out = bin()
        .args(["calibrate", "--target-quality", "0.95", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("100 shadow pairs (100 scored"), "{stdout}");
    assert!(
        stdout.contains("Recommended: difficulty threshold 0.650"),
        "{stdout}"
    );
    assert!(
        stdout.contains("35.0% of requests to the frontier"),
        "{stdout}"
    );
    assert!(stdout.contains("route.yaml:7"), "{stdout}");
    assert!(
        stdout.contains("set the difficulty bound to 0.65"),
        "{stdout}"
    );
    assert!(stdout.contains("Per team:"), "{stdout}");
    // JSON for scripts, filtered by team.
    let out = bin()
        .args(["calibrate", "--format", "json", "--team", "a", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["overall"]["scored"], 50);
    assert!(v["overall"]["recommended"]["threshold"].as_f64().is_some());
    // A target outside 0..1 is refused.
    let out = bin()
        .args(["calibrate", "--target-quality", "1.5", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_and_serve_name_a_bad_tls_file_and_show_endpoints_without_keys() {
    let dir = std::env::temp_dir().join(format!("sy-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:0\"\ntls: {{ cert_file: {:?}, key_file: {:?} }}\nproviders:\n  - name: pool\n    kind: openai\n    api_key: sk-cli-secret-1\n    models: [\"gpt-*\"]\n    endpoints:\n      - {{ name: east, base_url: \"http://10.0.0.1/v1\", weight: 3 }}\n      - {{ base_url: \"http://10.0.0.2/v1\", api_key: sk-cli-secret-2 }}\n",
            dir.join("absent-cert.pem").display().to_string(),
            dir.join("absent-key.pem").display().to_string()
        ),
    )
    .unwrap();
    let out = bin()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("absent-cert.pem"), "{stderr}");
    assert!(
        stdout.contains("endpoint east http://10.0.0.1/v1 weight=3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("endpoint 1 http://10.0.0.2/v1 weight=1"),
        "{stdout}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains("sk-cli-secret"),
        "{stdout}{stderr}"
    );

    // `serve` refuses to start, naming the file, before binding anything.
    let out = bin()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("absent-cert.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
