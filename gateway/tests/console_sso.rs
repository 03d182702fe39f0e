//! Console single sign-on through a real OpenID Provider (panva's `oidc-provider` on
//! Node.js, `scripts/setup-oidc.sh`) in a real headless Chromium
//! (`scripts/setup-browser.sh`): sign in with the authorization code flow and PKCE, the
//! group claim mapped to a role, an admin creates a key in the console and the official
//! OpenAI SDK is served with it (and gets 401 once it is revoked), a team budget set on the Teams page refuses the key's next request and
//! clearing it restores service, the Policies page runs the policy's test cases and shows
//! the diff of a reloaded edit, CSRF-less forms are refused, sign-out, a viewer gets the forbidden page, an
//! idle session expires, an account without a mapped group is refused — and each sign-in,
//! refusal, change and sign-out is in the audit trail. Screenshots go to
//! `integration-tests/artifacts/console-*.png`. Missing Node, provider or browser fail the
//! test.

#[path = "support/browser.rs"]
mod browser;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::Value;
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

const SECRET_VAR: &str = "SWITCHYARD_TEST_OIDC_SECRET_CONSOLE";
const SECRET: &str = "console-oidc-client-secret-3e1";
const ADMIN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_CONSOLE";
const ADMIN: &str = "console-admin-token-8b0";
const CLIENT_ID: &str = "switchyard-console";

fn provider_module() -> PathBuf {
    let cache = std::env::var_os("SWITCHYARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/switchyard")
        });
    let module = cache.join("oidc-provider/node_modules/oidc-provider/lib/index.js");
    assert!(
        module.is_file(),
        "oidc-provider is required for this test: run scripts/setup-oidc.sh ({} is missing)",
        module.display()
    );
    module
}

/// Starts the provider; returns it (killed on drop) and its issuer URL.
fn start_provider(redirect_uri: &str) -> (browser::Killed, String) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../integration-tests/oidc/provider.mjs");
    let accounts = serde_json::json!({
        "alice": {"email": "alice@example.com", "groups": ["staff", "platform"]},
        "victor": {"email": "victor@example.com", "groups": ["staff"]},
        "mallory": {"email": "mallory@example.com", "groups": ["contractors"]},
    });
    let mut child = Command::new("node")
        .arg(script)
        .env("OIDC_PROVIDER_MODULE", provider_module())
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", SECRET)
        .env("OIDC_REDIRECT_URI", redirect_uri)
        .env("OIDC_ACCOUNTS", accounts.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs (Node.js is required for this test)");
    let stdout = child.stdout.take().expect("stdout");
    let killed = browser::Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining: a closed pipe would make the provider's next write fail (EPIPE).
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the provider announces its issuer");
    let v: Value = serde_json::from_str(line.trim()).expect("issuer line");
    (killed, v["issuer"].as_str().expect("issuer").to_string())
}

/// Signs in at the provider's own login and consent pages.
async fn sign_in(c: &Client, base: &str, login: &str) -> Result<(), fantoccini::error::CmdError> {
    c.goto(&format!("{base}/console")).await?;
    c.find(Locator::Id("sso")).await?.click().await?;
    c.wait()
        .for_element(Locator::Css("input[name=login]"))
        .await?
        .send_keys(login)
        .await?;
    c.find(Locator::Css("input[name=password]"))
        .await?
        .send_keys("any-password")
        .await?;
    c.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    // The consent page (its form says which prompt it answers), then back to the
    // gateway's callback.
    c.wait()
        .for_element(Locator::Css(
            "form input[name=prompt][value=consent] ~ button",
        ))
        .await?
        .click()
        .await?;
    Ok(())
}

/// The official OpenAI Python SDK (the `.venv` of `scripts/setup-python.sh`) calling the
/// gateway with `key`: `ok:<answer>`, or the SDK's error class and status.
async fn openai_sdk(base: &str, key: &str) -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    const SCRIPT: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0)
try:
    r = client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "Say hi"}])
    print("ok:" + r.choices[0].message.content)
except openai.APIStatusError as e:
    print(f"{type(e).__name__}:{e.status_code}")
"#;
    let out = tokio::process::Command::new(&python)
        .args(["-c", SCRIPT, base, key])
        .output()
        .await
        .expect("run the OpenAI SDK");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Saves the page as `console-NAME.png`, after checking that everything it loaded came
/// from the gateway itself (no CDN, works offline) and loaded without an error status, and
/// that the browser console shows no error.
async fn screenshot(c: &Client, name: &str) {
    let loaded = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus || 0]);",
            vec![],
        )
        .await
        .expect("resource timings");
    let origin = c
        .current_url()
        .await
        .expect("url")
        .origin()
        .ascii_serialization();
    for entry in loaded.as_array().into_iter().flatten() {
        let url = entry[0].as_str().unwrap_or_default();
        let status = entry[1].as_u64().unwrap_or_default();
        assert!(
            url.starts_with(&origin),
            "{name} loads {url} from elsewhere"
        );
        assert!(status < 400, "{name}: {url} answered {status}");
    }
    let errors = browser::console_errors(c, &origin).await;
    assert!(
        errors.is_empty(),
        "{name}: the browser console shows {errors:?}"
    );
    let png = c.screenshot().await.expect("screenshot");
    let dir = browser::artifacts_dir();
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    std::fs::write(dir.join(format!("console-{name}.png")), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_through_a_real_provider() {
    let port = browser::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (_provider, issuer) = start_provider(&format!("{base}/console/callback"));
    std::env::set_var(SECRET_VAR, SECRET);
    std::env::set_var(ADMIN_VAR, ADMIN);
    let mock = MockUpstream::start().await;
    // The built-in policy and its test cases, as files, so the Policies page can run the
    // cases and show the diff of an edit reloaded from the console.
    let policy_dir = tempfile::tempdir().expect("tempdir");
    let policy_file = policy_dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policies::policy::BUILTIN_POLICY_YAML).expect("write policy");
    std::fs::write(
        policy_dir.path().join("policy.test.yaml"),
        policies::policy::BUILTIN_POLICY_TESTS_YAML,
    )
    .expect("write tests");
    let cases = policies::policy::BUILTIN_POLICY_TESTS_YAML
        .matches("- name:")
        .count();
    let yaml = format!(
        r#"listen: "127.0.0.1:{port}"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {ADMIN_VAR} }}
policy_dir: "{dir}"
# The edit below is reloaded from the console: the file watcher must not race it.
policy_reload_ms: 3600000
sso:
  issuer: "{issuer}"
  client_id: {CLIENT_ID}
  client_secret_env: {SECRET_VAR}
  public_url: "{base}"
  roles: {{ platform: admin, appsec: security, finance: finance, staff: viewer }}
  idle_timeout_s: 8
providers:
  - name: mock
    kind: openai
    base_url: "{openai}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
"#,
        db = temp_db_url(),
        dir = policy_dir.path().display(),
        openai = mock.openai_base_url(),
    );
    let gw = start_gateway(&yaml).await.expect("gateway with SSO");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let b = browser::start(1280, 1400).await;
    let c = &b.client;
    let result = async {
        // Without a session every console page is the sign-in page, never data.
        for page in ["/console", "/console/audit", "/console/keys"] {
            c.goto(&format!("{base}{page}")).await?;
            c.find(Locator::Id("sso")).await?;
            assert!(
                c.find(Locator::Id("audit")).await.is_err(),
                "{page} shows data"
            );
        }
        screenshot(c, "sign-in").await;

        // Alice is in `platform`: admin.
        sign_in(c, &base, "alice").await?;
        let role = c
            .wait()
            .for_element(Locator::Id("role"))
            .await?
            .text()
            .await?;
        assert_eq!(role, "admin");
        assert_eq!(
            c.find(Locator::Id("name")).await?.text().await?,
            "user:alice@example.com"
        );
        assert_eq!(
            c.execute("return document.cookie", vec![]).await?,
            serde_json::json!(""),
            "the session cookie must be HttpOnly"
        );
        let session = c
            .get_all_cookies()
            .await?
            .into_iter()
            .find(|k| k.name() == "switchyard_session")
            .expect("session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(format!("{:?}", session.same_site()), "Some(Lax)");
        screenshot(c, "home").await;

        // She creates a key in the console; it works on the API at once.
        c.goto(&format!("{base}/console/keys")).await?;
        c.find(Locator::Css("input[name=team]"))
            .await?
            .send_keys("web")
            .await?;
        c.find(Locator::Id("create")).await?.click().await?;
        let key = c
            .wait()
            .for_element(Locator::Id("new-key"))
            .await?
            .text()
            .await?;
        assert!(key.starts_with("sk-sy-"), "{key}");
        screenshot(c, "keys").await;
        let resp = http
            .get(format!("{base}/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "the new key works");
        assert_eq!(
            openai_sdk(&base, &key).await,
            "ok:Echo: Say hi",
            "the OpenAI SDK is served with the console's key"
        );
        let models = |key: String| {
            let http = http.clone();
            let url = format!("{base}/v1/models");
            async move {
                http.get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            }
        };
        // On the Teams page she gives team web a monthly budget below what a request
        // costs: the key's next request is refused; cleared, it is served again.
        let chat = |key: String| {
            let http = http.clone();
            let url = format!("{base}/v1/chat/completions");
            async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 8,
                        "messages": [{"role": "user", "content": "Say hi"}]}))
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(chat(key.clone()).await, 200);
        let teams_url = format!("{base}/console/teams");
        let set_month_hard = |value: &'static str| {
            let teams_url = teams_url.clone();
            async move {
            c.goto(&teams_url).await?;
            let row = c.find(Locator::Css("#teams tr[data-team='web']")).await?;
            let hard = row.find(Locator::Css("input[name=month_hard]")).await?;
            hard.clear().await?;
            hard.send_keys(value).await?;
            row.find(Locator::Css("button.save")).await?.click().await?;
            c.wait().for_element(Locator::Id("limits-saved")).await?;
            c.find(Locator::Css("#teams tr[data-team='web']"))
                .await?
                .text()
                .await
            }
        };
        let row = set_month_hard("0.000001").await?;
        assert!(
            row.contains("team-limit-month") && row.contains("hard $0.000001"),
            "{row}"
        );
        screenshot(c, "teams").await;
        assert_eq!(chat(key.clone()).await, 429, "the team budget is not enforced");
        let row = set_month_hard("").await?;
        assert!(!row.contains("team-limit-month"), "{row}");
        assert_eq!(chat(key.clone()).await, 200, "the cleared budget still applies");

        // Rotated in the console: the old key is refused, the new one works.
        c.goto(&format!("{base}/console/keys")).await?;
        c.find(Locator::Css("#keys tr[data-key] form[action$='/rotate'] button"))
            .await?
            .click()
            .await?;
        let rotated = c
            .wait()
            .for_element(Locator::Id("rotated-key"))
            .await?
            .text()
            .await?;
        assert_ne!(rotated, key);
        assert_eq!(models(key.clone()).await, 401, "the rotated-out key still works");
        assert_eq!(models(rotated.clone()).await, 200);
        // Revoked in the console: refused at once.
        c.find(Locator::Css("#keys tr[data-key] form[action$='/revoke'] button"))
            .await?
            .click()
            .await?;
        c.wait().for_element(Locator::Id("revoked")).await?;
        assert_eq!(models(rotated.clone()).await, 401, "the revoked key still works");
        assert_eq!(
            openai_sdk(&base, &rotated).await,
            "AuthenticationError:401",
            "the SDK sees the revocation"
        );

        // A form without the session's CSRF token is refused, even with the cookie.
        let cookie_header = format!("switchyard_session={}", session.value());
        for body in ["team=forged", "team=forged&csrf=guess"] {
            let resp = http
                .post(format!("{base}/console/keys"))
                .header("cookie", &cookie_header)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 403, "{body}");
        }
        let resp = http
            .post(format!("{base}/console/logout"))
            .header("cookie", &cookie_header)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 403, "sign-out without CSRF");

        // The audit trail page shows her sign-in and her key.
        c.goto(&format!("{base}/console/audit")).await?;
        let table = c.find(Locator::Id("audit")).await?.text().await?;
        assert!(
            table.contains("session.signed_in") && table.contains("user:alice@example.com"),
            "{table}"
        );
        assert!(table.contains("key.created"), "{table}");
        assert!(!table.contains(&key), "the audit page shows the key");
        assert!(c
            .find(Locator::Id("chain"))
            .await?
            .text()
            .await?
            .starts_with("Chain intact"));
        screenshot(c, "audit").await;

        // The policy playground marks a card number where it is, names its detector,
        // and shows the decision; the request goes nowhere.
        c.goto(&format!("{base}/console/policies")).await?;
        let area = c.find(Locator::Id("request")).await?;
        area.clear().await?;
        area.send_keys(
            r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Charge card 4539 5780 1234 5671 for order 7"}]}"#,
        )
        .await?;
        c.find(Locator::Id("explain")).await?.click().await?;
        let mark = c.wait().for_element(Locator::Css("#texts mark")).await?;
        assert_eq!(mark.text().await?, "4539 5780 1234 5671");
        let title = mark.attr("title").await?.unwrap_or_default();
        assert!(title.ends_with("(rule)"), "{title}");
        let decision = c.find(Locator::Id("decision")).await?.text().await?;
        // The built-in policy keeps privacy-critical content on a local target.
        assert!(decision.contains("\"rule\": \"privacy-local\""), "{decision}");
        screenshot(c, "playground").await;

        // The rules read as words, in evaluation order, the default last.
        let rules = c.find(Locator::Id("rules")).await?.text().await?;
        let first = rules.find("privacy-local").expect("the privacy rule is listed");
        let default = rules.rfind("default").expect("the default is listed");
        assert!(first < default, "{rules}");
        assert!(
            !rules.contains('{') && !rules.contains('}'),
            "the rules are not words: {rules}"
        );

        // The policy's own test cases run against the live policy.
        c.find(Locator::Id("run-tests")).await?.click().await?;
        let summary = c
            .wait()
            .for_element(Locator::Id("tests-summary"))
            .await?
            .text()
            .await?;
        assert_eq!(summary, format!("{cases} passed, 0 failed"));
        let rows = c.find_all(Locator::Css("#test-results tr")).await?;
        assert_eq!(rows.len(), cases + 1, "one row per case, and the header");
        screenshot(c, "policy-tests").await;

        // She edits the policy on disk and reloads it from the console: the reload is
        // audited as her, and the page shows what changed, the new line marked added.
        let edited = policies::policy::BUILTIN_POLICY_YAML.replace(
            "description: privacy-critical content never leaves the organization",
            "description: privacy-critical content never leaves the organization (reviewed)",
        );
        assert_ne!(edited, policies::policy::BUILTIN_POLICY_YAML);
        std::fs::write(&policy_file, &edited).expect("edit policy");
        c.find(Locator::Id("reload")).await?.click().await?;
        c.wait().for_element(Locator::Id("reloaded")).await?;
        let change = c.find(Locator::Id("change-summary")).await?.text().await?;
        assert!(
            change.ends_with("1 line(s) added, 1 removed."),
            "{change}"
        );
        let added = c
            .find(Locator::Css("#policy-diff span.add"))
            .await?
            .text()
            .await?;
        assert!(added.starts_with('+') && added.ends_with("(reviewed)"), "{added}");
        let removed = c
            .find(Locator::Css("#policy-diff span.del"))
            .await?
            .text()
            .await?;
        assert!(
            removed.starts_with('-') && removed.ends_with("the organization"),
            "{removed}"
        );
        screenshot(c, "policy-change").await;

        // Sign-out ends the session.
        c.find(Locator::Id("signout")).await?.click().await?;
        c.wait().for_element(Locator::Id("sso")).await?;
        let resp = http
            .get(format!("{base}/console"))
            .header("cookie", &cookie_header)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 401, "the old session still works");

        // Victor is only in `staff`: a viewer. Forbidden pages, dashboards open.
        c.delete_all_cookies().await?; // the provider's session too (same host)
        sign_in(c, &base, "victor").await?;
        let role = c
            .wait()
            .for_element(Locator::Id("role"))
            .await?
            .text()
            .await?;
        assert_eq!(role, "viewer");
        for page in ["/console/audit", "/console/keys", "/console/teams"] {
            c.goto(&format!("{base}{page}")).await?;
            let text = c.find(Locator::Id("forbidden")).await?.text().await?;
            assert!(text.contains("viewer"), "{text}");
        }
        screenshot(c, "forbidden").await;
        c.goto(&format!("{base}/dashboard")).await?;
        c.find(Locator::Id("total-requests")).await?;

        // Idle past the timeout, the session is gone.
        tokio::time::sleep(Duration::from_secs(9)).await;
        c.goto(&format!("{base}/console")).await?;
        c.find(Locator::Id("sso")).await?;

        // Mallory has no mapped group: refused, with a reason.
        c.delete_all_cookies().await?;
        sign_in(c, &base, "mallory").await?;
        let text = c
            .wait()
            .for_element(Locator::Id("message"))
            .await?
            .text()
            .await?;
        assert!(text.contains("no role"), "{text}");
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    if let Err(e) = result {
        // Where it stopped, for whoever reads the failure.
        let url = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let source = c.source().await.unwrap_or_default();
        screenshot(c, "failure").await;
        let _ = b.client.clone().close().await;
        panic!(
            "browser check failed at {url}: {e}\n{}",
            source
                .split("ERR_")
                .nth(1)
                .map(|t| t.chars().take(200).collect::<String>())
                .unwrap_or_else(|| source.chars().take(3000).collect())
        );
    }
    let _ = b.client.clone().close().await;

    // Every sign-in, refusal, change and sign-out is in the audit trail, in order.
    let v: Value = http
        .get(format!("{base}/admin/audit?limit=50"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let mut entries: Vec<(String, String)> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["actor"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    entries.reverse();
    let expect = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        entries,
        vec![
            expect("session.signed_in", "user:alice@example.com"),
            expect("key.created", "user:alice@example.com"),
            expect("limit.changed", "user:alice@example.com"),
            expect("limit.changed", "user:alice@example.com"),
            expect("key.rotated", "user:alice@example.com"),
            expect("key.revoked", "user:alice@example.com"),
            expect("policy.reloaded", "user:alice@example.com"),
            expect("session.signed_out", "user:alice@example.com"),
            expect("session.signed_in", "user:victor@example.com"),
            expect("session.sign_in_failed", "user:mallory@example.com"),
        ]
    );
    gw.shutdown().await;
}
