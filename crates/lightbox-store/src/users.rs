//! Users of an organization, and their invitations.

use crate::sql::{like_escape, Sql};
use crate::{flag, Store, StoreError};
use lightbox_domain::invitation::{
    Invitation, InvitationExpiredFilter, InvitationFilter, InvitationId, InvitationStatus,
    INVITATION_TTL_DAYS,
};
use lightbox_domain::user::{
    check_user_rules, InvitedSource, NewUser, User, UserFilter, UserLevel, UserPatch, UserRef,
};
use lightbox_domain::{ApiKeyId, Error, OrgId, Timestamp, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const USER_FIELDS: [&str; 16] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "middle_name",
    "suffix1",
    "suffix2",
    "phone_number",
    "clinic_role",
    "level",
    "can_manage_studies",
    "has_dashboard_access",
    "invited_source",
    "is_active",
    "created_at",
    "last_login_at",
];

/// The user columns, qualified with a table alias, as [`user_from_row`] reads them.
pub(crate) fn user_columns(alias: &str) -> String {
    USER_FIELDS.map(|c| format!("{alias}.{c}")).join(", ")
}

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

const INVITATION_SELECT_HEAD: &str = "SELECT i.id AS inv_id, i.org_id AS inv_org_id, i.status AS inv_status, \
     i.inviter_user_id AS inv_inviter, i.invited_by_api_key_id AS inv_api_key, i.expires_at AS inv_expires_at, \
     i.created_at AS inv_created_at, i.updated_at AS inv_updated_at, ";
const INVITATION_FROM: &str =
    " FROM invitations i JOIN users u ON u.org_id = i.org_id AND u.id = i.user_id";

fn invitation_select() -> String {
    format!(
        "{INVITATION_SELECT_HEAD}{}{INVITATION_FROM}",
        user_columns("u")
    )
}

fn invitation_from_row(row: &AnyRow) -> Result<Invitation, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    Ok(Invitation {
        id: InvitationId::from_trusted(row.try_get("inv_id")?),
        org_id: OrgId::parse(row.try_get("inv_org_id")?).map_err(corrupt)?,
        user: user_from_row(row)?,
        status: InvitationStatus::parse(row.try_get("inv_status")?).map_err(corrupt)?,
        inviter_id: row
            .try_get::<Option<String>, _>("inv_inviter")?
            .map(UserId::from_trusted),
        invited_by_api_key_id: row
            .try_get::<Option<String>, _>("inv_api_key")?
            .map(|k| ApiKeyId::parse(&k))
            .transpose()
            .map_err(corrupt)?,
        created_at: Timestamp::from_millis(row.try_get("inv_created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("inv_updated_at")?),
        expiry: row
            .try_get::<Option<i64>, _>("inv_expires_at")?
            .map(Timestamp::from_millis),
    })
}

/// One page of a listing, newest first. It is asked for with one row more than
/// `limit`; that row, when it comes, only tells that more follow, and
/// `next_after` is then the last id served.
pub struct Page<T, Id> {
    pub items: Vec<T>,
    pub next_after: Option<Id>,
}

pub(crate) fn paginate<T, Id>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> Id) -> Page<T, Id> {
    let next_after = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next_after }
}

fn email_taken(email: &str) -> Error {
    Error::Conflict(format!(
        "a user with e-mail `{email}` already exists in this organization"
    ))
}

fn user_not_found(id: &UserId) -> Error {
    Error::NotFound(format!("user {id} not found"))
}

fn invitation_not_found(id: &InvitationId) -> Error {
    Error::NotFound(format!("invitation {id} not found"))
}

/// Who sends an invitation.
pub enum Inviter {
    ApiKey(ApiKeyId),
    User(UserId),
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
             is_active, created_at, updated_at, first_name_search, last_name_search) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18) \
             RETURNING {}",
            USER_FIELDS.join(", ")
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
        .bind(new.first_name.to_lowercase())
        .bind(new.last_name.to_lowercase())
        .fetch_one(&mut **tx)
        .await?;
        user_from_row(&row)
    }

    /// Adds a user to an organization. A second user with the same e-mail
    /// (case-insensitive) in the same organization is a conflict.
    pub async fn create_user(&self, org_id: OrgId, new: &NewUser) -> Result<User, Error> {
        new.validate()?;
        check_user_rules(None, &self.new_user_preview(new))?;
        let mut tx = self.begin_write().await?;
        let user = match self
            .insert_user(&mut tx, org_id, new, Timestamp::now())
            .await
        {
            Err(e) if e.is_unique_violation() => return Err(email_taken(&new.email)),
            other => other?,
        };
        tx.commit().await.map_err(StoreError::from)?;
        Ok(user)
    }

    fn new_user_preview(&self, new: &NewUser) -> User {
        User {
            reference: UserRef {
                id: UserId::from_trusted(String::new()),
                email: new.email.clone(),
                first_name: new.first_name.clone(),
                last_name: new.last_name.clone(),
                middle_name: new.middle_name.clone(),
                suffix1: new.suffix1.clone(),
                suffix2: new.suffix2.clone(),
            },
            phone_number: new.phone_number.clone(),
            clinic_role: new.clinic_role.clone(),
            level: new.level,
            can_manage_studies: new.can_manage_studies,
            has_dashboard_access: new.has_dashboard_access,
            invited_source: new.invited_source,
            is_active: true,
            created_at: Timestamp::now(),
            last_login_at: None,
        }
    }

    pub async fn user(&self, org_id: OrgId, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users u WHERE u.org_id = $1 AND u.id = $2",
            user_columns("u")
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

    pub async fn list_users(
        &self,
        org_id: OrgId,
        filter: &UserFilter,
        limit: u32,
        after: Option<&UserId>,
    ) -> Result<Page<User, UserId>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM users u WHERE u.org_id = ",
            user_columns("u")
        ));
        sql.bind(org_id.to_string());
        if let Some(after) = after {
            sql.push(" AND u.id < ").bind(after.as_str());
        }
        if let Some(email) = &filter.email {
            sql.push(" AND lower(u.email) = lower(")
                .bind(email.as_str())
                .push(")");
        }
        for (column, needle) in [
            ("first_name_search", &filter.first_name),
            ("last_name_search", &filter.last_name),
        ] {
            if let Some(needle) = needle {
                sql.push(&format!(" AND u.{column} LIKE "))
                    .bind(format!("%{}%", like_escape(&needle.to_lowercase())))
                    .push(" ESCAPE '\\'");
            }
        }
        if let Some(level) = filter.level {
            sql.push(" AND u.level = ").bind(level.as_str());
        }
        if let Some(source) = filter.invited_source {
            sql.push(" AND u.invited_source = ").bind(source.as_str());
        }
        sql.push(" ORDER BY u.id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.read).await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(users, limit, |u| u.reference.id.clone()))
    }

    /// Applies `patch` to a user; checks the rules that span fields on the result.
    pub async fn update_user(
        &self,
        org_id: OrgId,
        id: &UserId,
        patch: &UserPatch,
    ) -> Result<User, Error> {
        patch.validate()?;
        let current = self
            .user(org_id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        check_user_rules(Some(&current), &patch.apply(&current))?;
        if patch.is_empty() {
            return Ok(current);
        }
        let mut sql = Sql::new("UPDATE users SET updated_at = ");
        sql.bind(Timestamp::now().millis());
        let mut set = |column: &str, value: crate::sql::Value| {
            sql.push(&format!(", {column} = ")).bind(value);
        };
        if let Some(v) = &patch.first_name {
            set("first_name", v.as_str().into());
            set("first_name_search", v.to_lowercase().into());
        }
        if let Some(v) = &patch.last_name {
            set("last_name", v.as_str().into());
            set("last_name_search", v.to_lowercase().into());
        }
        for (column, value) in [
            ("middle_name", &patch.middle_name),
            ("suffix1", &patch.suffix1),
            ("suffix2", &patch.suffix2),
            ("phone_number", &patch.phone_number),
        ] {
            if let Some(v) = value {
                set(column, v.clone().into());
            }
        }
        if let Some(v) = &patch.clinic_role {
            set("clinic_role", v.as_str().into());
        }
        if let Some(v) = patch.level {
            set("level", v.as_str().into());
        }
        if let Some(v) = patch.can_manage_studies {
            set("can_manage_studies", v.into());
        }
        if let Some(v) = patch.has_dashboard_access {
            set("has_dashboard_access", v.into());
        }
        sql.push(" WHERE org_id = ").bind(org_id.to_string());
        sql.push(" AND id = ").bind(id.as_str());
        let done = sql
            .query()
            .execute(&self.write)
            .await
            .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(id));
        }
        self.user(org_id, id)
            .await?
            .ok_or_else(|| user_not_found(id))
    }

    /// Revokes (`active = false`) or restores a user's access. Revoking also
    /// withdraws the user's pending invitations. The owner cannot be revoked.
    pub async fn set_user_active(
        &self,
        org_id: OrgId,
        id: &UserId,
        active: bool,
    ) -> Result<User, Error> {
        let user = self
            .user(org_id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        if !active && user.level == UserLevel::Owner {
            return Err(Error::Unprocessable(
                "the organization owner's access cannot be revoked".into(),
            ));
        }
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query("UPDATE users SET is_active = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 AND is_active = $5")
            .bind(active)
            .bind(now)
            .bind(org_id.to_string())
            .bind(id.as_str())
            .bind(!active)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if changed.rows_affected() == 0 {
            let state = if active {
                "already active"
            } else {
                "already revoked"
            };
            return Err(Error::Conflict(format!("user {id} is {state}")));
        }
        if !active {
            sqlx::query("UPDATE invitations SET status = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4 AND status = $5")
                .bind(InvitationStatus::Revoked.as_str())
                .bind(now)
                .bind(org_id.to_string())
                .bind(id.as_str())
                .bind(InvitationStatus::Sent.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            crate::web_sessions::end_sessions_of(&mut tx, org_id, id).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.user(org_id, id)
            .await?
            .ok_or_else(|| user_not_found(id))
    }

    /// Creates a user and an invitation for them, open for seven days.
    pub async fn invite_user(
        &self,
        org_id: OrgId,
        inviter: &Inviter,
        new: &NewUser,
    ) -> Result<(User, Invitation), Error> {
        new.validate()?;
        if new.level == UserLevel::Owner {
            return Err(Error::invalid(
                "level",
                "level `owner` cannot be given through the API; use admin or member",
            ));
        }
        check_user_rules(None, &self.new_user_preview(new))?;
        let now = Timestamp::now();
        let invitation_id = InvitationId::generate();
        let (api_key, inviter_user) = match inviter {
            Inviter::ApiKey(k) => (Some(k.to_string()), None),
            Inviter::User(u) => (None, Some(u.as_str().to_owned())),
        };
        let mut tx = self.begin_write().await?;
        let user = match self.insert_user(&mut tx, org_id, new, now).await {
            Err(e) if e.is_unique_violation() => return Err(email_taken(&new.email)),
            other => other?,
        };
        sqlx::query(
            "INSERT INTO invitations (org_id, id, user_id, status, inviter_user_id, invited_by_api_key_id, \
             expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(org_id.to_string())
        .bind(invitation_id.as_str())
        .bind(user.reference.id.as_str())
        .bind(InvitationStatus::Sent.as_str())
        .bind(inviter_user)
        .bind(api_key)
        .bind(now.plus_seconds(INVITATION_TTL_DAYS * 86_400).millis())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        let invitation = self
            .invitation(org_id, &invitation_id)
            .await?
            .ok_or_else(|| invitation_not_found(&invitation_id))?;
        Ok((user, invitation))
    }

    pub async fn invitation(
        &self,
        org_id: OrgId,
        id: &InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(&format!(
            "{} WHERE i.org_id = $1 AND i.id = $2",
            invitation_select()
        ))
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    /// The newest invitation of a user.
    async fn latest_invitation_of(
        &self,
        org_id: OrgId,
        user: &UserId,
    ) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(&format!(
            "{} WHERE i.org_id = $1 AND i.user_id = $2 ORDER BY i.id DESC LIMIT 1",
            invitation_select()
        ))
        .bind(org_id.to_string())
        .bind(user.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    pub async fn list_invitations(
        &self,
        org_id: OrgId,
        filter: &InvitationFilter,
        limit: u32,
        after: Option<&InvitationId>,
        now: Timestamp,
    ) -> Result<Page<Invitation, InvitationId>, StoreError> {
        let mut sql = Sql::new(&invitation_select());
        sql.push(" WHERE i.org_id = ").bind(org_id.to_string());
        if let Some(after) = after {
            sql.push(" AND i.id < ").bind(after.as_str());
        }
        if !filter.statuses.is_empty() {
            sql.push(" AND i.status IN (");
            for (n, status) in filter.statuses.iter().enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.bind(status.as_str());
            }
            sql.push(")");
        }
        match filter.expired {
            Some(InvitationExpiredFilter::Expired) => {
                sql.push(" AND i.expires_at IS NOT NULL AND i.expires_at <= ")
                    .bind(now.millis());
            }
            Some(InvitationExpiredFilter::NotExpired) => {
                sql.push(" AND (i.expires_at IS NULL OR i.expires_at > ")
                    .bind(now.millis())
                    .push(")");
            }
            Some(InvitationExpiredFilter::All) | None => {}
        }
        if let Some(from) = filter.created_from {
            sql.push(" AND i.created_at >= ").bind(from.millis());
        }
        if let Some(before) = filter.created_before {
            sql.push(" AND i.created_at < ").bind(before.millis());
        }
        if let Some(user) = &filter.user_id {
            sql.push(" AND i.user_id = ").bind(user.as_str());
        }
        sql.push(" ORDER BY i.id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.read).await?;
        let invitations = rows
            .iter()
            .map(invitation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(invitations, limit, |i| i.id.clone()))
    }

    /// Edits the invited user while the invitation is open (sent, not expired).
    pub async fn update_invitation(
        &self,
        org_id: OrgId,
        id: &InvitationId,
        patch: &UserPatch,
    ) -> Result<Invitation, Error> {
        let invitation = self
            .invitation(org_id, id)
            .await?
            .ok_or_else(|| invitation_not_found(id))?;
        invitation.ensure_open(Timestamp::now())?;
        self.update_user(org_id, &invitation.user.reference.id, patch)
            .await?;
        sqlx::query("UPDATE invitations SET updated_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(Timestamp::now().millis())
            .bind(org_id.to_string())
            .bind(id.as_str())
            .execute(&self.write)
            .await
            .map_err(StoreError::from)?;
        self.invitation(org_id, id)
            .await?
            .ok_or_else(|| invitation_not_found(id))
    }

    /// Revokes an open invitation, named by its id, its user, or both (which must
    /// agree). The invited user never accepted, so their access is revoked too.
    pub async fn revoke_invitation(
        &self,
        org_id: OrgId,
        id: Option<&InvitationId>,
        user: Option<&UserId>,
    ) -> Result<Invitation, Error> {
        let invitation = match (id, user) {
            (Some(id), user) => {
                let invitation = self
                    .invitation(org_id, id)
                    .await?
                    .ok_or_else(|| invitation_not_found(id))?;
                if user.is_some_and(|u| *u != invitation.user.reference.id) {
                    return Err(Error::bad_request(format!(
                        "invitation {id} is not for user {}",
                        user.unwrap()
                    )));
                }
                invitation
            }
            (None, Some(user)) => self
                .latest_invitation_of(org_id, user)
                .await?
                .ok_or_else(|| Error::NotFound(format!("user {user} has no invitation")))?,
            (None, None) => {
                return Err(Error::bad_request(
                    "give `invitationId` or `userId` to name the invitation",
                ))
            }
        };
        let now = Timestamp::now();
        invitation.ensure_open(now)?;
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query("UPDATE invitations SET status = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 AND status = $5")
            .bind(InvitationStatus::Revoked.as_str())
            .bind(now.millis())
            .bind(org_id.to_string())
            .bind(invitation.id.as_str())
            .bind(InvitationStatus::Sent.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if changed.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "invitation {} is no longer pending",
                invitation.id
            )));
        }
        sqlx::query(
            "UPDATE users SET is_active = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(false)
        .bind(now.millis())
        .bind(org_id.to_string())
        .bind(invitation.user.reference.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        crate::web_sessions::end_sessions_of(&mut tx, org_id, &invitation.user.reference.id)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.invitation(org_id, &invitation.id)
            .await?
            .ok_or_else(|| invitation_not_found(&invitation.id))
    }
}
