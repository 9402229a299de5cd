//! The signed-in pages, and what every page shares: rendering, the error page,
//! form parsing that answers bad input with a page (not a bare text error).
//!
//! A page handler serves the full page, or only its fragment when htmx asks
//! (`HX-Request`); the fragment template is included by the page's, so both
//! render the same markup.

pub mod admin;
pub mod intake;
pub mod live;
pub mod study;
pub mod worklist;

use crate::assets::AssetUrls;
use crate::login::{is_signed_in, WebUser};
use crate::WebState;
use askama::Template;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lightbox_domain::user::{User, UserLevel};

pub type AssetUrlsRef = &'static AssetUrls;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/worklist", get(worklist::page))
        .route("/worklist/events", get(live::events))
        .route("/intake", get(intake::show))
        .route("/intake/images", post(intake::create))
        .route("/intake/images/{image_id}/uploaded", post(intake::uploaded))
        .route(
            "/intake/images/{image_id}/deactivate",
            post(intake::deactivate),
        )
        .route("/admin", get(admin::show))
        .route("/admin/invitations", post(admin::invite))
        .route(
            "/admin/invitations/{invitation_id}/revoke",
            post(admin::revoke_invitation),
        )
        .route("/admin/credentials", post(admin::create_credential))
        .route(
            "/admin/credentials/{kind}/{id}/revoke",
            post(admin::revoke_credential),
        )
        .route("/admin/dicom/ae-title", post(admin::set_ae_title))
        .route("/admin/dicom/peers", post(admin::allow_peer))
        .route(
            "/admin/dicom/peers/{peer_id}/remove",
            post(admin::remove_peer),
        )
        .route("/admin/users/{user_id}/deactivate", post(admin::deactivate))
        .route("/admin/users/{user_id}/reactivate", post(admin::reactivate))
        .route("/studies/{study_id}", get(study::show).post(study::edit))
        .route("/studies/{study_id}/claim", post(worklist::claim))
        .route("/studies/{study_id}/complete", post(worklist::complete))
        .route("/studies/{study_id}/cancel", post(worklist::cancel))
        .route("/studies/{study_id}/uncancel", post(worklist::uncancel))
}

/// What the header shows of the signed-in person.
pub struct Nav {
    pub name: String,
    pub email: String,
    /// Shows the Admin link (level admin or owner).
    pub admin: bool,
}

impl Nav {
    pub fn of(user: &WebUser) -> Nav {
        Nav {
            name: display_name(&user.user),
            email: user.user.reference.email.clone(),
            admin: user.user.level != UserLevel::Member,
        }
    }
}

pub fn display_name(user: &User) -> String {
    format!("{} {}", user.reference.first_name, user.reference.last_name)
}

/// Whether the user may cancel, uncancel and edit any study (not only claim
/// and complete their own).
pub fn manages_studies(user: &User) -> bool {
    user.can_manage_studies || user.level != UserLevel::Member
}

pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Something went wrong.</p>"),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    assets: AssetUrlsRef,
    title: &'a str,
    message: &'a str,
}

/// A page that says what went wrong, in the web app's own look.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &MessagePage {
            assets: crate::assets::urls(),
            title,
            message,
        },
    )
}

/// `Form`, with a bad body answered by an error page.
pub struct HtmlForm<T>(pub T);

impl<S, T> FromRequest<S> for HtmlForm<T>
where
    S: Send + Sync,
    Form<T>: FromRequest<S>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        match Form::<T>::from_request(request, state).await {
            Ok(Form(value)) => Ok(HtmlForm(value)),
            Err(_) => Err(error_page(
                StatusCode::BAD_REQUEST,
                "Form not understood",
                "The form was incomplete or not sent as a form. Go back and try again.",
            )),
        }
    }
}

/// `/ui`: the worklist when signed in, else the sign-in page.
pub async fn home(
    axum::extract::State(state): axum::extract::State<WebState>,
    mut parts: Parts,
) -> Response {
    if is_signed_in(&mut parts, &state).await {
        Redirect::to("/ui/worklist").into_response()
    } else {
        Redirect::to("/ui/login").into_response()
    }
}

pub async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    if uri.path() == "/ui/" {
        return Redirect::to("/ui").into_response();
    }
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no such page. Use the menu to find what you were looking for.",
    )
}
