//! Statements inside a write transaction, for either driver. Code written
//! against [`Exec`] (indexing a DICOM instance, queueing its webhook events)
//! runs on PostgreSQL through sqlx and on SQLite through rusqlite on one
//! blocking thread ([`SqliteWriter`]): one hand-off for the whole transaction,
//! where sqlx's SQLite driver hands every statement to its connection's thread
//! and back.

use crate::sql::Sql;
use crate::sqlite_reader::Row;
use crate::StoreError;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::{Connection, OpenFlags};
use sqlx::AnyPool;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The methods answer boxed futures: with `impl Future + Send` the compiler
/// cannot prove a generic caller's future `Send` ("not general enough").
pub(crate) trait Exec: Send {
    /// Runs a statement that returns no rows; answers how many it changed.
    fn execute(&mut self, sql: Sql) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Runs a query and reads each row with `each`.
    fn rows<T: Send + 'static>(
        &mut self,
        sql: Sql,
        each: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> BoxFuture<'_, Result<Vec<T>, StoreError>>;
}

impl Exec for sqlx::Transaction<'static, sqlx::Any> {
    fn execute(&mut self, sql: Sql) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { Ok(sql.query().execute(&mut **self).await?.rows_affected()) })
    }

    fn rows<T: Send + 'static>(
        &mut self,
        sql: Sql,
        each: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> BoxFuture<'_, Result<Vec<T>, StoreError>> {
        Box::pin(async move {
            let rows = sql.query().fetch_all(&mut **self).await?;
            rows.iter().map(|row| each(&Row::Any(row))).collect()
        })
    }
}

/// The SQLite writer's connection while it holds a transaction. Each
/// statement runs when called; the future it returns is already done.
pub(crate) struct SqliteTx<'c>(&'c mut Connection);

impl Exec for SqliteTx<'_> {
    fn execute(&mut self, sql: Sql) -> BoxFuture<'_, Result<u64, StoreError>> {
        let done = (|| {
            let mut statement = self.0.prepare_cached(sql.text())?;
            crate::sqlite_reader::bind(&mut statement, sql.values())?;
            Ok(statement.raw_execute()? as u64)
        })();
        Box::pin(std::future::ready(done))
    }

    fn rows<T: Send + 'static>(
        &mut self,
        sql: Sql,
        each: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> BoxFuture<'_, Result<Vec<T>, StoreError>> {
        Box::pin(std::future::ready(crate::sqlite_reader::run(
            self.0,
            sql.text(),
            sql.values(),
            |row| each(row).map(Some),
        )))
    }
}

/// One read-write rusqlite connection to a SQLite file, opened when first
/// needed. It writes only while it holds `turn`'s one connection (the sqlx
/// write pool of the same file), so the two writers never contend for
/// SQLite's write lock.
pub(crate) struct SqliteWriter {
    path: PathBuf,
    turn: AnyPool,
    connection: Mutex<Option<Connection>>,
}

impl SqliteWriter {
    pub(crate) fn new(path: PathBuf, turn: AnyPool) -> Arc<SqliteWriter> {
        Arc::new(SqliteWriter {
            path,
            turn,
            connection: Mutex::new(None),
        })
    }

    /// Runs `work` in a transaction on a blocking thread: committed when it
    /// answers `Some`, rolled back when it answers `None` or fails. Code
    /// written against [`Exec`] runs inside it through [`now`].
    pub(crate) async fn transaction<T, E, W>(
        self: &Arc<Self>,
        commit: Synchronous,
        work: W,
    ) -> Result<Option<T>, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        W: FnOnce(&mut SqliteTx<'_>) -> Result<Option<T>, E> + Send + 'static,
    {
        let turn = self.turn.acquire().await.map_err(StoreError::from)?;
        let writer = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Held until the transaction ends, even if the caller stops waiting.
            let _turn = turn;
            let mut slot = writer.connection.lock().unwrap_or_else(|e| e.into_inner());
            let conn = match slot.take() {
                // A `work` that panicked left its transaction open.
                Some(conn) if !conn.is_autocommit() => {
                    conn.execute_batch("ROLLBACK").map_err(StoreError::from)?;
                    slot.insert(conn)
                }
                Some(conn) => slot.insert(conn),
                None => slot.insert(writer.open()?),
            };
            // SQLite takes this only outside a transaction.
            conn.execute_batch(match commit {
                Synchronous::Full => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
                Synchronous::Normal => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
            })
            .map_err(StoreError::from)?;
            let done = work(&mut SqliteTx(conn));
            let end = if matches!(done, Ok(Some(_))) {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            if let Err(e) = conn.execute_batch(end) {
                // A connection left inside a transaction would hold the lock.
                *slot = None;
                return Err(StoreError::from(e).into());
            }
            done
        })
        .await
        .map_err(|e| StoreError::Config(format!("a SQLite write stopped: {e}")))?
    }

    /// A pragma's value on the writer's connection.
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> i64 {
        let slot = self.connection.lock().unwrap();
        let conn = slot.as_ref().expect("the writer has written");
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(crate::SQLITE_PRAGMAS)?;
        conn.execute_batch(crate::SQLITE_CONNECTION_PRAGMAS)?;
        Ok(conn)
    }
}

/// How a SQLite commit reaches the disk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Synchronous {
    /// Synced before the commit returns: survives a power cut.
    Full,
    /// Synced by a later full commit or checkpoint: survives a crash of the process.
    Normal,
}

/// The result of `work`, written against [`Exec`], on a [`SqliteTx`]: each
/// statement runs when it is called, so one poll finishes it.
pub(crate) fn now<T, E: From<StoreError>>(
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    work.now_or_never().unwrap_or_else(|| {
        Err(StoreError::Config("a SQLite write waited for something".into()).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer() -> (tempfile::TempDir, Arc<SqliteWriter>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        sqlx::any::install_default_drivers();
        let turn = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (dir, SqliteWriter::new(path, turn))
    }

    fn insert(v: i64) -> Sql {
        Sql::new("INSERT INTO t (v) VALUES ($1)").arg(v)
    }

    async fn values(writer: &Arc<SqliteWriter>) -> Vec<i64> {
        writer
            .transaction(Synchronous::Full, |tx| {
                now(async {
                    let sql = Sql::new("SELECT v FROM t ORDER BY v");
                    Ok::<_, StoreError>(Some(tx.rows(sql, |row| row.get("v")).await?))
                })
            })
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn some_commits_and_none_or_an_error_rolls_back() {
        let (_dir, writer) = writer().await;
        let commit = |v: i64, answer: Option<()>| {
            writer.transaction(Synchronous::Full, move |tx| {
                now(async {
                    tx.execute(insert(v)).await?;
                    Ok::<_, StoreError>(answer)
                })
            })
        };
        assert_eq!(commit(1, Some(())).await.unwrap(), Some(()));
        assert_eq!(commit(2, None).await.unwrap(), None);
        let failed = writer
            .transaction(Synchronous::Normal, |tx| {
                now(async {
                    tx.execute(insert(3)).await?;
                    // NOT NULL: the statement fails after the first one ran.
                    tx.execute(Sql::new("INSERT INTO t (v) VALUES (NULL)"))
                        .await?;
                    Ok::<_, StoreError>(Some(()))
                })
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(values(&writer).await, vec![1]);
    }

    #[tokio::test]
    async fn a_panic_inside_a_transaction_leaves_the_writer_usable() {
        let (_dir, writer) = writer().await;
        let panicked = writer
            .transaction(Synchronous::Full, |tx| -> Result<Option<()>, StoreError> {
                now(tx.execute(insert(7)))?;
                panic!("a bug in the work");
            })
            .await;
        assert!(panicked.is_err());
        writer
            .transaction(Synchronous::Full, |tx| {
                now(async {
                    tx.execute(insert(8)).await?;
                    Ok::<_, StoreError>(Some(()))
                })
            })
            .await
            .unwrap();
        assert_eq!(values(&writer).await, vec![8]);
    }
}
