//! Lightbox persistence.
//!
//! One [`Store`] serves both backends through sqlx's `Any` driver: every query
//! is written once, with `$N` placeholders that SQLite and PostgreSQL both
//! understand. Each backend has its own migrations, and the few places where
//! SQL differs ask [`Dialect`].
//!
//! On SQLite, writes go through a single-connection pool and start with
//! `BEGIN IMMEDIATE`: SQLite admits one writer at a time anyway, and queueing
//! writers in the pool (instead of in SQLite's busy handler) means a request
//! never fails with "database is locked". Readers use their own pool and,
//! in WAL mode, never wait for the writer.

mod audit;
mod ephemeral;
mod error;
mod images;
mod orgs;
mod settings;
mod sql;
mod studies;
mod users;

pub use ephemeral::EphemeralSession;
pub use error::StoreError;
pub use images::ImageSort;
pub use orgs::{ApiKeyRecord, CreatedOrg, Credential, NewOrg, OAuthClientRecord};
pub use users::{Inviter, Page};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

/// Which SQL engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    dialect: Dialect,
    read: AnyPool,
    write: AnyPool,
}

/// A connection pool's occupancy.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub name: &'static str,
    /// Open connections, idle or in use.
    pub size: u32,
    pub idle: usize,
}

/// Tunables for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (and, on PostgreSQL, for writes too).
    pub max_connections: u32,
    /// How long a request may wait for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

// synchronous = FULL: an acknowledged write survives a power cut, not only a
// process crash (NORMAL in WAL mode may lose the last commits to the OS cache).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32000;";

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(options.acquire_timeout)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(SQLITE_PRAGMAS).await?;
                        Ok(())
                    })
                })
                .connect(&url)
        };
        // The writer first: it creates the file and switches it to WAL.
        let write = pool(1).await?;
        let read = pool(options.max_connections.max(1)).await?;
        let store = Store {
            dialect: Dialect::Sqlite,
            read,
            write,
        };
        sqlx::migrate!("./migrations/sqlite")
            .run(&store.write)
            .await?;
        Ok(store)
    }

    /// Connects to PostgreSQL (or a PostgreSQL-compatible engine) at `url`.
    pub async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        let store = Store {
            dialect: Dialect::Postgres,
            read: pool.clone(),
            write: pool,
        };
        sqlx::migrate!("./migrations/postgres")
            .run(&store.write)
            .await?;
        Ok(store)
    }

    /// Opens `database_url` when given (`postgres://…`, `postgresql://…` or
    /// `sqlite://PATH`), else the SQLite file `default_sqlite_path`.
    pub async fn open(
        database_url: Option<&str>,
        default_sqlite_path: &Path,
        options: &StoreOptions,
    ) -> Result<Store, StoreError> {
        match database_url {
            None | Some("") => Store::open_sqlite(default_sqlite_path, options).await,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::open_postgres(url, options).await
            }
            Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
                Some(path) => {
                    let path = path.split('?').next().unwrap_or(path);
                    Store::open_sqlite(Path::new(path), options).await
                }
                None => Err(StoreError::Config(format!(
                    "DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got `{}`)",
                    url.split("://").next().unwrap_or("")
                ))),
            },
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Answers whether the database takes queries.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.read).await?;
        Ok(())
    }

    /// Size and idle connections of each connection pool, for metrics:
    /// `read` and `write` on SQLite (one writer), one `shared` pool on PostgreSQL.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |name: &'static str, pool: &AnyPool| PoolStats {
            name,
            size: pool.size(),
            idle: pool.num_idle(),
        };
        match self.dialect {
            Dialect::Sqlite => vec![stats("read", &self.read), stats("write", &self.write)],
            Dialect::Postgres => vec![stats("shared", &self.read)],
        }
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// A transaction for writes; on SQLite it takes the write lock up front.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.write.begin().await?,
        })
    }
}

/// Reads a flag column: INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}
