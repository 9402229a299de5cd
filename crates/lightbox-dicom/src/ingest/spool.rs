//! An instance on its way in: a Part 10 file, our file meta first, then the
//! data set bytes exactly as the sender sent them, hashed and counted as
//! they pass. The bytes stay in memory up to [`SPILL`] and go to disk in
//! one blocking call (write, sync, and whatever the caller does next with
//! them), so a typical instance costs one trip to a blocking thread rather
//! than one per buffer; a larger one is written out [`SPILL`] at a time.
//!
//! On Linux the file is written with `O_DIRECT`, from a block-aligned
//! buffer the spool reuses, whole blocks at a time (the last part block
//! through the page cache): the bytes go to the disk without being
//! copied into the page cache first. That copy was the largest single cost
//! of ingest (perf: 42 % of the receiver's CPU for 2 MiB instances); on a
//! VM whose host backs guest memory lazily, every fresh page-cache page is
//! a fault on the host. Where `O_DIRECT` is refused (tmpfs), the file is
//! written through the page cache.
//!
//! Over the size cap the bytes are counted and dropped (the sender still
//! gets its answer); a spool that is dropped unfinished (an abort, a closed
//! socket) deletes its file, so an instance cut off mid-transfer leaves
//! nothing behind.

use dicom_object::meta::FileMetaTableBuilder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Lightbox's implementation class UID (UUID-derived, PS3.5 B.2), written
/// into the file meta of every stored instance.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.188016939329227916917462446521617046617";
pub const IMPLEMENTATION_VERSION_NAME: &str = "LIGHTBOX";

/// Names of spool files start with this, so sweeps touch only ours.
pub const SPOOL_PREFIX: &str = "dicom-spool-";

/// Bytes held in memory before they go to disk: most instances (a CT or
/// MR slice is 0.1–1 MiB) are written in one call. Per instance in flight,
/// so at most this times the associations and STOW parts being received.
pub const SPILL: usize = 2 * 1024 * 1024;

/// What the file meta says about the data set that follows.
#[derive(Debug, Clone)]
pub struct MetaInfo {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub source_ae_title: Option<String>,
}

pub struct Spool {
    /// The file, created on a blocking thread while the first bytes arrive
    /// (creating a file is a few hundred microseconds of file system work
    /// that need not wait for the last byte); None past the size cap.
    file: Option<SpoolFile>,
    /// Bytes not yet written (the file meta first, then data set bytes),
    /// from `pending[start..]`; `start` puts them on a block boundary. Its
    /// capacity is fixed ([`CAPACITY`]): it never moves.
    pending: Vec<u8>,
    start: usize,
    /// Whether bytes have been written out before the end.
    spilled: bool,
    hasher: Sha256,
    meta: MetaInfo,
    /// Where the data set starts in the file.
    data_start: u64,
    data_len: u64,
    max_data_len: u64,
}

/// The disk block `O_DIRECT` writes are aligned to (4096 covers 512-byte
/// and 4K-sector disks).
const BLOCK: usize = 4096;
/// Room for [`SPILL`] bytes from a block boundary.
const CAPACITY: usize = SPILL + BLOCK;

enum SpoolFile {
    Creating(tokio::task::JoinHandle<Result<Out, SpoolError>>),
    Open(Out),
}

/// An open spool file.
struct Out {
    path: SpoolPath,
    file: File,
    /// Written with `O_DIRECT`: whole aligned blocks only.
    direct: bool,
}

impl Out {
    fn create(dir: &Path, aligned: bool) -> Result<Out, SpoolError> {
        let path = dir.join(format!("{SPOOL_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(target_os = "linux")]
        if aligned {
            use std::os::unix::fs::OpenOptionsExt;
            let mut direct = options.clone();
            match direct.custom_flags(libc::O_DIRECT).open(&path) {
                Ok(file) => {
                    return Ok(Out {
                        path: SpoolPath::from(path),
                        file,
                        direct: true,
                    })
                }
                // tmpfs and some others refuse O_DIRECT.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
                Err(e) => return Err(e.into()),
            }
        }
        let _ = aligned;
        let file = options.open(&path)?;
        Ok(Out {
            path: SpoolPath::from(path),
            file,
            direct: false,
        })
    }

    /// Writes `pending[start..]`. Unless `last`, it is emptied, except that
    /// with `O_DIRECT` only whole blocks are written and the rest is kept at
    /// `start`. The `last` write leaves the bytes in `pending` for whoever
    /// reads them next; with `O_DIRECT`, its part block goes through the page
    /// cache (padding it and cutting the file back cost more: a truncate is
    /// a metadata change of its own).
    fn write(&mut self, pending: &mut Vec<u8>, start: usize, last: bool) -> Result<(), SpoolError> {
        let len = pending.len() - start;
        if !self.direct {
            self.file.write_all(&pending[start..])?;
            if !last {
                pending.truncate(start);
            }
        } else if last {
            let whole = len / BLOCK * BLOCK;
            self.write_blocks(&pending[start..start + whole])?;
            if whole < len {
                self.buffered()?;
                self.file.write_all(&pending[start + whole..])?;
            }
        } else {
            let whole = len / BLOCK * BLOCK;
            self.write_blocks(&pending[start..start + whole])?;
            pending.copy_within(start + whole.., start);
            pending.truncate(start + len - whole);
        }
        Ok(())
    }

    fn write_blocks(&mut self, blocks: &[u8]) -> Result<(), SpoolError> {
        match self.file.write_all(blocks) {
            // Opened with O_DIRECT but refused at the write (some FUSE and
            // network filesystems): the rest goes through the page cache.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                self.buffered()?;
                Ok(self.file.write_all(blocks)?)
            }
            written => Ok(written?),
        }
    }

    /// Goes on through the page cache, appending (a file written with
    /// `O_DIRECT` so far holds whole blocks: its end is where the rest goes).
    fn buffered(&mut self) -> Result<(), SpoolError> {
        if self.direct {
            self.file = std::fs::OpenOptions::new()
                .append(true)
                .open(self.path.path())?;
            self.direct = false;
        }
        Ok(())
    }
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SpoolError::Io(std::io::Error::other(e)))?
}

fn is_aligned(buffer: &[u8], start: usize) -> bool {
    buffer.as_ptr().wrapping_add(start) as usize % BLOCK == 0
}

/// An empty buffer of [`CAPACITY`] and where in it a block boundary is
/// (0 when there is none to be found: the file then goes through the page
/// cache).
fn aligned_buffer() -> (Vec<u8>, usize) {
    let mut buffer: Vec<u8> = Vec::with_capacity(CAPACITY);
    let start = buffer.as_ptr().align_offset(BLOCK);
    let start = if start < BLOCK { start } else { 0 };
    buffer.resize(start, 0);
    (buffer, start)
}

impl Spool {
    /// Starts a spool for `meta`, and its file in `dir` (in the background:
    /// must be called within the tokio runtime).
    pub fn create(dir: &Path, meta: MetaInfo, max_data_len: u64) -> Result<Spool, SpoolError> {
        let head = part10_head(&meta)?;
        let (mut pending, start) = aligned_buffer();
        pending.extend_from_slice(&head);
        let (dir, aligned) = (dir.to_owned(), is_aligned(&pending, start));
        // Dropped before it is done (an abort), the task's file is dropped
        // with its result, which removes it.
        let creating = tokio::task::spawn_blocking(move || Out::create(&dir, aligned));
        Ok(Spool {
            file: Some(SpoolFile::Creating(creating)),
            pending,
            start,
            spilled: false,
            hasher: Sha256::new(),
            meta,
            data_start: head.len() as u64,
            data_len: 0,
            max_data_len,
        })
    }

    /// The open file (waiting for its creation if need be).
    async fn take_file(&mut self) -> Result<Out, SpoolError> {
        match self.file.take() {
            Some(SpoolFile::Open(out)) => Ok(out),
            Some(SpoolFile::Creating(task)) => task
                .await
                .map_err(|e| SpoolError::Io(std::io::Error::other(e)))?,
            None => Err(SpoolError::TooLarge {
                max: self.max_data_len,
            }),
        }
    }

    /// Appends data set bytes. Past the cap, bytes are only counted.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let within = self.data_len <= self.max_data_len;
        self.data_len += bytes.len() as u64;
        if self.data_len > self.max_data_len {
            if within {
                // Free the memory and the disk now; the rest is counted and dropped.
                self.pending = Vec::new();
                self.file = None;
            }
            return Ok(());
        }
        self.hasher.update(bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = SPILL - (self.pending.len() - self.start);
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() - self.start >= SPILL {
                self.spill().await?;
            }
        }
        Ok(())
    }

    /// Writes out what is pending (whole blocks of it, with `O_DIRECT`).
    async fn spill(&mut self) -> Result<(), SpoolError> {
        let start = self.start;
        let mut out = self.take_file().await?;
        let mut pending = std::mem::take(&mut self.pending);
        let (out, pending) = blocking(move || {
            out.write(&mut pending, start, false)?;
            Ok((out, pending))
        })
        .await?;
        self.file = Some(SpoolFile::Open(out));
        self.spilled = true;
        self.pending = pending;
        Ok(())
    }

    pub fn over_limit(&self) -> bool {
        self.data_len > self.max_data_len
    }

    /// Writes what is left and syncs the file (after this it survives a
    /// crash), then runs `then` on the same blocking thread with the synced
    /// file and, when the whole file was still in memory, its bytes (so
    /// `then` need not read it back).
    pub async fn finish<T: Send + 'static>(
        mut self,
        then: impl FnOnce(&Spooled, Option<&[u8]>) -> T + Send + 'static,
    ) -> Result<(Spooled, T), SpoolError> {
        if self.over_limit() {
            return Err(SpoolError::TooLarge {
                max: self.max_data_len,
            });
        }
        let start = self.start;
        let mut out = self.take_file().await?;
        let whole = !self.spilled;
        let mut pending = std::mem::take(&mut self.pending);
        let (meta, data_start) = (self.meta.clone(), self.data_start);
        let file_len = data_start + self.data_len;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        blocking(move || {
            out.write(&mut pending, start, true)?;
            out.file.sync_all()?;
            let spooled = Spooled {
                path: out.path,
                meta,
                data_start,
                file_len,
                sha256,
            };
            let after = then(&spooled, whole.then_some(&pending[start..]));
            Ok((spooled, after))
        })
        .await
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
        let mut spool = Spool::create(dir.path(), meta(), 100).unwrap();
        spool.write(b"abc").await.unwrap();
        spool.write(b"def").await.unwrap();
        let (done, in_memory) = spool
            .finish(|_, bytes| bytes.map(<[u8]>::to_vec))
            .await
            .unwrap();
        let bytes = std::fs::read(done.path.path()).unwrap();
        assert_eq!(
            in_memory.as_deref(),
            Some(&bytes[..]),
            "handed over as written"
        );
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
        let mut spool = Spool::create(dir.path(), meta(), 4).unwrap();
        spool.write(b"abc").await.unwrap();
        spool.write(b"def").await.unwrap();
        assert!(spool.over_limit());
        assert!(matches!(
            spool.finish(|_, _| ()).await,
            Err(SpoolError::TooLarge { max: 4 })
        ));
        // The file may still have been in the making: it goes when it is made.
        for _ in 0..100 {
            if std::fs::read_dir(dir.path()).unwrap().count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the spool file of a refused instance stayed");
    }

    #[tokio::test]
    async fn a_spool_larger_than_memory_holds_is_written_out_as_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(700 * 1024).collect();
        let mut spool = Spool::create(dir.path(), meta(), u64::MAX).unwrap();
        let mut sent = Vec::new();
        for _ in 0..(SPILL / chunk.len() + 2) {
            spool.write(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "written out before the end"
        );
        let (done, in_memory) = spool.finish(|_, bytes| bytes.is_some()).await.unwrap();
        assert!(!in_memory, "not all of it was in memory at the end");
        let bytes = std::fs::read(done.path.path()).unwrap();
        assert_eq!(&bytes[done.data_start as usize..], &sent[..]);
        assert_eq!(done.sha256, hex::encode(Sha256::digest(&sent)));
    }

    #[tokio::test]
    async fn going_over_the_cap_after_writing_out_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = vec![7u8; SPILL];
        let mut spool = Spool::create(dir.path(), meta(), SPILL as u64 + 10).unwrap();
        spool.write(&chunk).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        spool.write(&chunk).await.unwrap();
        assert!(spool.over_limit());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(matches!(
            spool.finish(|_, _| ()).await,
            Err(SpoolError::TooLarge { .. })
        ));
    }

    #[test]
    fn direct_or_not_the_file_holds_exactly_the_bytes_written() {
        let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for aligned in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut out = Out::create(dir.path(), aligned).unwrap();
            if !aligned {
                assert!(!out.direct);
            }
            let (mut pending, start) = aligned_buffer();
            pending.extend_from_slice(&sent[..6000]);
            out.write(&mut pending, start, false).unwrap();
            let kept = if out.direct { 6000 - BLOCK } else { 0 };
            assert_eq!(pending.len() - start, kept, "direct: {}", out.direct);
            pending.extend_from_slice(&sent[6000..]);
            out.write(&mut pending, start, true).unwrap();
            assert_eq!(
                &pending[start..],
                &sent[6000 - kept..],
                "the last bytes stay"
            );
            assert_eq!(std::fs::read(out.path.path()).unwrap(), sent);
        }
    }
}
