//! The ingest pipeline, shared by C-STORE and STOW-RS and knowing neither:
//! a data set streams into a [`Spool`] under the size cap, is checked
//! (element lengths, UIDs, what the sender said it is), moved into the blob
//! store, and only then indexed, in one transaction with the worklist study
//! it may seed. A crash between the blob and the index leaves an unindexed
//! file, which [`Ingest::sweep`] removes later; never an indexed instance
//! without its file.
//!
//! An instance of a study the worklist does not have yet is first shown to
//! the [`EnrichHook`], if there is one (the binary's: a partner's
//! `patient_study.enrichment_requested` webhook), and the study is seeded
//! with what it answers. The hook is soft: `None` (no partner, a failure,
//! a timeout) seeds the study from the instance alone, and never fails it.

pub mod attributes;
pub mod charset;
pub mod layout;
pub mod spool;

use crate::protocol::status;
use futures_util::future::BoxFuture;
use lightbox_blob::BlobStore;
use lightbox_domain::audit::{ActorKind, AuditEvent, AuditEventId, Outcome as AuditOutcome};
use lightbox_domain::dicom::{DicomSource, IndexedInstance};
use lightbox_domain::webhook::Enrichment;
use lightbox_domain::{ApiKeyId, OrgId, StudyId, Timestamp};
use lightbox_store::{Indexed, Store, StoreError, StoredInstance};
use spool::{MetaInfo, Spool, SpoolError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Deflated Explicit VR Little Endian: the data set is raw deflate.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_LITTLE: &str = "1.2.840.10008.1.2.1";

/// Limits and places for ingest.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest data set accepted, in bytes (also the most a deflated data set
    /// may inflate to).
    pub max_instance_bytes: u64,
    /// Where instances are spooled on their way in: the local blob store's
    /// own temporary folder (so storing is a rename), else a local folder.
    pub spool_dir: PathBuf,
    /// How old an unindexed blob or spool file must be before a sweep removes it.
    pub orphan_age: Duration,
    /// How long a study's `study.images_received` waits for more instances:
    /// one event per burst, not one per instance.
    pub burst_quiet: Duration,
}

/// Something that takes audit events (the API's batching audit log).
pub type AuditSink = Arc<dyn Fn(AuditEvent) + Send + Sync>;

/// A study about to be seeded on the worklist by ingest.
#[derive(Debug, Clone)]
pub struct NewStudyQuery {
    pub org_id: OrgId,
    /// The STOW request's API key (DIMSE has none).
    pub api_key_id: Option<ApiKeyId>,
    pub study_instance_uid: String,
    pub accession_number: Option<String>,
    pub patient_id: Option<String>,
}

/// Asked what to seed a new worklist study with; `None` means nothing more
/// than the instance says. It bounds its own time: ingest waits for it.
pub type EnrichHook =
    Arc<dyn Fn(NewStudyQuery) -> BoxFuture<'static, Option<Enrichment>> + Send + Sync>;

/// Shared by the DIMSE receiver and the STOW-RS handler.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    blobs: BlobStore,
    config: Arc<IngestConfig>,
    audit: AuditSink,
    enrich: Option<EnrichHook>,
}

/// How one instance went; every variant but `Failed` leaves it stored.
#[derive(Debug, Clone)]
pub enum Outcome {
    Stored {
        instance: InstanceIds,
        new_study: Option<StudyId>,
    },
    /// The same bytes were already stored: nothing changed.
    AlreadyStored { instance: InstanceIds },
    /// Different bytes under a stored SOP Instance UID: the first copy is kept.
    DifferentCopyKept { instance: InstanceIds },
}

impl Outcome {
    pub fn instance(&self) -> &InstanceIds {
        match self {
            Outcome::Stored { instance, .. }
            | Outcome::AlreadyStored { instance }
            | Outcome::DifferentCopyKept { instance } => instance,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIds {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
}

impl InstanceIds {
    fn of(indexed: &IndexedInstance) -> InstanceIds {
        InstanceIds {
            study_instance_uid: indexed.study.study_instance_uid.clone(),
            series_instance_uid: indexed.series.series_instance_uid.clone(),
            sop_instance_uid: indexed.instance.sop_instance_uid.clone(),
            sop_class_uid: indexed.instance.sop_class_uid.clone(),
        }
    }
}

/// An instance being received: its spool, and the index's answer to
/// whether its SOP Instance UID is stored already, asked when the instance
/// began to arrive so that it is ready when the last byte is.
pub struct Incoming {
    spool: Spool,
    stored: tokio::task::JoinHandle<Result<Option<StoredInstance>, StoreError>>,
}

impl Incoming {
    /// Appends data set bytes (see [`Spool::write`]).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        self.spool.write(bytes).await
    }
}

/// Why an instance was not stored, in terms both DIMSE and STOW can render.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the instance is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    /// Unreadable or invalid: cannot be understood.
    #[error("{0}")]
    Invalid(String),
    /// The data set is not what the sender said (SOP class or instance
    /// differs from the command or file meta).
    #[error("{0}")]
    Mismatch(String),
    /// STOW to `/studies/{uid}` with an instance of another study.
    #[error("the instance belongs to study {got}, not {expected}")]
    WrongStudy { expected: String, got: String },
    /// Our side failed (disk, blob store, database).
    #[error("{0}")]
    Storage(String),
}

impl IngestError {
    /// The C-STORE status (and STOW FailureReason) for this failure.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::TooLarge { .. } => status::OUT_OF_RESOURCES,
            IngestError::Invalid(_) => status::CANNOT_UNDERSTAND,
            IngestError::Mismatch(_) | IngestError::WrongStudy { .. } => status::DATA_SET_MISMATCH,
            IngestError::Storage(_) => status::PROCESSING_FAILURE,
        }
    }
}

impl Outcome {
    /// The C-STORE status (and STOW WarningReason when not success).
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Stored { .. } | Outcome::AlreadyStored { .. } => status::SUCCESS,
            Outcome::DifferentCopyKept { .. } => status::DIFFERENT_COPY_KEPT,
        }
    }
}

impl From<SpoolError> for IngestError {
    fn from(e: SpoolError) -> Self {
        match e {
            SpoolError::TooLarge { max } => IngestError::TooLarge { max },
            SpoolError::Meta(m) => IngestError::Invalid(m),
            SpoolError::Io(e) => IngestError::Storage(format!("spool: {e}")),
        }
    }
}

/// Where an instance comes from, and what the sender asked.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub org_id: OrgId,
    pub source: DicomSource,
    /// STOW to `/studies/{uid}`: the study every instance must belong to.
    pub expected_study: Option<String>,
}

impl Ingest {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        config: IngestConfig,
        audit: AuditSink,
    ) -> Result<Ingest, std::io::Error> {
        std::fs::create_dir_all(&config.spool_dir)?;
        Ok(Ingest {
            store,
            blobs,
            config: Arc::new(config),
            audit,
            enrich: None,
        })
    }

    /// Seeds new worklist studies with what `hook` answers.
    pub fn with_enrichment(mut self, hook: EnrichHook) -> Ingest {
        self.enrich = Some(hook);
        self
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn audit(&self, event: AuditEvent) {
        (self.audit)(event)
    }

    /// Starts receiving a data set described by `meta`, and asks the index
    /// meanwhile whether its SOP Instance UID is stored already (must be
    /// called within the tokio runtime).
    pub fn spool(&self, delivery: &Delivery, meta: MetaInfo) -> Result<Incoming, IngestError> {
        let (store, org, uid) = (
            self.store.clone(),
            delivery.org_id,
            meta.sop_instance_uid.clone(),
        );
        let spool = Spool::create(&self.config.spool_dir, meta, self.config.max_instance_bytes)?;
        let stored = tokio::spawn(async move { store.dicom_instance(org, &uid).await });
        Ok(Incoming { spool, stored })
    }

    /// Checks, stores and indexes a complete instance.
    pub async fn finish(
        &self,
        delivery: &Delivery,
        incoming: Incoming,
    ) -> Result<Outcome, IngestError> {
        let result = self.finish_inner(delivery, incoming).await;
        let (outcome, resource, status) = match &result {
            Ok(o) => (
                AuditOutcome::Success,
                Some(o.instance().sop_instance_uid.clone()),
                200,
            ),
            Err(IngestError::Storage(_)) => (AuditOutcome::Error, None, 500),
            Err(IngestError::WrongStudy { .. }) => (AuditOutcome::Conflict, None, 409),
            Err(_) => (AuditOutcome::Invalid, None, 400),
        };
        if let Err(e) = &result {
            tracing::info!(org = %delivery.org_id, error = %e, "instance not stored");
        }
        self.audit(audit_event(
            delivery,
            "dicom_instance.store",
            resource,
            outcome,
            status,
        ));
        result
    }

    async fn finish_inner(
        &self,
        delivery: &Delivery,
        incoming: Incoming,
    ) -> Result<Outcome, IngestError> {
        let storage = |e: &dyn std::fmt::Display| IngestError::Storage(e.to_string());
        let Incoming { spool, stored } = incoming;
        // Asked while the instance arrived: ready by now.
        let stored = stored
            .await
            .map_err(|e| storage(&e))?
            .map_err(|e| storage(&e))?;
        let org = delivery.org_id;
        let max = self.config.max_instance_bytes;
        let dir = self.config.spool_dir.clone();
        let expected_study = delivery.expected_study.clone();
        // A new instance on the local backend is moved into place on the
        // thread that synced it: one hand-off for the file, not two.
        let local = self.blobs.local_files().filter(|_| stored.is_none());
        let (spooled, checked) = spool
            .finish(move |spooled, bytes| {
                let indexed = check(spooled, bytes, max, &dir)?;
                let ids = InstanceIds::of(&indexed);
                if let Some(expected) = expected_study {
                    if expected != ids.study_instance_uid {
                        return Err(IngestError::WrongStudy {
                            expected,
                            got: ids.study_instance_uid,
                        });
                    }
                }
                let key = blob_key(org, &ids, &spooled.sha256);
                let placed = match local {
                    Some(files) => {
                        files
                            .put_file(&key, spooled.path.path())
                            .map_err(|e| IngestError::Storage(format!("blob {key}: {e}")))?;
                        true
                    }
                    None => false,
                };
                Ok((indexed, ids, key, placed))
            })
            .await?;
        let (mut indexed, ids, key, placed) = checked?;
        if let Some(existing) = stored {
            return Ok(repeat_outcome(&existing.sha256, &spooled.sha256, ids));
        }
        indexed.instance.transfer_syntax_uid = spooled.meta.transfer_syntax_uid.clone();
        indexed.instance.size_bytes = spooled.file_len as i64;
        indexed.instance.sha256 = spooled.sha256.clone();
        indexed.instance.blob_key = key.clone();
        if !placed {
            self.blobs
                .put_file(&key, spooled.path.path())
                .await
                .map_err(|e| storage(&e))?;
        }
        spooled.path.keep();
        let api_key = match &delivery.source {
            DicomSource::Stow { api_key_id } => Some(api_key_id),
            DicomSource::Dimse { .. } => None,
        };
        let enrichment = self.enrichment(org, api_key, &indexed).await;
        match self
            .store
            .index_dicom_instance(
                org,
                &indexed,
                api_key,
                enrichment.as_ref(),
                self.config.burst_quiet,
            )
            .await
        {
            Ok(Indexed::Stored { new_study }) => Ok(Outcome::Stored {
                instance: ids,
                new_study,
            }),
            Ok(Indexed::AlreadyStored(existing)) => {
                // Another sender stored it meanwhile; ours is not needed.
                if existing.blob_key != key {
                    let _ = self.blobs.delete(&key).await;
                }
                Ok(repeat_outcome(
                    &existing.sha256,
                    &indexed.instance.sha256,
                    ids,
                ))
            }
            Err(e) => {
                let _ = self.blobs.delete(&key).await;
                Err(match e {
                    lightbox_domain::Error::Invalid { message, .. } => {
                        IngestError::Invalid(message)
                    }
                    other => storage(&other),
                })
            }
        }
    }

    /// What the hook says about the instance's study, if the worklist has
    /// no study for it yet. (Two first instances of one study arriving at
    /// once may both ask; the one that seeds the study applies its answer.)
    async fn enrichment(
        &self,
        org_id: OrgId,
        api_key: Option<&ApiKeyId>,
        indexed: &IndexedInstance,
    ) -> Option<Enrichment> {
        let hook = self.enrich.as_ref()?;
        let uid = &indexed.study.study_instance_uid;
        match self.store.has_worklist_study(org_id, uid).await {
            Ok(false) => {}
            Ok(true) => return None,
            Err(e) => {
                tracing::warn!(org = %org_id, error = %e, "cannot tell whether a study is new");
                return None;
            }
        }
        hook(NewStudyQuery {
            org_id,
            api_key_id: api_key.copied(),
            study_instance_uid: uid.clone(),
            accession_number: indexed.study.accession_number.clone(),
            patient_id: indexed.study.patient_id.clone(),
        })
        .await
    }

    /// Removes what a crash can leave: blobs under `dicom/` older than the
    /// orphan age that no index row names, and old spool files. Safe on
    /// several replicas at once (it only removes what nobody indexes).
    pub async fn sweep(&self) -> Result<usize, IngestError> {
        let cutoff = Timestamp::now().millis() - self.config.orphan_age.as_millis() as i64;
        let mut removed = 0;
        let listed = self
            .blobs
            .list("dicom")
            .await
            .map_err(|e| IngestError::Storage(e.to_string()))?;
        for blob in listed.into_iter().filter(|b| b.modified_ms < cutoff) {
            let Some((org, sop)) = parse_blob_key(&blob.key) else {
                continue;
            };
            let indexed = self
                .store
                .dicom_instance(org, &sop)
                .await
                .map_err(|e| IngestError::Storage(e.to_string()))?;
            if indexed.is_none_or(|i| i.blob_key != blob.key) {
                tracing::info!(key = %blob.key, "removing an unindexed DICOM file");
                self.blobs
                    .delete(&blob.key)
                    .await
                    .map_err(|e| IngestError::Storage(e.to_string()))?;
                removed += 1;
            }
        }
        removed += sweep_spool(&self.config.spool_dir, self.config.orphan_age);
        Ok(removed)
    }
}

fn repeat_outcome(stored_sha: &str, new_sha: &str, instance: InstanceIds) -> Outcome {
    if stored_sha == new_sha {
        Outcome::AlreadyStored { instance }
    } else {
        Outcome::DifferentCopyKept { instance }
    }
}

/// `dicom/{org}/{study}/{series}/{sop}.{sha256 prefix}.dcm`: scoped by
/// organization, and unique per content, so a second copy never overwrites
/// the first. UIDs are digits and dots, safe in keys.
pub fn blob_key(org: OrgId, ids: &InstanceIds, sha256: &str) -> String {
    format!(
        "dicom/{org}/{}/{}/{}.{}.dcm",
        ids.study_instance_uid,
        ids.series_instance_uid,
        ids.sop_instance_uid,
        &sha256[..16]
    )
}

fn parse_blob_key(key: &str) -> Option<(OrgId, String)> {
    let mut parts = key.strip_prefix("dicom/")?.split('/');
    let org = OrgId::parse(parts.next()?).ok()?;
    let file = parts.nth(2)?;
    let sop = file.strip_suffix(".dcm")?.rsplit_once('.')?.0;
    Some((org, sop.to_owned()))
}

fn sweep_spool(dir: &Path, age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(spool::SPOOL_PREFIX)
        {
            removed += usize::from(std::fs::remove_file(entry.path()).is_ok());
        }
    }
    removed
}

/// Checks a spooled file (blocking: it may read the file) and reads what the
/// index needs; `bytes` is the whole file when the spool still had it in
/// memory. A deflated data set is inflated first, into a temporary file and
/// no further than the size cap.
fn check(
    spooled: &spool::Spooled,
    bytes: Option<&[u8]>,
    max_inflated: u64,
    spool_dir: &Path,
) -> Result<IndexedInstance, IngestError> {
    let meta = &spooled.meta;
    let inflated;
    // An inflated data set is read from its file; any other from memory
    // when the spool still had it.
    let (file, bytes, start, end, encoding) = if meta.transfer_syntax_uid == DEFLATED {
        inflated = inflate(
            spooled.path.path(),
            spooled.data_start,
            max_inflated,
            spool_dir,
            meta,
        )?;
        let len = std::fs::metadata(inflated.path())
            .map_err(|e| IngestError::Storage(e.to_string()))?
            .len();
        let explicit = layout::Encoding::ExplicitLittle;
        (inflated.path(), None, inflated.data_start, len, explicit)
    } else {
        let encoding = layout::Encoding::of(&meta.transfer_syntax_uid).ok_or_else(|| {
            IngestError::Invalid(format!(
                "transfer syntax {} is not supported",
                meta.transfer_syntax_uid
            ))
        })?;
        (
            spooled.path.path(),
            bytes,
            spooled.data_start,
            spooled.file_len,
            encoding,
        )
    };
    let (pixels, read) = match bytes {
        Some(bytes) => parse(|| Ok(std::io::Cursor::new(bytes)), start, end, encoding)?,
        None => parse(
            || {
                std::fs::File::open(file)
                    .map(std::io::BufReader::new)
                    .map_err(|e| IngestError::Storage(e.to_string()))
            },
            start,
            end,
            encoding,
        )?,
    };
    let mut indexed = read.indexed;
    if indexed.instance.sop_instance_uid != meta.sop_instance_uid.trim_end_matches('\0') {
        return Err(IngestError::Mismatch(format!(
            "the data set's SOPInstanceUID {} is not the {} the sender announced",
            indexed.instance.sop_instance_uid, meta.sop_instance_uid
        )));
    }
    if read.sop_class_uid != meta.sop_class_uid.trim_end_matches('\0') {
        return Err(IngestError::Mismatch(format!(
            "the data set's SOPClassUID {} is not the {} the sender announced",
            read.sop_class_uid, meta.sop_class_uid
        )));
    }
    // Frame locations only where they are locations in the stored file.
    if meta.transfer_syntax_uid != DEFLATED {
        match &pixels {
            Some(layout::PixelData::Native { offset, length }) => {
                indexed.instance.pixel_data_offset = Some(*offset as i64);
                indexed.instance.pixel_data_length = Some(*length as i64);
            }
            Some(encapsulated) => {
                let frames = indexed.instance.number_of_frames.unwrap_or(1).max(1) as u64;
                indexed.instance.frames = encapsulated
                    .frame_fragments(frames)
                    .map(|f| serde_json::to_string(&f).expect("numbers serialise"));
            }
            None => {}
        }
    }
    Ok(indexed)
}

/// Walks the Part 10 file that `open` reads (from its start) checking every
/// length, and reads its attributes.
fn parse<R: std::io::Read + std::io::Seek>(
    open: impl Fn() -> Result<R, IngestError>,
    start: u64,
    end: u64,
    encoding: layout::Encoding,
) -> Result<(Option<layout::PixelData>, attributes::Read), IngestError> {
    let pixels = layout::pixel_data(open()?, start, end, encoding)
        .map_err(|e| IngestError::Invalid(e.to_string()))?;
    let read = attributes::read(open()?).map_err(|e| match e {
        attributes::AttributeError::Unreadable(m) | attributes::AttributeError::Invalid(m) => {
            IngestError::Invalid(m)
        }
    })?;
    Ok((pixels, read))
}

/// An inflated copy of a deflated data set, as an Explicit VR Little Endian
/// Part 10 file; removed when dropped.
struct Inflated {
    path: spool::SpoolPath,
    data_start: u64,
}

impl Inflated {
    fn path(&self) -> &Path {
        self.path.path()
    }
}

fn inflate(
    path: &Path,
    data_start: u64,
    max: u64,
    dir: &Path,
    meta: &MetaInfo,
) -> Result<Inflated, IngestError> {
    use std::io::{Seek, SeekFrom};
    let storage = |e: std::io::Error| IngestError::Storage(e.to_string());
    let mut source = std::fs::File::open(path).map_err(storage)?;
    source.seek(SeekFrom::Start(data_start)).map_err(storage)?;
    let out_path = dir.join(format!(
        "{}inflated-{}",
        spool::SPOOL_PREFIX,
        uuid::Uuid::new_v4().simple()
    ));
    let mut out = std::fs::File::create(&out_path).map_err(storage)?;
    let guard = spool::SpoolPath::from(out_path);
    let head = spool::part10_head(&MetaInfo {
        transfer_syntax_uid: EXPLICIT_LITTLE.to_owned(),
        ..meta.clone()
    })?;
    out.write_all(&head).map_err(storage)?;
    // One byte past the cap tells "too large" from "exactly at the cap".
    let mut decoder =
        flate2::read::DeflateDecoder::new(std::io::BufReader::new(source)).take(max + 1);
    let copied = std::io::copy(&mut decoder, &mut out).map_err(|e| {
        IngestError::Invalid(format!("the deflated data set cannot be inflated: {e}"))
    })?;
    if copied > max {
        return Err(IngestError::TooLarge { max });
    }
    Ok(Inflated {
        path: guard,
        data_start: head.len() as u64,
    })
}

/// An audit event about DICOM traffic.
pub fn audit_event(
    delivery: &Delivery,
    action: &str,
    resource_id: Option<String>,
    outcome: AuditOutcome,
    status: u16,
) -> AuditEvent {
    let (actor_kind, actor_id, client_ip) = match &delivery.source {
        DicomSource::Dimse {
            calling_ae_title,
            address,
        } => (
            ActorKind::DicomPeer,
            Some(calling_ae_title.clone()),
            address.map(|a| a.to_string()),
        ),
        DicomSource::Stow { api_key_id } => (ActorKind::ApiKey, Some(api_key_id.to_string()), None),
    };
    AuditEvent {
        id: AuditEventId::generate(),
        org_id: delivery.org_id,
        occurred_at: Timestamp::now(),
        actor_kind,
        actor_id,
        action: action.to_owned(),
        resource_type: lightbox_domain::audit::resource_type(action),
        resource_id,
        outcome,
        status,
        client_ip,
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_name_their_organization_and_instance() {
        let org = OrgId::generate();
        let ids = InstanceIds {
            study_instance_uid: "1.2".into(),
            series_instance_uid: "1.2.3".into(),
            sop_instance_uid: "1.2.3.4".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        };
        let key = blob_key(org, &ids, &"ab".repeat(32));
        assert_eq!(
            key,
            format!("dicom/{org}/1.2/1.2.3/1.2.3.4.abababababababab.dcm")
        );
        assert_eq!(parse_blob_key(&key), Some((org, "1.2.3.4".to_owned())));
        assert_eq!(parse_blob_key("dicom/nope/1/2/3.x.dcm"), None);
    }
}
