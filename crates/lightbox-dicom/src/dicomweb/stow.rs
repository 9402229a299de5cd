//! STOW-RS (PS3.18 10.5): each part of a `multipart/related` body goes
//! through the same ingest as C-STORE, streamed (only a part's file meta is
//! buffered), and the answer lists what was stored and what was not.

use super::multipart::{part10_head, HeadError, MediaType};
use crate::ingest::{Delivery, Ingest, IngestError, Outcome};
use crate::protocol::status;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Map, Value};

/// One part's result.
#[derive(Debug)]
pub enum PartResult {
    Stored(Outcome),
    Failed {
        sop_class_uid: Option<String>,
        sop_instance_uid: Option<String>,
        reason: u16,
        message: String,
    },
}

/// Why a whole request failed.
#[derive(Debug, thiserror::Error)]
pub enum StowError {
    #[error("the request body is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    #[error("the multipart body is malformed: {0}")]
    Malformed(String),
    #[error("the request body has no parts")]
    Empty,
}

/// What HTTP status the results call for: 200 all stored without warnings,
/// 202 some stored (or with warnings), 409 none stored.
pub fn http_status(results: &[PartResult]) -> u16 {
    let stored = results
        .iter()
        .filter(|r| matches!(r, PartResult::Stored(_)))
        .count();
    let clean = results
        .iter()
        .all(|r| matches!(r, PartResult::Stored(o) if o.status() == status::SUCCESS));
    match (stored, clean) {
        (_, true) => 200,
        (0, _) => 409,
        _ => 202,
    }
}

/// Reads every part of `body` and ingests it. Bytes past `max_body` stop
/// the request (parts already complete stay stored, as each is whole).
pub async fn store<S, E>(
    ingest: &Ingest,
    delivery: &Delivery,
    body: S,
    boundary: &str,
    max_body: u64,
) -> Result<Vec<PartResult>, StowError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(max_body));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut results = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(request_error(e, max_body)),
        };
        let kind = field
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaType::parse);
        if kind
            .as_ref()
            .is_some_and(|k| k.essence != "application/dicom")
        {
            results.push(PartResult::Failed {
                sop_class_uid: None,
                sop_instance_uid: None,
                reason: status::CANNOT_UNDERSTAND,
                message: format!(
                    "a part of type {} (only application/dicom is stored)",
                    kind.map(|k| k.essence).unwrap_or_default()
                ),
            });
            continue;
        }
        results.push(store_part(ingest, delivery, field, max_body).await?);
    }
    if results.is_empty() {
        return Err(StowError::Empty);
    }
    Ok(results)
}

fn request_error(e: multer::Error, max: u64) -> StowError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => StowError::TooLarge { max },
        other => StowError::Malformed(other.to_string()),
    }
}

async fn store_part(
    ingest: &Ingest,
    delivery: &Delivery,
    mut field: multer::Field<'static>,
    max_body: u64,
) -> Result<PartResult, StowError> {
    let failed = |meta: Option<&crate::ingest::spool::MetaInfo>, reason: u16, message: String| {
        PartResult::Failed {
            sop_class_uid: meta.map(|m| m.sop_class_uid.clone()),
            sop_instance_uid: meta.map(|m| m.sop_instance_uid.clone()),
            reason,
            message,
        }
    };
    // Buffer only until the file meta is complete.
    let mut head = Vec::new();
    let mut ended = false;
    let parsed = loop {
        match part10_head(&head, ended) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => {
                drain(&mut field, max_body).await?;
                let reason = match e {
                    HeadError::NotPart10 | HeadError::BadMeta(_) => status::CANNOT_UNDERSTAND,
                };
                return Ok(failed(None, reason, e.to_string()));
            }
        }
        match field.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => ended = true,
            Err(e) => return Err(request_error(e, max_body)),
        }
    };
    let meta = parsed.meta.clone();
    let mut spool = match ingest.spool(delivery, parsed.meta) {
        Ok(spool) => spool,
        Err(e) => {
            drain(&mut field, max_body).await?;
            return Ok(failed(Some(&meta), e.status(), e.to_string()));
        }
    };
    let mut trouble: Option<IngestError> = spool_write(&mut spool, &head[parsed.data_start..])
        .await
        .err();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if trouble.is_none() {
                    trouble = spool_write(&mut spool, &chunk).await.err();
                }
            }
            Ok(None) => break,
            Err(e) => return Err(request_error(e, max_body)),
        }
    }
    if let Some(e) = trouble {
        return Ok(failed(Some(&meta), e.status(), e.to_string()));
    }
    Ok(match ingest.finish(delivery, spool).await {
        Ok(outcome) => PartResult::Stored(outcome),
        Err(e) => failed(Some(&meta), e.status(), e.to_string()),
    })
}

async fn spool_write(spool: &mut crate::ingest::Incoming, bytes: &[u8]) -> Result<(), IngestError> {
    spool.write(bytes).await.map_err(IngestError::from)
}

async fn drain(field: &mut multer::Field<'static>, max_body: u64) -> Result<(), StowError> {
    loop {
        match field.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(request_error(e, max_body)),
        }
    }
}

/// The STOW-RS response body (`application/dicom+json`). `base` is the
/// DICOMweb root URL (e.g. `https://host/dicomweb`).
pub fn response(results: &[PartResult], base: &str) -> Value {
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    let mut studies: Vec<&str> = Vec::new();
    for result in results {
        match result {
            PartResult::Stored(outcome) => {
                let ids = outcome.instance();
                if !studies.contains(&ids.study_instance_uid.as_str()) {
                    studies.push(&ids.study_instance_uid);
                }
                let mut item = Map::new();
                item.insert(
                    "00081150".into(),
                    json!({"vr": "UI", "Value": [ids.sop_class_uid]}),
                );
                item.insert(
                    "00081155".into(),
                    json!({"vr": "UI", "Value": [ids.sop_instance_uid]}),
                );
                item.insert(
                    "00081190".into(),
                    json!({"vr": "UR", "Value": [format!(
                        "{base}/studies/{}/series/{}/instances/{}",
                        ids.study_instance_uid, ids.series_instance_uid, ids.sop_instance_uid
                    )]}),
                );
                if outcome.status() != status::SUCCESS {
                    item.insert(
                        "00081196".into(),
                        json!({"vr": "US", "Value": [outcome.status()]}),
                    );
                }
                referenced.push(Value::Object(item));
            }
            PartResult::Failed {
                sop_class_uid,
                sop_instance_uid,
                reason,
                ..
            } => {
                let mut item = Map::new();
                if let Some(class) = sop_class_uid {
                    item.insert("00081150".into(), json!({"vr": "UI", "Value": [class]}));
                }
                if let Some(instance) = sop_instance_uid {
                    item.insert("00081155".into(), json!({"vr": "UI", "Value": [instance]}));
                }
                item.insert("00081197".into(), json!({"vr": "US", "Value": [reason]}));
                failed.push(Value::Object(item));
            }
        }
    }
    let mut body = Map::new();
    if let [study] = studies.as_slice() {
        body.insert(
            "00081190".into(),
            json!({"vr": "UR", "Value": [format!("{base}/studies/{study}")]}),
        );
    }
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": referenced}));
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    Value::Object(body)
}
