//! Headless Chromium over WebDriver for the browser tests (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/setup-browser.sh`). Missing binaries fail the
//! test rather than skip it, so a CI machine without them is noticed.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn browser_binaries() -> (PathBuf, PathBuf) {
    let chrome = std::env::var_os("CHROME_BIN")
        .map(PathBuf::from)
        .or_else(|| find_on_path(&["chromium", "chromium-browser"]));
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find_on_path(&["chromedriver"]));
    match (chrome, driver) {
        (Some(c), Some(d)) => (c, d),
        _ => panic!(
            "chromium and chromedriver are required for this test: run scripts/setup-browser.sh"
        ),
    }
}

/// Kills a child process (chromedriver and the browser it started, a test provider)
/// however the test ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn wait_for_port(port: u16, within: Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on port {port} within {within:?}");
}

/// A browser session; dropping it stops chromedriver and the browser.
pub struct Browser {
    pub client: Client,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

/// Starts chromedriver and a headless Chromium with a `width`×`height` window.
pub async fn start(width: u32, height: u32) -> Browser {
    let (chrome, chromedriver) = browser_binaries();
    let port = free_port();
    let driver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    wait_for_port(port, Duration::from_secs(20)).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    // Console messages kept for `console_errors`.
    caps.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({"browser": "ALL"}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");
    Browser {
        client,
        _driver: driver,
        _profile: profile,
    }
}

/// Where screenshots go: `integration-tests/artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("integration-tests")
        .join("artifacts")
}

/// chromedriver's log endpoint: the browser console's messages since the last read.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type": "browser"}"#.into()))
    }
}

/// The errors the browser console showed since the last call on pages and resources of
/// `origin` (not the identity provider's): script errors, failed loads — except 401 and
/// 403 answers, which sign-in and forbidden pages have on purpose (Chrome logs a page's
/// own status like a failed load).
pub async fn console_errors(c: &Client, origin: &str) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser console log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with(origin))
        .filter(|m| {
            !(m.contains("Failed to load resource")
                && (m.contains("status of 401") || m.contains("status of 403")))
        })
        .map(str::to_owned)
        .collect()
}
