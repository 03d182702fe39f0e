//! A mock upstream plus a Switchyard gateway wired to it, both in-process.
//!
//! Routing scheme of [`Stack::start`] (first match wins, as in the gateway):
//!
//! | provider          | kind      | timeout | models                         |
//! |-------------------|-----------|---------|--------------------------------|
//! | `short-openai`    | openai    | 500 ms  | `short-*`                      |
//! | `short-anthropic` | anthropic | 500 ms  | `claude-short-*`               |
//! | `mock-openai`     | openai    | 10 s    | `gpt-4o-mini`, `gpt-*`, `mock-*` |
//! | `mock-anthropic`  | anthropic | 10 s    | `claude-echo`, `claude-*`      |
//!
//! So every mock trigger (see [`crate::mock`]) reaches both upstream dialects:
//! `mock-429` → OpenAI upstream, `claude-mock-429` → Anthropic upstream, and
//! `short-mock-hang` / `claude-short-mock-hang` hit a short provider timeout.
//! The exact names `gpt-4o-mini` and `claude-echo` are what `GET /v1/models` can list.
//! `max_body_bytes` is 1 MiB unless [`StackOptions`] says otherwise.

use std::net::SocketAddr;

use switchyard::server::RunningServer;

use crate::client::{http_client, Dialect};
use crate::mock::{MockConfig, MockUpstream, Recorded};

pub const OPENAI_PROVIDER_KEY: &str = "sk-test";
pub const ANTHROPIC_PROVIDER_KEY: &str = "sk-ant-test";

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub max_body_bytes: usize,
    /// Timeout of the two `short-*` providers.
    pub short_timeout_ms: u64,
    /// Timeout of the two main providers.
    pub timeout_ms: u64,
    /// Record upstream requests (off for load tests).
    pub record: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            max_body_bytes: 1024 * 1024,
            short_timeout_ms: 500,
            timeout_ms: 10_000,
            record: true,
        }
    }
}

/// The gateway config YAML for a mock upstream at `mock_addr`.
pub fn gateway_yaml(mock_addr: SocketAddr, opts: &StackOptions) -> String {
    let StackOptions {
        max_body_bytes,
        short_timeout_ms,
        timeout_ms,
        ..
    } = opts;
    let db = temp_db_url();
    // No retries and no circuit breaking here: these tests pin the error mapping of a
    // single upstream call; tests/resilience.rs covers retries and breakers.
    format!(
        r#"listen: "127.0.0.1:0"
max_body_bytes: {max_body_bytes}
circuit_breaker: {{ failure_threshold: 1000000 }}
accounting: {{ database_url: "{db}", flush_interval_ms: 100 }}
providers:
  - name: short-openai
    kind: openai
    base_url: "http://{mock_addr}/v1"
    api_key: "{OPENAI_PROVIDER_KEY}"
    timeout_ms: {short_timeout_ms}
    max_retries: 0
    models: ["short-*"]
  - name: short-anthropic
    kind: anthropic
    base_url: "http://{mock_addr}"
    api_key: "{ANTHROPIC_PROVIDER_KEY}"
    timeout_ms: {short_timeout_ms}
    max_retries: 0
    models: ["claude-short-*"]
  - name: mock-openai
    kind: openai
    base_url: "http://{mock_addr}/v1"
    api_key: "{OPENAI_PROVIDER_KEY}"
    timeout_ms: {timeout_ms}
    max_retries: 0
    models: ["gpt-4o-mini", "gpt-*", "mock-*"]
  - name: mock-anthropic
    kind: anthropic
    base_url: "http://{mock_addr}"
    api_key: "{ANTHROPIC_PROVIDER_KEY}"
    timeout_ms: {timeout_ms}
    max_retries: 0
    models: ["claude-echo", "claude-*"]
"#
    )
}

/// Starts a gateway from a YAML config (listen should be `127.0.0.1:0`).
pub async fn start_gateway(yaml: &str) -> anyhow::Result<RunningServer> {
    let cfg = switchyard::config::Config::from_yaml_str(yaml)?;
    switchyard::server::spawn(cfg).await
}

/// A running mock upstream and gateway.
pub struct Stack {
    pub mock: MockUpstream,
    pub gateway: Option<RunningServer>,
    /// The gateway's bound address.
    pub addr: SocketAddr,
    /// A keep-alive client for tests.
    pub client: reqwest::Client,
    pub yaml: String,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(opts: StackOptions) -> Stack {
        let mock = MockUpstream::start_with(MockConfig {
            openai_key: OPENAI_PROVIDER_KEY.into(),
            anthropic_key: ANTHROPIC_PROVIDER_KEY.into(),
            record: opts.record,
            ..MockConfig::default()
        })
        .await;
        let yaml = gateway_yaml(mock.addr, &opts);
        let gateway = start_gateway(&yaml)
            .await
            .unwrap_or_else(|e| panic!("gateway failed to start: {e:#}\nconfig:\n{yaml}"));
        Stack {
            addr: gateway.addr,
            gateway: Some(gateway),
            mock,
            client: http_client(),
            yaml,
        }
    }

    /// `http://GATEWAY` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The chat endpoint of a dialect on the gateway.
    pub fn chat_url(&self, dialect: Dialect) -> String {
        self.url(dialect.path())
    }

    /// What an OpenAI SDK's `base_url` would be: `http://GATEWAY/v1`.
    pub fn openai_base_url(&self) -> String {
        self.url("/v1")
    }

    /// What an Anthropic SDK's `base_url` would be: `http://GATEWAY`.
    pub fn anthropic_base_url(&self) -> String {
        self.url("")
    }

    /// Requests the mock upstream received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.mock.requests()
    }

    /// The single request the upstream received (panics if there is not exactly one).
    pub fn only_request(&self) -> Recorded {
        let reqs = self.requests();
        assert_eq!(
            reqs.len(),
            1,
            "expected exactly one upstream request, got {}: {:#?}",
            reqs.len(),
            reqs.iter().map(|r| (&r.path, &r.body)).collect::<Vec<_>>()
        );
        reqs.into_iter().next().unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(gw) = self.gateway.take() {
            gw.shutdown().await;
        }
    }
}

/// A fresh SQLite ledger per gateway, so tests never share (or leave behind) state.
pub fn temp_db_url() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join("switchyard-it");
    let _ = std::fs::create_dir_all(&dir);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "sqlite:{}",
        dir.join(format!("ledger-{}-{n}.db", std::process::id()))
            .display()
    )
}

/// Rate limits count per UTC minute; a test that counts requests against one waits here
/// first so its burst cannot straddle a minute boundary.
pub async fn clear_of_minute_boundary() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let into = ms % 60_000;
    if into > 50_000 {
        tokio::time::sleep(std::time::Duration::from_millis(60_000 - into + 200)).await;
    }
}
