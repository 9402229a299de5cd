//! Users of an organization.

use crate::{flag, Store, StoreError};
use lightbox_domain::user::{InvitedSource, NewUser, User, UserLevel, UserRef};
use lightbox_domain::{Error, OrgId, Timestamp, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub(crate) const USER_COLUMNS: &str =
    "id, email, first_name, last_name, middle_name, suffix1, suffix2, \
     phone_number, clinic_role, level, can_manage_studies, has_dashboard_access, invited_source, \
     is_active, created_at, last_login_at";

/// Reads a [`UserRef`] from columns named `{prefix}id`, `{prefix}email`, … ;
/// `None` when the id is NULL (e.g. an unmatched LEFT JOIN).
pub(crate) fn user_ref(row: &AnyRow, prefix: &str) -> Result<Option<UserRef>, sqlx::Error> {
    let col = |name: &str| format!("{prefix}{name}");
    let Some(id) = row.try_get::<Option<String>, _>(col("id").as_str())? else {
        return Ok(None);
    };
    Ok(Some(UserRef {
        id: UserId::from_trusted(id),
        email: row.try_get(col("email").as_str())?,
        first_name: row.try_get(col("first_name").as_str())?,
        last_name: row.try_get(col("last_name").as_str())?,
        middle_name: row.try_get(col("middle_name").as_str())?,
        suffix1: row.try_get(col("suffix1").as_str())?,
        suffix2: row.try_get(col("suffix2").as_str())?,
    }))
}

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    Ok(User {
        reference: user_ref(row, "")?
            .ok_or_else(|| StoreError::Corrupt("user without id".into()))?,
        phone_number: row.try_get("phone_number")?,
        clinic_role: row.try_get("clinic_role")?,
        level: UserLevel::parse(row.try_get("level")?).map_err(corrupt)?,
        can_manage_studies: flag(row, "can_manage_studies")?,
        has_dashboard_access: flag(row, "has_dashboard_access")?,
        invited_source: InvitedSource::parse(row.try_get("invited_source")?).map_err(corrupt)?,
        is_active: flag(row, "is_active")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_login_at: row
            .try_get::<Option<i64>, _>("last_login_at")?
            .map(Timestamp::from_millis),
    })
}

impl Store {
    pub(crate) async fn insert_user(
        &self,
        tx: &mut Transaction<'static, Any>,
        org_id: OrgId,
        new: &NewUser,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let id = UserId::generate();
        let row = sqlx::query(&format!(
            "INSERT INTO users (org_id, id, email, first_name, last_name, middle_name, suffix1, suffix2, \
             phone_number, clinic_role, level, can_manage_studies, has_dashboard_access, invited_source, \
             is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(org_id.to_string())
        .bind(id.as_str())
        .bind(&new.email)
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(new.middle_name.clone())
        .bind(new.suffix1.clone())
        .bind(new.suffix2.clone())
        .bind(new.phone_number.clone())
        .bind(&new.clinic_role)
        .bind(new.level.as_str())
        .bind(new.can_manage_studies)
        .bind(new.has_dashboard_access)
        .bind(new.invited_source.as_str())
        .bind(true)
        .bind(now.millis())
        .fetch_one(&mut **tx)
        .await?;
        user_from_row(&row)
    }

    /// Adds a user to an organization. A second user with the same e-mail
    /// (case-insensitive) in the same organization is a conflict.
    pub async fn create_user(&self, org_id: OrgId, new: &NewUser) -> Result<User, Error> {
        new.validate()?;
        let mut tx = self.begin_write().await?;
        let user = match self
            .insert_user(&mut tx, org_id, new, Timestamp::now())
            .await
        {
            Err(e) if e.is_unique_violation() => {
                return Err(Error::Conflict(format!(
                    "a user with e-mail `{}` already exists in this organization",
                    new.email
                )))
            }
            other => other?,
        };
        tx.commit().await.map_err(StoreError::from)?;
        Ok(user)
    }

    pub async fn user(&self, org_id: OrgId, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user a study may be assigned to: one of the organization's active users.
    pub async fn assignable_user(&self, org_id: OrgId, id: &UserId) -> Result<User, Error> {
        match self.user(org_id, id).await? {
            Some(user) if user.is_active => Ok(user),
            Some(_) => Err(Error::Unprocessable(format!(
                "user {id} has had their access revoked and cannot be assigned studies"
            ))),
            None => Err(Error::Unprocessable(format!(
                "no user {id} in this organization"
            ))),
        }
    }
}
