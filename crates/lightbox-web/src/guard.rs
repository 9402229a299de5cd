//! What every web response and every unsafe web request passes through.
//!
//! CSRF: the session cookie is `SameSite=Lax`, and on top of that an unsafe
//! request (POST, …) must come from this origin: browsers say where a request
//! comes from in `Sec-Fetch-Site` (all current ones) or `Origin`. This is the
//! token-free scheme of Go 1.25's `CrossOriginProtection` (and tower-http 0.7's
//! `CsrfLayer`, which would have meant moving the whole workspace off 0.6): a
//! request with neither header is not from a browser and is let through.

use crate::views::error_page;
use crate::WebState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Scripts only from this origin (htmx and app.js are served here), so an
/// injected `<script>` or inline handler does not run; no framing (clickjacking).
/// The browser may connect to this origin only, except that with S3 storage
/// the intake page uploads straight to the bucket's presigned URLs (`https:`).
fn csp(s3: bool) -> &'static str {
    if s3 {
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' blob: data: https:; connect-src 'self' https:; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    } else {
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    }
}

pub async fn security_headers(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        csp(!state.blobs.is_local()),
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    // Invitation and reset links carry their token in the path: never send it on.
    set(headers, "referrer-policy", "no-referrer");
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show patient data: not kept in shared or back-forward caches.
        set(headers, "cache-control", "no-store");
    }
    response
}

pub async fn cross_origin_check(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    if is_cross_origin(
        request.method(),
        request.headers(),
        state.config.public_url.as_deref(),
    ) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another site, so it was not carried out. \
             Go back to Lightbox and try again from there.",
        );
    }
    next.run(request).await
}

fn is_cross_origin(method: &Method, headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // `none`: the user typed the address or used a bookmark.
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN) else {
        return false;
    };
    let trusted = public_url.is_some_and(|url| url.trim_end_matches('/') == origin);
    let same_host = origin
        .split_once("://")
        .is_some_and(|(_, host)| Some(host) == text(header::HOST));
    !(trusted || same_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn unsafe_requests_from_other_sites_are_cross_origin() {
        let post = Method::POST;
        let host = ("host", "lightbox.local:8080");
        for (pairs, cross) in [
            (vec![host, ("sec-fetch-site", "same-origin")], false),
            (vec![host, ("sec-fetch-site", "none")], false),
            (vec![host, ("sec-fetch-site", "cross-site")], true),
            (vec![host, ("sec-fetch-site", "same-site")], true),
            (vec![host, ("origin", "http://lightbox.local:8080")], false),
            (vec![host, ("origin", "https://evil.example")], true),
            (vec![host, ("origin", "null")], true),
            // Not a browser: no cookie-riding to defend against.
            (vec![host], false),
        ] {
            assert_eq!(
                is_cross_origin(&post, &headers(&pairs), None),
                cross,
                "{pairs:?}"
            );
        }
        let behind_proxy = headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "https://pacs.example.org"),
        ]);
        assert!(!is_cross_origin(
            &post,
            &behind_proxy,
            Some("https://pacs.example.org/")
        ));
        assert!(!is_cross_origin(
            &Method::GET,
            &headers(&[("sec-fetch-site", "cross-site")]),
            None
        ));
    }
}
