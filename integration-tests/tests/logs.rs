//! Logs never carry prompt content, sensitive values or provider keys, at any level.
//! The gateway runs in-process here so every `tracing` event, down to TRACE and from
//! every crate (hyper, reqwest, the gateway), lands in one captured buffer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use switchyard_it::client::{http_client, post_json, post_sse, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions, OPENAI_PROVIDER_KEY};
use switchyard_it::mock::MockUpstream;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_prompt_text_sensitive_values_or_keys_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let mock = MockUpstream::start().await;
    let dir = std::env::temp_dir().join(format!("sy-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        "version: 1\ntargets:\n  echo: { model: gpt-4o-mini }\n  broken: { model: mock-500 }\n  chain: { chain: [broken, echo] }\nrules:\n  - id: redact\n    when: { sensitivity: { categories: [pii, financial] } }\n    redact: [pii, financial]\n    route: chain\ndefault: { route: requested }\n",
    )
    .unwrap();
    let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
    yaml.push_str(&format!("policy_dir: {:?}\n", dir.display().to_string()));
    let gw = start_gateway(&yaml).await.unwrap();
    let client = http_client();
    let secret_prompt = "zebra-umbrella-quartz";
    let email = "olivia.marchetti@quillmail.net";
    let card = "4539 1488 0343 6467";
    let texts = [
        format!("{secret_prompt}: please mail {email} the card {card}"),
        format!("{secret_prompt} plain question"),
    ];
    for text in &texts {
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let url = format!("http://{}{}", gw.addr, dialect.path());
            let mut body =
                json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
            if dialect == Dialect::Anthropic {
                body["max_tokens"] = json!(32);
            }
            let r = post_json(&client, &url, dialect, &body).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.text);
            body["stream"] = json!(true);
            let s = post_sse(&client, &url, dialect, &body).await;
            assert_eq!(s.status.as_u16(), 200);
            // An upstream failure with the prompt in flight.
            body["model"] = json!("mock-500");
            body["stream"] = json!(false);
            let _ = post_json(&client, &url, dialect, &body).await;
        }
    }
    gw.shutdown().await;
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 1000,
        "logging was captured ({} bytes)",
        logs.len()
    );
    for needle in [
        secret_prompt,
        email,
        card,
        "olivia",
        OPENAI_PROVIDER_KEY,
        "sk-ant-test",
    ] {
        assert!(!logs.contains(needle), "logs contain {needle:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
