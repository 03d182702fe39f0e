//! The audit trail against real databases (SQLite in a temp dir, and PostgreSQL: a schema
//! of its own in `SWITCHYARD_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; an unreachable PostgreSQL fails the test).
//!
//! Every admin action leaves exactly one entry with its actor, source and before/after,
//! and never a secret; read-only and refused calls leave none; an altered, deleted or
//! re-hashed row is found by the chain check; appends from several handles and several
//! connection pools (replicas) at once keep one unbroken chain.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use policies::policy::StaticCatalog;
use serde_json::{json, Value};
use support::PgSchemaGuard;
use switchyard::access::{Credentials, RouteTable};
use switchyard::accounting::{AccountingConfig, Ledger};
use switchyard::admin::{cli_keys, AdminState, KeysCommand};
use switchyard::audit::{
    Action, Actor, AuditEntry, AuditEvent, AuditFilter, AuditLog, Break, Order,
};
use switchyard::auth::KeyStore;
use switchyard::policy_runtime::PolicyHandle;
use switchyard::store::Db;

const ADMIN: &str = "audit-admin-token-41c";

struct TestDb {
    db: Db,
    url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgSchemaGuard>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("audit.db").display());
        TestDb {
            db: Db::connect(&url).await.expect("sqlite"),
            url,
            schema: None,
            _dir: Some(dir),
            _pg: None,
        }
    }

    async fn postgres() -> TestDb {
        let url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("sy_audit_{}", uuid::Uuid::new_v4().simple());
        let guard = PgSchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let db = Db::connect_postgres_schema(&url, &schema)
            .await
            .expect("PostgreSQL is required for this test (SWITCHYARD_TEST_POSTGRES_URL)");
        TestDb {
            db,
            url,
            schema: Some(schema),
            _dir: None,
            _pg: Some(guard),
        }
    }

    /// Another connection pool to the same database: what a second replica has.
    async fn replica(&self) -> Db {
        match &self.schema {
            Some(schema) => Db::connect_postgres_schema(&self.url, schema)
                .await
                .expect("pg"),
            None => Db::connect(&self.url).await.expect("sqlite"),
        }
    }

    async fn exec(&self, sql: &str) {
        match &self.db {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .expect("exec");
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = super::TestDb::sqlite().await;
                super::$name(&t).await;
                t.db.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let t = super::TestDb::postgres().await;
                super::$name(&t).await;
                t.db.close().await;
            }
        }
    )*};
}

on_both!(
    every_admin_action_leaves_exactly_one_entry,
    an_altered_entry_breaks_the_chain,
    concurrent_appends_from_replicas_keep_one_chain,
    scoped_tokens_expire_and_revoke,
);

fn policy_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/default");
    std::fs::copy(src.join("policy.yaml"), dir.path().join("policy.yaml")).expect("copy");
    let path = dir.path().to_path_buf();
    (dir, path)
}

struct Api {
    base: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    state: Arc<AdminState>,
}

async fn serve_admin(t: &TestDb, policy: &Path) -> Api {
    let keys = KeyStore::new(t.db.clone(), Duration::from_secs(60));
    let ledger = Ledger::start(t.db.clone(), &AccountingConfig::default());
    let handle = PolicyHandle::load(
        Some(policy.to_path_buf()),
        Arc::new(StaticCatalog::builtin()),
    )
    .expect("policy");
    let state = Arc::new(AdminState::new(keys, ledger, Some(handle)));
    let mut creds = Credentials::admin_only(Some(ADMIN.into()));
    creds.admin_tokens = Some(state.tokens.clone());
    let creds = Arc::new(creds);
    let mut dash = switchyard::dashboard::DashboardState::new(None, Some(ADMIN.into()));
    dash.audit = Some(state.audit.clone());
    let table = switchyard::admin::routes(RouteTable::new(creds), state.clone());
    let router = switchyard::dashboard::routes(table, dash).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        server,
        state,
    }
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn all(&self) -> Vec<AuditEntry> {
        self.state
            .audit
            .list(&AuditFilter::default(), Order::OldestFirst)
            .await
            .expect("list")
    }
}

/// Runs `action` and checks that it added exactly one entry, which it returns.
macro_rules! one_entry {
    ($api:expr, $seen:expr, $action:expr) => {{
        let _ = $action;
        let all = $api.all().await;
        assert_eq!(
            all.len(),
            $seen + 1,
            "expected exactly one new entry after `{}`: {:#?}",
            stringify!($action),
            &all[$seen.min(all.len())..]
        );
        $seen += 1;
        all.last().cloned().expect("entry")
    }};
}

macro_rules! no_entry {
    ($api:expr, $seen:expr, $action:expr) => {{
        let _ = $action;
        let all = $api.all().await;
        assert_eq!(all.len(), $seen, "`{}` left an entry", stringify!($action));
    }};
}

async fn every_admin_action_leaves_exactly_one_entry(t: &TestDb) {
    use reqwest::Method;
    let (_dir, policy) = policy_dir();
    let api = serve_admin(t, &policy).await;
    let me = "127.0.0.1";
    let mut seen = 0usize;
    let mut secrets: Vec<String> = vec![ADMIN.into()];

    // Keys: created, rotated, revoked, each by the admin token from the test's address.
    let key_id: String;
    let e = one_entry!(api, seen, {
        let (status, v) = api
            .call(
                Method::POST,
                "/admin/keys",
                ADMIN,
                Some(json!({"team": "audit", "name": "k"})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        key_id = v["id"].as_str().expect("id").to_string();
        secrets.push(v["key"].as_str().expect("key").to_string());
    });
    assert_eq!(e.action, Action::KeyCreated.as_str());
    assert_eq!(e.actor, "admin-token");
    assert_eq!(e.target, key_id);
    assert!(
        e.source.as_deref().is_some_and(|s| s.starts_with(me)),
        "{e:?}"
    );
    assert_eq!(
        e.after.as_ref().map(|a| a["team"].clone()),
        Some(json!("audit"))
    );
    assert!(e.before.is_none());

    let e = one_entry!(api, seen, {
        let (status, v) = api
            .call(
                Method::POST,
                &format!("/admin/keys/{key_id}/rotate"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        secrets.push(v["key"].as_str().expect("key").to_string());
    });
    assert_eq!(e.action, "key.rotated");
    let (before, after) = (e.before.expect("before"), e.after.expect("after"));
    assert_ne!(
        before["prefix"], after["prefix"],
        "rotation shows the prefix change"
    );

    let e = one_entry!(api, seen, {
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/admin/keys/{key_id}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(status, 200);
    });
    assert_eq!(e.action, "key.revoked");
    assert_eq!(e.before.expect("before")["revoked_at"], Value::Null);
    assert!(e.after.expect("after")["revoked_at"].is_string());

    // Refused and failed calls change nothing and record nothing.
    no_entry!(api, seen, {
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/admin/keys/{key_id}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(status, 404);
    });
    no_entry!(api, seen, {
        let (status, _) = api
            .call(
                Method::POST,
                "/admin/keys",
                "wrong",
                Some(json!({"team": "x"})),
            )
            .await;
        assert_eq!(status, 401);
    });
    no_entry!(api, seen, {
        let (status, _) = api
            .call(
                Method::POST,
                "/admin/keys",
                ADMIN,
                Some(json!({"team": ""})),
            )
            .await;
        assert_eq!(status, 400);
    });
    // Reads record nothing.
    no_entry!(api, seen, {
        for path in [
            "/admin/keys",
            "/admin/tokens",
            "/admin/spend",
            "/admin/audit",
            "/admin/audit/verify",
            "/admin/policy/status",
        ] {
            let (status, v) = api.call(Method::GET, path, ADMIN, None).await;
            assert_eq!(status, 200, "{path}: {v}");
        }
    });

    // Scoped tokens: created and revoked; a change made with one names the token.
    let token_id: String;
    let token: String;
    let e = one_entry!(api, seen, {
        let (status, v) = api
            .call(
                Method::POST,
                "/admin/tokens",
                ADMIN,
                Some(json!({"role": "admin", "expires_in": "2h", "name": "ci"})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        token_id = v["id"].as_str().expect("id").to_string();
        token = v["token"].as_str().expect("token").to_string();
        secrets.push(token.clone());
    });
    assert_eq!(
        (e.action.as_str(), e.target.as_str()),
        ("token.created", token_id.as_str())
    );
    assert_eq!(
        e.after.as_ref().map(|a| a["role"].clone()),
        Some(json!("admin"))
    );
    let e = one_entry!(api, seen, {
        let (status, v) = api
            .call(
                Method::POST,
                "/admin/keys",
                &token,
                Some(json!({"team": "automation"})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        secrets.push(v["key"].as_str().expect("key").to_string());
    });
    assert_eq!(e.actor, format!("token:{token_id}"));
    let e = one_entry!(api, seen, {
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/admin/tokens/{token_id}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(status, 200);
    });
    assert_eq!(e.action, "token.revoked");

    // Policy reloads: accepted with the files' hash, rejected with the errors and the
    // version kept; both say which version was live before.
    let e = one_entry!(api, seen, {
        let (status, v) = api
            .call(Method::POST, "/admin/policy/reload", ADMIN, None)
            .await;
        assert_eq!(status, 200, "{v}");
    });
    assert_eq!(e.action, "policy.reloaded");
    let after = e.after.expect("after");
    let hash = after["files_sha256"].as_str().expect("hash").to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(after["version"], 2);
    assert_eq!(e.before.expect("before")["version"], 1);
    std::fs::write(policy.join("policy.yaml"), "version: 1\nrules: [\n").expect("write");
    let e = one_entry!(api, seen, {
        let (status, _) = api
            .call(Method::POST, "/admin/policy/reload", ADMIN, None)
            .await;
        assert_eq!(status, 422);
    });
    assert_eq!(e.action, "policy.rejected");
    let after = e.after.expect("after");
    assert_eq!(after["kept_version"], 2);
    assert_ne!(after["files_sha256"].as_str(), Some(hash.as_str()));
    assert!(
        after["errors"]
            .as_str()
            .is_some_and(|m| m.contains("policy.yaml")),
        "{after}"
    );

    // Dashboard sign-in: success, failure (no actor, and never the guess), sign-out.
    let form = |token: &str| format!("token={token}&range=24h");
    let e = one_entry!(api, seen, {
        let resp = api
            .http
            .post(format!("{}/dashboard/login", api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form("a-wrong-guess-9"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 401);
    });
    assert_eq!(
        (e.action.as_str(), e.actor.as_str()),
        ("session.sign_in_failed", "anonymous")
    );
    secrets.push("a-wrong-guess-9".into());
    let cookie: String;
    let e = one_entry!(api, seen, {
        let resp = api
            .http
            .post(format!("{}/dashboard/login", api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(ADMIN))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 303);
        cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("cookie")
            .to_string();
    });
    assert_eq!(e.action, "session.signed_in");
    assert_eq!(e.target, "dashboard");
    let e = one_entry!(api, seen, {
        let resp = api
            .http
            .get(format!("{}/dashboard/logout", api.base))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 303);
    });
    assert_eq!(e.action, "session.signed_out");
    no_entry!(api, seen, {
        // A visit without a session is not a sign-out.
        let resp = api
            .http
            .get(format!("{}/dashboard/logout", api.base))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 303);
    });

    // The command line records as the OS user.
    let e = one_entry!(api, seen, {
        let out = cli_keys(
            t.db.clone(),
            KeysCommand::Create(switchyard::auth::NewKey {
                team: "cli".into(),
                ..Default::default()
            }),
        )
        .await
        .expect("cli");
        if let Some(k) = out
            .split_whitespace()
            .find(|w| w.starts_with("sk-sy-") && w.len() > 20)
        {
            secrets.push(k.to_string());
        }
    });
    assert!(e.actor.starts_with("cli:"), "{}", e.actor);
    assert!(e.source.is_none());

    // No entry holds a secret; the listing filters; the chain holds.
    let all = api.all().await;
    let text = serde_json::to_string(&all).expect("json");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "the audit trail holds a secret");
    }
    let (status, v) = api
        .call(Method::GET, "/admin/audit?action=key", ADMIN, None)
        .await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "key.created",
            "key.created",
            "key.revoked",
            "key.rotated",
            "key.created"
        ]
    );
    let (_, v) = api
        .call(
            Method::GET,
            &format!("/admin/audit?actor=token:{token_id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(1));
    let (_, v) = api
        .call(Method::GET, "/admin/audit?limit=2", ADMIN, None)
        .await;
    assert_eq!(v["entries"][0]["seq"], json!(seen), "newest first");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(2));
    let (status, _) = api
        .call(Method::GET, "/admin/audit?from=yesterday-ish", ADMIN, None)
        .await;
    assert_eq!(status, 400);
    let (_, v) = api
        .call(Method::GET, "/admin/audit/verify", ADMIN, None)
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"], json!(seen));
    assert_eq!(v["head_hash"], json!(all.last().expect("last").hash));
    api.server.abort();
}

async fn record_n(log: &AuditLog, n: usize, actor: &str) {
    for i in 0..n {
        log.record(
            AuditEvent::new(
                Actor::User(actor.into()),
                Action::KeyCreated,
                format!("key_{i}"),
            )
            .after(json!({"i": i})),
        )
        .await
        .expect("record");
    }
}

async fn an_altered_entry_breaks_the_chain(t: &TestDb) {
    let log = AuditLog::new(t.db.clone());
    record_n(&log, 5, "alice").await;
    let ok = log.verify().await.expect("verify");
    assert!(ok.ok() && ok.entries == 5 && ok.head_seq == 5, "{ok:?}");

    // Someone with database access rewrites who did it.
    t.exec("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3")
        .await;
    let r = log.verify().await.expect("verify");
    assert_eq!(r.broken, Some(Break::Content { seq: 3 }));
    assert_eq!(r.head_seq, 2, "the chain holds up to the entry before");
    t.exec("UPDATE audit_log SET actor = 'user:alice' WHERE seq = 3")
        .await;
    assert!(log.verify().await.expect("verify").ok(), "restored");

    // ... or the state it recorded.
    t.exec("UPDATE audit_log SET after_json = '{\"i\":99}' WHERE seq = 4")
        .await;
    assert_eq!(
        log.verify().await.expect("verify").broken,
        Some(Break::Content { seq: 4 })
    );
    t.exec("UPDATE audit_log SET after_json = '{\"i\":3}' WHERE seq = 4")
        .await;
    assert!(log.verify().await.expect("verify").ok());

    // ... or the time.
    t.exec("UPDATE audit_log SET ts_ms = ts_ms + 1 WHERE seq = 1")
        .await;
    assert_eq!(
        log.verify().await.expect("verify").broken,
        Some(Break::Content { seq: 1 })
    );
    t.exec("UPDATE audit_log SET ts_ms = ts_ms - 1 WHERE seq = 1")
        .await;

    // Recomputing the edited entry's own hash still breaks the next entry's link.
    let entries = log
        .list(&AuditFilter::default(), Order::OldestFirst)
        .await
        .expect("list");
    let e2 = &entries[1];
    let forged = switchyard::audit::chain::entry_hash(&switchyard::audit::chain::Link {
        seq: e2.seq,
        ts_ms: e2.ts_ms,
        actor: "user:mallory",
        source: e2.source.as_deref(),
        action: &e2.action,
        target: &e2.target,
        before: None,
        after: Some("{\"i\":1}"),
        prev_hash: &e2.prev_hash,
    });
    t.exec(&format!(
        "UPDATE audit_log SET actor = 'user:mallory', hash = '{forged}' WHERE seq = 2"
    ))
    .await;
    assert_eq!(
        log.verify().await.expect("verify").broken,
        Some(Break::Link { seq: 3 })
    );
    t.exec(&format!(
        "UPDATE audit_log SET actor = 'user:alice', hash = '{}' WHERE seq = 2",
        e2.hash
    ))
    .await;
    assert!(log.verify().await.expect("verify").ok());

    // A deleted entry leaves a gap.
    t.exec("DELETE FROM audit_log WHERE seq = 2").await;
    assert_eq!(
        log.verify().await.expect("verify").broken,
        Some(Break::Gap {
            expected_seq: 2,
            found_seq: 3
        })
    );
}

async fn concurrent_appends_from_replicas_keep_one_chain(t: &TestDb) {
    let replica = t.replica().await;
    let logs = [AuditLog::new(t.db.clone()), AuditLog::new(replica.clone())];
    let mut tasks = Vec::new();
    for i in 0..8 {
        let log = logs[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            record_n(&log, 5, &format!("w{i}")).await
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let r = logs[0].verify().await.expect("verify");
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.entries, r.head_seq), (40, 40));
    replica.close().await;
}

async fn scoped_tokens_expire_and_revoke(t: &TestDb) {
    use switchyard::access::{admin_principal, AdminRefusal};
    use switchyard::auth::admin_tokens::{AdminTokenStore, NewToken};
    use switchyard::auth::roles::{Role, RoleSet};
    let store = AdminTokenStore::new(t.db.clone(), Duration::from_millis(1));
    let (info, plain) = store
        .create(
            &NewToken {
                role: "finance".into(),
                expires_in: Some("1h".into()),
                ..Default::default()
            },
            "admin-token",
        )
        .await
        .expect("create");
    // Stored as a hash: the plain token is nowhere in the table.
    let stored: Vec<String> = match &t.db {
        Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT hash FROM admin_tokens")
                .fetch_all(p)
                .await
        }
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT hash FROM admin_tokens")
                .fetch_all(p)
                .await
        }
    }
    .expect("select");
    assert_eq!(stored, vec![switchyard::auth::hash_key(&plain)]);
    let mut creds = Credentials::admin_only(Some(ADMIN.into()));
    creds.admin_tokens = Some(store.clone());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {plain}")).expect("header"),
    );
    assert_eq!(
        admin_principal(&creds, &headers, RoleSet::FINANCE).await,
        Ok((Actor::Token(info.id.clone()), Role::Finance))
    );
    assert_eq!(
        admin_principal(&creds, &headers, RoleSet::SECURITY).await,
        Err(AdminRefusal::Forbidden {
            role: Role::Finance,
            needs: RoleSet::SECURITY
        })
    );
    // Past its expiry it is refused, and says so.
    t.exec(&format!(
        "UPDATE admin_tokens SET expires_ms = 1 WHERE id = '{}'",
        info.id
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        admin_principal(&creds, &headers, RoleSet::FINANCE).await,
        Err(AdminRefusal::Expired)
    );
    t.exec(&format!(
        "UPDATE admin_tokens SET expires_ms = {} WHERE id = '{}'",
        i64::MAX / 2,
        info.id
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(admin_principal(&creds, &headers, RoleSet::FINANCE)
        .await
        .is_ok());
    store.revoke(&info.id).await.expect("revoke");
    assert_eq!(
        admin_principal(&creds, &headers, RoleSet::FINANCE).await,
        Err(AdminRefusal::Wrong)
    );
    assert!(store.revoke(&info.id).await.is_err(), "revoked twice");
}

#[test]
fn cli_verify_and_export() {
    let dir = tempfile::tempdir().expect("dir");
    let db_path = dir.path().join("cli.db");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "accounting: {{ database_url: \"sqlite:{}\" }}\n",
            db_path.display()
        ),
    )
    .expect("write");
    // `switchyard <command> --config FILE <subcommand...>`, as the OS user ops-alice.
    let run = |command: &str, rest: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .env_remove("SWITCHYARD_CONFIG")
            .env("RUST_LOG", "error")
            .env("USER", "ops-alice")
            .arg(command)
            .arg("--config")
            .arg(&config)
            .args(rest)
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        "tokens",
        &[
            "create",
            "--role",
            "security",
            "--expires-in",
            "7d",
            "--name",
            "siem",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("role=security"), "{out}");
    let plain = out
        .split_whitespace()
        .find(|w| w.starts_with("sy-adm-") && w.len() == 7 + 64)
        .expect("the plain token is printed once")
        .to_string();
    let (ok, _, err) = run("keys", &["create", "--team", "t1"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run("audit", &["verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("intact: 2 entries"), "{out}");
    let (ok, out, err) = run("audit", &["export"]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["action"], "token.created");
    assert_eq!(lines[0]["actor"], "cli:ops-alice");
    assert_eq!(lines[1]["action"], "key.created");
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert!(!out.contains(&plain), "the export holds the plain token");
    let (_, out, _) = run("audit", &["export", "--action", "token"]);
    assert_eq!(out.lines().count(), 1);

    // Tampering with the file is found, and the command fails.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let db = Db::connect(&format!("sqlite:{}", db_path.display()))
            .await
            .expect("db");
        if let Db::Sqlite(p) = &db {
            sqlx::query("UPDATE audit_log SET target = 'key_other' WHERE seq = 2")
                .execute(p)
                .await
                .expect("tamper");
        }
        db.close().await;
    });
    let (ok, _, err) = run("audit", &["verify"]);
    assert!(!ok, "verify passed a tampered trail");
    assert!(
        err.contains("AUDIT TRAIL BROKEN") && err.contains("entry 2 was altered"),
        "{err}"
    );
}
