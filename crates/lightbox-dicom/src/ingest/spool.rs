//! An instance on its way in: a Part 10 file being written to local disk,
//! our file meta first, then the data set bytes exactly as the sender sent
//! them, hashed and counted as they pass. Over the size cap the bytes are
//! counted and dropped (the sender still gets its answer); a spool that is
//! dropped unfinished (an abort, a closed socket) deletes its file, so an
//! instance cut off mid-transfer leaves nothing behind.

use dicom_object::meta::FileMetaTableBuilder;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Lightbox's implementation class UID (UUID-derived, PS3.5 B.2), written
/// into the file meta of every stored instance.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.188016939329227916917462446521617046617";
pub const IMPLEMENTATION_VERSION_NAME: &str = "LIGHTBOX";

/// Names of spool files start with this, so sweeps touch only ours.
pub const SPOOL_PREFIX: &str = "dicom-spool-";

/// What the file meta says about the data set that follows.
#[derive(Debug, Clone)]
pub struct MetaInfo {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub source_ae_title: Option<String>,
}

pub struct Spool {
    path: Option<PathBuf>,
    file: tokio::io::BufWriter<tokio::fs::File>,
    hasher: Sha256,
    meta: MetaInfo,
    /// Where the data set starts in the file.
    data_start: u64,
    data_len: u64,
    max_data_len: u64,
}

/// A complete spool file, synced to disk.
#[derive(Debug)]
pub struct Spooled {
    pub path: SpoolPath,
    pub meta: MetaInfo,
    pub data_start: u64,
    pub file_len: u64,
    /// Hex SHA-256 of the data set bytes.
    pub sha256: String,
}

/// A spool file's path that removes the file when dropped, unless taken.
#[derive(Debug)]
pub struct SpoolPath(Option<PathBuf>);

impl SpoolPath {
    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("not yet taken")
    }

    /// Hands the file over (it has been moved into the blob store).
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl From<PathBuf> for SpoolPath {
    fn from(path: PathBuf) -> Self {
        SpoolPath(Some(path))
    }
}

impl Drop for SpoolPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the instance is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    #[error("the file meta cannot be written: {0}")]
    Meta(String),
    #[error("spool: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes buffered before they go to disk.
const WRITE_BUFFER: usize = 1024 * 1024;

/// The preamble, `DICM` and the file meta Lightbox writes for `meta`.
pub fn part10_head(meta: &MetaInfo) -> Result<Vec<u8>, SpoolError> {
    let mut builder = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(&meta.sop_class_uid)
        .media_storage_sop_instance_uid(&meta.sop_instance_uid)
        .transfer_syntax(&meta.transfer_syntax_uid)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    if let Some(ae) = meta.source_ae_title.as_deref().filter(|a| !a.is_empty()) {
        builder = builder.source_application_entity_title(ae);
    }
    let table = builder
        .build()
        .map_err(|e| SpoolError::Meta(e.to_string()))?;
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    table
        .write(&mut head)
        .map_err(|e| SpoolError::Meta(e.to_string()))?;
    Ok(head)
}

impl Spool {
    /// Starts a spool file in `dir` with the file meta for `meta`.
    pub async fn create(
        dir: &Path,
        meta: MetaInfo,
        max_data_len: u64,
    ) -> Result<Spool, SpoolError> {
        let head = part10_head(&meta)?;
        let path = dir.join(format!("{SPOOL_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&path).await?;
        let mut spool = Spool {
            path: Some(path),
            file: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha256::new(),
            meta,
            data_start: head.len() as u64,
            data_len: 0,
            max_data_len,
        };
        spool.file.write_all(&head).await?;
        Ok(spool)
    }

    /// Appends data set bytes. Past the cap, bytes are only counted.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let within = self.data_len <= self.max_data_len;
        self.data_len += bytes.len() as u64;
        if self.data_len > self.max_data_len {
            if within {
                // Free the disk now; the rest is counted and dropped.
                self.file.get_mut().set_len(0).await?;
            }
            return Ok(());
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes).await?;
        Ok(())
    }

    pub fn over_limit(&self) -> bool {
        self.data_len > self.max_data_len
    }

    /// Flushes and syncs the file: after this it survives a crash.
    pub async fn finish(mut self) -> Result<Spooled, SpoolError> {
        let path = SpoolPath(self.path.take());
        if self.over_limit() {
            return Err(SpoolError::TooLarge {
                max: self.max_data_len,
            });
        }
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        let hasher = std::mem::take(&mut self.hasher);
        Ok(Spooled {
            path,
            meta: self.meta.clone(),
            data_start: self.data_start,
            file_len: self.data_start + self.data_len,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MetaInfo {
        MetaInfo {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            sop_instance_uid: "1.2.3".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            source_ae_title: Some("CT1".into()),
        }
    }

    #[tokio::test]
    async fn a_finished_spool_is_a_part10_file_with_the_bytes_as_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path(), meta(), 100).await.unwrap();
        spool.write(b"abc").await.unwrap();
        spool.write(b"def").await.unwrap();
        let done = spool.finish().await.unwrap();
        let bytes = std::fs::read(done.path.path()).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        assert_eq!(&bytes[done.data_start as usize..], b"abcdef");
        assert_eq!(done.file_len, bytes.len() as u64);
        assert_eq!(done.sha256, hex::encode(Sha256::digest(b"abcdef")));
        let table = dicom_object::meta::FileMetaTable::from_reader(&bytes[128..]).unwrap();
        assert_eq!(table.transfer_syntax(), "1.2.840.10008.1.2.1");
        assert_eq!(table.media_storage_sop_instance_uid(), "1.2.3");
        let path = done.path.path().to_owned();
        drop(done);
        assert!(!path.exists(), "a spool not handed over is removed");
    }

    #[tokio::test]
    async fn over_the_cap_the_spool_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path(), meta(), 4).await.unwrap();
        spool.write(b"abc").await.unwrap();
        spool.write(b"def").await.unwrap();
        assert!(spool.over_limit());
        assert!(matches!(
            spool.finish().await,
            Err(SpoolError::TooLarge { max: 4 })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
