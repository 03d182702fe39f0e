//! End-to-end on the real SmolLM2-135M-Instruct model (needs scripts/setup-models.sh).

mod common;

use local_runtime::{
    model_names, ChatMessage, FinishReason, GenerateEvent, GenerateRequest, LocalModel,
    LocalModelConfig, ModelCatalog, SamplingParams,
};

fn load(max_batch: usize) -> LocalModel {
    load_with(max_batch, |_| {})
}

fn load_with(max_batch: usize, edit: impl FnOnce(&mut LocalModelConfig)) -> LocalModel {
    let rt = common::runtime();
    let mut cfg = LocalModelConfig::new(
        "local/smollm2-135m-instruct",
        common::model_dir(model_names::SMOLLM2_135M),
        ModelCatalog::smollm2_135m(),
    );
    cfg.max_batch = max_batch;
    edit(&mut cfg);
    LocalModel::load(&rt, cfg).expect("load SmolLM2")
}

fn ask(q: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest::new(
        vec![ChatMessage::user(q)],
        SamplingParams::greedy(max_tokens),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_capital_of_france() {
    let m = load(4);
    assert_eq!(m.execution_provider(), "cpu");
    // the default model keeps its GGUF's quantized weights (MatMulNBits), not fp32
    let f = m.format();
    assert_eq!(f.architecture, "llama");
    assert!(f.weights.contains("int4 (from Q4_1)"), "{f:?}");
    assert_eq!(f.gguf_tensor_types.get("Q4_1"), Some(&210), "{f:?}");
    assert_eq!(f.execution_provider, "cpu");
    let msgs = vec![ChatMessage::user("Name the capital of France.")];
    let n = m.count_prompt_tokens(&msgs, &[]).unwrap();
    let (text, events) =
        common::collect(m.generate(ask("Name the capital of France.", 32)).unwrap()).await;
    assert_eq!(text, "The capital of France is Paris.");
    match events.first() {
        Some(GenerateEvent::Started { prompt_tokens, .. }) => {
            assert_eq!(*prompt_tokens as usize, n)
        }
        other => panic!("first event {other:?}"),
    }
    match events.last() {
        Some(GenerateEvent::Done {
            finish,
            prompt_tokens,
            completion_tokens,
            busy_ms,
            ..
        }) => {
            assert_eq!(*finish, FinishReason::Stop);
            assert_eq!(*prompt_tokens as usize, n);
            assert_eq!(*completion_tokens, 8); // 7 text tokens + <|im_end|>
            assert!(*busy_ms > 0.0);
        }
        other => panic!("last event {other:?}"),
    }
    let s = m.stats();
    assert_eq!(s.sequences_completed, 1);
    assert_eq!(s.tokens_generated, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_string_and_max_tokens() {
    let m = load(4);
    let mut req = ask("Name the capital of France.", 32);
    req.params.stop = vec![" Paris".into()];
    let (text, events) = common::collect(m.generate(req).unwrap()).await;
    assert_eq!(text, "The capital of France is");
    assert!(matches!(
        events.last(),
        Some(GenerateEvent::Done {
            finish: FinishReason::Stop,
            ..
        })
    ));

    let (text, events) =
        common::collect(m.generate(ask("Name the capital of France.", 3)).unwrap()).await;
    assert_eq!(text, "The capital of");
    assert!(matches!(
        events.last(),
        Some(GenerateEvent::Done {
            finish: FinishReason::Length,
            completion_tokens: 3,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_match_solo_answers() {
    let questions = [
        "Name the capital of France.",
        "What is 2 + 2?",
        "Name a color of the sky.",
        "Say hello in Spanish.",
        "What is the capital of Italy?",
        "Who wrote Hamlet?",
    ];
    let m = load(8);
    let mut solo = Vec::new();
    for q in questions {
        solo.push(common::collect(m.generate(ask(q, 24)).unwrap()).await.0);
    }
    assert_eq!(m.stats().max_batch_seen, 1);
    let rxs: Vec<_> = questions
        .iter()
        .map(|q| m.generate(ask(q, 24)).unwrap())
        .collect();
    let mut handles = Vec::new();
    for rx in rxs {
        handles.push(tokio::spawn(common::collect(rx)));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let (text, _) = h.await.unwrap();
        assert_eq!(
            text, solo[i],
            "answer to {:?} differs when batched",
            questions[i]
        );
    }
    let s = m.stats();
    assert!(s.max_batch_seen > 1, "no batching happened: {s:?}");
    assert_eq!(s.sequences_completed, 2 * questions.len() as u64);
    assert_eq!(s.queue_depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_sampling_is_reproducible() {
    let m = load(4);
    let req = || GenerateRequest {
        messages: vec![ChatMessage::user("Write a short poem about the sea.")],
        params: SamplingParams {
            max_tokens: Some(16),
            temperature: 0.8,
            top_p: 0.9,
            top_k: Some(40),
            repetition_penalty: 1.1,
            seed: Some(42),
            stop: vec![],
        },
        ..GenerateRequest::new(Vec::new(), SamplingParams::default())
    };
    let a = common::collect(m.generate(req()).unwrap()).await.0;
    let b = common::collect(m.generate(req()).unwrap()).await.0;
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_system_prompt_is_not_prefilled_again() {
    let system = "You are the support assistant of Acme Corp. Answer in one short, polite \
                  sentence, and never invent order numbers, prices or delivery dates.";
    let ask_with = |q: &str| {
        GenerateRequest::new(
            vec![ChatMessage::system(system), ChatMessage::user(q)],
            SamplingParams::greedy(16),
        )
    };
    let m = load(4);
    common::collect(m.generate(ask_with("Where is my order?")).unwrap()).await;
    assert_eq!(m.stats().prefix_hits, 0);
    let second = common::collect(m.generate(ask_with("Can I return a kettle?")).unwrap())
        .await
        .0;
    let s = m.stats();
    assert_eq!(s.prefix_hits, 1, "{s:?}");
    // everything up to the user turn is shared (the count includes the 3-4 tokens of the
    // assistant header that a prompt ending with the system turn gets)
    let shared = m
        .count_prompt_tokens(&[ChatMessage::system(system)], &[])
        .unwrap();
    assert!(
        s.prefix_tokens_reused as usize >= shared.saturating_sub(5) && shared > 30,
        "reused {} of a {shared}-token system turn",
        s.prefix_tokens_reused
    );
    // and the answer is the one a full prefill gives
    let no_reuse = load_with(4, |c| c.prefix_cache_tokens = 0);
    let fresh = common::collect(
        no_reuse
            .generate(ask_with("Can I return a kettle?"))
            .unwrap(),
    )
    .await
    .0;
    assert_eq!(second, fresh);
    assert_eq!(no_reuse.stats().prefix_hits, 0);
}
