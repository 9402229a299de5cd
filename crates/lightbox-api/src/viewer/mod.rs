//! The Viewer worklist API (`/v1/viewer/...`), wire-compatible with the avara SDK:
//! camelCase JSON, cursor pages, `Authorization: Bearer <api key>`.

pub(crate) mod ephemeral;
pub(crate) mod studies;
pub(crate) mod users;
pub(crate) mod wire;

pub(crate) use wire::page_json;

pub(crate) use ephemeral::EPHEMERAL_SESSION;
pub(crate) use studies::STUDY_VIEW;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Uri;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use lightbox_domain::invitation::InvitationId;
use lightbox_domain::study::Actor;
use lightbox_domain::OrgId;
use lightbox_domain::{Error, StudyId, UserId};
use lightbox_store::ApiKeyRecord;
use std::future::{ready, Ready};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/viewer/studies",
            post(studies::create).get(studies::list),
        )
        .route(
            "/v1/viewer/studies/cancel",
            post(studies::cancel).merge(read_as_id(study_id)),
        )
        .route(
            "/v1/viewer/studies/uncancel",
            post(studies::uncancel).merge(read_as_id(study_id)),
        )
        .route(
            "/v1/viewer/studies/reroute-url",
            post(studies::reroute_url).merge(read_as_id(study_id)),
        )
        .route(
            "/v1/viewer/studies/by-uid/{uid}",
            get(studies::retrieve_by_uid),
        )
        .route(
            "/v1/viewer/studies/{study_id}",
            get(studies::retrieve).patch(studies::update),
        )
        // Fixed segments (`invitations`, `reactivate`, `revoke-access`, `revoke`) win over `{…_id}` captures.
        .route("/v1/viewer/users", post(users::invite).get(users::list))
        .route(
            "/v1/viewer/users/reactivate",
            post(users::reactivate).merge(read_as_id(user_id)),
        )
        .route(
            "/v1/viewer/users/revoke-access",
            post(users::revoke_access).merge(read_as_id(user_id)),
        )
        .route(
            "/v1/viewer/users/invitations",
            get(users::list_invitations).patch(reject_as_id(user_id)),
        )
        .route(
            "/v1/viewer/users/invitations/revoke",
            post(users::revoke_invitation).merge(read_as_id(invitation_id)),
        )
        .route(
            "/v1/viewer/users/invitations/{invitation_id}",
            get(users::retrieve_invitation).patch(users::update_invitation),
        )
        .route(
            "/v1/viewer/users/{user_id}",
            get(users::retrieve).patch(users::update),
        )
        .route("/v1/viewer/ephemeral-sessions", post(ephemeral::create))
}

pub type ViewerResult<T> = Result<T, ApiError>;

type IdCheck = fn(&str) -> Result<(), Error>;

fn study_id(s: &str) -> Result<(), Error> {
    StudyId::parse(s).map(drop)
}

fn user_id(s: &str) -> Result<(), Error> {
    UserId::parse(s).map(drop)
}

fn invitation_id(s: &str) -> Result<(), Error> {
    InvitationId::parse(s).map(drop)
}

/// Upstream, `GET /v1/viewer/studies/cancel` reaches the `{studyId}` route and
/// fails its id check; a POST-only action path answers GET and PATCH the same
/// way (a 400 naming the bad id) instead of 405.
fn read_as_id(check: IdCheck) -> MethodRouter<AppState> {
    get(reject_as_id(check)).merge(MethodRouter::new().patch(reject_as_id(check)))
}

fn reject_as_id(
    check: IdCheck,
) -> impl Fn(Caller, Uri) -> Ready<ApiError> + Clone + Send + Sync + 'static {
    move |_caller: Caller, uri: Uri| {
        let segment = uri.path().rsplit('/').next().unwrap_or_default();
        let error = check(segment)
            .err()
            .unwrap_or_else(|| Error::bad_request("not a valid id"));
        ready(ApiError::from(error))
    }
}

/// The organization and API key a Viewer request acts for.
pub struct Caller {
    pub org_id: OrgId,
    pub key: ApiKeyRecord,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key.id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = crate::auth::api_key(parts, state).await?;
        Ok(Caller {
            org_id: key.org_id,
            key,
        })
    }
}
