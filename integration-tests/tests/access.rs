//! Access control, route by route: every route the gateway declares (`server::route_table`)
//! is called with and without the credential of its class, with the credentials of the
//! other classes, with the wrong method, a trailing slash and percent-encoded paths, and
//! with a key revoked a moment ago. A route added without the right class fails here.
//! Admin and dashboard routes are also called with a scoped admin token of every role:
//! a role the route admits gets through, any other gets 403 (admin) or the sign-in page
//! (dashboard).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard::access::{Access, RouteSpec};
use switchyard::auth::roles::Role;
use switchyard_it::client::{assert_dialect_error, http_client, Dialect};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

const ADMIN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_ACCESS";
const ADMIN: &str = "access-admin-token-7c1";
const METRICS_VAR: &str = "SWITCHYARD_TEST_METRICS_TOKEN_ACCESS";
const METRICS: &str = "access-metrics-token-9d2";

/// What a caller presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred<'a> {
    None,
    Key(&'a str),
    Admin,
    WrongAdmin,
    Metrics,
}

/// A body each route accepts, so that "allowed" means the handler ran.
fn body_for(path: &str) -> Value {
    match path {
        "/v1/chat/completions" | "/chat/completions" | "/v1/route/explain" => {
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]})
        }
        "/v1/messages" | "/v1/messages/count_tokens" => {
            json!({"model": "claude-echo", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hi"}]})
        }
        "/v1/responses" => json!({"model": "gpt-4o-mini", "input": "Say hi"}),
        "/v1beta/models/gpt-4o-mini:generateContent" | "/v1/models/gpt-4o-mini:generateContent" => {
            json!({"contents": [{"parts": [{"text": "Say hi"}]}]})
        }
        "/v1/embeddings" => json!({"model": "none", "input": "hi"}),
        "/v1/classify" => json!({"prompt": "Say hi"}),
        "/admin/keys" => json!({"team": "access"}),
        "/admin/tokens" => json!({"role": "viewer", "expires_in": "1h"}),
        _ => json!({}),
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "key_doesnotexist")
        .replace("{target}", "gpt-4o-mini:generateContent")
        .replace("{team}", "access")
        .replace("{kind}", "budget_day")
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    cred: Cred<'_>,
) -> (u16, String) {
    let mut rb = client
        .request(method.clone(), format!("{base}{path}"))
        .header("content-type", "application/json");
    if method == Method::POST || method == Method::PUT {
        rb = rb.body(body_for(path).to_string());
    }
    if path.starts_with("/v1/messages") {
        rb = rb.header("anthropic-version", "2023-06-01");
    }
    rb = match cred {
        Cred::None => rb,
        // As the SDKs send it: Anthropic's as x-api-key, OpenAI's as a bearer token.
        Cred::Key(k) if path.starts_with("/v1/messages") => rb.header("x-api-key", k),
        Cred::Key(k) => rb.bearer_auth(k),
        Cred::Admin => rb.bearer_auth(ADMIN),
        Cred::WrongAdmin => rb.bearer_auth(format!("{ADMIN}x")),
        Cred::Metrics => rb.bearer_auth(METRICS),
    };
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The credential that opens a route of `access`.
fn opener<'a>(access: Access, key: &'a str) -> Cred<'a> {
    match access {
        Access::Public => Cred::None,
        Access::Client => Cred::Key(key),
        Access::Admin | Access::Dashboard => Cred::Admin,
        Access::Metrics => Cred::Metrics,
    }
}

#[track_caller]
fn assert_refused(spec: &RouteSpec, cred: Cred<'_>, status: u16, text: &str) {
    let what = format!("{} {} with {cred:?}", spec.method, spec.path);
    assert_eq!(status, 401, "{what} must be refused: {text}");
    match spec.access {
        Access::Client if spec.path.ends_with("{target}") => {
            // Gemini's API: Google's error shape.
            let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{what}: {text}");
            assert_eq!(body["error"]["code"], 401, "{what}: {text}");
        }
        Access::Client => {
            let dialect = if spec.path.starts_with("/v1/messages") {
                Dialect::Anthropic
            } else {
                Dialect::OpenAi
            };
            let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let kind = assert_dialect_error(dialect, &body);
            assert_eq!(kind, "authentication_error", "{what}: {text}");
        }
        Access::Admin => {
            let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(body["error"]["type"], "unauthorized", "{what}: {text}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if cred == Cred::None {
                assert!(
                    message.contains("admin token required"),
                    "{what}: {message}"
                );
            } else {
                assert_eq!(message, "wrong admin token", "{what}");
            }
        }
        // The dashboard's token form; the console's single sign-on page.
        Access::Dashboard if spec.path.starts_with("/console") => {
            assert!(text.contains("Sign in"), "{what}: a sign-in page")
        }
        Access::Dashboard => assert!(text.contains("<form"), "{what}: a sign-in page"),
        Access::Metrics => assert!(text.contains("metrics bearer token"), "{what}: {text}"),
        Access::Public => unreachable!("public routes are not refused"),
    }
    assert!(!text.contains(ADMIN), "{what}: echoes the admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_only_its_own_credential() {
    std::env::set_var(ADMIN_VAR, ADMIN);
    std::env::set_var(METRICS_VAR, METRICS);
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {ADMIN_VAR}, metrics_token_env: {METRICS_VAR} }}
providers:
  - name: mock-openai
    kind: openai
    base_url: "{openai}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
  - name: mock-anthropic
    kind: anthropic
    base_url: "{anthropic}"
    api_key: sk-ant-test
    max_retries: 0
    models: ["claude-echo"]
"#,
        db = temp_db_url(),
        openai = mock.openai_base_url(),
        anthropic = mock.anthropic_base_url(),
    );
    let gw = start_gateway(&yaml).await.expect("gateway");
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let specs = switchyard::server::route_table(&gw.state).specs().to_vec();

    // The declared table is the whole surface, each (method, path) once.
    let declared: BTreeSet<(String, &str)> = specs
        .iter()
        .map(|s| (s.method.to_string(), s.path))
        .collect();
    assert_eq!(declared.len(), specs.len(), "a route is declared twice");
    for (access, path) in [
        (Access::Public, "/healthz"),
        (Access::Public, "/readyz"),
        (Access::Client, "/v1/chat/completions"),
        (Access::Client, "/chat/completions"),
        (Access::Client, "/v1/messages"),
        (Access::Client, "/v1/messages/count_tokens"),
        (Access::Client, "/v1/route/explain"),
        (Access::Client, "/v1/classify"),
        (Access::Client, "/v1/embeddings"),
        (Access::Client, "/v1/models"),
        (Access::Client, "/v1/responses"),
        (Access::Client, "/v1/responses/{id}"),
        (Access::Client, "/v1beta/models/{target}"),
        (Access::Client, "/v1/models/{target}"),
        (Access::Admin, "/admin/policy/status"),
        (Access::Admin, "/admin/policy/reload"),
        (Access::Admin, "/admin/policy/rules"),
        (Access::Admin, "/admin/policy/test"),
        (Access::Admin, "/admin/keys"),
        (Access::Admin, "/admin/spend"),
        (Access::Admin, "/admin/tokens"),
        (Access::Admin, "/admin/audit"),
        (Access::Admin, "/admin/audit/verify"),
        (Access::Admin, "/admin/whoami"),
        (Access::Admin, "/admin/teams"),
        (Access::Admin, "/admin/teams/{team}/limits"),
        (Access::Admin, "/admin/teams/{team}/limits/{kind}"),
        (Access::Dashboard, "/console/teams"),
        (Access::Dashboard, "/dashboard"),
        (Access::Metrics, "/metrics"),
    ] {
        assert!(
            specs.iter().any(|s| s.path == path && s.access == access),
            "{path} is not declared as {access:?}"
        );
    }

    let (key, key_id) = {
        let (status, text) = call(&client, &base, Method::POST, "/admin/keys", Cred::Admin).await;
        assert_eq!(status, 201, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        (
            v["key"].as_str().expect("key").to_string(),
            v["id"].as_str().expect("id").to_string(),
        )
    };

    for spec in &specs {
        if spec.path == "/admin/policy/reload" || spec.path.contains("{id}") {
            // Checked below without changing state (reload re-reads, revoke is final).
            continue;
        }
        let path = concrete(spec.path);
        let all = [
            Cred::None,
            Cred::Key(&key),
            Cred::Admin,
            Cred::WrongAdmin,
            Cred::Metrics,
        ];
        let open = opener(spec.access, &key);
        for cred in all {
            let (status, text) = call(&client, &base, spec.method.clone(), &path, cred).await;
            let admitted = spec.access == Access::Public || cred == open;
            if spec.access == Access::Public && spec.method == Method::POST {
                // The sign-in form itself answers 401 to a wrong token (checked below).
                assert!(status == 401 || status == 303, "{path}: {status}");
            } else if admitted {
                assert!(
                    status != 401 && status != 403,
                    "{} {path} with {cred:?}: {status} {text}",
                    spec.method
                );
            } else {
                assert_refused(spec, cred, status, &text);
            }
        }
        // Method confusion: the same path under a method it does not declare is never
        // served, with or without a credential.
        for other in [Method::GET, Method::POST, Method::DELETE, Method::PUT] {
            if declared.contains(&(other.to_string(), spec.path)) {
                continue;
            }
            for cred in [Cred::None, open] {
                let (status, text) = call(&client, &base, other.clone(), &path, cred).await;
                assert!(
                    status == 405 || status == 401 || status == 404,
                    "{other} {path} with {cred:?}: {status} {text}"
                );
            }
        }
        // A trailing slash is another path: it is either declared itself or not found.
        if !declared.contains(&(spec.method.to_string(), &*format!("{path}/"))) {
            let (status, _) = call(
                &client,
                &base,
                spec.method.clone(),
                &format!("{path}/"),
                Cred::None,
            )
            .await;
            assert!(
                status == 404 || status == 405 || status == 401,
                "{path}/ answered {status}"
            );
        }
    }

    // Every role × every admin and dashboard route: a scoped token of a role the route
    // declares gets through; any other role is refused, 403 with a reason on the API.
    let mut role_tokens = Vec::new();
    for role in Role::ALL {
        let resp = client
            .post(format!("{base}/admin/tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({"role": role, "expires_in": "1h", "name": format!("access-{role}")}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 201, "{role}");
        let v: Value = resp.json().await.expect("json");
        role_tokens.push((role, v["token"].as_str().expect("token").to_string()));
    }
    let mut checked = 0;
    for spec in specs
        .iter()
        .filter(|s| matches!(s.access, Access::Admin | Access::Dashboard))
    {
        if spec.method != Method::GET && spec.method != Method::POST {
            continue; // DELETE routes: checked below on an unknown id
        }
        if spec.path == "/admin/policy/reload" || spec.path.contains("{id}") {
            continue;
        }
        for (role, token) in &role_tokens {
            let mut rb = client
                .request(spec.method.clone(), format!("{base}{}", spec.path))
                .bearer_auth(token);
            if spec.method == Method::POST {
                rb = rb.json(&body_for(spec.path));
            }
            let resp = rb.send().await.expect("send");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let what = format!("{} {} as {role}", spec.method, spec.path);
            if spec.roles.contains(*role) {
                assert!(status != 401 && status != 403, "{what}: {status} {text}");
            } else if spec.access == Access::Admin {
                assert_eq!(status, 403, "{what}: {text}");
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert_eq!(v["error"]["type"], "forbidden", "{what}: {text}");
                let message = v["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(role.as_str()) && message.contains("admin"),
                    "{what}: {message}"
                );
            } else {
                // Signed in with a role the page does not admit: the forbidden page.
                assert_eq!(status, 403, "{what}");
                assert!(
                    text.contains("id=forbidden") && text.contains(role.as_str()),
                    "{what}: {text}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 12, "only {checked} role × route checks ran");
    // The role matrix as the issue states it, on the routes that carry it.
    let admits = |path: &str, role: Role| {
        specs
            .iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("{path} is not declared"))
            .roles
            .contains(role)
    };
    for (path, allowed) in [
        ("/admin/keys", vec![Role::Admin]),
        ("/admin/tokens", vec![Role::Admin]),
        ("/admin/policy/status", vec![Role::Admin, Role::Security]),
        ("/admin/policy/reload", vec![Role::Admin, Role::Security]),
        ("/admin/policy/rules", vec![Role::Admin, Role::Security]),
        ("/admin/policy/test", vec![Role::Admin, Role::Security]),
        ("/admin/audit", vec![Role::Admin, Role::Security]),
        ("/admin/spend", vec![Role::Admin, Role::Finance]),
        ("/admin/calibration", vec![Role::Admin, Role::Finance]),
        ("/admin/teams", vec![Role::Admin, Role::Finance]),
        ("/console/teams", vec![Role::Admin, Role::Finance]),
        ("/dashboard", Role::ALL.to_vec()),
        ("/console", Role::ALL.to_vec()),
        ("/console/keys", vec![Role::Admin]),
        ("/console/audit", vec![Role::Admin, Role::Security]),
        (
            "/console/traffic",
            vec![Role::Admin, Role::Finance, Role::Security],
        ),
        ("/console/policies", vec![Role::Admin, Role::Security]),
        ("/console/policies/test", vec![Role::Admin, Role::Security]),
    ] {
        for role in Role::ALL {
            assert_eq!(
                admits(path, role),
                allowed.contains(&role),
                "{path} for {role}"
            );
        }
    }
    // Mutating routes with a parameter, per role: only admin reaches the handler (404
    // for the unknown id); reload for admin and security.
    for (method, path) in [
        (Method::DELETE, "/admin/keys/key_doesnotexist"),
        (Method::POST, "/admin/keys/key_doesnotexist/rotate"),
        (Method::DELETE, "/admin/tokens/tok_doesnotexist"),
        (Method::POST, "/console/keys/key_doesnotexist/revoke"),
        (Method::PUT, "/admin/teams/access/limits"),
        (Method::DELETE, "/admin/teams/access/limits/budget_day"),
        (Method::POST, "/console/teams"),
        (Method::POST, "/admin/policy/reload"),
    ] {
        for (role, token) in &role_tokens {
            let resp = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("send");
            let allowed =
                *role == Role::Admin || (path == "/admin/policy/reload" && *role == Role::Security);
            let status = resp.status().as_u16();
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} as {role}: {status}"
                );
            } else {
                assert_eq!(status, 403, "{method} {path} as {role}");
            }
        }
    }
    // A revoked scoped token is refused at once.
    let (_, viewer) = &role_tokens[3];
    let v: Value = client
        .get(format!("{base}/admin/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let viewer_id = v["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "access-viewer"))
        .and_then(|t| t["id"].as_str())
        .expect("viewer token listed")
        .to_string();
    assert!(
        !v.to_string().contains(viewer.as_str()),
        "the token list shows a secret"
    );
    let resp = client
        .delete(format!("{base}/admin/tokens/{viewer_id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{base}/admin/whoami"))
        .bearer_auth(viewer)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401, "a revoked token still works");

    // Routes with a parameter or an effect, with and without the admin token.
    for (method, path) in [
        (Method::DELETE, "/admin/keys/key_doesnotexist"),
        (Method::POST, "/admin/keys/key_doesnotexist/rotate"),
        (Method::DELETE, "/admin/tokens/tok_doesnotexist"),
        (Method::POST, "/console/keys/key_doesnotexist/revoke"),
        (Method::PUT, "/admin/teams/access/limits"),
        (Method::DELETE, "/admin/teams/access/limits/budget_day"),
        (Method::POST, "/console/teams"),
        (Method::POST, "/admin/policy/reload"),
    ] {
        for cred in [Cred::None, Cred::WrongAdmin, Cred::Key(&key), Cred::Metrics] {
            let (status, text) = call(&client, &base, method.clone(), path, cred).await;
            assert_eq!(status, 401, "{method} {path} with {cred:?}: {text}");
        }
        let (status, text) = call(&client, &base, method.clone(), path, Cred::Admin).await;
        assert!(
            status != 401 && status != 403,
            "{method} {path}: {status} {text}"
        );
    }

    // Percent-encoded and /v1-less spellings reach nothing without a credential.
    for path in [
        "/v1/chat%2Fcompletions",
        "/%61dmin/keys",
        "/admin/%6beys",
        "/admin%2Fkeys",
        "/v1/../admin/keys",
        "//admin/keys",
        "/ADMIN/KEYS",
        "/messages",
        "/v1/route/explain/",
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, text) = call(&client, &base, method.clone(), path, Cred::None).await;
            assert!(
                status == 404 || status == 401 || status == 405,
                "{method} {path}: {status} {text}"
            );
            assert!(
                !text.contains("\"keys\""),
                "{method} {path} listed keys: {text}"
            );
        }
    }

    // The sign-in form opens the dashboard with a session cookie, and only with the token.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = no_redirects
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}&range=24h"))
        .send()
        .await
        .expect("send");
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let page = client
        .get(format!("{base}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200);

    // Readiness tells a load balancer only that the gateway is ready.
    let (status, text) = call(&client, &base, Method::GET, "/readyz", Cred::None).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v,
        json!({"status": "ready"}),
        "public readiness says more: {text}"
    );
    let (_, text) = call(&client, &base, Method::GET, "/readyz", Cred::Admin).await;
    assert!(
        text.contains("\"backends\""),
        "the admin sees the details: {text}"
    );

    // Refused model requests never reach an upstream.
    mock.clear();
    for spec in specs.iter().filter(|s| s.access == Access::Client) {
        for cred in [Cred::None, Cred::Admin, Cred::WrongAdmin, Cred::Metrics] {
            let (status, _) = call(&client, &base, spec.method.clone(), spec.path, cred).await;
            assert_eq!(status, 401);
        }
    }
    assert!(
        mock.requests().is_empty(),
        "a refused request went upstream"
    );

    // A key revoked a moment ago is refused at once, on every client route.
    let (status, text) = call(
        &client,
        &base,
        Method::DELETE,
        &format!("/admin/keys/{key_id}"),
        Cred::Admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    for spec in specs.iter().filter(|s| s.access == Access::Client) {
        let (status, text) = call(
            &client,
            &base,
            spec.method.clone(),
            spec.path,
            Cred::Key(&key),
        )
        .await;
        assert_refused(spec, Cred::Key(&key), status, &text);
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_refusals_say_why() {
    // Without a token the admin API is off, and says how to turn it on.
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{}\" }}\nauth: {{ admin_token_env: SWITCHYARD_TEST_ADMIN_TOKEN_UNSET }}\n",
        temp_db_url()
    );
    std::env::remove_var("SWITCHYARD_TEST_ADMIN_TOKEN_UNSET");
    let gw = start_gateway(&yaml).await.expect("gateway");
    let client = http_client();
    let resp = client
        .post(format!("http://{}/admin/keys", gw.addr))
        .bearer_auth("anything")
        .json(&json!({"team": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "admin_disabled");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("admin API disabled")
            && message.contains("SWITCHYARD_TEST_ADMIN_TOKEN_UNSET"),
        "{message}"
    );
    // Policy status is admin too: in open mode it is off like the rest of /admin.
    let resp = client
        .get(format!("http://{}/admin/policy/status", gw.addr))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    // Open mode: readiness details and the dashboard stay readable (nothing is guarded).
    let v: Value = client
        .get(format!("http://{}/readyz", gw.addr))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(v.get("policy").is_some(), "{v}");

    // A model a known provider would serve names the variable that enables it.
    for (dialect, path, model, var) in [
        (
            Dialect::Anthropic,
            "/v1/messages",
            "claude-sonnet-4-5",
            "ANTHROPIC_API_KEY",
        ),
        (
            Dialect::OpenAi,
            "/v1/chat/completions",
            "gpt-4o-mini",
            "OPENAI_API_KEY",
        ),
    ] {
        let mut rb = client
            .post(format!("http://{}{path}", gw.addr))
            .json(&json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi"}]}));
        if dialect == Dialect::Anthropic {
            rb = rb.header("anthropic-version", "2023-06-01");
        }
        let resp = rb.send().await.expect("send");
        assert_eq!(resp.status(), 404);
        let v: Value = resp.json().await.expect("json");
        assert_eq!(assert_dialect_error(dialect, &v), "not_found_error");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(var), "{model}: {message}");
    }
    gw.shutdown().await;
}
