//! Study, series and instance retrieve: `multipart/related;
//! type="application/dicom"`, one Part 10 file a part. Stored bytes stream
//! from the blob store one file after another (never a study in memory);
//! another transfer syntax Lightbox can write is made one instance at a
//! time, on a blocking thread, when its part is reached.

use super::{
    accept, blob_error, boundary, convert, multipart, not_acceptable, part_head, part_tail,
    readable_instances, single, whole_file, Uids,
};
use crate::dicomweb::DicomwebCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use lightbox_dicom::dicomweb::wado::accept::{negotiate_dicom, Syntax};
use lightbox_dicom::dicomweb::wado::can_serve_as;
use lightbox_dicom::dicomweb::wado::transcode::{self, MAX_FILE_BYTES};
use lightbox_store::WadoInstance;

/// The most instances one retrieve streams; a larger study is retrieved
/// series by series.
pub const MAX_RETRIEVE_INSTANCES: usize = 20_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Study, series or instance retrieve, by the route's path.
pub async fn retrieve(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    uids: Uids,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let instances = readable_instances(&state, &caller, &uids, MAX_RETRIEVE_INSTANCES).await?;
    let single_instance = uids.instance.is_some();
    let producible = |ts: &str| {
        instances.iter().all(|i| {
            i.transfer_syntax_uid == ts
                || (can_serve_as(&i.transfer_syntax_uid, i.bits_allocated, ts)
                    && i.size_bytes.max(0) as u64 <= MAX_FILE_BYTES)
        })
    };
    let choice =
        negotiate_dicom(&accept(&headers), single_instance, producible).ok_or_else(|| {
            let stored: std::collections::BTreeSet<&str> = instances
                .iter()
                .map(|i| i.transfer_syntax_uid.as_str())
                .collect();
            not_acceptable(format!(
                "served as multipart/related; type=\"application/dicom\" with transfer-syntax=* \
             (stored: {}), or an uncompressed one (1.2.840.10008.1.2.1, 1.2.840.10008.1.2, \
             1.2.840.10008.1.2.1.99) when every instance can be decoded",
                stored.into_iter().collect::<Vec<_>>().join(", ")
            ))
        })?;
    let target = match choice.syntax {
        Syntax::Stored => None,
        Syntax::Uid(ts) => Some(ts),
    };
    let converts = |i: &WadoInstance| {
        target
            .as_ref()
            .is_some_and(|ts| *ts != i.transfer_syntax_uid)
    };
    let part_type = |i: &WadoInstance| {
        format!(
            "application/dicom; transfer-syntax={}",
            target.as_deref().unwrap_or(&i.transfer_syntax_uid)
        )
    };

    if !choice.multipart {
        // A single instance as bare application/dicom.
        let instance = &instances[0];
        return if converts(instance) {
            let bytes = transcoded(&state, instance, target.clone().unwrap_or_default()).await?;
            let length = bytes.len() as u64;
            Ok(single("application/dicom", Body::from(bytes), Some(length)))
        } else {
            let (file, length) = state
                .blobs
                .get(&instance.blob_key)
                .await
                .map_err(|e| blob_error(&instance.blob_key, e))?;
            Ok(single(
                "application/dicom",
                Body::from_stream(file),
                Some(length),
            ))
        };
    }

    let boundary = boundary();
    // The length is known up front when every part is stored bytes.
    let length = (!instances.iter().any(converts)).then(|| {
        instances
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                part_head(&boundary, i, &part_type(inst)).len() as u64
                    + inst.size_bytes.max(0) as u64
            })
            .sum::<u64>()
            + part_tail(&boundary).len() as u64
    });
    // A single instance's conversion happens before the answer, so that a
    // failure is an error status rather than a cut-off body.
    let mut ready: Option<Bytes> = None;
    if single_instance && converts(&instances[0]) {
        ready = Some(transcoded(&state, &instances[0], target.clone().unwrap_or_default()).await?);
    }
    let heads: Vec<Bytes> = instances
        .iter()
        .enumerate()
        .map(|(i, inst)| part_head(&boundary, i, &part_type(inst)))
        .collect();
    let tail = part_tail(&boundary);
    let parts = stream::iter(instances.into_iter().zip(heads))
        .then(move |(instance, head)| {
            let state = state.clone();
            let target = target.clone();
            let ready = ready.take();
            async move { part(state, instance, head, target, ready).await }
        })
        .flatten()
        .chain(stream::once(async move { Ok::<Bytes, BoxError>(tail) }));
    Ok(multipart(
        &boundary,
        "application/dicom",
        Body::from_stream(parts),
        length,
    ))
}

/// One part: its head, then the stored file streamed, or the converted one.
/// A failure midway ends the body early (the client sees a broken multipart)
/// and is logged.
async fn part(
    state: AppState,
    instance: WadoInstance,
    head: Bytes,
    target: Option<String>,
    ready: Option<Bytes>,
) -> BoxStream<'static, Result<Bytes, BoxError>> {
    let head = stream::once(async move { Ok::<Bytes, BoxError>(head) });
    let body: Result<BoxStream<'static, Result<Bytes, BoxError>>, ApiError> = match (ready, target)
    {
        (Some(bytes), _) => Ok(stream::once(async move { Ok(bytes) }).boxed()),
        (None, Some(ts)) if ts != instance.transfer_syntax_uid => {
            match transcoded(&state, &instance, ts).await {
                Ok(bytes) => Ok(stream::once(async move { Ok(bytes) }).boxed()),
                Err(e) => Err(e),
            }
        }
        _ => match state.blobs.get(&instance.blob_key).await {
            Ok((file, _)) => Ok(file.map(|chunk| chunk.map_err(BoxError::from)).boxed()),
            Err(e) => Err(blob_error(&instance.blob_key, e)),
        },
    };
    match body {
        Ok(body) => head.chain(body).boxed(),
        Err(e) => {
            tracing::error!(sop = %instance.sop_instance_uid, error = %e.message, "a retrieve was cut short");
            stream::once(async move { Err::<Bytes, BoxError>(e.message.into()) }).boxed()
        }
    }
}

/// The instance as a Part 10 file in `ts`.
async fn transcoded(
    state: &AppState,
    instance: &WadoInstance,
    ts: String,
) -> Result<Bytes, ApiError> {
    let file = whole_file(state, instance).await?;
    let sop = instance.sop_instance_uid.clone();
    let from = instance.transfer_syntax_uid.clone();
    convert(move || transcode::transcode_instance(&file, &ts))
        .await?
        .map(Bytes::from)
        .map_err(|e| {
            tracing::warn!(%sop, %from, error = %e, "an instance could not be transcoded");
            not_acceptable(format!(
                "instance {sop} cannot be converted from {from}: {e}; ask for transfer-syntax=*"
            ))
        })
}
