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
//!
//! On SQLite the audit trail lives in a database file of its own
//! ([`Store::sqlite_audit_path`]). Every request appends an audit event, and
//! SQLite empties a connection's page cache whenever another connection has
//! committed to its file: with the trail in the main file, every read began
//! cold (a rare description search took 2.2x as long). PostgreSQL keeps it in
//! the one database; its buffer cache is shared.

mod admin_views;
mod audit;
mod changes;
mod claim;
mod credential_list;
mod dicom;
mod ephemeral;
mod error;
mod exec;
mod images;
mod orgs;
mod outbox;
mod qido;
mod search_trigrams;
mod settings;
mod sql;
mod sqlite_reader;
mod studies;
mod thumbnails;
mod users;
mod viewer_pages;
mod wado;
pub use wado::{InstanceMetadata, WadoInstance, WadoScope};
mod webhooks;

pub use dicom::{DicomPeerRecord, DicomRoute, Indexed, StoredInstance};
pub use qido::{QidoInstance, QidoPage, QidoRow, QidoSeries, QidoStudy};
pub use search_trigrams::TrigramCount;
pub use thumbnails::RepresentativeInstance;
mod web_sessions;

pub use admin_views::{DicomStudySummary, SessionAccessFacts};
pub use audit::Flush;
pub use changes::StudyChange;
pub use credential_list::{CredentialKind, CredentialSummary};
pub use ephemeral::EphemeralSession;
pub use error::StoreError;
pub use images::ImageSort;
pub use orgs::{ApiKeyRecord, CreatedOrg, Credential, NewOrg, OAuthClientRecord};
pub use outbox::{AttemptResult, ClaimedDelivery, Delivery, DeliveryStatus};
pub use users::{Inviter, Page};
pub use viewer_pages::{SeriesOverview, ViewerInstance, ViewerSeries, ViewerStudy};
pub use web_sessions::{NewWebSession, SignInAccount, WebSessionRecord};
pub use webhooks::{NewWebhookEndpoint, WebhookEndpoint};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection as _, Executor};
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
    /// The audit trail's pools: the audit file's on SQLite, the main pool on PostgreSQL.
    audit_read: AnyPool,
    audit_write: AnyPool,
    needle_plans: std::sync::Arc<studies::NeedlePlans>,
    /// Woken when this process writes deliveries, so its worker need not poll for them.
    outbox_ready: std::sync::Arc<tokio::sync::Notify>,
    changes: std::sync::Arc<changes::Changes>,
    /// SQLite: the main file's reader for the hot reads (`sqlite_reader`).
    sqlite_reader: Option<std::sync::Arc<sqlite_reader::SqliteReader>>,
    /// SQLite: the main file's writer for the hot write (indexing an instance, `exec`).
    sqlite_writer: Option<std::sync::Arc<exec::SqliteWriter>>,
    /// SQLite: the audit file's writer (appending events, `exec`).
    sqlite_audit_writer: Option<std::sync::Arc<exec::SqliteWriter>>,
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
pub(crate) const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";
/// Every SQLite connection's, the read-only ones of `sqlite_reader` too: wait
/// out another connection's lock or checkpoint, and a 32 MB page cache.
pub(crate) const SQLITE_CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32000;";

/// A connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Pool options shared by every pool. sqlx pings each connection it hands
/// out by default: a round trip to PostgreSQL (or to SQLite's worker thread)
/// before every query or transaction, ~one in five of the round trips an
/// ingested instance took. A connection in steady use is live; one that sat
/// idle (a restarted or failed-over server may have dropped it) is still
/// checked, and a dead one is replaced.
fn pool_options(options: &StoreOptions, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`.
    /// Its audit trail goes to [`Store::sqlite_audit_path`] beside it.
    pub async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = |path: &Path, max: u32| {
            pool_options(options, max)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(SQLITE_PRAGMAS).await?;
                        conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                        Ok(())
                    })
                })
                .connect_lazy(&format!("sqlite://{}?mode=rwc", path.display()))
        };
        let readers = options.max_connections.max(1);
        let audit_path = Store::sqlite_audit_path(path);
        let (write, audit_write) = (pool(path, 1)?, pool(&audit_path, 1)?);
        let store = Store {
            dialect: Dialect::Sqlite,
            read: pool(path, readers)?,
            write: write.clone(),
            audit_read: pool(&audit_path, readers)?,
            audit_write: audit_write.clone(),
            needle_plans: Default::default(),
            outbox_ready: Default::default(),
            changes: changes::Changes::new(None),
            sqlite_reader: Some(sqlite_reader::SqliteReader::new(
                path.to_owned(),
                readers,
                options.acquire_timeout,
            )),
            sqlite_writer: Some(exec::SqliteWriter::new(path.to_owned(), write)),
            sqlite_audit_writer: Some(exec::SqliteWriter::new(audit_path.clone(), audit_write)),
        };
        // Writers first: they create the files and switch them to WAL.
        sqlx::migrate!("./migrations/sqlite")
            .run(&store.write)
            .await?;
        sqlx::migrate!("./migrations/sqlite-audit")
            .run(&store.audit_write)
            .await?;
        store.move_sqlite_audit_trail(&audit_path).await?;
        store.analyze_new_sqlite_indexes().await?;
        Ok(store)
    }

    /// An index that a migration adds to a table with statistics (`ANALYZE`
    /// was run on it) has none of its own, and SQLite's planner then trusts
    /// its defaults for that index over the measured ones: after 0006 it
    /// picked the new index for an unfiltered page and sorted the whole
    /// organization. Such an index is analyzed on its own (about a second per
    /// million rows, once).
    async fn analyze_new_sqlite_indexes(&self) -> Result<(), StoreError> {
        if !self.sqlite_has_table("sqlite_stat1").await? {
            return Ok(());
        }
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master \
             WHERE type = 'index' AND tbl_name IN (SELECT tbl FROM sqlite_stat1) \
             AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE idx IS NOT NULL)",
        )
        .fetch_all(&self.write)
        .await?;
        for index in indexes {
            tracing::info!(%index, "analyzing a new index");
            let analyze = format!("ANALYZE \"{}\"", index.replace('"', "\"\""));
            self.write.execute(analyze.as_str()).await?;
        }
        Ok(())
    }

    /// Whether the main SQLite file has a table called `name`.
    async fn sqlite_has_table(&self, name: &str) -> Result<bool, StoreError> {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        )
        .bind(name)
        .fetch_one(&self.write)
        .await?;
        Ok(tables > 0)
    }

    /// The SQLite file that holds the audit trail of the database at `path`
    /// (`lightbox.db` → `lightbox.audit.db`). Back both up together.
    pub fn sqlite_audit_path(path: &Path) -> std::path::PathBuf {
        path.with_extension("audit.db")
    }

    /// Connects to PostgreSQL (or a PostgreSQL-compatible engine) at `url`.
    pub async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = pool_options(options, options.max_connections.max(1))
            .connect(url)
            .await?;
        let store = Store {
            dialect: Dialect::Postgres,
            read: pool.clone(),
            write: pool.clone(),
            audit_read: pool.clone(),
            audit_write: pool,
            needle_plans: Default::default(),
            outbox_ready: Default::default(),
            changes: changes::Changes::new(Some(url)),
            sqlite_reader: None,
            sqlite_writer: None,
            sqlite_audit_writer: None,
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
        sqlx::query("SELECT 1").fetch_one(&self.audit_read).await?;
        Ok(())
    }

    /// Size and idle connections of each connection pool, for metrics:
    /// `read` and `write` on SQLite (one writer), and `audit_read` and
    /// `audit_write` for its audit file; one `shared` pool on PostgreSQL.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |name: &'static str, pool: &AnyPool| PoolStats {
            name,
            size: pool.size(),
            idle: pool.num_idle(),
        };
        match self.dialect {
            Dialect::Sqlite => vec![
                stats("read", &self.read),
                stats("write", &self.write),
                stats("audit_read", &self.audit_read),
                stats("audit_write", &self.audit_write),
            ],
            Dialect::Postgres => vec![stats("shared", &self.read)],
        }
    }

    pub async fn close(&self) {
        for pool in [&self.read, &self.write, &self.audit_read, &self.audit_write] {
            pool.close().await;
        }
    }

    /// A transaction for writes; on SQLite it takes the write lock up front.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.begin_write_on(&self.write).await
    }

    async fn begin_write_on(
        &self,
        pool: &AnyPool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => pool.begin().await?,
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
