//! The GGUF converter (scripts/convert/gguf_llama_to_onnx.py) refuses what it cannot convert
//! with a clear error and exit status 2 — never a Python traceback: an unsupported
//! architecture or tensor type names what is supported; truncated files (cut at several
//! points) and garbage are reported as unreadable. Fixtures come from
//! scripts/convert/parity_fixtures.py (scripts/setup-models.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use local_runtime::default_cache_dir;

fn converter() -> (PathBuf, PathBuf) {
    let py = default_cache_dir().join("venv-convert/bin/python");
    assert!(
        py.is_file(),
        "{} missing: {}",
        py.display(),
        common::SETUP_HINT
    );
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/convert/gguf_llama_to_onnx.py");
    (py, script)
}

fn fixtures() -> PathBuf {
    let d = default_cache_dir().join("models/parity");
    assert!(
        d.join("errors/unsupported-arch.gguf").is_file(),
        "converter error fixtures missing in {}: {}",
        d.display(),
        common::SETUP_HINT
    );
    d
}

/// Runs the converter on `gguf`; returns (exit status, stderr).
fn convert(gguf: &Path, out: &Path) -> (Option<i32>, String) {
    let (py, script) = converter();
    let o = Command::new(py)
        .arg(script)
        .arg("--gguf")
        .arg(gguf)
        .arg("--decoder-only")
        .arg("--out")
        .arg(out)
        .output()
        .expect("run converter");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sy-convert-errors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn assert_clean_error(status: Option<i32>, stderr: &str, want: &[&str]) {
    assert_eq!(status, Some(2), "expected exit status 2, stderr:\n{stderr}");
    assert!(
        !stderr.contains("Traceback"),
        "a traceback, not a clear error:\n{stderr}"
    );
    for w in want {
        assert!(stderr.contains(w), "stderr lacks {w:?}:\n{stderr}");
    }
}

#[test]
fn unsupported_architecture_names_the_supported_ones() {
    let d = tmp("arch");
    let (st, err) = convert(&fixtures().join("errors/unsupported-arch.gguf"), &d);
    assert_clean_error(
        st,
        &err,
        &[
            "unsupported architecture 'mamba'",
            "llama, qwen2, qwen3, gemma2, gemma3, phi3",
        ],
    );
}

#[test]
fn unsupported_tensor_type_names_the_supported_ones() {
    let d = tmp("type");
    let (st, err) = convert(&fixtures().join("errors/unsupported-type.gguf"), &d);
    assert_clean_error(st, &err, &["Q2_K", "supported: F32, F16, BF16, Q4_0"]);
}

#[test]
fn truncated_or_garbage_gguf_is_an_error_not_a_crash() {
    let src = fixtures().join("llama-Q4_K/model.gguf");
    let bytes = std::fs::read(&src).expect("read fixture");
    let d = tmp("trunc");
    // inside the header, the tensor infos, and the tensor data (first, middle, last tensor)
    let mut cases: Vec<(String, Vec<u8>)> = [0.0005, 0.01, 0.3, 0.999]
        .iter()
        .map(|f| {
            let n = (bytes.len() as f64 * f) as usize;
            (
                format!("truncated at {n} of {} bytes", bytes.len()),
                bytes[..n].to_vec(),
            )
        })
        .collect();
    // garbage after a valid magic, and no magic at all
    let mut junk = b"GGUF".to_vec();
    junk.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    cases.push(("garbage after the magic".into(), junk));
    cases.push(("not a GGUF".into(), b"hello world".to_vec()));
    for (what, data) in cases {
        let f = d.join("in.gguf");
        std::fs::write(&f, &data).expect("write");
        let (st, err) = convert(&f, &d.join("out"));
        assert_eq!(
            st,
            Some(2),
            "{what}: expected exit status 2, stderr:\n{err}"
        );
        assert!(!err.contains("Traceback"), "{what}: traceback:\n{err}");
        assert!(
            err.contains("[convert] error:"),
            "{what}: no clear error:\n{err}"
        );
    }
}
