//! An instance on its way in: a Part 10 file being written to local disk,
//! our file meta first, then the data set bytes exactly as the sender sent
//! them, hashed and counted as they pass. Over the size cap the bytes are
//! counted and dropped (the sender still gets its answer); a spool that is
//! dropped unfinished (an abort, a closed socket) deletes its file, so an
//! instance cut off mid-transfer leaves nothing behind.

use bytes::Bytes;
use dicom_object::meta::FileMetaTableBuilder;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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
    writer: Writer,
    meta: MetaInfo,
    /// Where the data set starts in the file.
    data_start: u64,
    data_len: u64,
    max_data_len: u64,
}

/// Writes and hashes a spool's data set on a blocking thread of its own
/// while the next PDVs arrive: the received buffers go to the kernel as they
/// are, and the async side never waits for a write (with tokio::fs every
/// buffered flush was a round trip to a blocking thread: a fifth of the
/// receiver's CPU in task switches, BENCHMARKS.md).
struct Writer {
    queue: Option<tokio::sync::mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<String>>>,
    complete: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Chunks queued for the writer thread: bounds an instance's memory.
const WRITE_QUEUE: usize = 16;

/// Bytes after which the kernel is asked to start writing them back, so
/// the fsync at the end waits for the tail only.
const WRITEBACK_EVERY: u64 = 4 * 1024 * 1024;

impl Writer {
    fn spawn(mut file: std::fs::File, written: u64) -> Writer {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let (queue, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = complete.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let (mut written, mut writeback_from) = (written, 0u64);
            while let Some(chunk) = chunks.blocking_recv() {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
                written += chunk.len() as u64;
                if written - writeback_from >= WRITEBACK_EVERY {
                    start_writeback(&file, writeback_from, written);
                    writeback_from = written;
                }
            }
            // An abandoned spool is deleted; only a complete one is made durable.
            if done.load(Ordering::Acquire) {
                file.sync_all()?;
            }
            Ok(hex::encode(hasher.finalize()))
        });
        Writer {
            queue: Some(queue),
            task: Some(task),
            complete,
        }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), SpoolError> {
        let queue = self.queue.as_ref().expect("not finished");
        if queue.send(chunk).await.is_err() {
            // The writer stopped early: its error says why.
            self.join().await?;
        }
        Ok(())
    }

    /// Waits until everything written is on disk; the data set's SHA-256.
    async fn finish(&mut self) -> Result<String, SpoolError> {
        self.complete
            .store(true, std::sync::atomic::Ordering::Release);
        self.join().await
    }

    async fn join(&mut self) -> Result<String, SpoolError> {
        self.queue = None;
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => Ok(result?),
                Err(e) => Err(SpoolError::Io(std::io::Error::other(format!(
                    "spool writer: {e}"
                )))),
            },
            None => Err(SpoolError::Io(std::io::Error::other(
                "spool writer already stopped",
            ))),
        }
    }
}

/// Asks the kernel to start writing `from..to` of `file` to disk, without
/// waiting (Linux); a hint only, the final fsync writes and checks everything.
fn start_writeback(file: &std::fs::File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor belongs to `file`, borrowed for the call.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
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
        let file = {
            let path = path.clone();
            let head = head.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                use std::io::Write;
                let mut file = std::fs::File::create(path)?;
                file.write_all(&head)?;
                Ok(file)
            })
            .await
            .map_err(|e| SpoolError::Io(std::io::Error::other(e.to_string())))??
        };
        Ok(Spool {
            path: Some(path),
            writer: Writer::spawn(file, head.len() as u64),
            meta,
            data_start: head.len() as u64,
            data_len: 0,
            max_data_len,
        })
    }

    /// Appends data set bytes. Past the cap, bytes are only counted (the
    /// sender still gets its answer; the file is removed when it is dropped).
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), SpoolError> {
        self.data_len += bytes.len() as u64;
        if self.data_len > self.max_data_len {
            return Ok(());
        }
        self.writer.write(bytes).await
    }

    pub fn over_limit(&self) -> bool {
        self.data_len > self.max_data_len
    }

    /// Syncs the file: after this it survives a crash.
    pub async fn finish(mut self) -> Result<Spooled, SpoolError> {
        let path = SpoolPath(self.path.take());
        if self.over_limit() {
            return Err(SpoolError::TooLarge {
                max: self.max_data_len,
            });
        }
        let sha256 = self.writer.finish().await?;
        Ok(Spooled {
            path,
            meta: self.meta.clone(),
            data_start: self.data_start,
            file_len: self.data_start + self.data_len,
            sha256,
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
        spool.write(Bytes::from_static(b"abc")).await.unwrap();
        spool.write(Bytes::from_static(b"def")).await.unwrap();
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
        spool.write(Bytes::from_static(b"abc")).await.unwrap();
        spool.write(Bytes::from_static(b"def")).await.unwrap();
        assert!(spool.over_limit());
        assert!(matches!(
            spool.finish().await,
            Err(SpoolError::TooLarge { max: 4 })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
