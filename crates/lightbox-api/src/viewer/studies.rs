//! `/v1/viewer/studies` handlers.

use super::wire::{page_json, StudyJson, SuccessResponse, UrlResponse};
use super::{Caller, ViewerResult};
use crate::audit::about;
use crate::extract::{not_null, nullable, JsonBody, PathParam, QueryMap};
use crate::{public_base, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lightbox_blob::Claims;
use lightbox_domain::pagination::{decode_cursor, encode_cursor, parse_limit};
use lightbox_domain::study::{
    Metadata, NewStudy, RefFilter, Severity, StudyFilter, StudyPatch, StudySelector, ViewerStatus,
};
use lightbox_domain::{validate, Error, StudyId, Timestamp, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

/// The purpose bound into reroute links; see `crate::landing`.
pub(crate) const STUDY_VIEW: &str = "study-view";
const CURSOR_KIND: &str = "studies";

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateStudyRequest, example = json!({
    "severity": "high",
    "studyDescription": "CT chest without contrast",
    "studyInstanceUid": "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
    "metadata": {"accession": "A-1001"}
}))]
pub struct CreateStudyBody {
    severity: Severity,
    #[schema(max_length = 1024)]
    study_description: String,
    /// A DICOM UID: digits and dots, at most 64 characters; unique in the organization.
    #[schema(max_length = 64, pattern = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")]
    study_instance_uid: String,
    /// A user id (`usr_…`) of the organization.
    assigned_to: Option<String>,
    /// `cus_` and up to 64 letters or digits.
    #[schema(pattern = "^cus_[A-Za-z0-9]{1,64}$")]
    express_customer_id: Option<String>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<Metadata>,
}

#[utoipa::path(post, path = "/v1/viewer/studies", operation_id = "createStudy", tag = "studies", security(("apiKey" = [])),
    request_body = CreateStudyBody,
    responses((status = 201, description = "The new study", body = super::wire::StudyJson),
        (status = 409, description = "A study with this Study Instance UID exists", body = crate::openapi::ViewerError)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateStudyBody>,
) -> ViewerResult<Response> {
    let new = NewStudy {
        study_instance_uid: body.study_instance_uid,
        description: body.study_description,
        severity: body.severity,
        assigned_to: body
            .assigned_to
            .as_deref()
            .map(|u| UserId::parse_for("assignedTo", u))
            .transpose()?,
        express_customer_id: body.express_customer_id,
        metadata: body.metadata.unwrap_or_default(),
    };
    let study = state
        .store
        .create_study(caller.org_id, &caller.actor(), &new)
        .await?;
    Ok(about(
        study.id.as_str(),
        (StatusCode::CREATED, Json(StudyJson::from(&study))).into_response(),
    ))
}

#[utoipa::path(get, path = "/v1/viewer/studies/{study_id}", operation_id = "getStudy", tag = "studies", security(("apiKey" = [])),
    params(("study_id" = String, Path, pattern = "^stu_[0-9a-fA-F]{32}$", description = "The study's id (`stu_…`)")),
    responses((status = 200, description = "The study", body = super::wire::StudyJson)))]
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(study_id): PathParam<String>,
) -> ViewerResult<Response> {
    let id = StudyId::parse(&study_id)?;
    let study = state
        .store
        .study(caller.org_id, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("study {id} not found")))?;
    Ok(Json(StudyJson::from(&study)).into_response())
}

#[utoipa::path(get, path = "/v1/viewer/studies/by-uid/{uid}", operation_id = "getStudyByUid", tag = "studies", security(("apiKey" = [])),
    params(("uid" = String, Path, description = "The Study Instance UID")),
    responses((status = 200, description = "The study", body = super::wire::StudyJson)))]
pub async fn retrieve_by_uid(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(uid): PathParam<String>,
) -> ViewerResult<Response> {
    validate::dicom_uid("studyInstanceUid", &uid)?;
    let study = state
        .store
        .study_by_uid(caller.org_id, &uid)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no study with Study Instance UID {uid}")))?;
    Ok(about(
        study.id.as_str(),
        Json(StudyJson::from(&study)).into_response(),
    ))
}

/// Only the keys sent change; `assignedTo: null` unassigns, `metadata: null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UpdateStudyRequest, example = json!({"severity": "stat", "studyViewerStatus": "complete"}))]
pub struct UpdateStudyBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    assigned_to: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<Option<Metadata>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Severity)]
    severity: Option<Option<Severity>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, max_length = 1024)]
    study_description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = ViewerStatus)]
    study_viewer_status: Option<Option<ViewerStatus>>,
}

#[utoipa::path(patch, path = "/v1/viewer/studies/{study_id}", operation_id = "updateStudy", tag = "studies", security(("apiKey" = [])),
    params(("study_id" = String, Path, pattern = "^stu_[0-9a-fA-F]{32}$", description = "The study's id (`stu_…`)")),
    request_body = UpdateStudyBody,
    responses((status = 200, description = "The updated study", body = super::wire::StudyJson)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(study_id): PathParam<String>,
    JsonBody(body): JsonBody<UpdateStudyBody>,
) -> ViewerResult<Response> {
    let id = StudyId::parse(&study_id)?;
    let patch = StudyPatch {
        description: not_null("studyDescription", body.study_description)?,
        severity: not_null("severity", body.severity)?,
        viewer_status: not_null("studyViewerStatus", body.study_viewer_status)?,
        assigned_to: body
            .assigned_to
            .map(|a| {
                a.as_deref()
                    .map(|u| UserId::parse_for("assignedTo", u))
                    .transpose()
            })
            .transpose()?,
        metadata: body.metadata,
    };
    let study = state.store.update_study(caller.org_id, &id, &patch).await?;
    Ok(Json(StudyJson::from(&study)).into_response())
}

/// A filter on a nullable reference: `null` or an empty value asks for "none".
fn ref_filter<T>(
    query: &QueryMap,
    key: &str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Option<RefFilter<T>>, Error> {
    match query.get(key) {
        None => Ok(None),
        Some("") | Some("null") => Ok(Some(RefFilter::IsNull)),
        Some(value) => parse(value).map(|v| Some(RefFilter::Is(v))),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(
            key,
            format!("{key} must be `true` or `false`, got `{value}`"),
        )),
    }
}

fn study_filter(query: &QueryMap) -> Result<StudyFilter, Error> {
    let description_contains = query.non_empty("studyDescription").map(str::to_owned);
    if let Some(needle) = &description_contains {
        validate::bounded_text("studyDescription", needle, validate::MAX_DESCRIPTION_CHARS)?;
    }
    Ok(StudyFilter {
        assigned_to: ref_filter(query, "assignedTo", |v| UserId::parse_for("assignedTo", v))?,
        express_customer_id: ref_filter(query, "expressCustomerId", |v| {
            validate::express_customer_id("expressCustomerId", v).map(|_| v.to_owned())
        })?,
        is_cancelled: query
            .non_empty("isCancelled")
            .map(|v| parse_bool("isCancelled", v))
            .transpose()?,
        severity: query
            .non_empty("severity")
            .map(Severity::parse)
            .transpose()?,
        viewer_status: query
            .non_empty("studyViewerStatus")
            .map(ViewerStatus::parse)
            .transpose()?,
        description_contains,
    })
}

#[utoipa::path(get, path = "/v1/viewer/studies", operation_id = "listStudies", tag = "studies", security(("apiKey" = [])),
    params(
        ("assignedTo" = Option<String>, Query, description = "A user id, or `null` for unassigned studies"),
        ("expressCustomerId" = Option<String>, Query, description = "An Express customer id, or `null`"),
        ("isCancelled" = Option<bool>, Query),
        ("severity" = Option<Severity>, Query),
        ("studyViewerStatus" = Option<ViewerStatus>, Query),
        ("studyDescription" = Option<String>, Query, description = "Substring of the description"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 25)"),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page")),
    responses((status = 200, description = "One page of studies, newest first", body = crate::openapi::StudyPage)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> ViewerResult<Response> {
    let filter = study_filter(&query)?;
    let limit = parse_limit(query.non_empty("limit"))?;
    let after = query
        .non_empty("cursor")
        .map(|c| decode_cursor(CURSOR_KIND, c, StudyId::parse))
        .transpose()?;
    let page = state
        .store
        .list_studies(caller.org_id, &filter, limit, after.as_ref())
        .await?;
    let cursor = page
        .next_after
        .as_ref()
        .map(|id| encode_cursor(CURSOR_KIND, id.as_str()));
    let studies = page.items.iter().map(StudyJson::from).collect();
    Ok(Json(page_json("studies", studies, cursor)).into_response())
}

/// Names one study for cancel, uncancel and reroute-url: exactly one of the two keys.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StudySelector, example = json!({"studyId": "stu_01966b0e7f3a7c4e9a513f2b8d6c1e22"}))]
pub struct StudySelectorBody {
    study_id: Option<String>,
    study_instance_uid: Option<String>,
}

impl StudySelectorBody {
    fn selector(&self) -> Result<StudySelector, Error> {
        StudySelector::from_parts(self.study_id.as_deref(), self.study_instance_uid.as_deref())
    }
}

async fn set_cancelled(
    state: &AppState,
    caller: &Caller,
    body: &StudySelectorBody,
    cancel: bool,
) -> ViewerResult<Response> {
    let study = state
        .store
        .set_cancelled(caller.org_id, &body.selector()?, cancel)
        .await?;
    let verb = if cancel { "cancelled" } else { "uncancelled" };
    Ok(about(
        study.id.as_str(),
        Json(SuccessResponse {
            success: true,
            message: Some(format!("study {} {verb}", study.id)),
        })
        .into_response(),
    ))
}

#[utoipa::path(post, path = "/v1/viewer/studies/cancel", operation_id = "cancelStudy", tag = "studies", security(("apiKey" = [])), request_body = StudySelectorBody,
    responses((status = 200, description = "Cancelled", body = super::wire::SuccessResponse),
        (status = 404, description = "No such study", body = crate::openapi::ViewerError)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<StudySelectorBody>,
) -> ViewerResult<Response> {
    set_cancelled(&state, &caller, &body, true).await
}

#[utoipa::path(post, path = "/v1/viewer/studies/uncancel", operation_id = "uncancelStudy", tag = "studies", security(("apiKey" = [])), request_body = StudySelectorBody,
    responses((status = 200, description = "Uncancelled", body = super::wire::SuccessResponse),
        (status = 404, description = "No such study", body = crate::openapi::ViewerError)))]
pub async fn uncancel(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<StudySelectorBody>,
) -> ViewerResult<Response> {
    set_cancelled(&state, &caller, &body, false).await
}

/// A link that opens the study in Lightbox's own viewer landing page without
/// other credentials, valid for `reroute_ttl`.
#[utoipa::path(post, path = "/v1/viewer/studies/reroute-url", operation_id = "getStudyRerouteUrl", tag = "studies", security(("apiKey" = [])), request_body = StudySelectorBody,
    responses((status = 200, description = "A short-lived link to the study's viewer page", body = super::wire::UrlResponse),
        (status = 404, description = "No such study", body = crate::openapi::ViewerError)))]
pub async fn reroute_url(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StudySelectorBody>,
) -> ViewerResult<Response> {
    let study = state
        .store
        .select_study(caller.org_id, &body.selector()?)
        .await?;
    let ttl = i64::try_from(state.config.reroute_ttl.as_secs()).unwrap_or(i64::MAX);
    let token = state.signer.sign(&Claims {
        purpose: STUDY_VIEW.into(),
        org: caller.org_id.to_string(),
        subject: study.id.to_string(),
        expires_at_ms: Timestamp::now().plus_seconds(ttl).millis(),
    });
    let url = format!(
        "{}/viewer/open/{token}",
        public_base(&state.config, &headers)
    );
    Ok(about(
        study.id.as_str(),
        Json(UrlResponse { url }).into_response(),
    ))
}
