//! An organization's API keys and OAuth clients as its admins see them:
//! ids, labels and dates, never a secret or its digest.

use crate::{Store, StoreError};
use lightbox_domain::{OrgId, Timestamp};
use sqlx::Row;

/// Which kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    OAuthClient,
}

#[derive(Debug, Clone)]
pub struct CredentialSummary {
    pub kind: CredentialKind,
    pub id: String,
    pub description: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Store {
    /// The organization's API keys, then its OAuth clients, newest first.
    pub async fn list_credentials(
        &self,
        org_id: OrgId,
    ) -> Result<Vec<CredentialSummary>, StoreError> {
        let mut all = Vec::new();
        for (kind, table) in [
            (CredentialKind::ApiKey, "api_keys"),
            (CredentialKind::OAuthClient, "oauth_clients"),
        ] {
            let rows = sqlx::query(&format!(
                "SELECT id, description, created_at, revoked_at FROM {table} \
                 WHERE org_id = $1 ORDER BY created_at DESC, id"
            ))
            .bind(org_id.to_string())
            .fetch_all(&self.read)
            .await?;
            for row in rows {
                all.push(CredentialSummary {
                    kind,
                    id: row.try_get("id")?,
                    description: row.try_get("description")?,
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                    revoked_at: row
                        .try_get::<Option<i64>, _>("revoked_at")?
                        .map(Timestamp::from_millis),
                });
            }
        }
        Ok(all)
    }
}
