//! Pre-encounter images. Every change is one conditional statement
//! (`… WHERE version = $expected`), so of concurrent writers holding the same
//! version exactly one succeeds, on both engines.

use crate::outbox::enqueue;
use crate::sql::Sql;
use crate::{flag, Store, StoreError};
use lightbox_domain::image::{
    stale_version, CoverageAssociation, CoverageImageSide, Image, ImageFilter, ImageSortField,
    ImageStatus, MutableImage, PatientAssociation, SortDirection, StoredBlob,
};
use lightbox_domain::webhook::{EventType, ImageUploadedData};
use lightbox_domain::{Error, ImageId, OrgId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

const IMAGE_COLUMNS: &str = "org_id, id, version, file_name, display_name, file_type, status, \
     coverage_id, coverage_side, patient_id, patient_notes, deactivated, updated_at, \
     updating_user_id, upload_nonce, blob_key, blob_size, blob_content_type";

fn image_from_row(row: &AnyRow) -> Result<Image, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    let coverage = match (
        row.try_get::<Option<String>, _>("coverage_id")?,
        row.try_get::<Option<String>, _>("coverage_side")?,
    ) {
        (Some(id), Some(side)) => Some(CoverageAssociation {
            id: lightbox_domain::image::parse_coverage_id("coverage.id", &id).map_err(corrupt)?,
            side: CoverageImageSide::parse(&side).map_err(corrupt)?,
        }),
        _ => None,
    };
    let patient = row
        .try_get::<Option<String>, _>("patient_id")?
        .map(|id| -> Result<_, StoreError> {
            Ok(PatientAssociation {
                id,
                notes: row.try_get("patient_notes")?,
            })
        })
        .transpose()?;
    let blob = match row.try_get::<Option<String>, _>("blob_key")? {
        Some(key) => Some(StoredBlob {
            key,
            size: row.try_get::<Option<i64>, _>("blob_size")?.unwrap_or(0),
            content_type: row
                .try_get::<Option<String>, _>("blob_content_type")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let org: String = row.try_get("org_id")?;
    let id: String = row.try_get("id")?;
    Ok(Image {
        org_id: OrgId::parse(&org).map_err(corrupt)?,
        id: ImageId::parse(&id).map_err(corrupt)?,
        version: row.try_get("version")?,
        fields: MutableImage {
            file_name: row.try_get("file_name")?,
            display_name: row.try_get("display_name")?,
            file_type: row.try_get("file_type")?,
            status: ImageStatus::parse(row.try_get("status")?).map_err(corrupt)?,
            coverage,
            patient,
        },
        deactivated: flag(row, "deactivated")?,
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
        updating_user_id: row.try_get("updating_user_id")?,
        upload_nonce: row.try_get("upload_nonce")?,
        blob,
    })
}

fn not_found(id: &ImageId) -> Error {
    Error::NotFound(format!("image {id} not found"))
}

/// Turns a violation of the one-side-per-coverage index into the 409 the SDK expects.
fn side_taken(fields: &MutableImage) -> Error {
    let (coverage, side) = fields
        .coverage
        .as_ref()
        .map(|c| (c.id.to_string(), c.side.as_str()))
        .unwrap_or_default();
    Error::VersionConflict {
        message: format!("coverage {coverage} already has an active {side} image"),
        latest_version: None,
    }
}

/// The column values of the mutable fields, in `IMAGE_COLUMNS` order.
struct Columns<'a> {
    coverage_id: Option<String>,
    coverage_side: Option<&'static str>,
    patient_id: Option<&'a str>,
    patient_notes: Option<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(fields: &'a MutableImage) -> Self {
        Columns {
            coverage_id: fields.coverage.as_ref().map(|c| c.id.to_string()),
            coverage_side: fields.coverage.as_ref().map(|c| c.side.as_str()),
            patient_id: fields.patient.as_ref().map(|p| p.id.as_str()),
            patient_notes: fields.patient.as_ref().and_then(|p| p.notes.as_deref()),
        }
    }
}

/// `image.uploaded`'s data: `image` has just had `blob` stored.
fn uploaded(image: &Image, blob: &StoredBlob) -> ImageUploadedData {
    ImageUploadedData {
        image_id: image.id.to_string(),
        file_name: image.fields.file_name.clone(),
        display_name: image.fields.display_name.clone(),
        file_type: image.fields.file_type.clone(),
        content_type: blob.content_type.clone(),
        size_bytes: blob.size,
        patient_id: image.fields.patient.as_ref().map(|p| p.id.clone()),
        occurred_at: Timestamp::now().to_rfc3339(),
    }
}

/// How a search is ordered; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy)]
pub struct ImageSort {
    pub field: ImageSortField,
    pub direction: SortDirection,
}

impl Store {
    pub async fn create_image(
        &self,
        org_id: OrgId,
        actor: &str,
        fields: &MutableImage,
        upload_nonce: &str,
    ) -> Result<Image, Error> {
        fields.validate()?;
        let c = Columns::of(fields);
        let now = Timestamp::now().millis();
        let row = sqlx::query(&format!(
            "INSERT INTO images (org_id, id, version, file_name, display_name, file_type, status, \
             coverage_id, coverage_side, patient_id, patient_notes, deactivated, updated_at, \
             updating_user_id, upload_nonce, created_at) \
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $12) \
             RETURNING {IMAGE_COLUMNS}"
        ))
        .bind(org_id.to_string())
        .bind(ImageId::generate().to_string())
        .bind(&fields.file_name)
        .bind(&fields.display_name)
        .bind(&fields.file_type)
        .bind(fields.status.as_str())
        .bind(c.coverage_id)
        .bind(c.coverage_side)
        .bind(c.patient_id)
        .bind(c.patient_notes)
        .bind(false)
        .bind(now)
        .bind(actor)
        .bind(upload_nonce)
        .fetch_one(&self.write)
        .await
        .map_err(StoreError::from);
        match row {
            Ok(row) => Ok(image_from_row(&row)?),
            Err(e) if e.is_unique_violation() => Err(side_taken(fields)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn image(&self, org_id: OrgId, id: &ImageId) -> Result<Option<Image>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(image_from_row).transpose()
    }

    /// After a conditional write changed nothing: 404 or 409 with the stored version.
    async fn explain_miss(&self, org_id: OrgId, id: &ImageId, given: i64) -> Error {
        match self.image(org_id, id).await {
            Ok(Some(image)) => stale_version(id, given, image.version),
            Ok(None) => not_found(id),
            Err(e) => e.into(),
        }
    }

    /// Replaces the mutable fields of version `expected` (and reactivates the
    /// image). `blob`, when given, records bytes verified for this update.
    pub async fn update_image(
        &self,
        org_id: OrgId,
        id: &ImageId,
        expected: i64,
        actor: &str,
        fields: &MutableImage,
        blob: Option<&StoredBlob>,
    ) -> Result<Image, Error> {
        fields.validate()?;
        let c = Columns::of(fields);
        let mut sql = Sql::new("UPDATE images SET version = version + 1, file_name = ");
        sql.bind(fields.file_name.as_str());
        sql.push(", display_name = ")
            .bind(fields.display_name.as_str());
        sql.push(", file_type = ").bind(fields.file_type.as_str());
        sql.push(", status = ").bind(fields.status.as_str());
        sql.push(", coverage_id = ").bind(c.coverage_id);
        sql.push(", coverage_side = ")
            .bind(c.coverage_side.map(str::to_owned));
        sql.push(", patient_id = ")
            .bind(c.patient_id.map(str::to_owned));
        sql.push(", patient_notes = ")
            .bind(c.patient_notes.map(str::to_owned));
        sql.push(", deactivated = ").bind(false);
        sql.push(", updated_at = ").bind(Timestamp::now().millis());
        sql.push(", updating_user_id = ").bind(actor);
        if let Some(blob) = blob {
            sql.push(", blob_key = ").bind(blob.key.as_str());
            sql.push(", blob_size = ").bind(blob.size);
            sql.push(", blob_content_type = ")
                .bind(blob.content_type.as_str());
        }
        sql.push(" WHERE org_id = ").bind(org_id.to_string());
        sql.push(" AND id = ").bind(id.to_string());
        sql.push(" AND version = ").bind(expected);
        if blob.is_some() {
            sql.push(" AND blob_key IS NULL");
        }
        sql.push(&format!(" RETURNING {IMAGE_COLUMNS}"));
        let mut tx = self.begin_write().await?;
        let row = sql
            .query()
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from);
        match row {
            Ok(Some(row)) => {
                let image = image_from_row(&row)?;
                let queued = match blob {
                    Some(blob) => {
                        let event = uploaded(&image, blob);
                        enqueue(&mut tx, org_id, None, &[(EventType::ImageUploaded, event)]).await?
                    }
                    None => 0,
                };
                self.commit_with_events(tx, queued).await?;
                Ok(image)
            }
            Ok(None) => {
                drop(tx);
                Err(self.explain_miss(org_id, id, expected).await)
            }
            Err(e) if e.is_unique_violation() => Err(side_taken(fields)),
            Err(e) => Err(e.into()),
        }
    }

    /// Soft-deletes version `expected`. Deactivating a deactivated image
    /// changes nothing (and keeps its version), once the version matches.
    pub async fn deactivate_image(
        &self,
        org_id: OrgId,
        id: &ImageId,
        expected: i64,
        actor: &str,
    ) -> Result<(), Error> {
        let done = sqlx::query(
            "UPDATE images SET version = version + 1, deactivated = $1, updated_at = $2, \
             updating_user_id = $3 WHERE org_id = $4 AND id = $5 AND version = $6 AND deactivated = $7",
        )
        .bind(true)
        .bind(Timestamp::now().millis())
        .bind(actor)
        .bind(org_id.to_string())
        .bind(id.to_string())
        .bind(expected)
        .bind(false)
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.image(org_id, id).await? {
            Some(image) if image.deactivated && image.version == expected => Ok(()),
            Some(image) => Err(stale_version(id, expected, image.version)),
            None => Err(not_found(id)),
        }
    }

    /// Records the verified bytes of an image that has none yet; false if it
    /// has some already (or is gone), so that one upload link is used once.
    pub async fn attach_image_blob(
        &self,
        org_id: OrgId,
        id: &ImageId,
        upload_nonce: &str,
        blob: &StoredBlob,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE images SET blob_key = $1, blob_size = $2, blob_content_type = $3 \
             WHERE org_id = $4 AND id = $5 AND upload_nonce = $6 AND blob_key IS NULL \
             RETURNING {IMAGE_COLUMNS}"
        ))
        .bind(blob.key.as_str())
        .bind(blob.size)
        .bind(blob.content_type.as_str())
        .bind(org_id.to_string())
        .bind(id.to_string())
        .bind(upload_nonce)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let event = uploaded(&image_from_row(&row)?, blob);
        // Images belong to no API key: the organization's endpoints get them.
        let queued = enqueue(&mut tx, org_id, None, &[(EventType::ImageUploaded, event)]).await?;
        self.commit_with_events(tx, queued).await?;
        Ok(true)
    }

    /// Active images matching every given filter, at most `limit`.
    pub async fn search_images(
        &self,
        org_id: OrgId,
        filter: &ImageFilter,
        sort: ImageSort,
        limit: u32,
    ) -> Result<Vec<Image>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE org_id = "
        ));
        sql.bind(org_id.to_string());
        sql.push(" AND deactivated = ").bind(false);
        if let Some(patient) = &filter.patient_id {
            sql.push(" AND patient_id = ").bind(patient.as_str());
        }
        if let Some(coverage) = &filter.coverage_id {
            sql.push(" AND coverage_id = ").bind(coverage.to_string());
        }
        if let Some(file_type) = &filter.file_type {
            sql.push(" AND file_type = ").bind(file_type.as_str());
        }
        if let Some(notes) = &filter.patient_notes {
            sql.push(" AND patient_notes = ").bind(notes.as_str());
        }
        let column = match sort.field {
            ImageSortField::UpdatedAt => "updated_at",
            ImageSortField::FileName => "file_name",
            ImageSortField::DisplayName => "display_name",
            ImageSortField::FileType => "file_type",
            ImageSortField::Status => "status",
        };
        let dir = match sort.direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        sql.push(&format!(" ORDER BY {column} {dir}, id {dir} LIMIT "))
            .bind(i64::from(limit));
        let rows = sql.query().fetch_all(&self.read).await?;
        rows.iter().map(image_from_row).collect()
    }

    /// Images changed at or after `since`, deactivated ones included, oldest first.
    pub async fn scan_images(
        &self,
        org_id: OrgId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Image>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE org_id = $1 AND updated_at >= $2 \
             ORDER BY updated_at ASC, id ASC LIMIT $3"
        ))
        .bind(org_id.to_string())
        .bind(since.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(image_from_row).collect()
    }
}
