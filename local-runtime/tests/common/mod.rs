//! Shared helpers: locate the set-up cache, failing loudly (never skipping) when absent.
#![allow(dead_code)]

use std::path::PathBuf;

use local_runtime::{default_model_dir, RuntimeConfig};

pub const SETUP_HINT: &str =
    "run scripts/setup-models.sh first (it downloads and converts the models into $SWITCHYARD_CACHE, default ~/.cache/switchyard)";

pub fn runtime() -> RuntimeConfig {
    let rt = RuntimeConfig::default();
    let lib = rt.resolved_ort_library();
    assert!(
        lib.is_file(),
        "ONNX Runtime library {} is missing: {SETUP_HINT}",
        lib.display()
    );
    rt
}

pub fn model_dir(name: &str) -> PathBuf {
    let dir = default_model_dir(name);
    assert!(
        dir.join("model.onnx").is_file(),
        "model {} is missing: {SETUP_HINT}",
        dir.display()
    );
    dir
}

/// Collects a generation's events (text concatenated).
pub async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<local_runtime::GenerateEvent>,
) -> (String, Vec<local_runtime::GenerateEvent>) {
    let mut text = String::new();
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let local_runtime::GenerateEvent::Text(t) = &ev {
            text.push_str(t);
        }
        events.push(ev);
    }
    (text, events)
}
