//! Error paths (tiny model; the missing-directory test needs nothing).

mod common;

use std::time::Duration;

use local_runtime::{
    model_names, ChatMessage, GenerateEvent, GenerateRequest, LocalModel, LocalModelConfig,
    ModelCatalog, RuntimeConfig, RuntimeError, SamplingParams,
};

fn tiny(max_batch: usize, max_queue: usize, max_context: usize) -> LocalModel {
    let rt = common::runtime();
    let mut cfg = LocalModelConfig::new(
        "local/tiny",
        common::model_dir(model_names::TINY_LLAMA),
        ModelCatalog::smollm2_135m(),
    );
    cfg.max_batch = max_batch;
    cfg.max_queue = max_queue;
    cfg.max_context = max_context;
    cfg.intra_op_threads = Some(1);
    LocalModel::load(&rt, cfg).expect("load tiny model")
}

fn req(max_tokens: u32) -> GenerateRequest {
    GenerateRequest::new(
        vec![ChatMessage::user("hello")],
        SamplingParams::greedy(max_tokens),
    )
}

#[test]
fn missing_model_dir_names_path_and_setup_command() {
    let dir = std::env::temp_dir().join("switchyard-no-such-model-dir");
    let cfg = LocalModelConfig::new("local/x", &dir, ModelCatalog::smollm2_135m());
    let err = LocalModel::load(&RuntimeConfig::default(), cfg).unwrap_err();
    assert!(matches!(err, RuntimeError::ModelNotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains("scripts/setup-models.sh"), "{msg}");
}

#[test]
fn missing_ort_library_is_an_error_not_a_panic() {
    // Only meaningful before the library is loaded in this process: a fresh test binary.
    let rt = RuntimeConfig {
        ort_library: Some("/nonexistent/libonnxruntime.so".into()),
    };
    let cfg = LocalModelConfig::new(
        "local/tiny",
        common::model_dir(model_names::TINY_LLAMA),
        ModelCatalog::smollm2_135m(),
    );
    match LocalModel::load(&rt, cfg) {
        Err(RuntimeError::LibraryLoad { path, .. }) => assert!(path.ends_with("libonnxruntime.so")),
        Ok(_) => {} // another test in this binary loaded the real library first
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn context_overflow_is_rejected_up_front() {
    let m = tiny(2, 4, 64);
    let prompt = m.count_prompt_tokens(&req(1).messages, &[]).unwrap();
    let err = m.generate(req((64 - prompt + 1) as u32)).unwrap_err();
    match err {
        RuntimeError::ContextOverflow {
            prompt_tokens,
            max_context,
            ..
        } => {
            assert_eq!(prompt_tokens, prompt);
            assert_eq!(max_context, 64);
        }
        e => panic!("expected ContextOverflow, got {e}"),
    }
    // exactly at the limit is fine and stops with Length at the limit
    let (_, ev) = common::collect(m.generate(req((64 - prompt) as u32)).unwrap()).await;
    assert!(
        matches!(ev.last(), Some(GenerateEvent::Done { .. })),
        "{ev:?}"
    );
    let long = "word ".repeat(100);
    let err = m
        .generate(GenerateRequest::new(
            vec![ChatMessage::user(long)],
            SamplingParams::greedy(1),
        ))
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ContextOverflow { .. }));
}

#[tokio::test]
async fn queue_full_applies_back_pressure_and_cancel_frees_slot() {
    let m = tiny(1, 1, 2048);
    let mut held = Vec::new();
    let mut full = None;
    for _ in 0..4 {
        match m.generate(req(1900)) {
            Ok(rx) => held.push(rx),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(full, Some(RuntimeError::QueueFull { max_queue: 1 })),
        "expected QueueFull, got {full:?}"
    );
    assert!(held.len() <= 2);
    // dropping the receivers cancels both sequences; the model becomes free again
    drop(held);
    let mut ok = None;
    for _ in 0..200 {
        if let Ok(rx) = m.generate(req(4)) {
            ok = Some(rx);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, ev) = common::collect(ok.expect("queue never drained after cancellation")).await;
    assert!(matches!(ev.last(), Some(GenerateEvent::Done { .. })));
    assert!(m.stats().sequences_cancelled >= 1);
}

#[tokio::test]
async fn invalid_params_are_rejected() {
    let m = tiny(1, 1, 256);
    let mut r = req(4);
    r.params.temperature = -1.0;
    assert!(matches!(
        m.generate(r).unwrap_err(),
        RuntimeError::InvalidRequest(_)
    ));
    let mut r = req(4);
    r.params.top_p = 0.0;
    assert!(matches!(
        m.generate(r).unwrap_err(),
        RuntimeError::InvalidRequest(_)
    ));
    assert!(matches!(
        m.generate(req(0)).unwrap_err(),
        RuntimeError::InvalidRequest(_)
    ));
}

#[test]
fn configs_deserialize_from_yaml() {
    let yaml = r#"
name: local/smollm2-135m-instruct
dir: models/smollm2-135m-instruct
execution_providers: [cuda, cpu]
max_batch: 16
catalog:
  family: SmolLM2
  parameters: 135M
  license: Apache-2.0
  commercial_use: true
"#;
    let cfg: LocalModelConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(cfg.max_batch, 16);
    assert_eq!(cfg.max_queue, 64);
    assert_eq!(cfg.catalog.use_limits, None);
    let rt: RuntimeConfig =
        serde_yaml_ng::from_str("ort_library: /opt/ort/lib/libonnxruntime.so").unwrap();
    assert!(rt.ort_library.is_some());
}

#[tokio::test]
async fn shutdown_joins_the_scheduler_and_later_requests_are_refused() {
    let model = tiny(2, 4, 256);
    let mut rx = model.generate(req(4)).expect("accepted before shutdown");
    while let Some(ev) = rx.recv().await {
        if matches!(ev, GenerateEvent::Done { .. } | GenerateEvent::Error(_)) {
            break;
        }
    }
    let clone = model.clone();
    tokio::task::spawn_blocking(move || clone.shutdown())
        .await
        .unwrap();
    assert!(matches!(model.generate(req(4)), Err(RuntimeError::Stopped)));
    // Idempotent.
    model.shutdown();
}
