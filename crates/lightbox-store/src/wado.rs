//! What WADO-RS reads from the DICOM index: a study's or series' instances
//! with their stored metadata, blob keys and frame locations. Each listing is
//! one indexed query (`dicom_instances_study` / `dicom_instances_series`),
//! with the organization leading the key, and bounded by the caller's limit.

use crate::sql::Sql;
use crate::sqlite_reader::Row;
use crate::{Store, StoreError};
use lightbox_domain::OrgId;

/// Where an instance's file and pixels are, for retrieve, frames and bulk data.
#[derive(Debug, Clone)]
pub struct WadoInstance {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
    pub blob_key: String,
    pub size_bytes: i64,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub number_of_frames: Option<i64>,
    /// Native pixel data: where its value lies in the file.
    pub pixel_data_offset: Option<i64>,
    pub pixel_data_length: Option<i64>,
    /// Encapsulated pixel data: per frame its fragments' `[offset, length]` (JSON).
    pub frames: Option<String>,
}

/// One instance's stored DICOM JSON and what serving it needs to know.
#[derive(Debug, Clone)]
pub struct InstanceMetadata {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub bits_allocated: Option<i64>,
    /// Whether the instance has pixel data (the JSON leaves it out).
    pub has_pixel_data: bool,
    pub metadata: String,
}

/// Which instances: a study's, a series' (of that study) or one instance.
#[derive(Debug, Clone, Copy)]
pub struct WadoScope<'a> {
    pub study: &'a str,
    pub series: Option<&'a str>,
    pub instance: Option<&'a str>,
}

const INSTANCE_COLUMNS: &str = "study_instance_uid, series_instance_uid, sop_instance_uid, \
     sop_class_uid, transfer_syntax_uid, blob_key, size_bytes, pixel_rows, pixel_columns, \
     bits_allocated, number_of_frames, pixel_data_offset, pixel_data_length, frames";

impl WadoScope<'_> {
    /// `SELECT columns` of the instances in scope, at most `limit`. The
    /// series and instance keys are each unique within the organization, and
    /// the study is checked too, so a series named under the wrong study is
    /// not found.
    fn select(&self, columns: &str, org_id: OrgId, limit: usize) -> Sql {
        let mut sql = Sql::new(&format!(
            "SELECT {columns} FROM dicom_instances WHERE org_id = "
        ));
        sql.bind(org_id.to_string());
        if let Some(instance) = self.instance {
            sql.push(" AND sop_instance_uid = ").bind(instance);
        }
        if let Some(series) = self.series {
            sql.push(" AND series_instance_uid = ").bind(series);
        }
        sql.push(" AND study_instance_uid = ").bind(self.study);
        sql.push(self.order()).push(&format!(" LIMIT {limit}"));
        sql
    }

    fn order(&self) -> &'static str {
        match (self.series, self.instance) {
            (_, Some(_)) => "",
            (Some(_), None) => " ORDER BY instance_number, sop_instance_uid",
            (None, None) => " ORDER BY series_instance_uid, instance_number, sop_instance_uid",
        }
    }
}

impl Store {
    /// The instances in `scope`, at most `limit` (ask for one more than you
    /// serve to tell "exactly the limit" from "more").
    pub async fn wado_instances(
        &self,
        org_id: OrgId,
        scope: WadoScope<'_>,
        limit: usize,
    ) -> Result<Vec<WadoInstance>, StoreError> {
        self.read_rows(scope.select(INSTANCE_COLUMNS, org_id, limit), |row| {
            instance(row).map(Some)
        })
        .await
    }

    /// How many instances the organization's series holds, or None when it
    /// has no series by that UID in that study. Instances are only ever
    /// added, each in the transaction that raises this count (one series
    /// row, so one at a time): a count names one set of instances, which is
    /// what the series metadata cache is keyed by.
    pub async fn dicom_series_instance_count(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
        series_instance_uid: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut sql = Sql::new(
            "SELECT CAST(instance_count AS BIGINT) AS instance_count FROM dicom_series WHERE org_id = ",
        );
        sql.bind(org_id.to_string());
        sql.push(" AND series_instance_uid = ")
            .bind(series_instance_uid);
        sql.push(" AND study_instance_uid = ")
            .bind(study_instance_uid);
        let counts = self
            .read_rows(sql, |row| Ok(Some(row.get::<i64>("instance_count")?)))
            .await?;
        Ok(counts.into_iter().next())
    }

    /// The stored DICOM JSON of the instances in `scope`, at most `limit`.
    pub async fn wado_metadata(
        &self,
        org_id: OrgId,
        scope: WadoScope<'_>,
        limit: usize,
    ) -> Result<Vec<InstanceMetadata>, StoreError> {
        let columns =
            "series_instance_uid, sop_instance_uid, transfer_syntax_uid, bits_allocated, \
             (pixel_data_offset IS NOT NULL OR frames IS NOT NULL OR pixel_rows IS NOT NULL) \
             AS has_pixels, metadata";
        self.read_rows(scope.select(columns, org_id, limit), |row| {
            Ok(Some(InstanceMetadata {
                series_instance_uid: row.get("series_instance_uid")?,
                sop_instance_uid: row.get("sop_instance_uid")?,
                transfer_syntax_uid: row.get("transfer_syntax_uid")?,
                bits_allocated: row.get("bits_allocated")?,
                has_pixel_data: row.flag("has_pixels")?,
                metadata: row.get("metadata")?,
            }))
        })
        .await
    }
}

fn instance(row: &Row<'_>) -> Result<WadoInstance, StoreError> {
    Ok(WadoInstance {
        study_instance_uid: row.get("study_instance_uid")?,
        series_instance_uid: row.get("series_instance_uid")?,
        sop_instance_uid: row.get("sop_instance_uid")?,
        sop_class_uid: row.get("sop_class_uid")?,
        transfer_syntax_uid: row.get("transfer_syntax_uid")?,
        blob_key: row.get("blob_key")?,
        size_bytes: row.get("size_bytes")?,
        rows: row.get("pixel_rows")?,
        columns: row.get("pixel_columns")?,
        bits_allocated: row.get("bits_allocated")?,
        number_of_frames: row.get("number_of_frames")?,
        pixel_data_offset: row.get("pixel_data_offset")?,
        pixel_data_length: row.get("pixel_data_length")?,
        frames: row.get("frames")?,
    })
}
