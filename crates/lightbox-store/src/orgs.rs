//! Organizations and their credentials.

use crate::{Store, StoreError};
use lightbox_domain::credentials::{NewApiKey, NewClientSecret};
use lightbox_domain::user::{InvitedSource, NewUser, User, UserLevel};
use lightbox_domain::{ApiKeyId, OAuthClientId, OrgId, Timestamp, UserId};
use sqlx::Row;

pub struct NewOrg {
    pub name: String,
    pub owner_email: String,
}

/// Everything `lightbox admin create-org` hands back. The secrets exist only
/// here, in memory: the store keeps their digests.
pub struct CreatedOrg {
    pub org_id: OrgId,
    pub owner: User,
    pub api_key_id: ApiKeyId,
    pub api_key: String,
    pub client_id: OAuthClientId,
    pub client_secret: String,
    /// The called AE title DIMSE senders use to reach this organization.
    pub dicom_ae_title: lightbox_domain::dicom::AeTitle,
}

/// A credential an operator can revoke.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    ApiKey(ApiKeyId),
    OAuthClient(&'a OAuthClientId),
}

async fn insert_api_key<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    org_id: OrgId,
    key: &NewApiKey,
    description: &str,
    created_by: Option<&UserId>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, description, secret_hash, created_by_user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id.to_string())
    .bind(org_id.to_string())
    .bind(description)
    .bind(&key.secret_hash)
    .bind(created_by.map(|u| u.as_str().to_owned()))
    .bind(Timestamp::now().millis())
    .execute(db)
    .await?;
    Ok(())
}

async fn insert_oauth_client<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    org_id: OrgId,
    id: &OAuthClientId,
    client: &NewClientSecret,
    description: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oauth_clients (id, org_id, description, secret_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(org_id.to_string())
    .bind(description)
    .bind(&client.secret_hash)
    .bind(Timestamp::now().millis())
    .execute(db)
    .await?;
    Ok(())
}

/// A stored API key, found by its id when a request presents it.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub description: String,
    pub secret_hash: String,
    pub revoked: bool,
}

/// A stored OAuth client of the Images API.
#[derive(Debug, Clone)]
pub struct OAuthClientRecord {
    pub id: OAuthClientId,
    pub org_id: OrgId,
    pub secret_hash: String,
    pub revoked: bool,
}

impl Store {
    /// Creates an organization with its owner, a first API key and a first
    /// OAuth client, in one transaction.
    pub async fn create_org(&self, new: &NewOrg) -> Result<CreatedOrg, StoreError> {
        let now = Timestamp::now();
        let org_id = OrgId::generate();
        let owner = NewUser {
            email: new.owner_email.clone(),
            first_name: "Owner".into(),
            last_name: new.name.clone(),
            middle_name: None,
            suffix1: None,
            suffix2: None,
            phone_number: None,
            clinic_role: "Other".into(),
            level: UserLevel::Owner,
            can_manage_studies: true,
            has_dashboard_access: true,
            invited_source: InvitedSource::Dashboard,
        };
        let key = NewApiKey::generate();
        let client_id = OAuthClientId::generate();
        let client = NewClientSecret::generate();

        let ae_title = self.free_ae_title(&new.name).await?;

        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO organizations (id, name, created_at, dicom_ae_title) VALUES ($1, $2, $3, $4)",
        )
        .bind(org_id.to_string())
        .bind(&new.name)
        .bind(now.millis())
        .bind(ae_title.as_str())
            .execute(&mut *tx)
            .await?;
        let owner = self.insert_user(&mut tx, org_id, &owner, now).await?;
        insert_api_key(
            &mut *tx,
            org_id,
            &key,
            "Default key",
            Some(&owner.reference.id),
        )
        .await?;
        insert_oauth_client(&mut *tx, org_id, &client_id, &client, "Default client").await?;
        tx.commit().await?;

        Ok(CreatedOrg {
            org_id,
            owner,
            api_key_id: key.id,
            api_key: key.token,
            client_id,
            client_secret: client.secret,
            dicom_ae_title: ae_title,
        })
    }

    /// Issues another API key for an organization; returns its id and token.
    pub async fn create_api_key(
        &self,
        org_id: OrgId,
        description: &str,
        created_by: Option<&UserId>,
    ) -> Result<(ApiKeyId, String), StoreError> {
        let key = NewApiKey::generate();
        insert_api_key(&self.write, org_id, &key, description, created_by).await?;
        Ok((key.id, key.token))
    }

    /// Registers another OAuth client (Images API); returns its id and secret.
    pub async fn create_oauth_client(
        &self,
        org_id: OrgId,
        description: &str,
    ) -> Result<(OAuthClientId, String), StoreError> {
        let id = OAuthClientId::generate();
        let client = NewClientSecret::generate();
        insert_oauth_client(&self.write, org_id, &id, &client, description).await?;
        Ok((id, client.secret))
    }

    /// Revokes one of an organization's credentials at once: its next request
    /// is refused (access tokens already issued to a client included).
    /// Returns false when the organization has no such live credential.
    pub async fn revoke_credential(
        &self,
        org_id: OrgId,
        credential: Credential<'_>,
    ) -> Result<bool, StoreError> {
        let (table, id) = match credential {
            Credential::ApiKey(id) => ("api_keys", id.to_string()),
            Credential::OAuthClient(id) => ("oauth_clients", id.as_str().to_owned()),
        };
        let done = sqlx::query(&format!(
            "UPDATE {table} SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL"
        ))
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, description, secret_hash, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            let org: String = row.try_get("org_id")?;
            Ok(ApiKeyRecord {
                id,
                org_id: OrgId::parse(&org).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                description: row.try_get("description")?,
                secret_hash: row.try_get("secret_hash")?,
                revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            })
        })
        .transpose()
    }

    pub async fn oauth_client(
        &self,
        id: &OAuthClientId,
    ) -> Result<Option<OAuthClientRecord>, StoreError> {
        let row =
            sqlx::query("SELECT org_id, secret_hash, revoked_at FROM oauth_clients WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await?;
        row.map(|row| {
            let org: String = row.try_get("org_id")?;
            Ok(OAuthClientRecord {
                id: id.clone(),
                org_id: OrgId::parse(&org).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                secret_hash: row.try_get("secret_hash")?,
                revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            })
        })
        .transpose()
    }

    pub async fn org_exists(&self, org_id: OrgId) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM organizations WHERE id = $1")
            .bind(org_id.to_string())
            .fetch_optional(&self.read)
            .await?
            .is_some())
    }
}
