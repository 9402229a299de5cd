//! Lightbox's own image page, for when the OHIF viewer is not installed:
//! each study's series as rendered frames (`…/frames/{n}/rendered`), one
//! image at a time with a slider, wheel and keys to scroll through the series
//! (`assets/builtin-viewer.js`, same-origin: no inline script).
//!
//! Link pages (`landing`) show it under the link's details; the images fetch
//! with the link's capability cookie. `GET /viewer/images/{study}` opens a
//! study's images for a signed-in web-app user (or an API key): OHIF when
//! installed, else this page.

use crate::dicomweb::DicomwebCaller;
use crate::error::ApiError;
use crate::{ohif, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use lightbox_domain::OrgId;
use lightbox_store::{StoreError, ViewerSeries, ViewerStudy};

/// Images listed per study; a longer study says so under its series.
const MAX_INSTANCES: u32 = 3000;
/// Frames one series offers to scroll (multi-frame instances add up).
const MAX_FRAMES_PER_SERIES: usize = 10_000;

const SCRIPT: &str = include_str!("../assets/builtin-viewer.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/viewer/images/{study}", get(open_images))
        .route("/viewer/assets/builtin-viewer.js", get(script))
}

struct SeriesView {
    uid: String,
    label: String,
    first: String,
    count: usize,
    frames_json: String,
}

struct StudyView {
    uid: String,
    heading: String,
    series: Vec<SeriesView>,
    truncated: bool,
}

#[derive(Template)]
#[template(path = "builtin_viewer.html")]
struct ViewerPage<'a> {
    title: &'a str,
    /// The link's details as a `<dl>`, escaped by [`escape`] (`&lt;`, as the
    /// link pages always have), not by askama (`&#60;`).
    details_html: String,
    studies: Vec<StudyView>,
    max_instances: u32,
}

fn frame_urls(study: &str, series: &ViewerSeries) -> Vec<String> {
    let mut urls = Vec::new();
    'instances: for instance in &series.instances {
        for n in 1..=instance.frames {
            if urls.len() == MAX_FRAMES_PER_SERIES {
                break 'instances;
            }
            urls.push(format!(
                "/dicomweb/studies/{study}/series/{}/instances/{}/frames/{n}/rendered",
                series.series_instance_uid, instance.sop_instance_uid
            ));
        }
    }
    urls
}

fn series_label(series: &ViewerSeries) -> String {
    let mut parts = Vec::new();
    if let Some(n) = series.series_number {
        parts.push(format!("Series {n}"));
    }
    if let Some(m) = series.modality.as_deref().filter(|m| !m.is_empty()) {
        parts.push(m.to_owned());
    }
    if let Some(d) = series
        .series_description
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        parts.push(d.to_owned());
    }
    if parts.is_empty() {
        parts.push(format!("Series {}", series.series_instance_uid));
    }
    parts.join(" · ")
}

fn study_heading(study: &ViewerStudy) -> String {
    let mut heading = study
        .study_description
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("Study {}", study.study_instance_uid));
    let modalities = study.modalities.replace('\\', ", ");
    if !modalities.is_empty() {
        heading.push_str(&format!(" ({modalities})"));
    }
    if let Some(date) = study.study_date.as_deref().filter(|d| d.len() == 8) {
        heading.push_str(&format!(", {}-{}-{}", &date[..4], &date[4..6], &date[6..]));
    }
    heading
}

/// The page for `uids` of `org_id` (only those its archive holds), under
/// `details`. Answered `no-store`: it names patients' studies.
pub async fn page(
    state: &AppState,
    org_id: OrgId,
    title: &str,
    details: &[(&'static str, String)],
    uids: &[String],
) -> Result<Response, StoreError> {
    let mut studies = Vec::new();
    for study in state.store.viewer_studies(org_id, uids).await? {
        let (series, truncated) = state
            .store
            .viewer_series(org_id, &study.study_instance_uid, MAX_INSTANCES)
            .await?;
        let series = series
            .iter()
            .map(|s| {
                let frames = frame_urls(&study.study_instance_uid, s);
                SeriesView {
                    uid: s.series_instance_uid.clone(),
                    label: series_label(s),
                    first: frames.first().cloned().unwrap_or_default(),
                    count: frames.len(),
                    frames_json: serde_json::to_string(&frames).unwrap_or_else(|_| "[]".into()),
                }
            })
            .filter(|s| s.count > 0)
            .collect();
        studies.push(StudyView {
            uid: study.study_instance_uid.clone(),
            heading: study_heading(&study),
            series,
            truncated,
        });
    }
    let html = ViewerPage {
        title,
        details_html: details_html(details),
        studies,
        max_instances: MAX_INSTANCES,
    }
    .render()
    .map_err(|e| StoreError::Config(format!("rendering the image page: {e}")))?;
    Ok(with_page_headers(
        (StatusCode::OK, Html(html)).into_response(),
        "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'unsafe-inline'",
    ))
}

fn details_html(details: &[(&'static str, String)]) -> String {
    if details.is_empty() {
        return String::new();
    }
    let mut html = String::from("<dl>");
    for (label, value) in details {
        html.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", escape(value)));
    }
    html.push_str("</dl>");
    html
}

/// HTML text escaping with named entities.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers of every page a link or this module answers with.
pub fn with_page_headers(mut response: Response, csp: &'static str) -> Response {
    let headers = response.headers_mut();
    // Link tokens are in URLs and studies on the page: no caches, no Referer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Where a browser goes to see `uids`: OHIF when installed, else `None`
/// (the caller shows the built-in page).
pub fn ohif_redirect(state: &AppState, uids: &[String]) -> Option<Response> {
    if state.config.ohif_dir.is_none() || uids.is_empty() {
        return None;
    }
    let response = Redirect::to(&ohif::viewer_url(uids)).into_response();
    Some(with_page_headers(response, "default-src 'none'"))
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Lightbox</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    with_page_headers((status, Html(html)).into_response(), "default-src 'none'")
}

/// `GET /viewer/images/{study}`: the study's images for whoever may read
/// them through DICOMweb (a signed-in web-app user, in practice).
async fn open_images(
    State(state): State<AppState>,
    caller: Result<DicomwebCaller, ApiError>,
    Path(study): Path<String>,
) -> Response {
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return message(
                StatusCode::UNAUTHORIZED,
                "Sign in to see images",
                "<a href=\"/ui/login\">Sign in</a> to Lightbox, or open the link you were given again.",
            );
        }
        Err(e) => return e.into_response(),
    };
    let not_found = || {
        message(
            StatusCode::NOT_FOUND,
            "No such study",
            "There are no images of this study here.",
        )
    };
    if lightbox_domain::validate::dicom_uid("StudyInstanceUID", &study).is_err()
        || !caller.can_read(&study)
    {
        return not_found();
    }
    let uids = vec![study];
    match state.store.viewer_studies(caller.org_id, &uids).await {
        Ok(found) if found.is_empty() => return not_found(),
        Ok(_) => {}
        Err(e) => return server_error(e),
    }
    if let Some(redirect) = ohif_redirect(&state, &uids) {
        return redirect;
    }
    match page(&state, caller.org_id, "Images", &[], &uids).await {
        Ok(page) => page,
        Err(e) => server_error(e),
    }
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "loading an image page");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "Something went wrong. Try again.",
    )
}

async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightbox_store::ViewerInstance;

    fn series(frames: &[u32]) -> ViewerSeries {
        ViewerSeries {
            series_instance_uid: "1.2.3".into(),
            modality: Some("MR".into()),
            series_number: Some(4),
            series_description: Some("T1 <axial>".into()),
            instances: frames
                .iter()
                .enumerate()
                .map(|(i, &frames)| ViewerInstance {
                    sop_instance_uid: format!("1.2.3.{i}"),
                    frames,
                })
                .collect(),
        }
    }

    #[test]
    fn every_frame_of_every_instance_is_scrollable_in_order() {
        let urls = frame_urls("9.8", &series(&[1, 3]));
        assert_eq!(
            urls,
            [
                "/dicomweb/studies/9.8/series/1.2.3/instances/1.2.3.0/frames/1/rendered",
                "/dicomweb/studies/9.8/series/1.2.3/instances/1.2.3.1/frames/1/rendered",
                "/dicomweb/studies/9.8/series/1.2.3/instances/1.2.3.1/frames/2/rendered",
                "/dicomweb/studies/9.8/series/1.2.3/instances/1.2.3.1/frames/3/rendered",
            ]
        );
        assert_eq!(
            frame_urls("9.8", &series(&[u32::MAX])).len(),
            MAX_FRAMES_PER_SERIES
        );
    }

    #[test]
    fn the_page_escapes_what_the_files_say() {
        let s = series(&[2]);
        let frames = frame_urls("9.8", &s);
        let html = ViewerPage {
            title: "Study 9.8",
            details_html: details_html(&[("Description", "Knee <MRI> & co".into())]),
            studies: vec![StudyView {
                uid: "9.8".into(),
                heading: "Knee".into(),
                series: vec![SeriesView {
                    uid: s.series_instance_uid.clone(),
                    label: series_label(&s),
                    first: frames[0].clone(),
                    count: frames.len(),
                    frames_json: serde_json::to_string(&frames).unwrap(),
                }],
                truncated: false,
            }],
            max_instances: MAX_INSTANCES,
        }
        .render()
        .unwrap();
        assert!(
            html.contains("<dt>Description</dt><dd>Knee &lt;MRI&gt; &amp; co</dd>"),
            "{html}"
        );
        assert!(html.contains("Series 4 · MR · T1 &"), "{html}");
        assert!(!html.contains("<axial>"));
        assert!(html.contains("max=\"2\""));
    }

    #[test]
    fn images_are_headed_once() {
        let render = |details: &[(&'static str, String)]| {
            ViewerPage {
                title: "Images",
                details_html: details_html(details),
                studies: vec![],
                max_instances: MAX_INSTANCES,
            }
            .render()
            .unwrap()
        };
        // The viewer's own page: its title says it.
        assert_eq!(render(&[]).matches(">Images</h").count(), 1);
        // A link's page: the heading parts its details from its images.
        let linked = render(&[("Description", "Knee".into())]);
        assert!(linked.contains("<h2>Images</h2>"), "{linked}");
    }
}
