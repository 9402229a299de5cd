//! The browser files, compiled into the binary. Each is served under a name
//! that carries a hash of its content, so it can be cached forever
//! (`immutable`) and a new build is fetched at once. htmx is vendored from npm
//! and pinned by checksum in `assets/VERSIONS` (checked by a test below).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha384};
use std::sync::OnceLock;

struct Asset {
    /// `htmx.min.js` → served as `htmx.min.<hash>.js`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/htmx.min.js"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
];

/// URLs and Subresource Integrity values the templates put in `<head>`.
pub struct AssetUrls {
    pub htmx: String,
    pub htmx_integrity: String,
    pub app_js: String,
    pub app_js_integrity: String,
    pub app_css: String,
}

fn hashed_name(asset: &Asset) -> String {
    let digest = Sha256::digest(asset.body);
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let (stem, ext) = asset.name.rsplit_once('.').unwrap_or((asset.name, ""));
    format!("{stem}.{short}.{ext}")
}

fn integrity(asset: &Asset) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(asset.body)))
}

pub fn urls() -> &'static AssetUrls {
    static URLS: OnceLock<AssetUrls> = OnceLock::new();
    URLS.get_or_init(|| AssetUrls {
        htmx: format!("/ui/assets/{}", hashed_name(&ASSETS[0])),
        htmx_integrity: integrity(&ASSETS[0]),
        app_js: format!("/ui/assets/{}", hashed_name(&ASSETS[1])),
        app_js_integrity: integrity(&ASSETS[1]),
        app_css: format!("/ui/assets/{}", hashed_name(&ASSETS[2])),
    })
}

pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| hashed_name(a) == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_htmx_matches_its_pinned_checksum() {
        let versions = include_str!("../assets/VERSIONS");
        assert!(
            versions.contains(&integrity(&ASSETS[0])),
            "assets/htmx.min.js is not the file pinned in assets/VERSIONS"
        );
    }

    #[test]
    fn urls_carry_the_content_hash() {
        assert!(urls().htmx.starts_with("/ui/assets/htmx.min."));
        assert!(urls().htmx.ends_with(".js"));
    }
}
