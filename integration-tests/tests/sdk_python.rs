//! The official OpenAI and Anthropic Python SDKs against the gateway
//! (integration-tests/python/test_sdk.py). Needs `.venv` from `scripts/setup-python.sh`;
//! without it this test FAILS (CI runs the script first) rather than skipping.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchyard_it::harness::Stack;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_work_against_gateway() {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh first (it creates .venv with the pinned openai, anthropic and pytest)",
        python.display()
    );
    let stack = Stack::start().await;
    let child = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "integration-tests/python",
        ])
        .current_dir(&root)
        .env("SWITCHYARD_OPENAI_BASE_URL", stack.openai_base_url())
        .env("SWITCHYARD_ANTHROPIC_BASE_URL", stack.anthropic_base_url())
        // Keep the SDKs from picking up real credentials or proxies from the environment.
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start .venv/bin/python");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("pytest took more than 120 s")
        .expect("pytest failed to run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The client key the SDKs sent never reaches the upstream.
    for r in stack.requests() {
        for (k, v) in &r.headers {
            assert!(
                !v.contains("sk-client-python"),
                "client key forwarded upstream in {k}"
            );
        }
    }
    assert!(
        !stack.requests().is_empty(),
        "the SDK tests reached the upstream"
    );
}
