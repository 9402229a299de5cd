//! Series metadata kept whole in the blob store, so that opening a series
//! again reads one object instead of every instance's row.
//!
//! A viewer asks for a series' metadata each time it opens the series: for a
//! 500-instance CT that is 500 rows and 2.5 MB of JSON gathered from the
//! index (BENCHMARKS.md, "Session 12"). Instances are only ever added to a
//! series, each in the transaction that raises its instance count, so the
//! count names one set of instances and a document kept for that count is
//! that series' metadata until the next instance arrives. A kept document
//! is written after a read that found it missing or stale, in the
//! background, and is only ever a copy: deleting `cache/` loses nothing.
//!
//! Keys are `cache/series-metadata/{org}/{series}.json`, outside `dicom/`,
//! so the orphan sweep never looks at them. Replicas may write the same key
//! at once; what each writes for a given count is the same.

use super::wado::metadata::{decode_kept, encode_kept};
use bytes::Bytes;
use lightbox_blob::{BlobError, BlobStore};
use lightbox_domain::OrgId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// How long a document waits before it is written.
const WRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// The kept series documents of one blob store.
#[derive(Clone)]
pub struct SeriesDocuments {
    blobs: BlobStore,
    /// Keys being written by this process: one write per series at a time.
    writing: Arc<Mutex<HashSet<String>>>,
}

impl SeriesDocuments {
    pub fn new(blobs: BlobStore) -> SeriesDocuments {
        SeriesDocuments {
            blobs,
            writing: Arc::default(),
        }
    }

    fn key(org_id: OrgId, series_instance_uid: &str) -> String {
        format!("cache/series-metadata/{org_id}/{series_instance_uid}.json")
    }

    /// The document kept for the series with `instance_count` instances, or
    /// None when there is none for that count (or it cannot be read: the
    /// caller builds it from the index, as without a cache).
    pub async fn get(
        &self,
        org_id: OrgId,
        series_instance_uid: &str,
        instance_count: i64,
    ) -> Option<Bytes> {
        let key = Self::key(org_id, series_instance_uid);
        match self.blobs.get_bytes(&key).await {
            Ok(kept) => decode_kept(&kept, instance_count),
            Err(BlobError::Missing) => None,
            Err(e) => {
                tracing::warn!(%key, error = %e, "reading kept series metadata failed");
                None
            }
        }
    }

    /// Keeps `document`, built for `instance_count` instances, in the
    /// background; nothing when this process is already writing the series.
    pub fn keep(
        &self,
        org_id: OrgId,
        series_instance_uid: &str,
        instance_count: i64,
        document: Bytes,
    ) {
        let key = Self::key(org_id, series_instance_uid);
        if !self
            .writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // After the answer has gone out: on a small machine the write
            // (a copy, a file, an fsync) would otherwise share the cores
            // with sending the answer the reader is waiting for.
            tokio::time::sleep(WRITE_AFTER).await;
            let kept = encode_kept(instance_count, &document);
            if let Err(e) = this.blobs.put_bytes(&key, kept).await {
                tracing::warn!(%key, error = %e, "keeping series metadata failed");
            }
            this.writing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        });
    }
}
