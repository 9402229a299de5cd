//! Read-only queries for what people see about the archive beside the
//! worklist (DICOM columns of a study, whether it has images) and what a
//! partner access call needs about an ephemeral session (its key, and its
//! `options` exactly as stored, to echo them byte for byte).

use crate::{Store, StoreError};
use lightbox_domain::ephemeral::EphemeralSessionId;
use lightbox_domain::{ApiKeyId, OrgId};
use sqlx::Row;
use std::collections::HashMap;

/// What the archive holds for one study: the columns users expect beside
/// the worklist's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomStudySummary {
    /// Sorted, e.g. `["CT", "SR"]`.
    pub modalities: Vec<String>,
    pub series_count: i64,
    pub instance_count: i64,
    /// DICOM StudyDate as stored (`YYYYMMDD`), if the instances had one.
    pub study_date: Option<String>,
    /// PatientName as the instances spelled it (DICOM PN, `FAMILY^GIVEN`).
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
}

/// An ephemeral session's partner-facing facts.
#[derive(Debug, Clone)]
pub struct SessionAccessFacts {
    /// The API key that minted the session (its endpoints are asked).
    pub api_key_id: Option<ApiKeyId>,
    pub retrieval_id: String,
    /// `options` as stored, to be echoed verbatim.
    pub options_json: Option<String>,
}

fn summary(row: &sqlx::any::AnyRow) -> Result<DicomStudySummary, StoreError> {
    let modalities: String = row.try_get("modalities")?;
    Ok(DicomStudySummary {
        modalities: crate::dicom::modalities_of(&modalities),
        series_count: row.try_get("series_count")?,
        instance_count: row.try_get("instance_count")?,
        study_date: row.try_get("study_date")?,
        patient_name: row.try_get("patient_name")?,
        patient_id: row.try_get("patient_id")?,
    })
}

const SUMMARY_COLUMNS: &str = "study_instance_uid, modalities, series_count, instance_count, \
     study_date, patient_name, patient_id";

/// Studies looked up at once by the worklist (one page of rows).
const MAX_SUMMARIES: usize = 500;

impl Store {
    /// The archive's summary of a study, `None` when it has no instance of it.
    pub async fn dicom_study_summary(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
    ) -> Result<Option<DicomStudySummary>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM dicom_studies \
             WHERE org_id = $1 AND study_instance_uid = $2 AND instance_count > 0"
        ))
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(summary).transpose()
    }

    /// Summaries of the studies among `uids` that have instances, by UID
    /// (at most the first 500 UIDs are looked up: a worklist page).
    pub async fn dicom_study_summaries(
        &self,
        org_id: OrgId,
        uids: &[&str],
    ) -> Result<HashMap<String, DicomStudySummary>, StoreError> {
        let uids = &uids[..uids.len().min(MAX_SUMMARIES)];
        if uids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = crate::sql::Sql::new(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM dicom_studies WHERE org_id = "
        ));
        sql.bind(org_id.to_string());
        sql.push(" AND instance_count > 0 AND study_instance_uid IN (");
        for (i, uid) in uids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(uid.to_string());
        }
        sql.push(")");
        let rows = sql.query().fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("study_instance_uid")?, summary(row)?)))
            .collect()
    }

    /// What a partner is told about an ephemeral session, and which key's
    /// endpoints are asked.
    pub async fn session_access_facts(
        &self,
        org_id: OrgId,
        id: &EphemeralSessionId,
    ) -> Result<Option<SessionAccessFacts>, StoreError> {
        let row = sqlx::query(
            "SELECT retrieval_id, options, api_key_id FROM ephemeral_sessions \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key: Option<String> = row.try_get("api_key_id")?;
        Ok(Some(SessionAccessFacts {
            api_key_id: key
                .map(|k| ApiKeyId::parse(&k))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            retrieval_id: row.try_get("retrieval_id")?,
            options_json: row.try_get("options")?,
        }))
    }
}
