//! The in-process local model (SmolLM2-135M on ONNX Runtime) served through the gateway:
//! both dialects, streaming or not, batching of concurrent requests, clean errors, the
//! official SDKs. Needs the model cache from `scripts/setup-models.sh` (CI runs it
//! first); without it these tests FAIL with that instruction rather than skipping.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_it::client::{http_client, post_json, post_sse, Dialect};
use switchyard_it::harness::start_gateway;

const MODEL: &str = "local/smollm2-135m-instruct";
const ANSWER: &str = "The capital of France is Paris.";

fn model_dir() -> PathBuf {
    let dir = local_runtime::default_model_dir("smollm2-135m-instruct");
    assert!(
        dir.join("model.onnx").exists(),
        "{} is missing: run scripts/setup-models.sh first",
        dir.display()
    );
    dir
}

fn gateway_yaml() -> String {
    let db = switchyard_it::harness::temp_db_url();
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}" }}
local_models:
  - name: {MODEL}
    dir: {:?}
    max_batch: 8
    max_queue: 4
    max_context: 1024
    catalog: {{ family: SmolLM2, parameters: 135M, license: Apache-2.0, commercial_use: true }}
"#,
        model_dir().display().to_string()
    )
}

fn question(dialect: Dialect, extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "temperature": 0,
        "messages": [{"role": "user", "content": "Name the capital of France."}]});
    if dialect == Dialect::Anthropic {
        body["max_tokens"] = json!(64);
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_model_answers_in_both_dialects_batches_and_fails_cleanly() {
    let gw = start_gateway(&gateway_yaml())
        .await
        .expect("gateway with a local model starts");
    let client = http_client();
    let url = |d: Dialect| format!("http://{}{}", gw.addr, d.path());

    // Non-streaming, both dialects: the greedy answer, usage from the model's tokenizer.
    let r = post_json(
        &client,
        &url(Dialect::OpenAi),
        Dialect::OpenAi,
        &question(Dialect::OpenAi, json!({})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.json["usage"]["completion_tokens"], 8);
    let r = post_json(
        &client,
        &url(Dialect::Anthropic),
        Dialect::Anthropic,
        &question(Dialect::Anthropic, json!({})),
    )
    .await;
    assert_eq!(r.json["content"][0]["text"], ANSWER, "{}", r.text);
    assert_eq!(r.json["stop_reason"], "end_turn");

    // Streaming, both dialects.
    let s = post_sse(
        &client,
        &url(Dialect::OpenAi),
        Dialect::OpenAi,
        &question(Dialect::OpenAi, json!({"stream": true})),
    )
    .await;
    assert_eq!(s.openai_text(), ANSWER);
    assert!(s.has_done());
    let s = post_sse(
        &client,
        &url(Dialect::Anthropic),
        Dialect::Anthropic,
        &question(Dialect::Anthropic, json!({"stream": true})),
    )
    .await;
    assert_eq!(s.anthropic_text(), ANSWER);

    // max_tokens → length / max_tokens.
    let r = post_json(
        &client,
        &url(Dialect::Anthropic),
        Dialect::Anthropic,
        &question(Dialect::Anthropic, json!({"max_tokens": 2})),
    )
    .await;
    assert_eq!(r.json["stop_reason"], "max_tokens", "{}", r.text);
    assert_eq!(r.json["usage"]["output_tokens"], 2);

    // Concurrent requests share decode steps and each gets its own correct answer.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let client = client.clone();
        let url = url(Dialect::OpenAi);
        tasks.push(tokio::spawn(async move {
            let body = if i % 2 == 0 {
                question(Dialect::OpenAi, json!({}))
            } else {
                json!({"model": MODEL, "temperature": 0, "max_tokens": 12,
                       "messages": [{"role": "user", "content": "What is 2 + 2?"}]})
            };
            post_json(&client, &url, Dialect::OpenAi, &body).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        answers.push(
            r.json["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(answers[0], ANSWER);
    assert_eq!(answers[2], ANSWER);
    assert_eq!(answers[1], answers[3], "same prompt, same greedy answer");
    let ready: Value = client
        .get(format!("http://{}/readyz", gw.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let batch = ready["local_models"][0]["max_batch_seen"].as_u64().unwrap();
    assert!(batch > 1, "concurrent requests were not batched: {ready}");
    // How the model is stored and run: architecture, kept-quantized weights, context.
    let format = &ready["local_models"][0]["format"];
    assert_eq!(format["architecture"], "llama", "{ready}");
    assert!(
        format["weights"]
            .as_str()
            .is_some_and(|w| w.contains("int4")),
        "{ready}"
    );
    assert!(
        format["max_context"].as_u64().is_some_and(|c| c > 0),
        "{ready}"
    );
    let models: Value = client
        .get(format!("http://{}/v1/models", gw.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"].as_array().is_some_and(|d| d
            .iter()
            .any(|m| m["switchyard"]["format"]["architecture"] == "llama")),
        "{models}"
    );

    // The local runtime's gauges reach /metrics (fed once a second).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = client
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_local_tokens_per_second") && l.contains("smollm2")),
        "local runtime gauges missing"
    );

    // Context overflow: a clear 400 in the client's dialect.
    let long = "word ".repeat(1200);
    let r = post_json(
        &client,
        &url(Dialect::Anthropic),
        Dialect::Anthropic,
        &json!({"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.json["type"], "error");
    assert!(r.text.contains("context"), "{}", r.text);

    // Structured output and forced tool calls through the HTTP API (the SDK tests below
    // cover the client libraries): the answer matches the schema by construction.
    let schema = json!({"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30},
                       "country": {"type": "string", "enum": ["France", "Germany", "Italy"]},
                       "population_millions": {"type": "number"}},
        "required": ["city", "country", "population_millions"], "additionalProperties": false});
    let r = post_json(
        &client,
        &url(Dialect::OpenAi),
        Dialect::OpenAi,
        &question(
            Dialect::OpenAi,
            json!({"max_tokens": 60, "response_format": {"type": "json_schema",
                   "json_schema": {"name": "capital", "schema": schema, "strict": true}}}),
        ),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let answer: Value = serde_json::from_str(
        r.json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", r.text));
    assert!(
        ["France", "Germany", "Italy"].contains(&answer["country"].as_str().unwrap_or("")),
        "{answer}"
    );
    assert!(answer["population_millions"].is_number(), "{answer}");
    assert!(answer["city"].is_string(), "{answer}");

    let tool = json!({"name": "lookup_capital", "description": "The capital of a country",
        "input_schema": {"type": "object", "properties": {"country": {"type": "string", "enum": ["France", "Spain"]}},
                         "required": ["country"], "additionalProperties": false}});
    let body = question(
        Dialect::Anthropic,
        json!({"tools": [tool], "tool_choice": {"type": "tool", "name": "lookup_capital"}}),
    );
    let r = post_json(&client, &url(Dialect::Anthropic), Dialect::Anthropic, &body).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert!(
        r.json["id"].as_str().is_some_and(|i| i.starts_with("msg_")),
        "{}",
        r.text
    );
    assert_eq!(r.json["stop_reason"], "tool_use", "{}", r.text);
    assert_eq!(r.json["content"][0]["type"], "tool_use", "{}", r.text);
    assert_eq!(r.json["content"][0]["name"], "lookup_capital");
    assert!(
        ["France", "Spain"].contains(
            &r.json["content"][0]["input"]["country"]
                .as_str()
                .unwrap_or("")
        ),
        "{}",
        r.text
    );
    // Streaming: the call arrives as a tool_use block with its input as JSON deltas.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let s = post_sse(
        &client,
        &url(Dialect::Anthropic),
        Dialect::Anthropic,
        &sbody,
    )
    .await;
    let events = s.json_events();
    assert!(
        events.iter().any(|e| e["type"] == "content_block_start"
            && e["content_block"]["type"] == "tool_use"
            && e["content_block"]["name"] == "lookup_capital"),
        "{events:?}"
    );
    let partial: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .filter_map(|e| e["delta"]["partial_json"].as_str())
        .collect();
    let input: Value = serde_json::from_str(&partial).unwrap_or_else(|e| panic!("{e}: {partial}"));
    assert!(input["country"].is_string(), "{input}");

    // Bad structured-output requests are a 400 in the client's dialect.
    let r = post_json(
        &client,
        &url(Dialect::OpenAi),
        Dialect::OpenAi,
        &question(
            Dialect::OpenAi,
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n",
                   "schema": {"type": "integer", "minimum": 5, "maximum": 1}}}}),
        ),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("schema")),
        "{}",
        r.text
    );
    let mut body = question(
        Dialect::Anthropic,
        json!({"tools": [tool], "tool_choice": {"type": "tool", "name": "not_a_tool"}}),
    );
    body["stream"] = json!(false);
    let r = post_json(&client, &url(Dialect::Anthropic), Dialect::Anthropic, &body).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.json["type"], "error", "{}", r.text);
    assert!(r.text.contains("not_a_tool"), "{}", r.text);

    // Official SDKs against the local model.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh first",
        python.display()
    );
    let child = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "integration-tests/python_local",
        ])
        .current_dir(&root)
        .env(
            "SWITCHYARD_OPENAI_BASE_URL",
            format!("http://{}/v1", gw.addr),
        )
        .env(
            "SWITCHYARD_ANTHROPIC_BASE_URL",
            format!("http://{}", gw.addr),
        )
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start .venv/bin/python");
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("pytest took more than 300 s")
        .expect("pytest failed to run");
    assert!(
        out.status.success(),
        "pytest failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_model_directory_is_a_clear_startup_error() {
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{}\" }}\nlocal_models:\n  - name: {MODEL}\n    dir: /nonexistent/switchyard-model\n    catalog: {{ family: x, parameters: 1M, license: MIT, commercial_use: true }}\n",
        switchyard_it::harness::temp_db_url()
    );
    let err = match start_gateway(&yaml).await {
        Ok(_) => panic!("a missing model directory must fail start-up"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("/nonexistent/switchyard-model"), "{err}");
    assert!(err.contains("setup-models.sh"), "{err}");
}

/// Shadow evaluation between the in-process model and a frontier API, both ways: the
/// local side is charged its measured compute, the pair is scored with the local
/// sentence encoder, and nothing is stored as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_pairs_compare_local_and_frontier_both_ways() {
    use switchyard::shadow::store::{load, PairFilter};
    let mock = switchyard_it::mock::MockUpstream::start().await;
    let dir = std::env::temp_dir().join(format!("switchyard-local-shadow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("policy dir");
    std::fs::write(
        dir.join("policy.yaml"),
        format!(
            "version: 1\ntargets:\n  local: {{ model: {MODEL} }}\n  frontier: {{ model: gpt-4o-mini }}\nrules:\n  - id: hard\n    when: {{ team: hard }}\n    route: frontier\n    shadow: {{ target: local, sample: 1 }}\ndefault:\n  route: local\n  shadow: {{ target: frontier, sample: 1 }}\n"
        ),
    )
    .expect("policy");
    let base = gateway_yaml();
    let db_url = base
        .split("database_url: \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("db url")
        .to_string();
    let minilm = local_runtime::default_model_dir("all-minilm-l6-v2");
    let yaml = format!(
        "{base}embedding_model: {{ name: local/all-minilm-l6-v2, dir: {:?} }}\npolicy_dir: {:?}\nproviders:\n  - name: mock-openai\n    kind: openai\n    base_url: \"http://{}/v1\"\n    api_key: \"{}\"\n    models: [\"gpt-*\"]\n",
        minilm.display().to_string(),
        dir.display().to_string(),
        mock.addr,
        switchyard_it::harness::OPENAI_PROVIDER_KEY,
    );
    let gw = start_gateway(&yaml).await.expect("gateway starts");
    let client = http_client();
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let r = post_json(
        &client,
        &url,
        Dialect::OpenAi,
        &question(Dialect::OpenAi, json!({})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["message"]["content"], ANSWER);
    let r = client
        .post(&url)
        .header("x-switchyard-team", "hard")
        .json(&question(Dialect::OpenAi, json!({})))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);

    let db = switchyard::store::Db::connect(&db_url).await.expect("db");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pairs = loop {
        let pairs = load(&db, &PairFilter::default()).await.expect("pairs");
        if pairs.len() >= 2 || std::time::Instant::now() > deadline {
            break pairs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pairs.len(), 2, "{pairs:#?}");
    for p in &pairs {
        assert_eq!(p.shadow_status, 200, "{p:#?}");
        // The external side is the reference; the local side is the candidate.
        let (weak, strong) = (p.weak(), p.strong());
        assert_eq!(weak.model, MODEL, "{p:#?}");
        assert_eq!(strong.model, "gpt-4o-mini");
        assert!(weak.cost_micros > 0, "local compute is charged: {p:#?}");
        assert!(
            p.embedding.is_some(),
            "scored with the local encoder: {p:#?}"
        );
        assert!(p.quality.is_some_and(|q| (0.0..=1.0).contains(&q)));
        assert!(p.prompt_text.is_none());
    }
    let local_primary = pairs
        .iter()
        .find(|p| p.rule == "default")
        .expect("default pair");
    assert_eq!(local_primary.primary.model, MODEL);
    let frontier_primary = pairs.iter().find(|p| p.rule == "hard").expect("hard pair");
    assert_eq!(frontier_primary.shadow.model, MODEL);
    db.close().await;
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
