//! Where image bytes live: files under the data directory (served by
//! Lightbox itself at signed links) or an S3 bucket (presigned URLs, clients
//! talk to S3 directly).
//!
//! Either way nothing half-written is ever readable, and only bytes whose
//! magic number matches the declared type and whose size is within the cap
//! reach the object that read links point at.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use lightbox_domain::image::{FileKind, StoredBlob};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::ObjectStoreExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the file is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    #[error("the file's content is not {expected} (file_type says it is)")]
    WrongType { expected: &'static str },
    #[error("no file has been uploaded for this image")]
    Missing,
    /// The upload was cut short by the client (or its connection).
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The storage failed or could not be reached (the detail is for the log).
    #[error("blob storage: {0}")]
    Storage(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        BlobError::Storage(e.to_string())
    }
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::Missing,
            other => BlobError::Storage(other.to_string()),
        }
    }
}

/// How long a request that needs the bucket keeps retrying it. object_store's
/// default (10 retries within 3 minutes) outlives the request timeout, so an
/// unreachable bucket could end in a bare 408; a few quick retries ride out a
/// blip and then say "storage unavailable" while the client still listens.
fn s3_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        store: Arc<AmazonS3>,
        prefix: String,
    },
}

/// The configured blob backend and its upload cap.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
    max_size: u64,
}

impl BlobStore {
    /// Files under `root` (created if missing).
    pub fn local(root: &Path, max_size: u64) -> Result<BlobStore, BlobError> {
        std::fs::create_dir_all(root.join(".tmp"))?;
        Ok(BlobStore {
            backend: Backend::Local {
                root: root.to_path_buf(),
            },
            max_size,
        })
    }

    /// `s3://bucket[/prefix]`, with credentials, region and endpoint from the
    /// standard `AWS_*` environment variables.
    pub fn s3(url: &str, max_size: u64) -> Result<BlobStore, BlobError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| BlobError::Storage(format!("`{url}` is not an s3:// URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Storage(format!("`{url}` names no bucket")));
        }
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(s3_retry())
            .build()?;
        Ok(BlobStore {
            backend: Backend::S3 {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_owned(),
            },
            max_size,
        })
    }

    /// Files under `data_dir/blobs` unless `url` names an S3 bucket.
    pub fn from_url(url: Option<&str>, data_dir: &Path, max_size: u64) -> Result<Self, BlobError> {
        match url {
            None | Some("") => BlobStore::local(&data_dir.join("blobs"), max_size),
            Some(url) => BlobStore::s3(url, max_size),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Where the client's upload lands before it is verified (S3 only: local
    /// uploads are verified while they stream).
    pub fn upload_key(org: &str, image: &str, nonce: &str) -> String {
        format!("{org}/{image}/upload-{nonce}")
    }

    /// A fresh name for a verified object, which read links point at. No
    /// upload link names it, and each attempt gets its own, so an object
    /// never changes once it exists (racing uploads cannot overwrite one another).
    pub fn final_key(org: &str, image: &str) -> String {
        format!(
            "{org}/{image}/{}",
            lightbox_domain::credentials::random_secret()
        )
    }

    fn s3_path(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// A presigned S3 URL for `method` on `key`; `None` for the local backend,
    /// whose links Lightbox signs and serves itself.
    pub async fn presign(
        &self,
        method: http::Method,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<String>, BlobError> {
        match &self.backend {
            Backend::Local { .. } => Ok(None),
            Backend::S3 { store, prefix } => {
                let url = store
                    .signed_url(method, &Self::s3_path(prefix, key), ttl)
                    .await?;
                Ok(Some(url.to_string()))
            }
        }
    }

    fn local_root(&self) -> Result<&Path, BlobError> {
        match &self.backend {
            Backend::Local { root } => Ok(root),
            Backend::S3 { .. } => Err(BlobError::Storage(
                "the S3 backend receives uploads directly".into(),
            )),
        }
    }

    /// Streams an upload into `key` (local backend): bytes go to a temporary
    /// file, which is renamed into place only once complete, within the cap
    /// and of the `expected` kind. Memory use does not grow with the file.
    pub async fn write_local<S, E>(
        &self,
        key: &str,
        mut body: S,
        expected: FileKind,
    ) -> Result<StoredBlob, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let root = self.local_root()?;
        let tmp = root
            .join(".tmp")
            .join(lightbox_domain::credentials::random_secret());
        let mut file = TempFile::create(tmp).await?;
        let mut size: u64 = 0;
        let mut head = Vec::with_capacity(FileKind::SNIFF_LEN);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Interrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_size {
                return Err(BlobError::TooLarge { max: self.max_size });
            }
            if head.len() < FileKind::SNIFF_LEN {
                let take = (FileKind::SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() == FileKind::SNIFF_LEN {
                    check_kind(&head, expected)?;
                }
            }
            file.writer.write(chunk).await?;
        }
        check_kind(&head, expected)?;
        file.writer.finish().await?;
        file.persist(root, &root.join(key)).await?;
        Ok(StoredBlob {
            key: key.to_owned(),
            size: size as i64,
            content_type: expected.media_type().to_owned(),
        })
    }

    /// Opens a stored file for reading (local backend), with its length.
    pub async fn open_local(&self, key: &str) -> Result<(tokio::fs::File, u64), BlobError> {
        let path = self.local_root()?.join(key);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::Missing),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        Ok((file, len))
    }

    /// Checks that the backend is usable, for readiness probes: local files
    /// can be written (a probe file is created and removed); the S3 bucket
    /// answers (a probe key that does not exist is fine).
    pub async fn check(&self) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local { root } => {
                let probe = root.join(".tmp").join(format!(
                    "readyz-{}",
                    lightbox_domain::credentials::random_secret()
                ));
                tokio::fs::write(&probe, b"ok").await?;
                tokio::fs::remove_file(&probe).await?;
                Ok(())
            }
            Backend::S3 { store, prefix } => {
                match store.head(&Self::s3_path(prefix, ".readyz-probe")).await {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Removes a stored object, if it exists.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local { root } => match tokio::fs::remove_file(root.join(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::S3 { store, prefix } => {
                match store.delete(&Self::s3_path(prefix, key)).await {
                    Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => Err(e.into()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Verifies what the client uploaded to `upload_key` on S3 (size, magic
    /// bytes) and copies it, server-side, to `final_key`, which no upload
    /// link names; the upload object is then removed. Rejected uploads are
    /// deleted so the client can upload again.
    pub async fn promote_s3_upload(
        &self,
        upload_key: &str,
        final_key: &str,
        expected: FileKind,
    ) -> Result<StoredBlob, BlobError> {
        let Backend::S3 { store, prefix } = &self.backend else {
            return Err(BlobError::Storage("not an S3 backend".into()));
        };
        let from = Self::s3_path(prefix, upload_key);
        let meta = store.head(&from).await?;
        let verdict = if meta.size > self.max_size {
            Err(BlobError::TooLarge { max: self.max_size })
        } else {
            let len = meta.size.min(FileKind::SNIFF_LEN as u64);
            let head = if len == 0 {
                Bytes::new()
            } else {
                store.get_range(&from, 0..len).await?
            };
            check_kind(&head, expected)
        };
        if let Err(e) = verdict {
            let _ = store.delete(&from).await;
            return Err(e);
        }
        store.copy(&from, &Self::s3_path(prefix, final_key)).await?;
        if let Err(e) = store.delete(&from).await {
            tracing::warn!(error = %e, "could not remove a promoted upload object");
        }
        Ok(StoredBlob {
            key: final_key.to_owned(),
            size: meta.size as i64,
            content_type: expected.media_type().to_owned(),
        })
    }
}

/// A stored object as a stream of its bytes, with its length.
pub type BlobStream = futures_util::stream::BoxStream<'static, Result<Bytes, BlobError>>;

/// An object listed under a prefix.
#[derive(Debug, Clone)]
pub struct ListedBlob {
    pub key: String,
    /// Last modified, in milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// Parts of an S3 upload from a local file: object_store's multipart minimum
/// is 5 MiB; files up to one part go up in a single PUT.
const S3_PART: usize = 8 * 1024 * 1024;

impl BlobStore {
    /// Where a file that will become a blob can be written first so that
    /// [`BlobStore::put_file`] moves it without copying: the local backend's
    /// own temporary folder (same file system, so a rename); None on S3.
    pub fn local_spool_dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local { root } => Some(root.join(".tmp")),
            Backend::S3 { .. } => None,
        }
    }

    /// The local backend's files, for a caller already on a blocking thread
    /// (so that storing a file it just wrote costs no further hand-off);
    /// None on S3.
    pub fn local_files(&self) -> Option<LocalFiles> {
        match &self.backend {
            Backend::Local { root } => Some(LocalFiles { root: root.clone() }),
            Backend::S3 { .. } => None,
        }
    }

    /// Makes the complete, synced file at `path` the object `key`, and
    /// removes `path`: a rename on the local backend, an upload on S3 (in
    /// parts, never whole in memory). The object appears whole or not at all.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, BlobError> {
        let size = match &self.backend {
            Backend::Local { root } => {
                // One trip to a blocking thread.
                let (files, key, path) = (
                    LocalFiles { root: root.clone() },
                    key.to_owned(),
                    path.to_owned(),
                );
                tokio::task::spawn_blocking(move || {
                    let size = std::fs::metadata(&path)?.len();
                    files.put_file(&key, &path)?;
                    Ok::<_, std::io::Error>(size)
                })
                .await
                .map_err(std::io::Error::other)??
            }
            Backend::S3 { store, prefix } => {
                use tokio::io::AsyncReadExt;
                let size = tokio::fs::metadata(path).await?.len();
                let location = Self::s3_path(prefix, key);
                let mut file = tokio::fs::File::open(path).await?;
                if size as usize <= S3_PART {
                    let mut body = Vec::with_capacity(size as usize);
                    file.read_to_end(&mut body).await?;
                    store.put(&location, body.into()).await?;
                } else {
                    let upload = store.put_multipart(&location).await?;
                    let mut writer =
                        object_store::WriteMultipart::new_with_chunk_size(upload, S3_PART);
                    let mut buf = vec![0u8; READ_BUFFER];
                    let sent: Result<(), BlobError> = async {
                        loop {
                            let n = file.read(&mut buf).await?;
                            if n == 0 {
                                break Ok(());
                            }
                            writer.wait_for_capacity(2).await?;
                            writer.write(&buf[..n]);
                        }
                    }
                    .await;
                    match sent {
                        Ok(()) => {
                            writer.finish().await?;
                        }
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(e);
                        }
                    }
                }
                let _ = tokio::fs::remove_file(path).await;
                size
            }
        };
        Ok(size)
    }

    /// Stores `bytes` as the object `key`, replacing what was there: a
    /// synced temporary file renamed into place (local), one PUT (S3). For
    /// what Lightbox derives and keeps itself, never for uploads.
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local { root } => {
                let tmp = root
                    .join(".tmp")
                    .join(lightbox_domain::credentials::random_secret());
                let mut file = TempFile::create(tmp).await?;
                file.writer.write(bytes).await?;
                file.writer.finish().await?;
                file.persist(root, &root.join(key)).await
            }
            Backend::S3 { store, prefix } => {
                store.put(&Self::s3_path(prefix, key), bytes.into()).await?;
                Ok(())
            }
        }
    }

    /// The whole object `key` in memory ([`BlobError::Missing`] when there
    /// is none). For small objects of Lightbox's own, like
    /// [`BlobStore::put_bytes`]'s.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, BlobError> {
        match &self.backend {
            Backend::Local { root } => match tokio::fs::read(root.join(key)).await {
                Ok(bytes) => Ok(bytes.into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::Missing),
                Err(e) => Err(e.into()),
            },
            Backend::S3 { store, prefix } => Ok(store
                .get(&Self::s3_path(prefix, key))
                .await?
                .bytes()
                .await?),
        }
    }

    /// The object `key` as a stream, with its length.
    pub async fn get(&self, key: &str) -> Result<(BlobStream, u64), BlobError> {
        match &self.backend {
            Backend::Local { .. } => {
                let (file, len) = self.open_local(key).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_BUFFER)
                    .map(|chunk| chunk.map_err(BlobError::from));
                Ok((stream.boxed(), len))
            }
            Backend::S3 { store, prefix } => {
                let got = store.get(&Self::s3_path(prefix, key)).await?;
                let len = got.meta.size;
                let stream = got
                    .into_stream()
                    .map(|chunk| chunk.map_err(BlobError::from));
                Ok((stream.boxed(), len))
            }
        }
    }

    /// The bytes at `ranges` of the object `key`, in order: positioned reads
    /// of one open file on the local backend, ranged GETs on S3 (object_store
    /// merges neighbouring ranges). A range past the object's end is an error.
    /// For frames and bulk data, so a frame costs one read, not the file.
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Vec<Bytes>, BlobError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || read_ranges_local(&path, &ranges))
                    .await
                    .map_err(|e| BlobError::Storage(format!("ranged read: {e}")))?
            }
            Backend::S3 { store, prefix } => {
                let got = object_store::ObjectStore::get_ranges(
                    store.as_ref(),
                    &Self::s3_path(prefix, key),
                    &ranges,
                )
                .await?;
                for (range, bytes) in ranges.iter().zip(&got) {
                    if bytes.len() as u64 != range.end - range.start {
                        return Err(BlobError::Storage(format!(
                            "{key}: bytes {range:?} are past the object's end"
                        )));
                    }
                }
                Ok(got)
            }
        }
    }

    /// The bytes at `range` of the object `key` (see [`BlobStore::get_ranges`]).
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, BlobError> {
        let mut got = self.get_ranges(key, vec![range]).await?;
        Ok(got.pop().unwrap_or_default())
    }

    /// Every object whose key starts with `prefix/`, for sweeps. Local
    /// listing walks the folder on a blocking thread.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListedBlob>, BlobError> {
        match &self.backend {
            Backend::Local { root } => {
                let root = root.clone();
                let prefix = prefix.to_owned();
                tokio::task::spawn_blocking(move || list_local(&root, &prefix))
                    .await
                    .map_err(|e| BlobError::Storage(format!("listing: {e}")))?
            }
            Backend::S3 {
                store,
                prefix: base,
            } => {
                let strip = if base.is_empty() { 0 } else { base.len() + 1 };
                let mut listed = Vec::new();
                let mut objects = object_store::ObjectStore::list(
                    store.as_ref(),
                    Some(&Self::s3_path(base, prefix)),
                );
                while let Some(meta) = objects.next().await {
                    let meta = meta?;
                    let key = meta.location.to_string();
                    listed.push(ListedBlob {
                        key: key.get(strip..).unwrap_or_default().to_owned(),
                        modified_ms: meta.last_modified.timestamp_millis(),
                    });
                }
                Ok(listed)
            }
        }
    }
}

/// Ranges at least this long are served from a mapping of the file, not
/// copied into a buffer of their own: a 512 KiB frame copied into a fresh
/// buffer cost more CPU (page faults, zeroing, the copy) than sending it.
const MAP_FROM: u64 = 64 * 1024;

fn read_ranges_local(
    path: &Path,
    ranges: &[std::ops::Range<u64>],
) -> Result<Vec<Bytes>, BlobError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::Missing),
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata()?.len();
    ranges
        .iter()
        .map(|range| {
            if range.start > range.end || range.end > len {
                return Err(BlobError::Storage(format!(
                    "bytes {range:?} are past the end of a {len}-byte file"
                )));
            }
            if range.end - range.start >= MAP_FROM {
                return map_range(&file, range);
            }
            let mut buf = vec![0u8; (range.end - range.start) as usize];
            read_exact_at(&file, &mut buf, range.start)?;
            Ok(Bytes::from(buf))
        })
        .collect()
}

/// `range` of `file` (within its length) as bytes backed by a read-only
/// mapping, which lives until the last clone of the bytes is dropped (the
/// response is sent). The kernel is asked to read the whole range ahead, so
/// a cold range is one read, not a page fault at a time.
fn map_range(file: &std::fs::File, range: &std::ops::Range<u64>) -> Result<Bytes, BlobError> {
    // SAFETY: a mapping is undefined behaviour if the file changes under it.
    // Stored files never do: each is written whole to a temporary file and
    // renamed into place (`write_local`, `put_file`), and is never written,
    // truncated or replaced in place afterwards; removing or renaming over
    // it leaves an existing mapping of the old file intact.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(range.start)
            .len((range.end - range.start) as usize)
            .map(file)?
    };
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::WillNeed);
    Ok(Bytes::from_owner(map))
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

fn list_local(root: &Path, prefix: &str) -> Result<Vec<ListedBlob>, BlobError> {
    let mut listed = Vec::new();
    let mut folders = vec![root.join(prefix)];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                folders.push(entry.path());
            } else if let Ok(relative) = entry.path().strip_prefix(root) {
                let modified_ms = meta
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                listed.push(ListedBlob {
                    key: relative.to_string_lossy().replace('\\', "/"),
                    modified_ms,
                });
            }
        }
    }
    Ok(listed)
}

fn check_kind(head: &[u8], expected: FileKind) -> Result<(), BlobError> {
    match FileKind::sniff(head) {
        Some(kind) if kind == expected => Ok(()),
        _ => Err(BlobError::WrongType {
            expected: expected.media_type(),
        }),
    }
}

/// Bytes of an upload after which the kernel is asked to start writing them
/// to disk, so the fsync before the answer waits only for the tail; without
/// it the whole file was written back after the last byte arrived (a third
/// of a 16 MiB upload's time, BENCHMARKS.md).
const WRITEBACK_EVERY: u64 = 4 * 1024 * 1024;

/// Request body chunks (each at most hyper's read buffer, ~400 KiB) queued for
/// the writer thread: bounds an upload's memory.
const WRITE_QUEUE: usize = 4;

/// Bytes read from disk at a time when serving a file.
pub const READ_BUFFER: usize = 256 * 1024;

/// A temporary file that is removed unless it is persisted, so an upload
/// that fails or is abandoned midway leaves nothing behind.
struct TempFile {
    path: Option<PathBuf>,
    writer: FileWriter,
}

impl TempFile {
    async fn create(path: PathBuf) -> Result<TempFile, BlobError> {
        let file = tokio::fs::File::create(&path).await?.into_std().await;
        Ok(TempFile {
            path: Some(path),
            writer: FileWriter::spawn(file),
        })
    }

    /// Atomically moves the complete file to `dest`, under `root` (see [`place`]).
    async fn persist(mut self, root: &Path, dest: &Path) -> Result<(), BlobError> {
        let path = self.path.take().expect("persisted once");
        let (root, dest) = (root.to_owned(), dest.to_owned());
        let placed = tokio::task::spawn_blocking(move || {
            let placed = place(&root, &path, &dest);
            if placed.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            placed
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok(placed?)
    }
}

/// The local backend's folder, used from a blocking thread.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    /// [`BlobStore::put_file`], blocking: moves the complete, synced file at
    /// `path` (on the same file system) to the object `key`.
    pub fn put_file(&self, key: &str, path: &Path) -> std::io::Result<()> {
        place(&self.root, path, &self.root.join(key))
    }
}

/// Renames the complete, synced file `from` to `dest` (under `root`) so that
/// the move survives a power cut: the folder that receives it is synced, and
/// when the folder is new (made here, only when the rename finds it missing)
/// so are its parents up to `root`, which hold the new folders' entries.
fn place(root: &Path, from: &Path, dest: &Path) -> std::io::Result<()> {
    let folder = dest.parent().unwrap_or(root);
    let created = match std::fs::rename(from, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && from.exists() => {
            std::fs::create_dir_all(folder)?;
            std::fs::rename(from, dest)?;
            true
        }
        other => {
            other?;
            false
        }
    };
    let mut at = Some(folder);
    while let Some(dir) = at {
        std::fs::File::open(dir)?.sync_all()?;
        at = dir.parent().filter(|_| created && dir != root);
    }
    Ok(())
}

/// Writes an upload on a blocking thread of its own while the next chunks
/// arrive: the request body's buffers go to the kernel as they are (no copy
/// in between), and the disk starts on the first bytes before the last ones
/// are in.
struct FileWriter {
    queue: Option<tokio::sync::mpsc::Sender<Bytes>>,
    complete: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl FileWriter {
    fn spawn(mut file: std::fs::File) -> FileWriter {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let (queue, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = complete.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut written, mut writeback_from) = (0u64, 0u64);
            while let Some(chunk) = chunks.blocking_recv() {
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - writeback_from >= WRITEBACK_EVERY {
                    start_writeback(&file, writeback_from, written);
                    writeback_from = written;
                }
            }
            // An abandoned upload is deleted; only a complete one is made durable.
            if done.load(Ordering::Acquire) {
                file.sync_all()?;
            }
            Ok(())
        });
        FileWriter {
            queue: Some(queue),
            complete,
            task: Some(task),
        }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        let queue = self.queue.as_ref().expect("not finished");
        if queue.send(chunk).await.is_err() {
            // The writer stopped early: its error says why.
            return self.join().await;
        }
        Ok(())
    }

    /// Waits until everything written is on disk (fsynced).
    async fn finish(&mut self) -> Result<(), BlobError> {
        self.complete
            .store(true, std::sync::atomic::Ordering::Release);
        self.join().await
    }

    async fn join(&mut self) -> Result<(), BlobError> {
        self.queue = None;
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(BlobError::from),
                Err(e) => Err(BlobError::Storage(format!("upload writer: {e}"))),
            },
            None => Err(BlobError::Storage("upload writer already stopped".into())),
        }
    }
}

/// Asks the kernel to start writing `from..to` of `file` to disk, without
/// waiting (Linux). A hint only: where it is not supported, the final fsync
/// still writes and checks everything.
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

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short ranges are copied, long ones mapped: both read the same bytes,
    /// in the order asked, and a mapped range outlives the file's removal
    /// (a frame being sent when its instance is deleted).
    #[tokio::test]
    async fn ranged_reads_return_the_files_bytes_however_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path(), 1 << 30).unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::create_dir_all(dir.path().join("dicom")).unwrap();
        std::fs::write(dir.path().join("dicom/a.dcm"), &content).unwrap();
        let ranges = vec![5_000..300_000, 10..20, 4_097..4_097 + MAP_FROM, 0..0];
        let got = blobs
            .get_ranges("dicom/a.dcm", ranges.clone())
            .await
            .unwrap();
        for (range, bytes) in ranges.iter().zip(&got) {
            assert_eq!(
                &bytes[..],
                &content[range.start as usize..range.end as usize]
            );
        }
        std::fs::remove_file(dir.path().join("dicom/a.dcm")).unwrap();
        assert_eq!(&got[0][..], &content[5_000..]);
        let past = blobs.get_range("dicom/a.dcm", 0..1).await;
        assert!(matches!(past, Err(BlobError::Missing)));
    }

    #[test]
    fn a_file_is_placed_into_folders_made_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let from = root.join("spooled");
        std::fs::write(&from, b"first").unwrap();
        place(root, &from, &root.join("dicom/a/b/1.dcm")).unwrap();
        assert_eq!(
            std::fs::read(root.join("dicom/a/b/1.dcm")).unwrap(),
            b"first"
        );
        assert!(!from.exists());
        std::fs::write(&from, b"second").unwrap();
        place(root, &from, &root.join("dicom/a/b/2.dcm")).unwrap();
        assert_eq!(
            std::fs::read(root.join("dicom/a/b/2.dcm")).unwrap(),
            b"second"
        );
        // Nothing to move: an error, and no folder made for it.
        assert!(place(root, &root.join("gone"), &root.join("dicom/z/3.dcm")).is_err());
        assert!(!root.join("dicom/z").exists());
    }

    #[tokio::test]
    async fn a_range_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path(), 1 << 30).unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 100_000]).unwrap();
        assert!(blobs.get_range("f", 0..100_001).await.is_err());
        assert!(blobs.get_range("f", 90_000..100_000).await.is_ok());
    }

    #[tokio::test]
    async fn put_bytes_replaces_the_object_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path(), 1 << 30).unwrap();
        assert!(matches!(
            blobs.get_bytes("cache/a/b.json").await,
            Err(BlobError::Missing)
        ));
        blobs
            .put_bytes("cache/a/b.json", Bytes::from_static(b"first, longer"))
            .await
            .unwrap();
        blobs
            .put_bytes("cache/a/b.json", Bytes::from_static(b"second"))
            .await
            .unwrap();
        assert_eq!(
            &blobs.get_bytes("cache/a/b.json").await.unwrap()[..],
            b"second"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(),
            0
        );
    }
}
