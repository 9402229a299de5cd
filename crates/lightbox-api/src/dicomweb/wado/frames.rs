//! Frames (`…/instances/{sop}/frames/{1,2,…}`) and bulk data
//! (`…/instances/{sop}/bulk/{GGGGEEEE}`, what metadata's BulkDataURIs name).
//!
//! A frame is one ranged read of the stored file where the index knows where
//! it lies: native pixel data (swapped to little endian when stored big
//! endian) and encapsulated frames (their fragments, with the stored
//! `transfer-syntax` on the part). Deflated data sets, frames that cannot be
//! told apart without decoding, and compressed frames asked for as native
//! samples are converted from the whole file instead, bounded in size.

use super::{
    accept, blob_error, boundary, convert, multipart, not_acceptable, part_head, part_tail,
    readable_instances, single, whole_file, Uids,
};
use crate::dicomweb::DicomwebCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use lightbox_dicom::dicomweb::wado::accept::{
    negotiate_frames, negotiate_octets, FrameChoice, FrameSyntax,
};
use lightbox_dicom::dicomweb::wado::frames::{
    fragment_ranges, parse_fragments, parse_frame_list, samples_per_pixel, swap_to_little_endian,
    FrameError, NativePixels,
};
use lightbox_dicom::dicomweb::wado::transcode::{self, TranscodeError};
use lightbox_dicom::dicomweb::wado::{is_native, DEFLATED, EXPLICIT_BE};
use lightbox_store::WadoInstance;
use std::ops::Range;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Native pixel data served as bulk data is read this much at a time.
const BULK_CHUNK: u64 = 4 * 1024 * 1024;

pub async fn frames(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uids = Uids::parse(&study, Some(&series), Some(&instance))?;
    // A malformed list is 400 before anything is looked up.
    parse_frame_list(&list, u32::MAX).map_err(frame_error)?;
    let instance = readable_instances(&state, &caller, &uids, 1)
        .await?
        .remove(0);
    if !has_pixel_data(&instance) {
        return Err(ApiError::not_found(format!(
            "instance {} has no pixel data",
            instance.sop_instance_uid
        )));
    }
    let numbers = parse_frame_list(&list, frame_count(&instance)).map_err(frame_error)?;
    let choice = negotiate_frames(
        &accept(&headers),
        &instance.transfer_syntax_uid,
        numbers.len() == 1,
    )
    .ok_or_else(|| frames_not_acceptable(&instance))?;
    serve_frames(state, instance, numbers, choice).await
}

pub async fn bulk(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path((study, series, instance, tag)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uids = Uids::parse(&study, Some(&series), Some(&instance))?;
    let tag = parse_tag(&tag)?;
    let instance = readable_instances(&state, &caller, &uids, 1)
        .await?
        .remove(0);
    let ranges = accept(&headers);
    if tag == (0x7FE0, 0x0010) {
        if !has_pixel_data(&instance) {
            return Err(ApiError::not_found(format!(
                "instance {} has no pixel data",
                instance.sop_instance_uid
            )));
        }
        let count = frame_count(&instance);
        let choice = negotiate_frames(&ranges, &instance.transfer_syntax_uid, count == 1)
            .ok_or_else(|| frames_not_acceptable(&instance))?;
        if choice.syntax == FrameSyntax::AsStored {
            if let Some(px) = native_pixels(&instance) {
                return Ok(native_value(state, instance, px, &choice));
            }
        }
        return serve_frames(state, instance, (1..=count).collect(), choice).await;
    }
    let multipart_wanted = negotiate_octets(&ranges).ok_or_else(|| {
        not_acceptable("bulk data is served as application/octet-stream (multipart/related or bare)")
    })?;
    // Everything but Pixel Data lies before it: read no further.
    let end = match instance.pixel_data_offset {
        Some(offset) if instance.transfer_syntax_uid != DEFLATED => offset.max(0) as u64,
        _ => instance.size_bytes.max(0) as u64,
    };
    let file = if end < instance.size_bytes.max(0) as u64 {
        state
            .blobs
            .get_range(&instance.blob_key, 0..end)
            .await
            .map_err(|e| blob_error(&instance.blob_key, e))?
    } else {
        whole_file(&state, &instance).await?
    };
    let value = convert(move || {
        transcode::element_bytes(&file, tag.0, tag.1)
    })
    .await?
    .map_err(|e| match e {
        TranscodeError::NoSuchElement(..) => ApiError::not_found(format!(
            "instance {} has no bulk data ({:04X},{:04X})",
            instance.sop_instance_uid, tag.0, tag.1
        )),
        other => conversion_error(&instance, other),
    })?;
    let length = value.len() as u64;
    if !multipart_wanted {
        return Ok(single(
            "application/octet-stream",
            Body::from(value),
            Some(length),
        ));
    }
    let boundary = boundary();
    let head = part_head(&boundary, 0, "application/octet-stream");
    let tail = part_tail(&boundary);
    let length = head.len() as u64 + length + tail.len() as u64;
    let mut body = BytesMut::with_capacity(length as usize);
    body.extend_from_slice(&head);
    body.extend_from_slice(&value);
    body.extend_from_slice(&tail);
    Ok(multipart(
        &boundary,
        "application/octet-stream",
        Body::from(body.freeze()),
        Some(length),
    ))
}

/// How the frames will be read.
enum Plan {
    /// Ranged reads of native pixel data.
    Native(NativePixels),
    /// Ranged reads of each frame's fragments.
    Fragments(Vec<Vec<(u64, u32)>>),
    /// From the whole file: inflated, grouped or decoded.
    Convert { decode: bool },
}

fn plan(instance: &WadoInstance, choice: &FrameChoice) -> Plan {
    if choice.syntax == FrameSyntax::AsStored {
        if let Some(px) = native_pixels(instance) {
            return Plan::Native(px);
        }
        if !is_native(&instance.transfer_syntax_uid) {
            if let Some(frames) = instance.frames.as_deref().and_then(parse_fragments) {
                if frames.len() as u32 == frame_count(instance) {
                    return Plan::Fragments(frames);
                }
            }
        }
    }
    Plan::Convert {
        decode: choice.syntax == FrameSyntax::Decoded,
    }
}

async fn serve_frames(
    state: AppState,
    instance: WadoInstance,
    numbers: Vec<u32>,
    choice: FrameChoice,
) -> Result<Response, ApiError> {
    let part_type = choice.part_content_type();
    let (reads, lengths): (Vec<FrameRead>, Vec<u64>) = match plan(&instance, &choice) {
        Plan::Native(px) => numbers
            .iter()
            .map(|&n| {
                let read = px.frame(n).map_err(|e| stored_frame_error(&instance, e))?;
                let length = if px.bits_allocated == 1 {
                    read.bits.div_ceil(8)
                } else {
                    read.range.end - read.range.start
                };
                Ok((FrameRead::Native(px, read), length))
            })
            .collect::<Result<Vec<_>, ApiError>>()?
            .into_iter()
            .unzip(),
        Plan::Fragments(frames) => numbers
            .iter()
            .map(|&n| {
                let ranges =
                    fragment_ranges(&frames, n).map_err(|e| stored_frame_error(&instance, e))?;
                let length: u64 = ranges.iter().map(|r| r.end - r.start).sum();
                Ok((FrameRead::Ranges(ranges), length))
            })
            .collect::<Result<Vec<_>, ApiError>>()?
            .into_iter()
            .unzip(),
        Plan::Convert { decode } => {
            let file = whole_file(&state, &instance).await?;
            let wanted = numbers.clone();
            let converted = convert(move || transcode::frames_from_file(&file, &wanted, decode))
                .await?
                .map_err(|e| conversion_error(&instance, e))?;
            // Frames that had to be decoded say so on their parts.
            let part_type = if converted.transfer_syntax == choice.transfer_syntax {
                part_type
            } else {
                format!(
                    "application/octet-stream; transfer-syntax={}",
                    converted.transfer_syntax
                )
            };
            let frames: Vec<Bytes> = converted.frames.into_iter().map(Bytes::from).collect();
            return Ok(respond(&choice, &part_type, frames));
        }
    };

    if !choice.multipart {
        let bytes = read_frame(&state, &instance.blob_key, &reads[0]).await?;
        let length = bytes.len() as u64;
        return Ok(single(&part_type, Body::from(bytes), Some(length)));
    }
    let boundary = boundary();
    let heads: Vec<Bytes> = (0..reads.len())
        .map(|i| part_head(&boundary, i, &part_type))
        .collect();
    let tail = part_tail(&boundary);
    let length = heads.iter().map(|h| h.len() as u64).sum::<u64>()
        + lengths.iter().sum::<u64>()
        + tail.len() as u64;
    let key = instance.blob_key;
    let parts = stream::iter(reads.into_iter().zip(heads))
        .then(move |(read, head)| {
            let state = state.clone();
            let key = key.clone();
            async move {
                let frame = read_frame(&state, &key, &read)
                    .await
                    .map_err(|e| BoxError::from(e.message))?;
                Ok::<_, BoxError>(stream::iter([Ok::<Bytes, BoxError>(head), Ok(frame)]))
            }
        })
        .map(|part| match part {
            Ok(part) => part.left_stream(),
            Err(e) => stream::iter([Err(e)]).right_stream(),
        })
        .flatten()
        .chain(stream::once(async move { Ok::<Bytes, BoxError>(tail) }));
    Ok(multipart(
        &boundary,
        &choice.media_type,
        Body::from_stream(parts),
        Some(length),
    ))
}

/// Frames already in memory, as the response `choice` asked for.
fn respond(choice: &FrameChoice, part_type: &str, frames: Vec<Bytes>) -> Response {
    if !choice.multipart && frames.len() == 1 {
        let frame = frames.into_iter().next().unwrap_or_default();
        let length = frame.len() as u64;
        return single(part_type, Body::from(frame), Some(length));
    }
    let boundary = boundary();
    let mut body = BytesMut::new();
    for (i, frame) in frames.iter().enumerate() {
        body.extend_from_slice(&part_head(&boundary, i, part_type));
        body.extend_from_slice(frame);
    }
    body.extend_from_slice(&part_tail(&boundary));
    let length = body.len() as u64;
    multipart(
        &boundary,
        &choice.media_type,
        Body::from(body.freeze()),
        Some(length),
    )
}

enum FrameRead {
    Native(NativePixels, lightbox_dicom::dicomweb::wado::frames::NativeRead),
    Ranges(Vec<Range<u64>>),
}

/// One frame: one ranged read (one per fragment for encapsulated frames,
/// which object_store coalesces on S3).
async fn read_frame(state: &AppState, key: &str, read: &FrameRead) -> Result<Bytes, ApiError> {
    match read {
        FrameRead::Native(px, native) => {
            let bytes = state
                .blobs
                .get_range(key, native.range.clone())
                .await
                .map_err(|e| blob_error(key, e))?;
            if px.bits_allocated == 1 || px.big_endian {
                Ok(Bytes::from(px.finish(native, bytes.to_vec())))
            } else {
                Ok(bytes)
            }
        }
        FrameRead::Ranges(ranges) => {
            let pieces = state
                .blobs
                .get_ranges(key, ranges.clone())
                .await
                .map_err(|e| blob_error(key, e))?;
            if pieces.len() == 1 {
                return Ok(pieces.into_iter().next().unwrap_or_default());
            }
            let mut frame = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in pieces {
                frame.extend_from_slice(&piece);
            }
            Ok(frame.freeze())
        }
    }
}

/// Native Pixel Data as bulk data: the whole value, little endian, read
/// and sent a chunk at a time.
fn native_value(
    state: AppState,
    instance: WadoInstance,
    px: NativePixels,
    choice: &FrameChoice,
) -> Response {
    let end = px.offset + px.length;
    let chunks: Vec<Range<u64>> = (px.offset..end)
        .step_by(BULK_CHUNK as usize)
        .map(|start| start..(start + BULK_CHUNK).min(end))
        .collect();
    let key = instance.blob_key.clone();
    let values = stream::iter(chunks).then(move |range| {
        let state = state.clone();
        let key = key.clone();
        async move {
            let bytes = state
                .blobs
                .get_range(&key, range)
                .await
                .map_err(|e| BoxError::from(blob_error(&key, e).message))?;
            if px.big_endian {
                let mut bytes = bytes.to_vec();
                swap_to_little_endian(&mut bytes, px.bits_allocated);
                return Ok::<Bytes, BoxError>(Bytes::from(bytes));
            }
            Ok(bytes)
        }
    });
    let part_type = choice.part_content_type();
    if !choice.multipart {
        return single(&part_type, Body::from_stream(values), Some(px.length));
    }
    let boundary = boundary();
    let head = part_head(&boundary, 0, &part_type);
    let tail = part_tail(&boundary);
    let length = head.len() as u64 + px.length + tail.len() as u64;
    let body = stream::once(async move { Ok::<Bytes, BoxError>(head) })
        .chain(values)
        .chain(stream::once(async move { Ok::<Bytes, BoxError>(tail) }));
    multipart(
        &boundary,
        &choice.media_type,
        Body::from_stream(body),
        Some(length),
    )
}

/// Native pixel data the index locates in the stored file (not deflated).
fn native_pixels(instance: &WadoInstance) -> Option<NativePixels> {
    let ts = instance.transfer_syntax_uid.as_str();
    if !is_native(ts) || ts == DEFLATED {
        return None;
    }
    let offset = u64::try_from(instance.pixel_data_offset?).ok()?;
    let length = u64::try_from(instance.pixel_data_length?).ok()?;
    let rows = u64::try_from(instance.rows?).ok()?;
    let columns = u64::try_from(instance.columns?).ok()?;
    let bits_allocated = u64::try_from(instance.bits_allocated?).ok()?;
    let frames = frame_count(instance);
    Some(NativePixels {
        offset,
        length,
        rows,
        columns,
        samples_per_pixel: samples_per_pixel(length, rows, columns, bits_allocated, frames)?,
        bits_allocated,
        frames,
        big_endian: ts == EXPLICIT_BE,
    })
}

fn has_pixel_data(instance: &WadoInstance) -> bool {
    instance.pixel_data_offset.is_some() || instance.frames.is_some() || instance.rows.is_some()
}

fn frame_count(instance: &WadoInstance) -> u32 {
    instance
        .number_of_frames
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

/// `GGGGEEEE`, eight hex digits.
fn parse_tag(tag: &str) -> Result<(u16, u16), ApiError> {
    let bad = || ApiError::bad_request(format!("`{tag}` is not a tag (eight hex digits, GGGGEEEE)"));
    if tag.len() != 8 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let group = u16::from_str_radix(&tag[..4], 16).map_err(|_| bad())?;
    let element = u16::from_str_radix(&tag[4..], 16).map_err(|_| bad())?;
    Ok((group, element))
}

fn frame_error(e: FrameError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The index describes frames the file does not hold: ours to log.
fn stored_frame_error(instance: &WadoInstance, e: FrameError) -> ApiError {
    match e {
        FrameError::OutOfRange { .. } => frame_error(e),
        other => {
            tracing::error!(sop = %instance.sop_instance_uid, error = %other, "stored frames disagree with the index");
            ApiError::from(lightbox_domain::Error::Internal(other.to_string()))
        }
    }
}

fn conversion_error(instance: &WadoInstance, e: TranscodeError) -> ApiError {
    match e {
        TranscodeError::Frame(FrameError::OutOfRange { .. }) => ApiError::bad_request(e.to_string()),
        TranscodeError::Unreadable(_) => {
            tracing::error!(sop = %instance.sop_instance_uid, error = %e, "a stored instance cannot be read");
            ApiError::from(lightbox_domain::Error::Internal(e.to_string()))
        }
        other => not_acceptable(format!(
            "instance {} ({}) cannot be served that way: {other}; ask for transfer-syntax=*",
            instance.sop_instance_uid, instance.transfer_syntax_uid
        )),
    }
}

fn frames_not_acceptable(instance: &WadoInstance) -> ApiError {
    not_acceptable(format!(
        "frames of this instance (stored as {}) are served as multipart/related; \
         type=\"application/octet-stream\" with transfer-syntax=* (as stored) or \
         1.2.840.10008.1.2.1 (uncompressed, when Lightbox can decode it)",
        instance.transfer_syntax_uid
    ))
}
