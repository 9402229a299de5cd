//! The audit trail's storage.

use crate::exec::{self, Exec, Synchronous};
use crate::sql::Sql;
use crate::users::{paginate, Page};
use crate::{Dialect, Store, StoreError};
use lightbox_domain::audit::{ActorKind, AuditEvent, AuditEventId, AuditFilter, Outcome};
use lightbox_domain::{Error, OrgId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

const COLUMNS: &str =
    "org_id, id, occurred_at, actor_type, actor_id, action, resource_type, resource_id, \
     outcome, status, client_ip, request_id";

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    Ok(AuditEvent {
        id: AuditEventId::from_trusted(row.try_get("id")?),
        org_id: OrgId::parse(row.try_get("org_id")?).map_err(corrupt)?,
        occurred_at: Timestamp::from_millis(row.try_get("occurred_at")?),
        actor_kind: ActorKind::parse(row.try_get("actor_type")?).map_err(corrupt)?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        outcome: Outcome::parse(row.try_get("outcome")?).map_err(corrupt)?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
        client_ip: row.try_get("client_ip")?,
        request_id: row.try_get("request_id")?,
    })
}

/// When an audit commit must be on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Before the commit returns: the events survive a power cut.
    Now,
    /// Soon after: the events survive a crash of Lightbox (they are in the
    /// database's log, waiting in the OS's cache on SQLite, in PostgreSQL's
    /// WAL buffers) but a power cut before the next flush may lose them.
    /// A flush is any later `Now` commit, [`Store::flush_audit`] or, on
    /// PostgreSQL, its WAL writer within `3 × wal_writer_delay` (600 ms).
    Later,
}

impl Store {
    /// Appends events in one transaction: all are stored, or none.
    pub async fn append_audit_events(
        &self,
        events: &[AuditEvent],
        flush: Flush,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // Bounded batches keep each statement well under parameter limits (12 per row).
        let inserts: Vec<Sql> = events.chunks(64).map(insert_events).collect();
        // Chosen per transaction, as the audit file's one writer commits both
        // kinds. A FULL commit in WAL mode syncs the log and so flushes earlier
        // NORMAL commits too; a synchronous commit on PostgreSQL likewise.
        if let Some(writer) = &self.sqlite_audit_writer {
            let commit = match flush {
                Flush::Now => Synchronous::Full,
                Flush::Later => Synchronous::Normal,
            };
            writer
                .transaction(commit, move |tx| {
                    exec::now(async { execute_all(tx, inserts).await.map(Some) })
                })
                .await?;
            return Ok(());
        }
        let mut tx = self.audit_write.begin().await?;
        if flush == Flush::Later {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        execute_all(&mut tx, inserts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts every audit event committed with [`Flush::Later`] on the disk.
    pub async fn flush_audit(&self) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite {
            // A checkpoint syncs the log before it copies it into the file.
            // PASSIVE: it takes no writer lock, so it runs beside the writer
            // (on another connection) and never holds up an append.
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.audit_read)
                .await?;
        }
        Ok(())
    }

    /// An organization's audit events, newest first.
    pub async fn list_audit_events(
        &self,
        org_id: OrgId,
        filter: &AuditFilter,
        limit: u32,
        after: Option<&AuditEventId>,
    ) -> Result<Page<AuditEvent, AuditEventId>, StoreError> {
        // A resource's history is read through its index. Left to itself, SQLite
        // (no statistics on a young audit file, and a value it cannot see when
        // planning) walks the primary key in `id` order to skip the sort and
        // filters every event of the organization: 10 ms at 28,000 events,
        // growing with the trail. PostgreSQL's statistics choose the index.
        let index = match (self.dialect, &filter.resource_id) {
            (Dialect::Sqlite, Some(_)) => " INDEXED BY audit_events_by_resource",
            _ => "",
        };
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM audit_events{index} WHERE org_id = "
        ));
        sql.bind(org_id.to_string());
        if let Some(after) = after {
            sql.push(" AND id < ").bind(after.as_str());
        }
        for (column, value) in [
            ("action", &filter.action),
            ("resource_id", &filter.resource_id),
            ("actor_id", &filter.actor_id),
        ] {
            if let Some(value) = value {
                sql.push(&format!(" AND {column} = ")).bind(value.as_str());
            }
        }
        if let Some(since) = filter.since {
            sql.push(" AND occurred_at >= ").bind(since.millis());
        }
        if let Some(until) = filter.until {
            sql.push(" AND occurred_at < ").bind(until.millis());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.audit_read).await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(events, limit, |e| e.id.clone()))
    }
}

impl Store {
    /// Moves the events of a SQLite database from before the audit file
    /// (migration 0005 kept them in the main file) into the audit file, then
    /// drops the old table. Each step is one statement on one file; a crash
    /// between them copies again on the next start (duplicates are skipped).
    pub(crate) async fn move_sqlite_audit_trail(
        &self,
        audit_path: &std::path::Path,
    ) -> Result<(), StoreError> {
        if !self.sqlite_has_table("audit_events").await? {
            return Ok(());
        }
        let mut conn = self.write.acquire().await?;
        sqlx::query("ATTACH DATABASE $1 AS audit_file")
            .bind(audit_path.display().to_string())
            .execute(&mut *conn)
            .await?;
        let copied = sqlx::query(&format!(
            "INSERT OR IGNORE INTO audit_file.audit_events ({COLUMNS}) \
             SELECT {COLUMNS} FROM main.audit_events"
        ))
        .execute(&mut *conn)
        .await;
        sqlx::query("DETACH DATABASE audit_file")
            .execute(&mut *conn)
            .await?;
        copied?;
        sqlx::query("DROP TABLE main.audit_events")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The statements, in order, on either driver's transaction.
async fn execute_all<E: Exec>(tx: &mut E, statements: Vec<Sql>) -> Result<(), StoreError> {
    for sql in statements {
        tx.execute(sql).await?;
    }
    Ok(())
}

/// One multi-row INSERT of `events`.
fn insert_events(events: &[AuditEvent]) -> Sql {
    let mut sql = Sql::new(&format!("INSERT INTO audit_events ({COLUMNS}) VALUES "));
    for (n, e) in events.iter().enumerate() {
        sql.push(if n == 0 { "(" } else { ", (" });
        sql.bind(e.org_id.to_string()).push(", ");
        sql.bind(e.id.as_str()).push(", ");
        sql.bind(e.occurred_at.millis()).push(", ");
        sql.bind(e.actor_kind.as_str()).push(", ");
        sql.bind(e.actor_id.clone()).push(", ");
        sql.bind(e.action.as_str()).push(", ");
        sql.bind(e.resource_type.clone()).push(", ");
        sql.bind(e.resource_id.clone()).push(", ");
        sql.bind(e.outcome.as_str()).push(", ");
        sql.bind(i64::from(e.status)).push(", ");
        sql.bind(e.client_ip.clone()).push(", ");
        sql.bind(e.request_id.clone()).push(")");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(org_id: OrgId, action: &str) -> AuditEvent {
        AuditEvent::by_operator(org_id, action, None)
    }

    /// The audit file's writer commits reads without a sync; the next change
    /// must get its sync back.
    #[tokio::test]
    async fn a_change_after_reads_is_committed_with_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db"), &Default::default())
            .await
            .unwrap();
        let org = OrgId::generate();
        let writer = store.sqlite_audit_writer.clone().unwrap();
        let synchronous = || async { writer.pragma("synchronous") };
        store
            .append_audit_events(&[event(org, "study.read")], Flush::Later)
            .await
            .unwrap();
        assert_eq!(synchronous().await, 1, "NORMAL for a read");
        store
            .append_audit_events(&[event(org, "study.update")], Flush::Now)
            .await
            .unwrap();
        assert_eq!(synchronous().await, 2, "FULL for a change");
        store.flush_audit().await.unwrap();
        let page = store
            .list_audit_events(org, &AuditFilter::default(), 10, None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
    }
}
