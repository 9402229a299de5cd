//! What Lightbox's own pages read from the DICOM index: which of a link's
//! studies have images, a study's series with their image instances in
//! display order (for the built-in page of rendered frames), and a study's
//! series at a glance (for the web app's study page).

use crate::{Store, StoreError};
use lightbox_domain::OrgId;
use sqlx::Row;

/// A study of the archive as the viewer page heads it.
#[derive(Debug, Clone)]
pub struct ViewerStudy {
    pub study_instance_uid: String,
    pub study_description: Option<String>,
    pub study_date: Option<String>,
    pub modalities: String,
}

/// One series and its image instances, in the order a reader scrolls them.
#[derive(Debug, Clone)]
pub struct ViewerSeries {
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instances: Vec<ViewerInstance>,
}

/// A series as the study page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesOverview {
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_count: i64,
    /// Whether an instance has pixel data (a thumbnail can be drawn).
    pub has_images: bool,
}

#[derive(Debug, Clone)]
pub struct ViewerInstance {
    pub sop_instance_uid: String,
    /// Frames in the instance (1 for a single-frame image).
    pub frames: u32,
}

/// An instance "has images" when ingest found Pixel Data in it: native pixel
/// data has an offset, encapsulated pixel data a frame table.
const HAS_PIXELS: &str = "(i.pixel_data_offset IS NOT NULL OR i.frames IS NOT NULL)";

impl Store {
    /// The studies among `uids` that the organization's archive holds, in
    /// the order given.
    pub async fn viewer_studies(
        &self,
        org_id: OrgId,
        uids: &[String],
    ) -> Result<Vec<ViewerStudy>, StoreError> {
        let mut found = Vec::with_capacity(uids.len());
        // Links name a handful of studies (capped by the caller): one indexed
        // lookup each keeps the SQL the same on both backends.
        for uid in uids {
            let row = sqlx::query(
                "SELECT study_instance_uid, study_description, study_date, modalities \
                 FROM dicom_studies WHERE org_id = $1 AND study_instance_uid = $2",
            )
            .bind(org_id.to_string())
            .bind(uid)
            .fetch_optional(&self.read)
            .await?;
            if let Some(row) = row {
                found.push(ViewerStudy {
                    study_instance_uid: row.try_get("study_instance_uid")?,
                    study_description: row.try_get("study_description")?,
                    study_date: row.try_get("study_date")?,
                    modalities: row.try_get("modalities")?,
                });
            }
        }
        Ok(found)
    }

    /// Whether the study has at least one instance with pixel data.
    pub async fn study_has_images(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
    ) -> Result<bool, StoreError> {
        let hit: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(1 AS BIGINT) FROM dicom_instances i \
             WHERE i.org_id = $1 AND i.study_instance_uid = $2 AND {HAS_PIXELS} LIMIT 1"
        ))
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .fetch_optional(&self.read)
        .await?;
        Ok(hit.is_some())
    }

    /// The study's series (by SeriesNumber) with their image instances (by
    /// InstanceNumber), at most `max_instances` in all; the flag says
    /// whether some were left out.
    pub async fn viewer_series(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
        max_instances: u32,
    ) -> Result<(Vec<ViewerSeries>, bool), StoreError> {
        // Unnumbered series and instances go last on both backends (SQLite
        // sorts NULL first, PostgreSQL last).
        let rows = sqlx::query(&format!(
            "SELECT s.series_instance_uid, s.modality, CAST(s.series_number AS BIGINT) AS series_number, \
             s.series_description, i.sop_instance_uid, CAST(i.number_of_frames AS BIGINT) AS number_of_frames \
             FROM dicom_instances i JOIN dicom_series s \
               ON s.org_id = i.org_id AND s.series_instance_uid = i.series_instance_uid \
             WHERE i.org_id = $1 AND i.study_instance_uid = $2 AND {HAS_PIXELS} \
             ORDER BY s.series_number IS NULL, s.series_number, s.series_instance_uid, \
               i.instance_number IS NULL, i.instance_number, i.sop_instance_uid \
             LIMIT $3"
        ))
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .bind(i64::from(max_instances) + 1)
        .fetch_all(&self.read)
        .await?;
        let truncated = rows.len() > max_instances as usize;
        let mut series: Vec<ViewerSeries> = Vec::new();
        for row in rows.iter().take(max_instances as usize) {
            let uid: String = row.try_get("series_instance_uid")?;
            if series.last().map(|s| &s.series_instance_uid) != Some(&uid) {
                series.push(ViewerSeries {
                    series_instance_uid: uid,
                    modality: row.try_get("modality")?,
                    series_number: row.try_get("series_number")?,
                    series_description: row.try_get("series_description")?,
                    instances: Vec::new(),
                });
            }
            let frames: Option<i64> = row.try_get("number_of_frames")?;
            let instance = ViewerInstance {
                sop_instance_uid: row.try_get("sop_instance_uid")?,
                frames: frames.unwrap_or(1).clamp(1, i64::from(u32::MAX)) as u32,
            };
            if let Some(last) = series.last_mut() {
                last.instances.push(instance);
            }
        }
        Ok((series, truncated))
    }

    /// The study's series by SeriesNumber (unnumbered last), at most `max`;
    /// the flag says whether some were left out.
    pub async fn study_series_overview(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
        max: u32,
    ) -> Result<(Vec<SeriesOverview>, bool), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT s.series_instance_uid, s.modality, CAST(s.series_number AS BIGINT) AS series_number, \
             s.series_description, CAST(s.instance_count AS BIGINT) AS instance_count, \
             CASE WHEN EXISTS (SELECT 1 FROM dicom_instances i WHERE i.org_id = s.org_id \
               AND i.series_instance_uid = s.series_instance_uid AND {HAS_PIXELS}) \
               THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END AS has_images \
             FROM dicom_series s \
             WHERE s.org_id = $1 AND s.study_instance_uid = $2 AND s.instance_count > 0 \
             ORDER BY s.series_number IS NULL, s.series_number, s.series_instance_uid \
             LIMIT $3"
        ))
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .bind(i64::from(max) + 1)
        .fetch_all(&self.read)
        .await?;
        let truncated = rows.len() > max as usize;
        let series = rows
            .iter()
            .take(max as usize)
            .map(|row| {
                let has_images: i64 = row.try_get("has_images")?;
                Ok(SeriesOverview {
                    series_instance_uid: row.try_get("series_instance_uid")?,
                    modality: row.try_get("modality")?,
                    series_number: row.try_get("series_number")?,
                    series_description: row.try_get("series_description")?,
                    instance_count: row.try_get("instance_count")?,
                    has_images: has_images == 1,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((series, truncated))
    }
}
