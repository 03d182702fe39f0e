//! The opt-in semantic cache through the HTTP API: a paraphrase of an earlier request of
//! the same tenant is answered from the cache (MiniLM embeddings in-process); another
//! tenant, or a request with sensitive findings, is not.

use serde_json::json;
use switchyard_it::client::{http_client, into_json, JsonResponse};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrases_hit_within_a_tenant_only() {
    let minilm = local_runtime::default_model_dir("all-minilm-l6-v2");
    assert!(
        minilm.join("model.onnx").exists(),
        "{} is missing: run scripts/setup-models.sh first",
        minilm.display()
    );
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}" }}
embedding_model: {{ name: local/all-minilm-l6-v2, dir: {dir:?} }}
cache: {{ default_ttl_s: 60, semantic: {{ enabled: true, min_similarity: 0.9 }} }}
providers:
  - name: mock
    kind: openai
    base_url: "{base}"
    api_key: sk-test
    models: ["gpt-4o-mini"]
"#,
        db = temp_db_url(),
        dir = minilm.display().to_string(),
        base = mock.openai_base_url()
    );
    let gw = start_gateway(&yaml).await.unwrap();
    let client = http_client();
    let ask = |team: &'static str, text: &'static str| {
        let client = client.clone();
        let url = format!("http://{}/v1/chat/completions", gw.addr);
        async move {
            let body = json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}]});
            let r: JsonResponse = into_json(
                client
                    .post(url)
                    .header("x-switchyard-team", team)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.text);
            r
        }
    };
    let first = ask("alpha", "What is the capital city of France?").await;
    assert!(first.header("x-switchyard-cache").is_none());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let para = ask("alpha", "What's the capital city of France?").await;
    assert_eq!(
        para.header("x-switchyard-cache"),
        Some("semantic-hit"),
        "{:?}",
        para.headers
    );
    assert_eq!(
        para.json["choices"][0]["message"]["content"],
        first.json["choices"][0]["message"]["content"]
    );
    assert_eq!(mock.requests().len(), 1);

    // Another tenant, or an unrelated question: a real call.
    let other = ask("beta", "What's the capital city of France?").await;
    assert!(other.header("x-switchyard-cache").is_none());
    let unrelated = ask("alpha", "Write a haiku about autumn leaves").await;
    assert!(unrelated.header("x-switchyard-cache").is_none());
    assert_eq!(mock.requests().len(), 3);
    gw.shutdown().await;
}
