//! WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 10.4.1.1.4):
//! frames decoded, windowed and encoded as JPEG or PNG.
//!
//! Study and series resources answer with one image, that of their
//! representative instance (`lightbox-store`'s `thumbnails`: a series' middle
//! image, a study's first series), not a multipart of every frame: OHIF and
//! `<img src=…/thumbnail>` want exactly one. An instance renders its first
//! frame; `/frames/{n}/rendered` a given one. Thumbnails fit 128×128 unless
//! a viewport says otherwise.
//!
//! Decoding is CPU work: it runs on the blocking pool, at most
//! [`render_permits`] at once per process, each waiting at most
//! [`RENDER_QUEUE_WAIT`] for a place (then 503 + `Retry-After`), so a burst
//! of thumbnails cannot starve the rest of the server. The file is read
//! whole, up to the instance size cap, only once a place is held.

use super::wado::Uids;
use super::DicomwebCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::TryStreamExt;
use lightbox_dicom::dicomweb::multipart::{split_unquoted, MediaType};
use lightbox_dicom::render::{self, params, Format, RenderError, RenderRequest};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Semaphore;

pub fn routes() -> Router<AppState> {
    let study = "/dicomweb/studies/{study}";
    let series = "/dicomweb/studies/{study}/series/{series}";
    let instance = "/dicomweb/studies/{study}/series/{series}/instances/{instance}";
    let frame = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frame}";
    let mut router = Router::new();
    for level in [study, series, instance, frame] {
        router = router
            .route(&format!("{level}/rendered"), get(rendered))
            .route(&format!("{level}/thumbnail"), get(thumbnail));
    }
    router
}

/// The box a thumbnail fits without a viewport.
const THUMBNAIL_BOX: (u32, u32) = (128, 128);
/// JPEG quality when none is asked for.
const DEFAULT_QUALITY: u8 = 90;
/// How long a render waits for a place before the caller is told to retry.
const RENDER_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Instances never change once stored: an instance's or frame's image may
/// be kept a day. A study's or series' representative changes as images
/// arrive, so those are kept five minutes.
const INSTANCE_MAX_AGE: u32 = 86_400;
const REPRESENTATIVE_MAX_AGE: u32 = 300;

/// Renders at once in this process: one per core (at least two), since
/// each keeps a core busy and holds one decoded file in memory.
fn render_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

static RENDERS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(render_permits())));

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rendered,
    Thumbnail,
}

/// Which image of what the URL names.
enum Target {
    Study(String),
    Series(String, String),
    Instance(String, String, String, u32),
}

/// What the path names, at any of the four levels: the UIDs checked as
/// WADO's are and, at frame level, the frame (an instance renders its first).
impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Target, ApiError> {
        let (uids, params) = Uids::with_params(parts, state).await?;
        let frame = params
            .get("frame")
            .map(|f| frame_number(f))
            .transpose()?
            .unwrap_or(1);
        Ok(match uids {
            Uids {
                study,
                series: Some(series),
                instance: Some(instance),
            } => Target::Instance(study, series, instance, frame),
            Uids {
                study,
                series: Some(series),
                instance: None,
            } => Target::Series(study, series),
            Uids { study, .. } => Target::Study(study),
        })
    }
}

async fn rendered(
    state: State<AppState>,
    caller: DicomwebCaller,
    target: Target,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(state, caller, target, Kind::Rendered, query, headers).await
}

async fn thumbnail(
    state: State<AppState>,
    caller: DicomwebCaller,
    target: Target,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(state, caller, target, Kind::Thumbnail, query, headers).await
}

/// One frame number, 1 or more (a rendered frame is one image, not a list).
fn frame_number(value: &str) -> Result<u32, ApiError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "the frame number must be one whole number from 1 (a rendered frame is one image), got `{value}`"
        ))),
    }
}

/// The rendering parameters of the query string.
struct Options {
    window: Option<params::Window>,
    viewport: Option<params::Viewport>,
    quality: u8,
    accept: Option<String>,
}

fn options(query: &[(String, String)]) -> Result<Options, ApiError> {
    let mut options = Options {
        window: None,
        viewport: None,
        quality: DEFAULT_QUALITY,
        accept: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in query {
        let name = name.as_str();
        if ["window", "viewport", "quality", "accept"].contains(&name) {
            if seen.contains(&name) {
                return Err(ApiError::bad_request(format!(
                    "`{name}` is given more than once"
                )));
            }
            seen.push(name);
        }
        let bad = |e: params::ParamError| ApiError {
            field: Some(e.parameter.to_owned()),
            ..ApiError::bad_request(e.to_string())
        };
        match name {
            "window" => options.window = Some(params::Window::parse(value).map_err(bad)?),
            "viewport" => options.viewport = Some(params::Viewport::parse(value).map_err(bad)?),
            "quality" => options.quality = params::parse_quality(value).map_err(bad)?,
            "accept" => options.accept = Some(value.clone()),
            // PS3.18 names more (annotation, charset, iccprofile); they are
            // optional for an origin server and ignored here.
            _ => {}
        }
    }
    Ok(options)
}

/// The image format `Accept` (or the `accept` query parameter, which wins)
/// admits: JPEG or PNG, by q-value, JPEG for `*/*`, `image/*` or nothing.
/// Parameters may be quoted or not. None when neither fits (406).
fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Jpeg);
    };
    let mut best: Option<(f32, Format)> = None;
    for range in split_unquoted(accept, ',') {
        let Some(media) = MediaType::parse(range) else {
            continue;
        };
        let q = media
            .param("q")
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
            .unwrap_or(0.0);
        if q <= 0.0 {
            continue;
        }
        let format = match media.essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/*" | "*/*" => Format::Jpeg,
            "image/png" => Format::Png,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f)
}

fn not_acceptable() -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        "rendered images are served as image/jpeg or image/png",
    )
}

/// What was looked up to be rendered.
struct Source {
    study: String,
    sha256: String,
    blob_key: String,
    size_bytes: i64,
    frame: u32,
    max_age: u32,
}

async fn find(
    state: &AppState,
    caller: &DicomwebCaller,
    target: Target,
) -> Result<Source, ApiError> {
    match target {
        Target::Study(study) => {
            let found = if caller.can_read(&study) {
                state
                    .store
                    .study_representative(caller.org_id, &study)
                    .await?
            } else {
                None
            };
            let r = found
                .ok_or_else(|| ApiError::not_found(format!("no study {study} with images")))?;
            Ok(Source {
                study: r.study_instance_uid,
                sha256: r.sha256,
                blob_key: r.blob_key,
                size_bytes: r.size_bytes,
                frame: 1,
                max_age: REPRESENTATIVE_MAX_AGE,
            })
        }
        Target::Series(study, series) => {
            let found = if caller.can_read(&study) {
                state
                    .store
                    .series_representative(caller.org_id, &study, &series)
                    .await?
            } else {
                None
            };
            let r = found.ok_or_else(|| {
                ApiError::not_found(format!("no series {series} with images in study {study}"))
            })?;
            Ok(Source {
                study: r.study_instance_uid,
                sha256: r.sha256,
                blob_key: r.blob_key,
                size_bytes: r.size_bytes,
                frame: 1,
                max_age: REPRESENTATIVE_MAX_AGE,
            })
        }
        Target::Instance(study, series, instance, frame) => {
            let stored = state
                .store
                .dicom_instance(caller.org_id, &instance)
                .await?
                .filter(|i| i.study_instance_uid == study && i.series_instance_uid == series)
                .filter(|_| caller.can_read(&study))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no instance {instance} in series {series} of study {study}"
                    ))
                })?;
            Ok(Source {
                study: stored.study_instance_uid,
                sha256: stored.sha256,
                blob_key: stored.blob_key,
                size_bytes: stored.size_bytes,
                frame,
                max_age: INSTANCE_MAX_AGE,
            })
        }
    }
}

async fn serve(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    target: Target,
    kind: Kind,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let options = options(&query)?;
    let accept = options
        .accept
        .as_deref()
        .or_else(|| headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let format = negotiate(accept).ok_or_else(not_acceptable)?;
    let source = find(&state, &caller, target).await?;
    debug_assert!(caller.can_read(&source.study));

    let request = RenderRequest {
        frame: source.frame,
        format,
        window: options.window,
        viewport: options.viewport,
        quality: options.quality,
        fit: (kind == Kind::Thumbnail).then_some(THUMBNAIL_BOX),
    };
    let etag = etag(&source, &request, kind);
    let cache_control = format!("private, max-age={}", source.max_age);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_cache_headers(&mut response, &etag, &cache_control);
        return Ok(response);
    }

    let max = state.config.dicom.max_instance_bytes;
    if u64::try_from(source.size_bytes).unwrap_or(u64::MAX) > max {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            format!("the instance is larger than the {max} bytes that are rendered"),
        ));
    }
    let permit = tokio::time::timeout(RENDER_QUEUE_WAIT, Arc::clone(&RENDERS).acquire_owned())
        .await
        .map_err(|_| ApiError {
            retry_after_secs: Some(2),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many images are being rendered; retry shortly",
            )
        })?
        .map_err(|_| {
            ApiError::from(lightbox_domain::Error::Internal(
                "render semaphore closed".into(),
            ))
        })?;
    let file = read_file(&state, &source.blob_key, max).await?;
    // The place is given back when decoding ends, not when the request
    // does: a request that times out leaves its decode running, still counted.
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render::render(&file, &request)
    })
    .await
    .map_err(|e| {
        // A decoder that panics on a stored file's odd pixel data is a
        // file Lightbox cannot render, not a server fault.
        if e.is_panic() {
            tracing::warn!(key = %source.blob_key, "rendering an instance panicked");
            render_error(RenderError::Undecodable("the decoder gave up on it".into()))
        } else {
            ApiError::from(lightbox_domain::Error::Internal(format!(
                "render task: {e}"
            )))
        }
    })?
    .map_err(render_error)?;

    let mut response = rendered.bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    set_cache_headers(&mut response, &etag, &cache_control);
    Ok(response)
}

fn set_cache_headers(response: &mut Response, etag: &str, cache_control: &str) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
}

/// The stored file's digest and everything that shapes the image: the same
/// tag means the same bytes.
fn etag(source: &Source, request: &RenderRequest, kind: Kind) -> String {
    let window = request.window.map_or(String::from("file"), |w| {
        format!("{}_{}_{:?}", w.center, w.width, w.function)
    });
    let viewport = request.viewport.map_or(String::from("full"), |v| {
        let region = v.region.map_or(String::new(), |r| {
            format!("_{}_{}_{}_{}", r.x, r.y, r.width, r.height)
        });
        format!("{}x{}{region}", v.width, v.height)
    });
    let tag = format!(
        "{}.{}.{}.{}.{}.{}.{}",
        &source.sha256[..source.sha256.len().min(32)],
        source.frame,
        if kind == Kind::Thumbnail { "t" } else { "r" },
        if request.format == Format::Png {
            "png"
        } else {
            "jpg"
        },
        request.quality,
        window,
        viewport,
    );
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("\"{tag}\"")
}

/// The stored Part 10 file, whole, refusing to hold more than `max` bytes.
async fn read_file(state: &AppState, blob_key: &str, max: u64) -> Result<Vec<u8>, ApiError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, key = %blob_key, "an indexed instance's file cannot be read");
        ApiError::from(lightbox_domain::Error::Internal(
            "an indexed instance has no readable file".into(),
        ))
    };
    let (mut stream, len) = state
        .blobs
        .get(blob_key)
        .await
        .map_err(|e| unreadable(&e))?;
    if len > max {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            format!("the instance is larger than the {max} bytes that are rendered"),
        ));
    }
    let mut file = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = stream.try_next().await.map_err(|e| unreadable(&e))? {
        if (file.len() + chunk.len()) as u64 > max {
            return Err(unreadable(&"the file grew past its indexed size"));
        }
        file.extend_from_slice(&chunk);
    }
    Ok(file)
}

fn render_error(e: RenderError) -> ApiError {
    match e {
        RenderError::FrameOutOfRange { requested: 0, .. } => ApiError::bad_request(e.to_string()),
        RenderError::FrameOutOfRange { .. } => ApiError::not_found(e.to_string()),
        RenderError::BadViewport(_) => ApiError {
            field: Some("viewport".into()),
            ..ApiError::bad_request(e.to_string())
        },
        RenderError::Encode(_) => ApiError::from(lightbox_domain::Error::Internal(e.to_string())),
        // What was stored cannot be shown as an image: no pixel data, a
        // syntax without a decoder here, a photometric interpretation
        // without a rendering, or data the decoder refuses.
        RenderError::NoPixelData
        | RenderError::UnsupportedTransferSyntax(_)
        | RenderError::Unsupported(_)
        | RenderError::Undecodable(_)
        | RenderError::Unreadable(_) => {
            tracing::info!(error = %e, "an instance cannot be rendered");
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                e.to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_is_read_leniently() {
        assert_eq!(negotiate(None), Some(Format::Jpeg));
        assert_eq!(negotiate(Some("")), Some(Format::Jpeg));
        assert_eq!(negotiate(Some("*/*")), Some(Format::Jpeg));
        assert_eq!(negotiate(Some("image/*")), Some(Format::Jpeg));
        assert_eq!(negotiate(Some("image/png")), Some(Format::Png));
        assert_eq!(negotiate(Some("IMAGE/PNG; q=1")), Some(Format::Png));
        assert_eq!(
            negotiate(Some("image/jpeg;q=0.5, image/png")),
            Some(Format::Png)
        );
        assert_eq!(
            negotiate(Some("image/jpeg; q=\"0.9\", image/png; q=0.4")),
            Some(Format::Jpeg)
        );
        assert_eq!(
            negotiate(Some("application/pdf, image/png")),
            Some(Format::Png)
        );
        assert_eq!(negotiate(Some("application/pdf")), None);
        assert_eq!(negotiate(Some("image/gif")), None);
        assert_eq!(negotiate(Some("image/png; q=0")), None);
        assert_eq!(
            negotiate(Some(r#"multipart/related; type="application/dicom""#)),
            None
        );
    }

    #[test]
    fn frame_numbers_are_single_and_from_one() {
        assert_eq!(frame_number("1").unwrap(), 1);
        assert_eq!(frame_number("30").unwrap(), 30);
        for bad in ["0", "-1", "1,2", "x", ""] {
            assert_eq!(
                frame_number(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn parameters_are_validated_once_each() {
        let q = |pairs: &[(&str, &str)]| {
            options(
                &pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(q(&[
            ("window", "40,400"),
            ("viewport", "64,64"),
            ("quality", "50"),
            ("annotation", "patient")
        ])
        .is_ok());
        assert_eq!(
            q(&[("quality", "0")]).err().unwrap().field.as_deref(),
            Some("quality")
        );
        assert!(q(&[("window", "40,400"), ("window", "1,2")]).is_err());
        assert!(q(&[("viewport", "0,0")]).is_err());
        assert!(q(&[("viewport", "100000,100000")]).is_err());
    }
}
