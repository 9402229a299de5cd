//! Webhook endpoints: where an organization's events go, and their sealed
//! signing secrets (the store never sees a secret in clear; sealing is
//! `lightbox-webhooks`' job).

use crate::sqlite_reader::Row;
use crate::{Store, StoreError};
use lightbox_domain::webhook::{EventType, WebhookEndpointId};
use lightbox_domain::{ApiKeyId, Error, OrgId, Timestamp};

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub org_id: OrgId,
    pub id: WebhookEndpointId,
    /// Set: the endpoint takes the events of the studies this key created.
    pub api_key_id: Option<ApiKeyId>,
    pub url: String,
    /// Empty: every event type.
    pub event_types: Vec<EventType>,
    pub secret_sealed: String,
    /// The secret before the last rotation, with the time it stops signing.
    pub previous_secret: Option<(String, Timestamp)>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
}

/// What `create-webhook` stores.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: WebhookEndpointId,
    pub api_key_id: Option<ApiKeyId>,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub secret_sealed: String,
}

pub(crate) const ENDPOINT_COLUMNS: &str =
    "org_id, id, api_key_id, url, event_types, secret_sealed, \
     previous_secret_sealed, previous_until, enabled, disabled_reason, created_at";

fn event_types_text(types: &[EventType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn endpoint_from_row(row: &Row<'_>) -> Result<WebhookEndpoint, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    let org: String = row.get("org_id")?;
    let previous = match (
        row.get::<Option<String>>("previous_secret_sealed")?,
        row.get::<Option<i64>>("previous_until")?,
    ) {
        (Some(sealed), Some(until)) => Some((sealed, Timestamp::from_millis(until))),
        _ => None,
    };
    Ok(WebhookEndpoint {
        org_id: OrgId::parse(&org).map_err(corrupt)?,
        id: WebhookEndpointId::from_trusted(row.get("id")?),
        api_key_id: row
            .get::<Option<String>>("api_key_id")?
            .map(|k| ApiKeyId::parse(&k))
            .transpose()
            .map_err(corrupt)?,
        url: row.get("url")?,
        event_types: EventType::parse_list(&row.get::<String>("event_types")?).map_err(corrupt)?,
        secret_sealed: row.get("secret_sealed")?,
        previous_secret: previous,
        enabled: row.flag("enabled")?,
        disabled_reason: row.get("disabled_reason")?,
        created_at: Timestamp::from_millis(row.get("created_at")?),
    })
}

fn not_found(id: &WebhookEndpointId) -> Error {
    Error::NotFound(format!("no webhook endpoint {id} in this organization"))
}

impl Store {
    pub async fn create_webhook_endpoint(
        &self,
        org_id: OrgId,
        new: &NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, Error> {
        if let Some(key) = new.api_key_id {
            let owned = self.api_key(key).await?.is_some_and(|k| k.org_id == org_id);
            if !owned {
                return Err(Error::invalid(
                    "api-key",
                    format!("API key {key} is not one of this organization's"),
                ));
            }
        }
        let now = Timestamp::now().millis();
        sqlx::query(
            "INSERT INTO webhook_endpoints (org_id, id, api_key_id, url, event_types, secret_sealed, \
             enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(org_id.to_string())
        .bind(new.id.as_str())
        .bind(new.api_key_id.map(|k| k.to_string()))
        .bind(&new.url)
        .bind(event_types_text(&new.event_types))
        .bind(&new.secret_sealed)
        .bind(true)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        self.webhook_endpoint(org_id, &new.id)
            .await?
            .ok_or_else(|| not_found(&new.id))
    }

    pub async fn webhook_endpoint(
        &self,
        org_id: OrgId,
        id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref()
            .map(|row| endpoint_from_row(&Row::Any(row)))
            .transpose()
    }

    /// The organization's endpoints, oldest first.
    pub async fn webhook_endpoints(
        &self,
        org_id: OrgId,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY id"
        ))
        .bind(org_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| endpoint_from_row(&Row::Any(row)))
            .collect()
    }

    /// Enables, or disables with a reason (an operator, or the endpoint's own
    /// `410 Gone`). Pending deliveries wait while it is disabled.
    pub async fn set_webhook_enabled(
        &self,
        org_id: OrgId,
        id: &WebhookEndpointId,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = $1, disabled_reason = $2, updated_at = $3 \
             WHERE org_id = $4 AND id = $5",
        )
        .bind(enabled)
        .bind(if enabled { None } else { reason })
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        if enabled {
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    /// Replaces the signing secret; the current one keeps signing beside it
    /// until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        org_id: OrgId,
        id: &WebhookEndpointId,
        new_sealed: &str,
        previous_until: Timestamp,
    ) -> Result<(), Error> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
             previous_until = $1, secret_sealed = $2, updated_at = $3 WHERE org_id = $4 AND id = $5",
        )
        .bind(previous_until.millis())
        .bind(new_sealed)
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Deletes the endpoint and its deliveries, delivered or not.
    pub async fn delete_webhook_endpoint(
        &self,
        org_id: OrgId,
        id: &WebhookEndpointId,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        // Explicitly as well as by the cascade: SQLite enforces it only with
        // foreign keys on, which a connection could lack.
        sqlx::query("DELETE FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2")
            .bind(org_id.to_string())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org_id.to_string())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}
