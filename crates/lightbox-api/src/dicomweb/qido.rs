//! QIDO-RS (PS3.18 10.6): searches answered from the index alone.
//!
//! The six resources share one handler: read the query string into a typed
//! search (`lightbox_dicom::dicomweb::qido`), run it in the caller's
//! organization and scope, answer `application/dicom+json`. No match is
//! `200 []` (PS3.18 allows 204 too, but an empty array needs no special case
//! in any client, an empty body might). A path naming a study or
//! series the caller cannot see is 404, as everywhere else. What was not
//! honoured (a cut page, ignored keys, fuzzy matching) is a `Warning: 299`.

use super::{path_uid, DicomwebCaller};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lightbox_dicom::dicomweb::qido::{self, Resource, MORE_RESULTS};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dicomweb/studies", get(studies))
        .route("/dicomweb/series", get(series))
        .route("/dicomweb/instances", get(instances))
        .route("/dicomweb/studies/{study}/series", get(study_series))
        .route("/dicomweb/studies/{study}/instances", get(study_instances))
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances",
            get(series_instances),
        )
}

async fn studies(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(state, caller, Resource::Studies, query, headers).await
}

async fn series(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(state, caller, Resource::Series, query, headers).await
}

async fn instances(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(state, caller, Resource::Instances, query, headers).await
}

async fn study_series(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path(study): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let study = path_uid("StudyInstanceUID", &study)?;
    search(
        state,
        caller,
        Resource::StudySeries { study },
        query,
        headers,
    )
    .await
}

async fn study_instances(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path(study): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let study = path_uid("StudyInstanceUID", &study)?;
    search(
        state,
        caller,
        Resource::StudyInstances { study },
        query,
        headers,
    )
    .await
}

async fn series_instances(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path((study, series)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let study = path_uid("StudyInstanceUID", &study)?;
    let series = path_uid("SeriesInstanceUID", &series)?;
    let resource = Resource::SeriesInstances { study, series };
    search(state, caller, resource, query, headers).await
}

async fn search(
    state: AppState,
    caller: DicomwebCaller,
    resource: Resource,
    raw_query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if !accepts_json(accept) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "search results are served as application/dicom+json only",
        ));
    }
    let search = qido::parse(resource, raw_query.as_deref().unwrap_or(""))?;
    let query = &search.query;
    let scope = caller.study_scope();
    // The DICOMweb router's timeout is the upload one; a search gets the
    // ordinary request timeout.
    let found = tokio::time::timeout(state.config.request_timeout, async {
        let page = state.store.qido_search(caller.org_id, scope, query).await?;
        if page.rows.is_empty() {
            if let Some(study) = &query.study {
                let exists = state
                    .store
                    .qido_path_exists(caller.org_id, scope, study, query.series.as_deref())
                    .await?;
                if !exists {
                    return Err(ApiError::not_found(match &query.series {
                        Some(series) => format!("no series {series} in study {study}"),
                        None => format!("no study {study}"),
                    }));
                }
            }
        }
        Ok(page)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the search took too long; narrow it",
        )
    })??;
    let base = format!("{}/dicomweb", crate::public_base(&state.config, &headers));
    let body = qido::results(&found.rows, query, &base);
    let mut response = (StatusCode::OK, body).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    let mut warnings = search.warnings.clone();
    if found.more {
        warnings.push(MORE_RESULTS.to_owned());
    }
    for warning in warnings {
        if let Ok(value) = HeaderValue::from_str(&format!("299 lightbox \"{warning}\"")) {
            out.append(header::WARNING, value);
        }
    }
    Ok(response)
}

/// Whether an Accept header admits DICOM JSON: none, `*/*`,
/// `application/*`, `application/json` or `application/dicom+json`.
fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        [
            "*/*",
            "application/*",
            "application/json",
            "application/dicom+json",
        ]
        .iter()
        .any(|ok| media.eq_ignore_ascii_case(ok))
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_json;

    #[test]
    fn accept_headers_clients_send_are_admitted() {
        assert!(accepts_json(None));
        assert!(accepts_json(Some("application/dicom+json")));
        assert!(accepts_json(Some(
            "application/dicom+json, application/json"
        )));
        assert!(accepts_json(Some("*/*;q=0.8")));
        assert!(!accepts_json(Some(
            "multipart/related; type=\"application/dicom+xml\""
        )));
    }
}
