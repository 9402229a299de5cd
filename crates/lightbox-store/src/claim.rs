//! "Assign to me" on the worklist: a claim that succeeds only while nobody
//! else holds the study, in one conditional UPDATE, so two readers clicking at
//! once cannot both get it.

use crate::{Store, StoreError};
use lightbox_domain::study::Study;
use lightbox_domain::{Error, OrgId, StudyId, Timestamp, UserId};

impl Store {
    /// Assigns the study to `user` if it is unassigned (or already theirs).
    /// Someone else holding it is a conflict that names them.
    pub async fn claim_study(
        &self,
        org_id: OrgId,
        id: &StudyId,
        user: &UserId,
    ) -> Result<Study, Error> {
        let done = sqlx::query(
            "UPDATE studies SET assigned_to = $1, updated_at = $2 \
             WHERE org_id = $3 AND id = $4 AND (assigned_to IS NULL OR assigned_to = $1)",
        )
        .bind(user.as_str())
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        let study = self
            .study(org_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("study {id} not found")))?;
        if done.rows_affected() == 0 {
            let holder = study
                .assigned_to
                .as_ref()
                .map(|u| format!("{} {}", u.first_name, u.last_name))
                .unwrap_or_else(|| "someone else".into());
            return Err(Error::Conflict(format!("already assigned to {holder}")));
        }
        self.study_changed(org_id, id);
        Ok(study)
    }
}
