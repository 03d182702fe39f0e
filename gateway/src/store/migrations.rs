//! Versioned schema migrations, applied in order inside one transaction and recorded in
//! `switchyard_migrations`. Append new versions; never edit an applied one.

use super::{time::now_ms, with_pool, Db, StoreError};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// Arbitrary constant shared by every replica: PostgreSQL serializes migrations on it.
const PG_LOCK_KEY: i64 = 0x5357_4954_4348;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ledger, daily rollups, virtual keys",
        statements: &[
            // Flags are BIGINT 0/1 rather than BOOLEAN so that reports can SUM them on both
            // engines; absent key/team are '' rather than NULL so they group and form keys.
            "CREATE TABLE IF NOT EXISTS ledger (
            id TEXT PRIMARY KEY,
            ts_ms BIGINT NOT NULL,
            day BIGINT NOT NULL,
            key_id TEXT NOT NULL DEFAULT '',
            team TEXT NOT NULL DEFAULT '',
            route TEXT NOT NULL DEFAULT '',
            provider TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            requested_model TEXT NOT NULL DEFAULT '',
            dialect TEXT NOT NULL DEFAULT '',
            stream BIGINT NOT NULL DEFAULT 0,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            tokens_estimated BIGINT NOT NULL DEFAULT 0,
            cost_micros BIGINT NOT NULL DEFAULT 0,
            counterfactual_micros BIGINT NOT NULL DEFAULT 0,
            price_known BIGINT NOT NULL DEFAULT 1,
            latency_ms BIGINT NOT NULL DEFAULT 0,
            ttft_ms BIGINT,
            cache_hit BIGINT NOT NULL DEFAULT 0,
            status BIGINT NOT NULL DEFAULT 0,
            error_kind TEXT,
            sensitivity TEXT NOT NULL DEFAULT '',
            redactions BIGINT NOT NULL DEFAULT 0
        )",
            "CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts_ms)",
            "CREATE TABLE IF NOT EXISTS spend_daily (
            day BIGINT NOT NULL,
            team TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            route TEXT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            cost_micros BIGINT NOT NULL DEFAULT 0,
            counterfactual_micros BIGINT NOT NULL DEFAULT 0,
            savings_micros BIGINT NOT NULL DEFAULT 0,
            unknown_price_requests BIGINT NOT NULL DEFAULT 0,
            cache_hits BIGINT NOT NULL DEFAULT 0,
            errors BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (day, team, key_id, model, route)
        )",
            "CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            team TEXT NOT NULL,
            user_id TEXT,
            app TEXT,
            tags TEXT NOT NULL DEFAULT '',
            name TEXT,
            created_ms BIGINT NOT NULL,
            revoked_ms BIGINT,
            rotated_ms BIGINT
        )",
            "CREATE INDEX IF NOT EXISTS api_keys_team ON api_keys (team)",
        ],
    },
    Migration {
        version: 2,
        name: "shadow pairs",
        statements: &[
            // One row per shadow comparison. Scores are integers in parts per million (the
            // schema keeps to BIGINT/TEXT); texts are NULL unless a policy allowed retention.
            "CREATE TABLE IF NOT EXISTS shadow_pairs (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            ts_ms BIGINT NOT NULL,
            team TEXT NOT NULL DEFAULT '',
            key_id TEXT NOT NULL DEFAULT '',
            rule TEXT NOT NULL DEFAULT '',
            difficulty_ppm BIGINT NOT NULL,
            primary_model TEXT NOT NULL,
            primary_external BIGINT NOT NULL,
            primary_cost_micros BIGINT NOT NULL,
            primary_latency_ms BIGINT NOT NULL,
            primary_output_tokens BIGINT NOT NULL,
            shadow_model TEXT NOT NULL,
            shadow_external BIGINT NOT NULL,
            shadow_cost_micros BIGINT NOT NULL,
            shadow_latency_ms BIGINT NOT NULL,
            shadow_output_tokens BIGINT NOT NULL,
            shadow_status BIGINT NOT NULL,
            shadow_error TEXT,
            primary_is_strong BIGINT NOT NULL,
            length_ratio_ppm BIGINT,
            refusal_primary BIGINT,
            refusal_shadow BIGINT,
            format_primary BIGINT,
            format_shadow BIGINT,
            lexical_ppm BIGINT,
            embedding_ppm BIGINT,
            judge TEXT,
            judge_model TEXT,
            judge_cost_micros BIGINT NOT NULL DEFAULT 0,
            quality_ppm BIGINT,
            prompt_text TEXT,
            primary_text TEXT,
            shadow_text TEXT
        )",
            "CREATE INDEX IF NOT EXISTS shadow_pairs_ts ON shadow_pairs (ts_ms)",
        ],
    },
    Migration {
        version: 3,
        name: "stored responses",
        statements: &[
            // Responses API conversations kept for `previous_response_id` and GET (the
            // only table that holds prompt and answer text: the client asked for it with
            // `store`). `tenant` scopes every read; `expires_ms` is the retention.
            "CREATE TABLE IF NOT EXISTS responses (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            messages TEXT NOT NULL,
            response TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires_ms)",
        ],
    },
    Migration {
        version: 4,
        name: "audit trail, scoped admin tokens",
        statements: &[
            // Append-only: rows are only ever inserted. `hash` chains each entry to the
            // previous one (audit/chain.rs), so an edited or deleted row is detected by
            // `switchyard audit verify`. `seq` is the chain position, 1-based, no gaps.
            "CREATE TABLE IF NOT EXISTS audit_log (
            seq BIGINT PRIMARY KEY,
            ts_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            source TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            before_json TEXT,
            after_json TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts_ms)",
            // Tokens for automation: a role and an expiry; only the SHA-256 is stored.
            "CREATE TABLE IF NOT EXISTS admin_tokens (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            role TEXT NOT NULL,
            name TEXT,
            created_by TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            revoked_ms BIGINT
        )",
        ],
    },
    Migration {
        version: 5,
        name: "team limits",
        statements: &[
            // One row per (team, kind) set at run time (limits/overrides.rs); a cleared
            // limit is a deleted row. Amounts are integer micro-dollars, like the ledger.
            "CREATE TABLE IF NOT EXISTS team_limits (
            team TEXT NOT NULL,
            kind TEXT NOT NULL,
            soft_micros BIGINT,
            hard_micros BIGINT,
            rpm BIGINT,
            tpm BIGINT,
            updated_ms BIGINT NOT NULL,
            updated_by TEXT NOT NULL,
            PRIMARY KEY (team, kind)
        )",
        ],
    },
    Migration {
        version: 6,
        name: "ledger: what served each request",
        statements: &[
            // local, frontier, cache, blocked or none (telemetry::metrics::RouteKind), so
            // the traffic explorer filters by it; rows written before this are ''.
            "ALTER TABLE ledger ADD COLUMN served TEXT NOT NULL DEFAULT ''",
        ],
    },
];

pub(super) async fn run(db: &Db) -> Result<(), StoreError> {
    let is_pg = matches!(db, Db::Postgres(_));
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        if is_pg {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS switchyard_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_ms BIGINT NOT NULL
            )",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM switchyard_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let fail = |source| StoreError::Migration {
                version: m.version,
                name: m.name,
                source,
            };
            for stmt in m.statements {
                sqlx::query(stmt).execute(&mut *tx).await.map_err(fail)?;
            }
            sqlx::query(
                "INSERT INTO switchyard_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        }
        tx.commit().await?;
        Ok(())
    })
}
