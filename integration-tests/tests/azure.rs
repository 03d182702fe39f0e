//! Azure OpenAI as a backend: model names mapped to deployments, the `api-version`
//! query, the key as `api-key` (or an Entra ID token as a bearer), streaming, and a
//! clear start-up error for a provider without its resource endpoint.

use serde_json::{json, Value};
use switchyard_it::client::{http_client, into_json, CLIENT_KEY};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::{MockConfig, MockUpstream};

const KEY: &str = "azure-key-123";

fn yaml(mock: &MockUpstream, auth: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
providers:
  - name: azure
    kind: azure_openai
    base_url: "http://{addr}"
    api_key: "{KEY}"
    max_retries: 0
    azure:
      api_version: "2024-10-21"
      auth: {auth}
      deployments: {{ gpt-4o: prod-gpt4o, gpt-4o-mini: "mini deployment" }}
"#,
        db = temp_db_url(),
        addr = mock.addr,
    )
}

async fn mock() -> MockUpstream {
    MockUpstream::start_with(MockConfig {
        openai_key: KEY.into(),
        ..MockConfig::default()
    })
    .await
}

async fn chat(addr: std::net::SocketAddr, model: &str, stream: bool) -> (u16, String) {
    let r = http_client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello azure"}]}))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

#[tokio::test]
async fn deployments_api_version_and_api_key_header() {
    let mock = mock().await;
    let gw = start_gateway(&yaml(&mock, "api_key"))
        .await
        .expect("gateway");
    let (status, text) = chat(gw.addr, "gpt-4o", false).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello azure");
    let reqs = mock.requests();
    let sent = &reqs[0];
    assert_eq!(sent.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    let header = |name: &str| {
        sent.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("api-key").as_deref(), Some(KEY));
    assert_eq!(
        header("authorization"),
        None,
        "the key goes as api-key only"
    );

    // A deployment name with a space is percent-encoded; streams work the same way.
    let (status, text) = chat(gw.addr, "gpt-4o-mini", true).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("azure") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );
    assert_eq!(
        mock.requests()[1].path,
        "/openai/deployments/mini%20deployment/chat/completions"
    );

    // Models not in `deployments` are not served by this provider (no `models:` list).
    let (status, _) = chat(gw.addr, "gpt-3.5-turbo", false).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn entra_tokens_go_as_bearer() {
    let mock = mock().await;
    let gw = start_gateway(&yaml(&mock, "entra")).await.expect("gateway");
    let (status, text) = chat(gw.addr, "gpt-4o", false).await;
    assert_eq!(status, 200, "{text}");
    let sent = &mock.requests()[0];
    let header = |name: &str| {
        sent.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(header("api-key"), None);
}

#[tokio::test]
async fn azure_errors_reach_the_client_in_its_dialect() {
    let mock = MockUpstream::start_with(MockConfig {
        openai_key: "another-key".into(),
        ..MockConfig::default()
    })
    .await;
    let gw = start_gateway(&yaml(&mock, "api_key"))
        .await
        .expect("gateway");
    let r = http_client()
        .post(format!("http://{}/v1/messages", gw.addr))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("send");
    let r = into_json(r).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    assert_eq!(r.json["type"], "error", "Anthropic-shaped: {}", r.text);
    assert!(
        !r.text.contains("another-key") && !r.text.contains(KEY),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_provider_without_its_resource_endpoint_does_not_start() {
    let cfg = r#"listen: "127.0.0.1:0"
providers:
  - name: azure
    kind: azure_openai
    api_key: "k"
"#;
    let err = start_gateway(cfg).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("azure_openai needs base_url"),
        "{err:#}"
    );
    let cfg = r#"listen: "127.0.0.1:0"
providers:
  - name: o
    kind: openai
    azure: { api_version: "2024-10-21" }
"#;
    let err = start_gateway(cfg).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("applies to kind azure_openai only"),
        "{err:#}"
    );
}

fn entra_yaml(mock: &MockUpstream, secret_var: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
providers:
  - name: azure
    kind: azure_openai
    base_url: "http://{addr}"
    max_retries: 0
    azure:
      auth: entra
      deployments: {{ gpt-4o: prod-gpt4o }}
      entra:
        tenant_id: contoso-tenant
        client_id: switchyard-test-app
        client_secret_env: {secret_var}
        authority: "http://{addr}"
"#,
        db = temp_db_url(),
        addr = mock.addr,
    )
}

#[tokio::test]
async fn an_entra_application_fetches_its_own_tokens_and_reuses_them() {
    let mock = mock().await;
    std::env::set_var("SWITCHYARD_TEST_ENTRA_SECRET", "entra-test-secret");
    let gw = start_gateway(&entra_yaml(&mock, "SWITCHYARD_TEST_ENTRA_SECRET"))
        .await
        .expect("gateway");
    for stream in [false, true, false] {
        let (status, text) = chat(gw.addr, "gpt-4o", stream).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("azure"), "{text}");
    }
    let tokens = mock.requests_to("/contoso-tenant/oauth2/v2.0/token");
    assert_eq!(tokens.len(), 1, "one token for every call until it is due");
    let form = String::from_utf8_lossy(&tokens[0].raw_body).into_owned();
    for field in [
        "grant_type=client_credentials",
        "client_id=switchyard-test-app",
        "scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default",
    ] {
        assert!(form.contains(field), "{form}");
    }
    let calls = mock.requests_to("/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(calls.len(), 3);
    for c in &calls {
        let bearer = c.header("authorization").expect("a bearer token");
        assert!(
            bearer.starts_with("Bearer eyJ0eXAiOiJKV1QifQ.mock-"),
            "{bearer}"
        );
        assert!(c.header("api-key").is_none());
        assert!(!bearer.contains("entra-test-secret"));
    }
    gw.shutdown().await;

    // A wrong secret: Entra's refusal is a 502 naming the application and the AADSTS
    // reason, and no call reaches the deployment.
    mock.clear();
    std::env::set_var("SWITCHYARD_TEST_ENTRA_WRONG", "not-the-secret");
    let gw = start_gateway(&entra_yaml(&mock, "SWITCHYARD_TEST_ENTRA_WRONG"))
        .await
        .expect("gateway");
    let (status, text) = chat(gw.addr, "gpt-4o", false).await;
    assert_eq!(status, 502, "{text}");
    assert!(
        text.contains("switchyard-test-app") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.path.ends_with("/oauth2/v2.0/token")));
    gw.shutdown().await;

    // Without the secret in the environment the gateway does not start.
    let err = start_gateway(&entra_yaml(&mock, "SWITCHYARD_TEST_ENTRA_UNSET"))
        .await
        .err()
        .expect("no secret, no start");
    assert!(
        format!("{err:#}").contains("SWITCHYARD_TEST_ENTRA_UNSET"),
        "{err:#}"
    );
}
