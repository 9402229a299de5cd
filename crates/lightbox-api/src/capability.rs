//! The read capability a study link or an ephemeral-session link leaves in
//! the browser that opens it: a cookie holding a signed token that names the
//! organization and the StudyInstanceUIDs the link grants, valid for the
//! link's remaining lifetime. The viewer's DICOMweb requests carry it, and
//! `dicomweb` turns it into `DicomAccess::Studies`.
//!
//! The token is the URL signer's (`lightbox_blob::UrlSigner`) with its own
//! purpose, so neither a link token nor an image URL token works as a cookie
//! and the cookie opens no link. Its subject is `{link subject}|{uid,uid…}`:
//! the link's study or session id (for the audit trail) and the studies, so
//! checking it needs no database. Unlike API keys, link and web-session reads
//! are not rate limited: a viewer fetches a series' frames in a burst, and
//! each request is bounded on its own.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax` and scoped to `Path=/dicomweb`
//! (all OHIF and the built-in page fetch with it); over HTTPS (a `https://`
//! public URL) it is `Secure` and named with the `__Secure-` prefix. A newer
//! link replaces the cookie: a browser views one link's studies at a time.

use crate::{ApiConfig, AppState};
use axum::http::{header, HeaderMap, HeaderValue};
use lightbox_blob::{Claims, SignError};
use lightbox_domain::{OrgId, Timestamp};

/// The signer purpose of capability tokens.
const PURPOSE: &str = "dicomweb-read";

/// At most this many studies in one capability: a cookie holds ~4 KB, and
/// a DICOM UID is up to 64 characters.
pub const MAX_STUDIES: usize = 32;

/// The only paths the browser sends the cookie to.
const COOKIE_PATH: &str = "/dicomweb";

/// What a valid capability grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub org_id: OrgId,
    /// The link's subject: a study id (`stu_…`) or a session id (`eph_…`).
    pub link: String,
    pub studies: Vec<String>,
}

/// Cookies are `Secure` when the server is reached over HTTPS, as the web
/// app's are.
fn secure(config: &ApiConfig) -> bool {
    config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

pub fn cookie_name(config: &ApiConfig) -> &'static str {
    if secure(config) {
        "__Secure-lightbox_viewer"
    } else {
        "lightbox_viewer"
    }
}

/// The `Set-Cookie` value granting `studies` of `org_id` until `expires_at`
/// (the link's own expiry). `link` is the link's subject.
pub fn grant(
    state: &AppState,
    org_id: OrgId,
    link: &str,
    studies: &[String],
    expires_at: Timestamp,
) -> HeaderValue {
    let studies = &studies[..studies.len().min(MAX_STUDIES)];
    let token = state.signer.sign(&Claims {
        purpose: PURPOSE.into(),
        org: org_id.to_string(),
        subject: format!("{link}|{}", studies.join(",")),
        expires_at_ms: expires_at.millis(),
    });
    // Rounded up: a link with 0.4 s left still gets a cookie for that time.
    let remaining_ms = (expires_at.millis() - Timestamp::now().millis()).max(0);
    let max_age = (remaining_ms + 999) / 1000;
    let secure = if secure(&state.config) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={token}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(&state.config)
    ))
    .expect("the token is base64url and a dot")
}

/// The web app's session cookie (`__Host-` when served over HTTPS): the web
/// app sets it, and DICOMweb reads it to let signed-in users see images.
pub fn web_session_cookie_name(public_url: Option<&str>) -> &'static str {
    if public_url.is_some_and(|u| u.starts_with("https://")) {
        "__Host-lightbox_session"
    } else {
        "lightbox_session"
    }
}

/// The value of the first cookie called `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Checks a capability token: signature and purpose, expiry, and its
/// contents. Anything wrong with it is `Invalid` or `Expired`.
pub fn verify(state: &AppState, token: &str) -> Result<Capability, SignError> {
    let claims = state
        .signer
        .verify(token, PURPOSE, Timestamp::now().millis())?;
    let org_id = OrgId::parse(&claims.org).map_err(|_| SignError::Invalid)?;
    let (link, uids) = claims.subject.split_once('|').ok_or(SignError::Invalid)?;
    let studies = uids
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Capability {
        org_id,
        link: link.to_owned(),
        studies,
    })
}

#[cfg(test)]
mod tests {
    use super::cookie;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn the_named_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; lightbox_viewer=tok.en"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("lightbox_viewer=2"),
        );
        assert_eq!(cookie(&headers, "lightbox_viewer"), Some("tok.en"));
        assert_eq!(cookie(&headers, "lightbox"), None);
        assert_eq!(cookie(&HeaderMap::new(), "lightbox_viewer"), None);
    }
}
