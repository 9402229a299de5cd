//! The hot reads on SQLite (DICOMweb searches and metadata), run with
//! rusqlite on a blocking thread: one hand-off per query, where sqlx's SQLite
//! driver hands every row from its connection's thread to the task and its
//! `Any` layer converts and copies each value again. At 1M studies that path
//! cost the server 6–8 ms for a 101-study page whose SQL takes 2 ms
//! (BENCHMARKS.md). Everything else, writes included, stays on sqlx.

use crate::sql::{Sql, Value};
use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use sqlx::any::AnyRow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Read-only connections to one SQLite file, opened as needed, at most
/// `max` in use at once.
pub(crate) struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// Statements each connection keeps prepared (rusqlite's default is 16).
const PREPARED_PER_CONNECTION: usize = 64;

impl SqliteReader {
    pub(crate) fn new(path: PathBuf, max: u32, acquire_timeout: Duration) -> Arc<SqliteReader> {
        Arc::new(SqliteReader {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
        })
    }

    /// Runs `sql` and passes each row to `each` until it answers `None`;
    /// returns what it answered before that.
    pub(crate) async fn rows<T, F>(
        self: &Arc<Self>,
        sql: Sql,
        each: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Row<'_>) -> Result<Option<T>, StoreError> + Send + 'static,
    {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))?
        .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        let reader = Arc::clone(self);
        let rows = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = reader.connection()?;
            let rows = run(&conn, sql.text(), sql.values(), each);
            // A connection goes back whatever the query did: errors leave it usable.
            reader
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            rows
        })
        .await
        .map_err(|e| StoreError::Config(format!("a SQLite read stopped: {e}")))?;
        rows
    }

    fn connection(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(crate::SQLITE_CONNECTION_PRAGMAS)?;
        conn.set_prepared_statement_cache_capacity(PREPARED_PER_CONNECTION);
        Ok(conn)
    }
}

pub(crate) fn run<T, F>(
    conn: &Connection,
    text: &str,
    values: &[Value],
    mut each: F,
) -> Result<Vec<T>, StoreError>
where
    F: FnMut(&Row<'_>) -> Result<Option<T>, StoreError>,
{
    let mut statement = conn.prepare_cached(text)?;
    bind(&mut statement, values)?;
    // rusqlite finds a column by name with a scan that compares every name
    // before it (~1 ms for a page of studies): look each up once.
    let columns: HashMap<String, usize> = statement
        .column_names()
        .into_iter()
        .enumerate()
        .map(|(index, name)| (name.to_owned(), index))
        .collect();
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        match each(&Row::Sqlite(row, &columns))? {
            Some(item) => out.push(item),
            None => break,
        }
    }
    Ok(out)
}

/// Binds `values` to a statement written for `Sql` (placeholders `$1, $2, …`,
/// which SQLite takes as names).
pub(crate) fn bind(
    statement: &mut rusqlite::Statement<'_>,
    values: &[Value],
) -> Result<(), StoreError> {
    for (n, value) in values.iter().enumerate() {
        let Some(index) = statement.parameter_index(&format!("${}", n + 1))? else {
            continue;
        };
        match value {
            Value::Text(s) => statement.raw_bind_parameter(index, s.as_str())?,
            Value::Int(i) => statement.raw_bind_parameter(index, i)?,
            Value::Bool(b) => statement.raw_bind_parameter(index, i64::from(*b))?,
            Value::NullText | Value::NullInt => {
                statement.raw_bind_parameter(index, rusqlite::types::Null)?
            }
        }
    }
    Ok(())
}

impl crate::Store {
    /// Runs `sql` on the read pool and passes each row to `each` until it
    /// answers `None`; returns what it answered before that. On SQLite this is
    /// the [`SqliteReader`], elsewhere sqlx.
    pub(crate) async fn read_rows<T, F>(&self, sql: Sql, mut each: F) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Row<'_>) -> Result<Option<T>, StoreError> + Send + 'static,
    {
        if let Some(reader) = &self.sqlite_reader {
            return reader.rows(sql, each).await;
        }
        use futures_util::TryStreamExt;
        let mut rows = sql.query().fetch(&self.read);
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            match each(&Row::Any(&row))? {
                Some(item) => out.push(item),
                None => break,
            }
        }
        Ok(out)
    }
}

/// A result row from either path, read by column name.
pub(crate) enum Row<'a> {
    Any(&'a AnyRow),
    Sqlite(&'a rusqlite::Row<'a>, &'a HashMap<String, usize>),
}

/// A column value both drivers decode.
pub(crate) trait Column:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl Row<'_> {
    pub(crate) fn get<T: Column>(&self, column: &str) -> Result<T, StoreError> {
        match self {
            Row::Any(row) => Ok(sqlx::Row::try_get(*row, column)?),
            Row::Sqlite(row, columns) => Ok(row.get(Row::index(columns, column)?)?),
        }
    }

    /// A flag column: INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    pub(crate) fn flag(&self, column: &str) -> Result<bool, StoreError> {
        match self {
            Row::Any(row) => Ok(crate::flag(row, column)?),
            Row::Sqlite(row, columns) => Ok(row.get::<_, i64>(Row::index(columns, column)?)? != 0),
        }
    }

    fn index(columns: &HashMap<String, usize>, column: &str) -> Result<usize, StoreError> {
        columns.get(column).copied().ok_or_else(|| {
            StoreError::Sqlite(rusqlite::Error::InvalidColumnName(column.to_owned()))
        })
    }
}
