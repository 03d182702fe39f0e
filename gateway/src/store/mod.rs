//! Durable storage shared by the ledger and the key store: one schema, one set of queries,
//! two engines. SQLite (WAL) is the embedded default; PostgreSQL is for several replicas.
//!
//! Queries are built at run time (no compile-time checked macros) because CI has no
//! database at build time. Every query uses `$N` placeholders, which both engines accept,
//! and only `BIGINT`/`TEXT` columns, so the same SQL text runs on both.

mod migrations;
pub mod time;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use migrations::MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    // The URL itself is left out: it may carry a password.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("ledger write failed: {0}")]
    Write(String),
    #[error("the ledger writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
}

/// A connection pool to either engine. Cloning is cheap (the pools are reference counted).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool; the body is type-checked once per
/// engine, which is what lets one piece of query code serve both.
macro_rules! with_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($p) => $body,
            $crate::store::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Bounds how long any caller waits for a pooled connection, so a dead database turns
/// into an error instead of a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Connects to `sqlite:PATH` (the file and its directory are created, WAL mode) or
    /// `postgres://...`, then brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        let db = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            Self::connect_postgres_opts(opts).await?
        } else {
            return Err(StoreError::BadUrl(
                "expected sqlite:PATH or postgres://...".into(),
            ));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Connects to PostgreSQL with every connection's `search_path` set to `schema`
    /// (created if missing), so several deployments or tests can share one database.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<Db, StoreError> {
        if schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?} must be ASCII letters, digits and _"
            )));
        }
        let opts =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        {
            let pool = Self::pg_pool(opts.clone(), 1).await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let db = Self::connect_postgres_opts(opts.options([("search_path", schema)])).await?;
        db.migrate().await?;
        Ok(db)
    }

    async fn pg_pool(opts: PgConnectOptions, max: u32) -> Result<sqlx::PgPool, StoreError> {
        Ok(PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?)
    }

    async fn connect_postgres_opts(opts: PgConnectOptions) -> Result<Db, StoreError> {
        Ok(Db::Postgres(Self::pg_pool(opts, 8).await?))
    }

    async fn connect_sqlite(url: &str) -> Result<Db, StoreError> {
        let path = url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        let in_memory = path.is_empty() || path == ":memory:" || url.contains("mode=memory");
        if !in_memory {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let (opts, max) = if in_memory {
            // Each connection to :memory: would be a separate, empty database.
            (opts, 1)
        } else {
            // WAL lets report readers run while the writer appends; NORMAL sync is durable
            // against process crashes (the WAL is fsynced at checkpoints).
            (
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
                4,
            )
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// The default ledger of a gateway: `switchyard.db` without a config file, and one
    /// database per config file otherwise (`switchyard-<stem>-<hash of its path>.db`), so
    /// two gateways with different configs never mix their ledgers, and `switchyard keys`
    /// or `report` with the same `--config` open the same database as the gateway.
    pub fn default_sqlite_url_for(config_file: Option<&std::path::Path>) -> String {
        let Some(path) = config_file else {
            return Self::default_sqlite_url();
        };
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let stem: String = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        format!(
            "sqlite:{}",
            Self::data_dir()
                .join(format!("switchyard-{stem}-{hash}.db"))
                .display()
        )
    }

    /// `${SWITCHYARD_DATA:-~/.local/share/switchyard}`.
    fn data_dir() -> PathBuf {
        std::env::var_os("SWITCHYARD_DATA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/share/switchyard"))
            })
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// `sqlite:${SWITCHYARD_DATA:-~/.local/share/switchyard}/switchyard.db`.
    pub fn default_sqlite_url() -> String {
        format!(
            "sqlite:{}",
            Self::data_dir().join("switchyard.db").display()
        )
    }

    /// Applies the migrations not applied yet; safe to call any number of times and from
    /// several replicas at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrations::run(self).await
    }

    /// The highest migration version applied.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = with_pool!(self, |p| {
            sqlx::query_scalar("SELECT MAX(version) FROM switchyard_migrations")
                .fetch_one(p)
                .await?
        });
        Ok(v.unwrap_or(0))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, |p| p.close().await)
    }
}
