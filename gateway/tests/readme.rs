//! The README's first hour, as a newcomer follows it: command 1's environment (both
//! frontier providers, pointed at the recording mock instead of the real APIs), the
//! start-up lines it promises, and every request of "Try it" answered. Reads README.md
//! itself, so an example that stops working — or a command that stops covering a
//! provider — fails here.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard_it::mock::MockUpstream;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md")
}

/// `VAR=value` assignments in front of `./scripts/serve.sh` in the first shell block.
fn command_one_env(readme: &str) -> Vec<(String, String)> {
    let line = readme
        .lines()
        .find(|l| l.contains("./scripts/serve.sh") && l.contains('='))
        .expect("README command 1 runs ./scripts/serve.sh with its environment");
    line.split_whitespace()
        .take_while(|w| *w != "./scripts/serve.sh")
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One README request: path, headers, body.
/// Path, headers, body and method (`-X`, POST when absent) of a README curl command.
type Example = (String, Vec<(String, String)>, String, reqwest::Method);

/// Each `curl ... URL ... -d 'BODY'` of the README, joined over `\` continuations.
fn curl_examples(readme: &str) -> Vec<Example> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in readme.lines() {
        let t = line.trim();
        if current.is_empty() && !t.starts_with("curl ") {
            continue;
        }
        current.push_str(t.trim_end_matches('\\'));
        current.push(' ');
        // A command goes on while its line ends in `\` or a quoted body is still open.
        if !t.ends_with('\\') && current.matches('\'').count() % 2 == 0 {
            joined.push(std::mem::take(&mut current));
        }
    }
    joined
        .into_iter()
        .filter(|c| c.contains(" -d '"))
        .map(|c| {
            let url = c
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:8080"))
                .expect("curl URL")
                .trim_start_matches("http://127.0.0.1:8080")
                .to_string();
            let mut headers = Vec::new();
            let mut rest = c.as_str();
            while let Some(i) = rest.find("-H ") {
                let h = &rest[i + 3..];
                let quote = h.chars().next().expect("quoted header");
                let h = &h[1..];
                let end = h.find(quote).expect("closed header");
                if let Some((k, v)) = h[..end].split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                rest = &h[end..];
            }
            let body_at = c.find(" -d '").expect("body") + 5;
            let body = &c[body_at..];
            let body = body[..body.rfind('\'').expect("closed body")].to_string();
            let method = c
                .split_once(" -X ")
                .and_then(|(_, m)| m.split_whitespace().next())
                .map_or(reqwest::Method::POST, |m| {
                    m.parse().expect("a method after -X")
                });
            (url, headers, body, method)
        })
        .collect()
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_command_one_serves_both_providers_and_every_example() {
    let readme = readme();
    let env = command_one_env(&readme);
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"OPENAI_API_KEY") && names.contains(&"ANTHROPIC_API_KEY"),
        "README command 1 must configure both providers: {names:?}"
    );

    let mock = MockUpstream::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let (gateway, addr, text) = start(&env, &[], &mock, data.path());
    for promised in [
        "dashboard: http://",
        "ledger: sqlite:",
        "policy: built-in",
        "provider openai",
        "provider anthropic",
        "auth: OPEN MODE",
        "metrics: http://",
    ] {
        assert!(
            text.contains(promised),
            "start-up lines lack {promised:?}:\n{text}"
        );
    }
    assert!(
        text.contains(&data.path().display().to_string()),
        "the ledger is in SWITCHYARD_DATA:\n{text}"
    );
    // "Try it": open mode, every example answered by what it names.
    let (open_part, keyed_part) = readme
        .split_once("## Keys, budgets, spend and dashboards")
        .expect("README has the keys section");
    let examples = curl_examples(open_part);
    assert!(examples.len() >= 5, "README's curl examples: {examples:?}");
    let client = reqwest::Client::new();
    for example in &examples {
        let (path, _, body, _) = example;
        let v: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("README body is not JSON ({e}): {body}"));
        let (status, served_by, answer) = send(&client, &addr, example, &[]).await;
        assert_eq!(status, 200, "README example {path} {body}: {answer}");
        if path.ends_with("/chat/completions") || path.ends_with("/messages") {
            let model = v["model"].as_str().unwrap_or_default();
            assert!(served_by.is_some(), "{model}: no x-switchyard-model");
            if model.starts_with("claude-") || model.starts_with("gpt-") {
                assert!(
                    mock.requests().iter().any(|r| r.json()["model"] == model),
                    "{model} did not reach its provider"
                );
            }
        }
    }
    drop(gateway);

    // "Keys": export the token, restart as the README says, create a key, use it.
    let exports: Vec<(String, String)> = keyed_part
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        exports.iter().any(|(k, _)| k == "SWITCHYARD_ADMIN_TOKEN"),
        "the README exports the admin token"
    );
    let (_gateway, addr, text) = start(&env, &exports, &mock, data.path());
    assert!(text.contains("auth: virtual keys required"), "{text}");
    let admin = curl_examples(keyed_part);
    assert!(!admin.is_empty(), "README shows a key being created");
    let mut key = None;
    for example in &admin {
        let (status, _, answer) = send(&client, &addr, example, &exports).await;
        assert!(
            status == 200 || status == 201,
            "README example {}: {status} {answer}",
            example.0
        );
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&answer) {
            key = key.or(v["key"].as_str().map(str::to_string));
        }
    }
    let key = key.expect("a key was created");
    let chat = &examples[0];
    let (status, _, answer) = send(&client, &addr, chat, &[]).await;
    assert_eq!(status, 401, "without a key now: {answer}");
    let keyed = (
        chat.0.clone(),
        [
            chat.1.clone(),
            vec![("authorization".into(), format!("Bearer {key}"))],
        ]
        .concat(),
        chat.2.clone(),
        chat.3.clone(),
    );
    let (status, _, answer) = send(&client, &addr, &keyed, &[]).await;
    assert_eq!(status, 200, "with the key: {answer}");
}

/// Starts `switchyard serve` as command 1 does, with `extra` variables; returns the
/// child, its address and the start-up lines.
fn start(
    env: &[(String, String)],
    extra: &[(String, String)],
    mock: &MockUpstream,
    data: &std::path::Path,
) -> (Gateway, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_POLICY_DIR")
        .env("SWITCHYARD_DATA", data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, _) in env {
        // The README's placeholders stand for real keys; the mock accepts its own.
        let value = match k.as_str() {
            "OPENAI_API_KEY" => "sk-test".to_string(),
            "ANTHROPIC_API_KEY" => "sk-ant-test".to_string(),
            other => panic!("README command 1 sets {other}: teach this test what it means"),
        };
        cmd.env(k, value);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    // Only the base URLs differ from a real run: the APIs are the mock's.
    cmd.env("OPENAI_BASE_URL", mock.openai_base_url())
        .env("ANTHROPIC_BASE_URL", mock.anthropic_base_url());
    let mut child = Gateway(cmd.spawn().expect("spawn switchyard serve"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<String>>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            lines.push(line.trim_end().to_string());
            line.clear();
            if lines.iter().any(|l| l.trim_start().starts_with("metrics:")) {
                break;
            }
        }
        let _ = tx.send(lines);
        let _ = r.read_to_end(&mut Vec::new());
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the gateway printed its start-up lines");
    let text = lines.join("\n");
    let addr = lines[0]
        .strip_prefix("switchyard listening on http://")
        .unwrap_or_else(|| panic!("first line names the URL: {text}"))
        .to_string();
    (child, addr, text)
}

/// Sends one README example; returns its status and whether it went where it says.
async fn send(
    client: &reqwest::Client,
    addr: &str,
    (path, headers, body, method): &Example,
    vars: &[(String, String)],
) -> (u16, Option<String>, String) {
    let mut rb = client
        .request(method.clone(), format!("http://{addr}{path}"))
        .body(body.clone());
    for (k, h) in headers {
        let mut h = h.clone();
        for (var, value) in vars {
            h = h.replace(&format!("${var}"), value);
        }
        rb = rb.header(k, h);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    let served_by = resp
        .headers()
        .get("x-switchyard-model")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    (status, served_by, resp.text().await.unwrap_or_default())
}
