//! Ephemeral viewer sessions.

use crate::{Store, StoreError};
use lightbox_domain::ephemeral::{EphemeralSessionId, HangingProtocol};
use lightbox_domain::{ApiKeyId, OrgId, Timestamp};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct EphemeralSession {
    pub id: EphemeralSessionId,
    pub retrieval_id: String,
    pub hanging_protocol: Option<HangingProtocol>,
    pub options: Option<serde_json::Value>,
    pub expires_at: Timestamp,
}

impl Store {
    pub async fn create_ephemeral_session(
        &self,
        org_id: OrgId,
        api_key: ApiKeyId,
        session: &EphemeralSession,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ephemeral_sessions (org_id, id, retrieval_id, hanging_protocol, options, api_key_id, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(org_id.to_string())
        .bind(session.id.as_str())
        .bind(&session.retrieval_id)
        .bind(session.hanging_protocol.as_ref().map(serde_json::to_string).transpose()?)
        .bind(session.options.as_ref().map(|o| o.to_string()))
        .bind(api_key.to_string())
        .bind(Timestamp::now().millis())
        .bind(session.expires_at.millis())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn ephemeral_session(
        &self,
        org_id: OrgId,
        id: &EphemeralSessionId,
    ) -> Result<Option<EphemeralSession>, StoreError> {
        let row = sqlx::query(
            "SELECT retrieval_id, hanging_protocol, options, expires_at FROM ephemeral_sessions \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hanging: Option<String> = row.try_get("hanging_protocol")?;
        let options: Option<String> = row.try_get("options")?;
        Ok(Some(EphemeralSession {
            id: id.clone(),
            retrieval_id: row.try_get("retrieval_id")?,
            hanging_protocol: hanging.as_deref().map(serde_json::from_str).transpose()?,
            options: options.as_deref().map(serde_json::from_str).transpose()?,
            expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        }))
    }
}
