//! The audit trail's storage.

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

impl Store {
    /// Appends events in one transaction: all are stored, or none.
    pub async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write_on(&self.audit_write).await?;
        // Bounded batches keep each statement well under parameter limits (12 per row).
        for chunk in events.chunks(64) {
            let mut sql = Sql::new(&format!("INSERT INTO audit_events ({COLUMNS}) VALUES "));
            for (n, e) in chunk.iter().enumerate() {
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
            sql.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
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
