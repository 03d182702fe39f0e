//! `switchyard models add FILE`: a GGUF converted once into a model directory, which the
//! printed `local_models` entry then serves through the HTTP API; files the converter cannot
//! take are a one-line error and leave nothing behind. Uses the set-up cache's fixtures
//! (scripts/setup-models.sh): a SentencePiece-vocabulary llama GGUF from the tokenizer
//! parity fixtures and the unsupported-architecture GGUF from the parity fixtures.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use switchyard_it::client::{http_client, post_json, Dialect};
use switchyard_it::harness::{start_gateway, temp_db_url};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    c.env("RUST_LOG", "error");
    c
}

fn fixture(rel: &str) -> PathBuf {
    let p = local_runtime::default_cache_dir().join("models").join(rel);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup-models.sh first",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_add_converts_a_gguf_that_the_printed_entry_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny-spm");
    let run = bin()
        .args(["models", "add"])
        .arg(fixture("tokenizer-parity/spm-noprefix/model.gguf"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // progress from the converter, then the format it wrote
    assert!(stderr.contains("[convert] reading"), "{stderr}");
    assert!(
        stderr.contains("llama (") && stderr.contains("int8 activations"),
        "{stderr}"
    );
    for f in [
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "config.json",
        "manifest.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(stdout.contains("local_models:"), "{stdout}");
    assert!(
        stdout.contains(&format!("dir: {}", out.display())),
        "{stdout}"
    );

    // converting again into the same place needs --force
    let again = bin()
        .args(["models", "add"])
        .arg(fixture("tokenizer-parity/spm-noprefix/model.gguf"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // the entry it printed (name, dir, catalog) serves the model
    let entry = stdout
        .lines()
        .skip_while(|l| !l.starts_with("local_models:"))
        .collect::<Vec<_>>()
        .join("\n");
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{}\" }}\n{entry}\n",
        temp_db_url()
    );
    let gw = start_gateway(&yaml)
        .await
        .expect("gateway starts with the printed entry");
    let r = post_json(
        &http_client(),
        &format!("http://{}/v1/chat/completions", gw.addr),
        Dialect::OpenAi,
        &json!({"model": "local/tiny-spm", "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hello there"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "local/tiny-spm", "{}", r.text);
    assert!(
        r.json["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 3,
        "{}",
        r.text
    );
}

#[test]
fn models_add_refuses_an_unsupported_file_with_one_line_and_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mamba");
    let run = bin()
        .args(["models", "add"])
        .arg(fixture("parity/errors/unsupported-arch.gguf"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("unsupported architecture 'mamba'") && last.contains("supported: llama"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert!(!tmp.path().join(".mamba.converting").exists());

    let missing = bin()
        .args(["models", "add", "/nonexistent/x.gguf", "--out"])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
}
