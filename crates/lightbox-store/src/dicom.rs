//! The DICOM archive's index: AE titles and allowed senders per organization,
//! and the study/series/instance rows that ingest writes in one transaction
//! together with the worklist study they seed.

use crate::exec::{self, Exec, Synchronous};
use crate::sql::Sql;
use crate::sqlite_reader::Row;
use crate::{outbox, Store, StoreError};
use lightbox_domain::dicom::{AeTitle, DicomPeer, IndexedInstance};
use lightbox_domain::study::{Severity, ViewerStatus};
use lightbox_domain::webhook::{
    Enrichment, EventType, ImagesReceivedData, StudyEventData, StudyFacts,
};
use lightbox_domain::{ApiKeyId, Error, OrgId, StudyId, Timestamp};
use sqlx::Row as _;
use std::time::Duration;

/// Where one organization's associations are routed, and who may send.
#[derive(Debug, Clone)]
pub struct DicomRoute {
    pub ae_title: AeTitle,
    pub org_id: OrgId,
    pub peers: Vec<DicomPeer>,
}

/// A listed allowed sender.
#[derive(Debug, Clone)]
pub struct DicomPeerRecord {
    pub id: String,
    pub peer: DicomPeer,
    pub created_at: Timestamp,
}

/// What the index already holds for an instance.
#[derive(Debug, Clone)]
pub struct StoredInstance {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax_uid: String,
    pub sha256: String,
    pub blob_key: String,
    pub size_bytes: i64,
}

/// How indexing an instance went.
#[derive(Debug, Clone)]
pub enum Indexed {
    /// A new instance; `new_study` names the worklist study it created, if any.
    Stored { new_study: Option<StudyId> },
    /// Its SOP Instance UID was already indexed (by another sender meanwhile):
    /// nothing changed.
    AlreadyStored(StoredInstance),
}

impl Store {
    /// The organization's called AE title.
    pub async fn dicom_ae_title(&self, org_id: OrgId) -> Result<Option<AeTitle>, StoreError> {
        let title: Option<Option<String>> =
            sqlx::query_scalar("SELECT dicom_ae_title FROM organizations WHERE id = $1")
                .bind(org_id.to_string())
                .fetch_optional(&self.read)
                .await?;
        Ok(title.flatten().map(AeTitle::from_trusted))
    }

    /// Gives the organization another called AE title; titles are unique on the server.
    pub async fn set_dicom_ae_title(&self, org_id: OrgId, title: &AeTitle) -> Result<(), Error> {
        let updated = sqlx::query("UPDATE organizations SET dicom_ae_title = $1 WHERE id = $2")
            .bind(title.as_str())
            .bind(org_id.to_string())
            .execute(&self.write)
            .await
            .map_err(StoreError::from);
        match updated {
            Ok(done) if done.rows_affected() == 0 => {
                Err(Error::NotFound(format!("organization {org_id} not found")))
            }
            Ok(_) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(Error::Conflict(format!(
                "the AE title {title} belongs to another organization"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A free AE title for a new organization: from its name, else random.
    pub(crate) async fn free_ae_title(&self, name: &str) -> Result<AeTitle, StoreError> {
        if let Some(title) = AeTitle::from_name(name) {
            let taken: i64 =
                sqlx::query_scalar("SELECT count(*) FROM organizations WHERE dicom_ae_title = $1")
                    .bind(title.as_str())
                    .fetch_one(&self.write)
                    .await?;
            if taken == 0 {
                return Ok(title);
            }
        }
        Ok(AeTitle::random())
    }

    /// Every organization's AE title and allowed senders, for the DIMSE
    /// receiver's access check.
    pub async fn dicom_routes(&self) -> Result<Vec<DicomRoute>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.dicom_ae_title, p.calling_ae_title, p.address \
             FROM organizations o LEFT JOIN dicom_peers p ON p.org_id = o.id \
             WHERE o.dicom_ae_title IS NOT NULL ORDER BY o.id",
        )
        .fetch_all(&self.read)
        .await?;
        let mut routes: Vec<DicomRoute> = Vec::new();
        for row in rows {
            let org_id: String = row.try_get("id")?;
            let org_id = OrgId::parse(&org_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if routes.last().is_none_or(|r| r.org_id != org_id) {
                routes.push(DicomRoute {
                    ae_title: AeTitle::from_trusted(row.try_get("dicom_ae_title")?),
                    org_id,
                    peers: Vec::new(),
                });
            }
            let calling: Option<String> = row.try_get("calling_ae_title")?;
            let address: Option<String> = row.try_get("address")?;
            if calling.is_some() || address.is_some() {
                let peer = DicomPeer::new(calling.as_deref(), address.as_deref())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if let Some(route) = routes.last_mut() {
                    route.peers.push(peer);
                }
            }
        }
        Ok(routes)
    }

    pub async fn add_dicom_peer(&self, org_id: OrgId, peer: &DicomPeer) -> Result<String, Error> {
        if !self.org_exists(org_id).await? {
            return Err(Error::NotFound(format!("organization {org_id} not found")));
        }
        let id = format!("peer_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(
            "INSERT INTO dicom_peers (org_id, id, calling_ae_title, address, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org_id.to_string())
        .bind(&id)
        .bind(peer.calling_ae_title.clone())
        .bind(peer.address.map(|a| a.to_string()))
        .bind(Timestamp::now().millis())
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        Ok(id)
    }

    pub async fn dicom_peers(&self, org_id: OrgId) -> Result<Vec<DicomPeerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, calling_ae_title, address, created_at FROM dicom_peers \
             WHERE org_id = $1 ORDER BY id",
        )
        .bind(org_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let calling: Option<String> = row.try_get("calling_ae_title")?;
                let address: Option<String> = row.try_get("address")?;
                Ok(DicomPeerRecord {
                    id: row.try_get("id")?,
                    peer: DicomPeer::new(calling.as_deref(), address.as_deref())
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// Removes an allowed sender; false when the organization has no such entry.
    pub async fn remove_dicom_peer(&self, org_id: OrgId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM dicom_peers WHERE org_id = $1 AND id = $2")
            .bind(org_id.to_string())
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the organization's worklist has a study with this Study
    /// Instance UID (ingest asks a partner about a study only before it does).
    pub async fn has_worklist_study(
        &self,
        org_id: OrgId,
        study_instance_uid: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM studies WHERE org_id = $1 AND study_instance_uid = $2",
        )
        .bind(org_id.to_string())
        .bind(study_instance_uid)
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    /// The indexed instance with this SOP Instance UID in the organization.
    pub async fn dicom_instance(
        &self,
        org_id: OrgId,
        sop_instance_uid: &str,
    ) -> Result<Option<StoredInstance>, StoreError> {
        // Asked before every instance is stored: on SQLite through the
        // rusqlite reader, one hand-off.
        let sql = Sql::new(
            "SELECT study_instance_uid, series_instance_uid, sop_class_uid, transfer_syntax_uid, \
             sha256, blob_key, size_bytes FROM dicom_instances \
             WHERE org_id = $1 AND sop_instance_uid = $2",
        )
        .arg(org_id.to_string())
        .arg(sop_instance_uid);
        let found = self
            .read_rows(sql, |row| {
                Ok(Some(StoredInstance {
                    study_instance_uid: row.get("study_instance_uid")?,
                    series_instance_uid: row.get("series_instance_uid")?,
                    sop_class_uid: row.get("sop_class_uid")?,
                    transfer_syntax_uid: row.get("transfer_syntax_uid")?,
                    sha256: row.get("sha256")?,
                    blob_key: row.get("blob_key")?,
                    size_bytes: row.get("size_bytes")?,
                }))
            })
            .await?;
        Ok(found.into_iter().next())
    }

    /// Indexes one instance whose file is already in the blob store, in one
    /// transaction: its study and series rows (created by the first instance,
    /// counted by every one), the instance row, and the worklist study for
    /// its Study Instance UID when the organization has none yet. A worklist
    /// study that exists (created through the API first, or edited since) is
    /// left exactly as it is. A study it seeds takes what `enrichment` says
    /// (severity, description, Express customer, patient fields as metadata)
    /// over what the instance says. A new instance queues (or extends) the study's
    /// `study.images_received`, held until `quiet` passes without another.
    ///
    /// Every instance but the first of its series takes six statements
    /// (a series is hundreds of instances): count it in its series, insert
    /// it, count it in its study, find the worklist study, the webhook
    /// endpoints, commit. On SQLite they run on one blocking thread through
    /// rusqlite ([`SqliteWriter`](crate::exec::SqliteWriter)); on PostgreSQL
    /// each is a round trip.
    pub async fn index_dicom_instance(
        &self,
        org_id: OrgId,
        new: &IndexedInstance,
        created_by_api_key: Option<&ApiKeyId>,
        enrichment: Option<&Enrichment>,
        quiet: Duration,
    ) -> Result<Indexed, Error> {
        let job = IndexJob {
            org_id,
            new: new.clone(),
            api_key: created_by_api_key.copied(),
            enrichment: enrichment.cloned().unwrap_or_default(),
            quiet,
            now: Timestamp::now().millis(),
        };
        let done = match &self.sqlite_writer {
            Some(writer) => {
                writer
                    .transaction(Synchronous::Full, move |tx| exec::now(job.run(tx)))
                    .await?
            }
            None => {
                let mut tx = self.begin_write().await?;
                let done = job.run(&mut tx).await?;
                match done {
                    Some(_) => tx.commit().await,
                    None => tx.rollback().await,
                }
                .map_err(StoreError::from)?;
                done
            }
        };
        let Some(done) = done else {
            // Already indexed (by another sender meanwhile): its counts were rolled back.
            let existing = self
                .dicom_instance(org_id, &new.instance.sop_instance_uid)
                .await?
                .ok_or_else(|| Error::Internal("an instance vanished while indexing".into()))?;
            return Ok(Indexed::AlreadyStored(existing));
        };
        self.events_queued(done.queued);
        // Open worklists show the study the moment its first image lands, and
        // its new counts as each series begins (not at every instance: a CT
        // series is hundreds).
        if done.seeded.is_some() || done.new_series {
            self.study_changed(org_id, &done.worklist);
        }
        Ok(Indexed::Stored {
            new_study: done.seeded,
        })
    }
}

/// One instance to index, owned so that SQLite's blocking thread can take it.
struct IndexJob {
    org_id: OrgId,
    new: IndexedInstance,
    api_key: Option<ApiKeyId>,
    enrichment: Enrichment,
    quiet: Duration,
    now: i64,
}

/// What indexing a new instance did, once committed.
struct IndexDone {
    worklist: StudyId,
    /// The worklist study the instance created, if it did.
    seeded: Option<StudyId>,
    new_series: bool,
    /// Webhook deliveries written.
    queued: usize,
}

impl IndexJob {
    /// The transaction's statements; `None` when the instance is already
    /// indexed (the caller rolls back the counts taken before that was known).
    async fn run<E: Exec>(&self, tx: &mut E) -> Result<Option<IndexDone>, Error> {
        let org = &self.org_id.to_string();
        let (new, now) = (&self.new, self.now);
        let (study, series, instance) = (&new.study, &new.series, &new.instance);
        // A repeated instance rolls all of this back, so counting first is safe.
        let mut new_series = false;
        let series_study = match count_in_series(tx, org, &series.series_instance_uid).await? {
            Some(uid) => uid,
            None => {
                insert_study(tx, org, new, now).await?;
                new_series = insert_series(tx, org, new, now).await?;
                if new_series {
                    study.study_instance_uid.clone()
                } else {
                    // Another sender created it meanwhile.
                    count_in_series(tx, org, &series.series_instance_uid)
                        .await?
                        .ok_or_else(|| Error::Internal("a series vanished while indexing".into()))?
                }
            }
        };
        if series_study != study.study_instance_uid {
            return Err(Error::invalid(
                "SeriesInstanceUID",
                format!(
                    "series {} belongs to study {series_study}, not {}",
                    series.series_instance_uid, study.study_instance_uid
                ),
            ));
        }
        let inserted = tx
            .execute(
                Sql::new(
                    "INSERT INTO dicom_instances (org_id, sop_instance_uid, series_instance_uid, \
                     study_instance_uid, sop_class_uid, instance_number, pixel_rows, pixel_columns, \
                     bits_allocated, number_of_frames, transfer_syntax_uid, size_bytes, sha256, \
                     blob_key, pixel_data_offset, pixel_data_length, frames, metadata, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19) ON CONFLICT DO NOTHING",
                )
                .arg(org)
                .arg(&instance.sop_instance_uid)
                .arg(&series.series_instance_uid)
                .arg(&study.study_instance_uid)
                .arg(&instance.sop_class_uid)
                .arg(instance.instance_number)
                .arg(instance.rows)
                .arg(instance.columns)
                .arg(instance.bits_allocated)
                .arg(instance.number_of_frames)
                .arg(&instance.transfer_syntax_uid)
                .arg(instance.size_bytes)
                .arg(&instance.sha256)
                .arg(&instance.blob_key)
                .arg(instance.pixel_data_offset)
                .arg(instance.pixel_data_length)
                .arg(instance.frames.clone())
                .arg(&instance.metadata)
                .arg(now),
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        let counts = count_in_study(tx, org, &study.study_instance_uid, new_series, now).await?;
        let (worklist, seeded) =
            worklist_study(tx, org, new, self.api_key.as_ref(), &self.enrichment, now).await?;
        let mut queued = 0;
        if let Some(created) = &seeded {
            // A study the images created is reported like one the API created.
            let event = StudyEventData::of(created, Timestamp::from_millis(now));
            queued += outbox::enqueue(
                tx,
                self.org_id,
                created.created_by_api_key_id,
                &[(EventType::StudyCreated, event)],
            )
            .await?;
        }
        let at = Timestamp::from_millis(now).to_rfc3339();
        let data = ImagesReceivedData {
            study_id: worklist.id.to_string(),
            study_instance_uid: study.study_instance_uid.clone(),
            series_count: counts.series,
            instance_count: counts.instances,
            modalities: counts.modalities,
            received_instance_count: 1,
            created_by_api_key_id: worklist.api_key.map(|k| k.to_string()),
            first_received_at: at.clone(),
            occurred_at: at,
        };
        queued +=
            outbox::enqueue_images_received(tx, self.org_id, worklist.api_key, data, self.quiet)
                .await?;
        Ok(Some(IndexDone {
            worklist: worklist.id,
            seeded: seeded.map(|s| s.id),
            new_series,
            queued,
        }))
    }
}

/// `dicom_studies.modalities`: the distinct series modalities, sorted,
/// joined with `\` (DICOM's multi-value separator).
fn modalities_column(modalities: &[String]) -> String {
    modalities.join("\\")
}

/// The modalities a `dicom_studies.modalities` value lists.
pub(crate) fn modalities_of(column: &str) -> Vec<String> {
    column
        .split('\\')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Counts one more instance in an existing series; answers the series'
/// study, or `None` when the series is new.
async fn count_in_series<E: Exec>(
    tx: &mut E,
    org: &str,
    series_instance_uid: &str,
) -> Result<Option<String>, StoreError> {
    let sql = Sql::new(
        "UPDATE dicom_series SET instance_count = instance_count + 1 \
         WHERE org_id = $1 AND series_instance_uid = $2 RETURNING study_instance_uid",
    )
    .arg(org)
    .arg(series_instance_uid);
    Ok(tx
        .rows(sql, |row| row.get("study_instance_uid"))
        .await?
        .pop())
}

/// The study's row, from its first instance (kept if it exists).
async fn insert_study<E: Exec>(
    tx: &mut E,
    org: &str,
    new: &IndexedInstance,
    now: i64,
) -> Result<(), StoreError> {
    let study = &new.study;
    let sql = Sql::new(
        "INSERT INTO dicom_studies (org_id, study_instance_uid, patient_name, patient_name_search, \
         patient_id, patient_birth_date, patient_sex, study_date, study_time, accession_number, \
         referring_physician_name, study_id, study_description, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
         ON CONFLICT DO NOTHING",
    )
    .arg(org)
    .arg(&study.study_instance_uid)
    .arg(study.patient_name.clone())
    .arg(study.patient_name.as_ref().map(|n| n.to_uppercase()))
    .arg(study.patient_id.clone())
    .arg(study.patient_birth_date.clone())
    .arg(study.patient_sex.clone())
    .arg(study.study_date.clone())
    .arg(study.study_time.clone())
    .arg(study.accession_number.clone())
    .arg(study.referring_physician_name.clone())
    .arg(study.study_id.clone())
    .arg(study.study_description.clone())
    .arg(&study.json)
    .arg(now);
    tx.execute(sql).await?;
    Ok(())
}

/// The series' row, counting its first instance; false when another sender
/// created it meanwhile.
async fn insert_series<E: Exec>(
    tx: &mut E,
    org: &str,
    new: &IndexedInstance,
    now: i64,
) -> Result<bool, StoreError> {
    let series = &new.series;
    let sql = Sql::new(
        "INSERT INTO dicom_series (org_id, series_instance_uid, study_instance_uid, modality, \
         series_number, series_description, series_date, series_time, attributes, created_at, \
         instance_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1) ON CONFLICT DO NOTHING",
    )
    .arg(org)
    .arg(&series.series_instance_uid)
    .arg(&new.study.study_instance_uid)
    .arg(series.modality.clone())
    .arg(series.series_number)
    .arg(series.series_description.clone())
    .arg(series.series_date.clone())
    .arg(series.series_time.clone())
    .arg(&series.json)
    .arg(now);
    Ok(tx.execute(sql).await? > 0)
}

/// A study's counts and modalities after an instance is added.
struct StudyCounts {
    series: i64,
    instances: i64,
    modalities: Vec<String>,
}

/// Counts one more instance in its study. A new series may bring a new
/// modality: the study's row is updated first, so on PostgreSQL its lock
/// orders concurrent writers and the series read next includes theirs.
async fn count_in_study<E: Exec>(
    tx: &mut E,
    org: &str,
    study_instance_uid: &str,
    new_series: bool,
    now: i64,
) -> Result<StudyCounts, StoreError> {
    // BIGINT: the count columns are INTEGER (int4) on PostgreSQL, read as i64.
    const COUNTS: &str = "RETURNING CAST(series_count AS BIGINT) AS series_count, \
         CAST(instance_count AS BIGINT) AS instance_count, modalities";
    let counts = |row: &Row<'_>| {
        Ok(StudyCounts {
            series: row.get("series_count")?,
            instances: row.get("instance_count")?,
            modalities: modalities_of(&row.get::<String>("modalities")?),
        })
    };
    let one = |rows: Vec<StudyCounts>| {
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("a study row vanished while indexing".into()))
    };
    let counted = Sql::new(&format!(
        "UPDATE dicom_studies SET instance_count = instance_count + 1, updated_at = $3 \
         WHERE org_id = $1 AND study_instance_uid = $2 {COUNTS}"
    ))
    .arg(org)
    .arg(study_instance_uid)
    .arg(now);
    let counted = one(tx.rows(counted, counts).await?)?;
    if !new_series {
        return Ok(counted);
    }
    let modalities = Sql::new(
        "SELECT DISTINCT modality FROM dicom_series WHERE org_id = $1 AND study_instance_uid = $2",
    )
    .arg(org)
    .arg(study_instance_uid);
    let modalities = tx
        .rows(modalities, |row| row.get::<Option<String>>("modality"))
        .await?;
    let mut modalities: Vec<String> = modalities.into_iter().flatten().collect();
    modalities.sort();
    modalities.dedup();
    let recounted = Sql::new(&format!(
        "UPDATE dicom_studies SET modalities = $3, series_count = (SELECT count(*) \
         FROM dicom_series WHERE org_id = $1 AND study_instance_uid = $2) \
         WHERE org_id = $1 AND study_instance_uid = $2 {COUNTS}"
    ))
    .arg(org)
    .arg(study_instance_uid)
    .arg(modalities_column(&modalities));
    one(tx.rows(recounted, counts).await?)
}

/// The worklist study an instance belongs to.
struct WorklistStudy {
    id: StudyId,
    api_key: Option<ApiKeyId>,
}

/// The organization's worklist study for the instance's Study Instance UID,
/// seeded from the instance (and `enrichment`) when there is none; the
/// seeded study's facts are answered too.
async fn worklist_study<E: Exec>(
    tx: &mut E,
    org: &str,
    new: &IndexedInstance,
    created_by_api_key: Option<&ApiKeyId>,
    enrichment: &Enrichment,
    now: i64,
) -> Result<(WorklistStudy, Option<StudyFacts>), StoreError> {
    let uid = &new.study.study_instance_uid;
    if let Some(found) = find_worklist_study(tx, org, uid).await? {
        return Ok((found, None));
    }
    let description = enrichment
        .description
        .clone()
        .unwrap_or_else(|| new.worklist_description());
    let metadata = serde_json::to_string(&enrichment.metadata)
        .map_err(|e| StoreError::Corrupt(format!("enrichment metadata: {e}")))?;
    let severity = enrichment.severity.unwrap_or(Severity::Normal);
    let id = StudyId::generate();
    let seed = Sql::new(
        "INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, \
         severity, viewer_status, is_cancelled, created_by_api_key_id, express_customer_id, metadata, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'incomplete', $7, $8, $9, $10, $11, $11) ON CONFLICT DO NOTHING",
    )
    .arg(org)
    .arg(id.as_str())
    .arg(uid)
    .arg(&description)
    .arg(description.to_lowercase())
    .arg(severity.as_str())
    .arg(false)
    .arg(created_by_api_key.map(|k| k.to_string()))
    .arg(enrichment.express_customer_id.clone())
    .arg(metadata)
    .arg(now);
    if tx.execute(seed).await? == 0 {
        // Created meanwhile (through the API, or another sender).
        let found = find_worklist_study(tx, org, uid)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a worklist study vanished".into()))?;
        return Ok((found, None));
    }
    let facts = StudyFacts {
        id: id.clone(),
        study_instance_uid: uid.clone(),
        description,
        severity,
        viewer_status: ViewerStatus::Incomplete,
        is_cancelled: false,
        assigned_to: None,
        express_customer_id: enrichment.express_customer_id.clone(),
        created_by_api_key_id: created_by_api_key.copied(),
    };
    let study = WorklistStudy {
        id,
        api_key: created_by_api_key.copied(),
    };
    Ok((study, Some(facts)))
}

async fn find_worklist_study<E: Exec>(
    tx: &mut E,
    org: &str,
    study_instance_uid: &str,
) -> Result<Option<WorklistStudy>, StoreError> {
    let sql = Sql::new(
        "SELECT id, created_by_api_key_id FROM studies WHERE org_id = $1 AND study_instance_uid = $2",
    )
    .arg(org)
    .arg(study_instance_uid);
    let found = tx
        .rows(sql, |row| {
            let api_key = row
                .get::<Option<String>>("created_by_api_key_id")?
                .map(|k| ApiKeyId::parse(&k))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(WorklistStudy {
                id: StudyId::from_trusted(row.get("id")?),
                api_key,
            })
        })
        .await?;
    Ok(found.into_iter().next())
}
