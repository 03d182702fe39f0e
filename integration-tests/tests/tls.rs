//! The optional HTTPS listener: a self-signed certificate made here (rcgen), trusted by
//! the test's client, serves `/healthz` and a chat completion through the mock; bad or
//! missing files stop the start with an error that names the file.

use std::path::{Path, PathBuf};

use serde_json::json;
use switchyard_it::client::{with_sdk_headers, Dialect};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

struct Certs {
    dir: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    cert_pem: String,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certs(tag: &str) -> Certs {
    let dir = std::env::temp_dir().join(format!("switchyard-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = generated.cert.pem();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, generated.signing_key.serialize_pem()).unwrap();
    Certs {
        dir,
        cert_file,
        key_file,
        cert_pem,
    }
}

fn yaml(mock: &MockUpstream, cert: &Path, key: &Path) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
tls: {{ cert_file: {:?}, key_file: {:?} }}
accounting: {{ database_url: "{}" }}
providers:
  - name: mock
    kind: openai
    base_url: "{}"
    api_key: sk-test
    models: ["gpt-*"]
"#,
        cert.display().to_string(),
        key.display().to_string(),
        temp_db_url(),
        mock.openai_base_url()
    )
}

#[tokio::test]
async fn https_serves_health_and_chat_with_a_trusted_certificate() {
    let mock = MockUpstream::start().await;
    let certs = certs("ok");
    let gw = start_gateway(&yaml(&mock, &certs.cert_file, &certs.key_file))
        .await
        .unwrap();
    let port = gw.addr.port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certs.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();

    for host in ["localhost", "127.0.0.1"] {
        let r = client
            .get(format!("https://{host}:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = with_sdk_headers(
        client.post(format!("https://localhost:{port}/v1/chat/completions")),
        Dialect::OpenAi,
    )
    .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "over tls"}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: over tls");
    assert_eq!(mock.requests().len(), 1);

    // A client that does not trust the certificate gets no answer; plain HTTP neither.
    let untrusting = reqwest::Client::new();
    assert!(untrusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err());
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));

    // Still serving after the failed handshakes; then a graceful shutdown.
    let r = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.shutdown().await;
    assert!(
        client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file() {
    let mock = MockUpstream::start().await;
    let certs = certs("bad");
    let missing = certs.dir.join("missing-cert.pem");
    let err = start_gateway(&yaml(&mock, &missing, &certs.key_file))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("missing-cert.pem"), "{err}");

    let garbage = certs.dir.join("garbage-key.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let err = start_gateway(&yaml(&mock, &certs.cert_file, &garbage))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("garbage-key.pem"), "{err}");

    // A key that does not belong to the certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    let wrong = certs.dir.join("wrong-key.pem");
    std::fs::write(&wrong, other.serialize_pem()).unwrap();
    let err = start_gateway(&yaml(&mock, &certs.cert_file, &wrong))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("wrong-key.pem"), "{err}");
}
