//! The web app's accounts and sessions: users' password hashes and the
//! server-side `web_sessions` table (migration 0010).
//!
//! Only digests are stored: an argon2id PHC string per password, a SHA-256 per
//! session token. Hashing and the timeout rules live with the web app; this
//! module stores and finds rows, and ends a user's sessions in the same
//! transaction that takes their access away.

use crate::users::{user_columns, user_from_row};
use crate::{Store, StoreError};
use lightbox_domain::invitation::{InvitationId, InvitationStatus};
use lightbox_domain::user::User;
use lightbox_domain::{Error, OrgId, Timestamp, UserId};
use sqlx::{Any, Row, Transaction};

/// A user who may try to sign in with an e-mail address, and their password hash.
pub struct SignInAccount {
    pub org_id: OrgId,
    pub user: User,
    pub password_hash: Option<String>,
}

/// A session row, found by the digest of its token.
#[derive(Debug, Clone)]
pub struct WebSessionRecord {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A new session: the digest of its token, whose it is, and its absolute limit.
pub struct NewWebSession<'a> {
    pub token_hash: &'a str,
    pub org_id: OrgId,
    pub user_id: &'a UserId,
    pub expires_at: Timestamp,
    pub user_agent: Option<&'a str>,
}

/// At most this many accounts share one e-mail address across organizations
/// for sign-in; each costs a password verification.
const MAX_ACCOUNTS_PER_EMAIL: i64 = 5;

impl Store {
    /// The accounts with this e-mail address (case-insensitive), in every
    /// organization, most recently signed-in first.
    pub async fn sign_in_accounts(&self, email: &str) -> Result<Vec<SignInAccount>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT u.org_id AS account_org_id, u.password_hash AS account_password_hash, {} \
             FROM users u WHERE lower(u.email) = lower($1) \
             ORDER BY coalesce(u.last_login_at, 0) DESC, u.org_id LIMIT {MAX_ACCOUNTS_PER_EMAIL}",
            user_columns("u")
        ))
        .bind(email)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SignInAccount {
                    org_id: OrgId::parse(row.try_get("account_org_id")?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    user: user_from_row(row)?,
                    password_hash: row.try_get("account_password_hash")?,
                })
            })
            .collect()
    }

    /// The user's password hash, when they have set a password.
    pub async fn password_hash(
        &self,
        org_id: OrgId,
        user_id: &UserId,
    ) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE org_id = $1 AND id = $2")
                .bind(org_id.to_string())
                .bind(user_id.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(hash.flatten())
    }

    /// Sets a user's password (a reset) and ends their sessions. The update
    /// only applies while the stored hash is still `expected`, so a reset link
    /// (bound to the hash it was made for) works once.
    pub async fn reset_password(
        &self,
        org_id: OrgId,
        user_id: &UserId,
        expected: Option<&str>,
        password_hash: &str,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 \
             AND coalesce(password_hash, '') = $5",
        )
        .bind(password_hash)
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(user_id.as_str())
        .bind(expected.unwrap_or(""))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if changed.rows_affected() == 0 {
            return Err(Error::Gone("this link has already been used".into()));
        }
        end_sessions_of(&mut tx, org_id, user_id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Accepts an open invitation by setting the invited user's password, in
    /// one transaction: a second use of the link finds it accepted.
    pub async fn accept_invitation(
        &self,
        org_id: OrgId,
        id: &InvitationId,
        password_hash: &str,
    ) -> Result<User, Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let user_id: Option<String> = sqlx::query_scalar(
            "UPDATE invitations SET status = $1, updated_at = $2 \
             WHERE org_id = $3 AND id = $4 AND status = $5 AND (expires_at IS NULL OR expires_at > $2) \
             RETURNING user_id",
        )
        .bind(InvitationStatus::Accepted.as_str())
        .bind(now)
        .bind(org_id.to_string())
        .bind(id.as_str())
        .bind(InvitationStatus::Sent.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(user_id) = user_id else {
            return Err(Error::Gone(
                "this invitation has already been used, was revoked, or has expired".into(),
            ));
        };
        sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(password_hash)
        .bind(now)
        .bind(org_id.to_string())
        .bind(&user_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        let user_id = UserId::from_trusted(user_id);
        self.user(org_id, &user_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {user_id} not found")))
    }

    /// Marks the user's open invitations accepted, for a person who signs in
    /// through the clinic's identity provider instead of following the link:
    /// the link then stops working, as if they had set a password with it.
    /// Returns the invitations accepted (usually none or one).
    pub async fn accept_invitations_of(
        &self,
        org_id: OrgId,
        user_id: &UserId,
    ) -> Result<Vec<InvitationId>, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE invitations SET status = $1, updated_at = $2 \
             WHERE org_id = $3 AND user_id = $4 AND status = $5 AND (expires_at IS NULL OR expires_at > $2) \
             RETURNING id",
        )
        .bind(InvitationStatus::Accepted.as_str())
        .bind(now)
        .bind(org_id.to_string())
        .bind(user_id.as_str())
        .bind(InvitationStatus::Sent.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.into_iter().map(InvitationId::from_trusted).collect())
    }

    /// Stores a new session and records the sign-in on the user. Sessions
    /// that have ended by time (past their absolute limit, or unused since
    /// `idle_cutoff`) are deleted on the way, everyone's: the table holds one
    /// row per signed-in browser, so this stays small.
    pub async fn create_web_session(
        &self,
        new: &NewWebSession<'_>,
        idle_cutoff: Timestamp,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_cutoff.millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, org_id, user_id, created_at, last_seen_at, expires_at, user_agent) \
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(new.token_hash)
        .bind(new.org_id.to_string())
        .bind(new.user_id.as_str())
        .bind(now)
        .bind(new.expires_at.millis())
        .bind(new.user_agent.map(|ua| ua.chars().take(256).collect::<String>()))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(now)
            .bind(new.org_id.to_string())
            .bind(new.user_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn web_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<WebSessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT org_id, user_id, created_at, last_seen_at, expires_at FROM web_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(WebSessionRecord {
                org_id: OrgId::parse(row.try_get("org_id")?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                user_id: UserId::from_trusted(row.try_get("user_id")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at")?),
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
            })
        })
        .transpose()
    }

    /// Marks a session as used now (its idle timeout starts again).
    pub async fn touch_web_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now.millis())
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Ends one session (sign-out, or found expired).
    pub async fn delete_web_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

/// Ends every session of a user, inside the caller's transaction.
pub(crate) async fn end_sessions_of(
    tx: &mut Transaction<'static, Any>,
    org_id: OrgId,
    user_id: &UserId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM web_sessions WHERE org_id = $1 AND user_id = $2")
        .bind(org_id.to_string())
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
