//! Which instance stands for a series or a study when one image is asked for
//! (WADO-RS `/rendered` and `/thumbnail` at series and study level).
//!
//! A series is shown by its middle image by InstanceNumber: for a CT or MR
//! stack that is the slice people recognise (the first is often a scout or
//! the top of the skull), and for a one-image series it is that image. A
//! study is shown by its first series by SeriesNumber that has an image.
//! Instances without pixel data (SR, KOS, presentation states) never stand
//! for anything. Both walk the `(org, series, instance_number)` and
//! `(org, study, series_number)` indexes of migration 0009.

use crate::{Store, StoreError};
use lightbox_domain::OrgId;
use sqlx::Row;

/// The instance chosen to stand for a series or study.
#[derive(Debug, Clone)]
pub struct RepresentativeInstance {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub sha256: String,
    pub blob_key: String,
    pub size_bytes: i64,
}

impl Store {
    /// The middle image (by InstanceNumber) of the organization's series,
    /// or None when it has no series by that UID in that study, or no image.
    pub async fn series_representative(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
        series_instance_uid: &str,
    ) -> Result<Option<RepresentativeInstance>, StoreError> {
        let images: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dicom_instances \
             WHERE org_id = $1 AND series_instance_uid = $2 AND study_instance_uid = $3 \
             AND pixel_rows IS NOT NULL AND pixel_columns IS NOT NULL",
        )
        .bind(org_id.to_string())
        .bind(series_instance_uid)
        .bind(study_instance_uid)
        .fetch_one(&self.read)
        .await?;
        if images == 0 {
            return Ok(None);
        }
        // NULL instance numbers sort last on both engines.
        let row = sqlx::query(
            "SELECT study_instance_uid, series_instance_uid, sop_instance_uid, transfer_syntax_uid, \
             sha256, blob_key, size_bytes FROM dicom_instances \
             WHERE org_id = $1 AND series_instance_uid = $2 AND study_instance_uid = $3 \
             AND pixel_rows IS NOT NULL AND pixel_columns IS NOT NULL \
             ORDER BY (instance_number IS NULL), instance_number, sop_instance_uid \
             LIMIT 1 OFFSET $4",
        )
        .bind(org_id.to_string())
        .bind(series_instance_uid)
        .bind(study_instance_uid)
        .bind(images / 2)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(RepresentativeInstance {
                study_instance_uid: row.try_get("study_instance_uid")?,
                series_instance_uid: row.try_get("series_instance_uid")?,
                sop_instance_uid: row.try_get("sop_instance_uid")?,
                transfer_syntax_uid: row.try_get("transfer_syntax_uid")?,
                sha256: row.try_get("sha256")?,
                blob_key: row.try_get("blob_key")?,
                size_bytes: row.try_get("size_bytes")?,
            })
        })
        .transpose()
    }

    /// The representative image of the study's first series (by
    /// SeriesNumber, then UID) that has an image; None when the organization
    /// has no such study or it has no image.
    pub async fn study_representative(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
    ) -> Result<Option<RepresentativeInstance>, StoreError> {
        let series: Option<String> = sqlx::query_scalar(
            "SELECT s.series_instance_uid FROM dicom_series s \
             WHERE s.org_id = $1 AND s.study_instance_uid = $2 \
             AND EXISTS (SELECT 1 FROM dicom_instances i \
                 WHERE i.org_id = s.org_id AND i.series_instance_uid = s.series_instance_uid \
                 AND i.pixel_rows IS NOT NULL AND i.pixel_columns IS NOT NULL) \
             ORDER BY (s.series_number IS NULL), s.series_number, s.series_instance_uid \
             LIMIT 1",
        )
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .fetch_optional(&self.read)
        .await?;
        match series {
            Some(series) => {
                self.series_representative(org_id, study_instance_uid, &series)
                    .await
            }
            None => Ok(None),
        }
    }
}
