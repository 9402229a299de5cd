//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the wire types' `ToSchema` derives, served at
//! `/openapi.json`, with Swagger UI (assets compiled into the binary, no CDN)
//! at `/docs`.
//!
//! The error responses every operation can give (400, 401, 404, 408, 413,
//! 415, 429, in its product's envelope) are added here by [`ErrorResponses`]
//! rather than repeated on each handler.

use crate::viewer::wire::{InvitationJson, StudyJson, UserJson};
use crate::{audit_api, images, landing, observability, viewer, AppState};
use axum::Router;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lightbox",
        description = "Self-hosted medical-imaging records: the Viewer worklist API \
            (`/v1/viewer`, camelCase, API keys) and the pre-encounter Images API \
            (`/images/v1`, snake_case, OAuth 2 client credentials). Each product answers \
            errors in its own envelope: `ViewerError` or `ImagesError`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        viewer::studies::create,
        viewer::studies::list,
        viewer::studies::retrieve,
        viewer::studies::retrieve_by_uid,
        viewer::studies::update,
        viewer::studies::cancel,
        viewer::studies::uncancel,
        viewer::studies::reroute_url,
        viewer::users::invite,
        viewer::users::list,
        viewer::users::retrieve,
        viewer::users::update,
        viewer::users::reactivate,
        viewer::users::revoke_access,
        viewer::users::list_invitations,
        viewer::users::retrieve_invitation,
        viewer::users::update_invitation,
        viewer::users::revoke_invitation,
        viewer::ephemeral::create,
        audit_api::list,
        landing::open_study,
        landing::open_session,
        images::token::issue,
        images::handlers::create,
        images::handlers::search,
        images::handlers::scan,
        images::handlers::get,
        images::handlers::update,
        images::handlers::deactivate,
        images::blobs::upload,
        images::blobs::download,
        crate::healthz,
        observability::readyz,
        observability::metrics,
    ),
    components(schemas(
        ViewerError,
        ImagesError,
        lightbox_domain::study::Severity,
        lightbox_domain::study::ViewerStatus,
        lightbox_domain::user::UserLevel,
        lightbox_domain::user::InvitedSource,
        lightbox_domain::invitation::InvitationStatus,
        lightbox_domain::invitation::InvitationExpiredFilter,
        lightbox_domain::image::ImageStatus,
        lightbox_domain::image::CoverageImageSide,
        lightbox_domain::image::ImageSortField,
        lightbox_domain::image::SortDirection,
    )),
    modifiers(&SecuritySchemes, &ErrorResponses),
    tags(
        (name = "studies", description = "Viewer worklist: studies"),
        (name = "users", description = "Viewer: users of the organization"),
        (name = "invitations", description = "Viewer: invitations of users"),
        (name = "ephemeral sessions", description = "Viewer: short-lived viewer links"),
        (name = "viewer pages", description = "HTML pages that signed Viewer links open"),
        (name = "audit", description = "The organization's audit trail"),
        (name = "images", description = "Pre-encounter images and the OAuth token endpoint"),
        (name = "image files", description = "Image bytes through signed links (local storage)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", document().clone())
        .into()
}

/// The Viewer error envelope. `field` names the request field at fault, when one is.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "invalid_request", "message": "severity must be one of: normal, high, stat", "field": "severity"}))]
#[allow(dead_code)] // a schema only: errors are rendered by `ApiError`
pub struct ViewerError {
    /// A stable, machine-readable kind, e.g. `not_found`, `invalid_request`, `conflict`.
    #[serde(rename = "type")]
    kind: String,
    message: String,
    #[schema(required = false)]
    field: String,
}

/// The Images error envelope (the candidhealth SDK's).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"errorName": "VersionConflictError", "content": {"message": "image … is at version 3, not 2", "latest_version": 3}}))]
#[allow(dead_code)]
pub struct ImagesError {
    /// e.g. `BadRequestError`, `UnauthorizedError`, `NotFoundError`, `VersionConflictError`.
    #[serde(rename = "errorName")]
    error_name: String,
    content: ImagesErrorContent,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ImagesErrorContent {
    message: String,
    /// The request field at fault, when one is.
    #[schema(required = false)]
    data: ImagesErrorField,
    /// On 409: the image's current version (null when it is unknown).
    #[schema(required = false)]
    latest_version: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ImagesErrorField {
    field: String,
}

/// One page of studies, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct StudyPage {
    studies: Vec<StudyJson<'static>>,
    /// Whether another page follows; then pass `cursor` back.
    has_more: bool,
    cursor: Option<String>,
}

/// One page of users.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UserPage {
    users: Vec<UserJson<'static>>,
    /// Whether another page follows; then pass `cursor` back.
    has_more: bool,
    cursor: Option<String>,
}

/// One page of invitations.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct InvitationPage {
    invitations: Vec<InvitationJson<'static>>,
    /// Whether another page follows; then pass `cursor` back.
    has_more: bool,
    cursor: Option<String>,
}

/// One page of audit events, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AuditEventPage {
    events: Vec<audit_api::AuditEventJson<'static>>,
    /// Whether another page follows; then pass `cursor` back.
    has_more: bool,
    cursor: Option<String>,
}

/// `clinicRole`: one of the Avara API's clinic roles, from the domain's list.
pub fn clinic_role() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(lightbox_domain::user::CLINIC_ROLES.iter().copied()))
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lbk_…")
                    .description(Some(
                        "A Viewer API key (`lbk_…`, from `lightbox admin create-api-key`) \
                         as `Authorization: Bearer <key>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/api/auth/v2/token",
                    Scopes::new(),
                ))],
                "Images API: exchange the OAuth client's id and secret at \
                 `POST /api/auth/v2/token` for an access token, sent as \
                 `Authorization: Bearer <token>`.",
            )),
        );
    }
}

/// Adds the error responses that every operation of a product can give,
/// unless the operation documents that status itself.
struct ErrorResponses;

#[derive(Clone, Copy, PartialEq)]
enum Product {
    Viewer,
    Images,
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let product = if path.starts_with("/v1/") {
                Product::Viewer
            } else if path.starts_with("/images/")
                || path.starts_with("/api/auth/")
                || path.starts_with("/blobs/")
            {
                Product::Images
            } else {
                continue;
            };
            // Every Images operation but the token endpoint signs or moves image bytes.
            let uses_blobs = product == Product::Images && !path.starts_with("/api/auth/");
            for operation in operations(item) {
                add_errors(operation, product, path.contains('{'), uses_blobs);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_errors(
    operation: &mut Operation,
    product: Product,
    has_path_params: bool,
    uses_blobs: bool,
) {
    let authenticated = operation.security.is_some();
    let mut statuses = vec![
        (
            400,
            "The request is not valid: a parameter or body field is wrong",
        ),
        (408, "The request took longer than the request timeout"),
        (
            429,
            "Too many requests for this credential; see `Retry-After`",
        ),
    ];
    if authenticated {
        statuses.push((401, "No credential, or not a valid one"));
    }
    if has_path_params {
        statuses.push((404, "Not found in the caller's organization"));
    }
    if operation.request_body.is_some() {
        statuses.push((413, "The request body is too large"));
        statuses.push((415, "The body is not in a supported content type"));
        if product == Product::Viewer {
            // Viewer writes check state: already cancelled or revoked, a taken
            // UID or e-mail (409); a user that cannot be assigned, the owner (422).
            statuses.push((409, "Conflicts with the current state of the resource"));
            statuses.push((422, "Valid, but not applicable to this resource"));
        }
    }
    if uses_blobs {
        statuses.push((
            503,
            "Image storage is unavailable; nothing was changed, retry later",
        ));
    }
    let schema = match product {
        Product::Viewer => "ViewerError",
        Product::Images => "ImagesError",
    };
    for (status, description) in statuses {
        let key = status.to_string();
        if operation.responses.responses.contains_key(&key) {
            continue;
        }
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        );
        if status == 429 {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying"))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .insert(key, RefOr::T(response.build()));
    }
}
