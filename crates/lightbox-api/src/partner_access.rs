//! Partner access calls when a link opens: a study link for a study with no
//! images in the archive asks the partner (`study.access_requested`), an
//! ephemeral-session link always does (`ephemeral.access_requested`, its
//! `retrievalId` and `options` echoed verbatim), when an endpoint of the
//! link's API key (else of the organization) wants that event.
//!
//! An answer `authorized: true` names files (typically presigned S3 URLs);
//! each is fetched (no redirects, public addresses unless
//! `--webhook-allow-private`, at most [`MAX_URLS`] files and
//! `--stow-max-bytes` in all, within `--upload-timeout-secs`) and goes through
//! the same ingest as STOW-RS, with its size cap and checks, so only DICOM is
//! stored. `authorized: false`, no usable answer, or no file stored shows
//! "images unavailable" with the partner's `error`. Every call is audited
//! (`study.access_request` / `ephemeral_session.access_request`), and so is
//! every instance stored. URLs are secrets (presigned): never logged, never
//! shown; failures name a file by its position in the answer.
//!
//! The work runs in a task of its own, one per study (or session) at a time:
//! someone else opening the same link meanwhile waits for the same work, and
//! a person who gives up (or whose page stops waiting) does not cut a fetch
//! off halfway. The page waits at most two thirds of the request timeout,
//! then says the images are on their way and reloads itself.

use crate::builtin_viewer::escape;
use crate::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use lightbox_dicom::dicomweb::multipart::part10_head;
use lightbox_dicom::{Delivery, Outcome as Stored};
use lightbox_domain::audit::{ActorKind, AuditEvent, AuditEventId, Outcome as AuditOutcome};
use lightbox_domain::dicom::DicomSource;
use lightbox_domain::ephemeral::EphemeralSessionId;
use lightbox_domain::error::with_causes;
use lightbox_domain::webhook::{
    envelope, AccessResponse, EphemeralAccessRequested, EventType, StudyAccessRequested,
    WebhookEventId,
};
use lightbox_domain::{ApiKeyId, OrgId, StudyId, Timestamp};
use lightbox_webhooks::{check_destination, destination, CallError, PublicOnly, SecretKey, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Most files one answer may name; more is refused as a whole (a partner
/// answering a million URLs is a mistake, not a study).
pub const MAX_URLS: usize = 10_000;
/// Files fetched at once for one answer.
const CONCURRENT_FETCHES: usize = 4;
/// Longest message kept from a partner's `error` (it is shown on a page).
const MAX_ERROR_CHARS: usize = 500;

/// Limits of the fetch that follows an authorized answer.
#[derive(Debug, Clone)]
pub struct PartnerAccessConfig {
    /// Allow `http://` and private, loopback and link-local addresses, for
    /// the endpoint and the files alike (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Most bytes all of one answer's files may add up to.
    pub max_total_bytes: u64,
    /// Longest the whole fetch of one answer may take.
    pub fetch_timeout: Duration,
    /// Longest the page waits for the call and the fetch before it shows
    /// "on their way" (the work goes on).
    pub page_wait: Duration,
}

/// What the binary plugs in when webhooks are configured: the synchronous
/// sender, the key that opens endpoint secrets, and the file fetcher.
#[derive(Clone)]
pub struct PartnerAccess {
    key: SecretKey,
    sender: Sender,
    fetch: reqwest::Client,
    config: Arc<PartnerAccessConfig>,
    in_flight: InFlight,
}

impl PartnerAccess {
    pub fn new(key: SecretKey, sender: Sender, config: PartnerAccessConfig) -> PartnerAccess {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would see names, not addresses, and defeat the check.
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.fetch_timeout);
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        PartnerAccess {
            key,
            sender,
            fetch: builder.build().expect("a TLS backend is compiled in"),
            config: Arc::new(config),
            in_flight: Arc::default(),
        }
    }
}

/// What came of opening a link, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Nothing to ask: the images are in the archive, no endpoint wants the
    /// event, webhooks are off, or the link names nothing that exists (the
    /// link's own handler answers that).
    NotNeeded,
    /// The partner's files are in the archive now (`failed` were not
    /// stored); `study_uids` are the studies they belong to.
    Fetched {
        study_uids: Vec<String>,
        stored: usize,
        failed: usize,
    },
    /// Images unavailable: the partner refused (`refused`), or the call or
    /// every file failed. `message` is what the person is shown.
    Unavailable { refused: bool, message: String },
    /// Still being fetched when the page stopped waiting.
    Pending,
}

impl Access {
    /// The page to show instead of the link's own, when there is one: images
    /// unavailable, or on their way.
    pub fn interrupts(&self) -> Option<Response> {
        match self {
            Access::NotNeeded | Access::Fetched { .. } => None,
            Access::Unavailable { refused, message } => Some(page(
                if *refused {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_GATEWAY
                },
                "Images unavailable",
                &format!("<p id=\"unavailable\">{}</p>", escape(message)),
                None,
            )),
            Access::Pending => Some(page(
                StatusCode::ACCEPTED,
                "Retrieving images",
                "<p>The images are being retrieved from the partner's archive. \
                 This page reloads itself.</p>",
                Some(5),
            )),
        }
    }

    /// The studies a session's images belong to (for the viewer to open).
    pub fn study_uids(&self) -> &[String] {
        match self {
            Access::Fetched { study_uids, .. } => study_uids,
            _ => &[],
        }
    }
}

/// The hook at the start of a study link: asks the partner for a study with
/// no images in the archive; `None` lets the link's page go on.
pub async fn on_study_link(state: &AppState, org: OrgId, study: &StudyId) -> Option<Response> {
    study_access(state, org, study).await.interrupts()
}

/// Decides whether a study link needs the partner, and asks.
pub async fn study_access(state: &AppState, org: OrgId, id: &StudyId) -> Access {
    let Some(partner) = state.partner.clone() else {
        return Access::NotNeeded;
    };
    let study = match state.store.study(org, id).await {
        Ok(Some(study)) => study,
        Ok(None) => return Access::NotNeeded,
        Err(e) => return trouble(org, "reading the study", e),
    };
    match state
        .store
        .dicom_study_summary(org, &study.study_instance_uid)
        .await
    {
        Ok(Some(_)) => return Access::NotNeeded,
        Ok(None) => {}
        Err(e) => return trouble(org, "reading the archive", e),
    }
    // Studies made through the Viewer API carry their key; others (seeded by
    // DICOM) have images, so a study without a key has nothing to ask for.
    let Some(api_key) = study.created_by_api_key.as_ref().map(|k| k.id) else {
        return Access::NotNeeded;
    };
    let event_id = WebhookEventId::generate();
    let body = envelope(
        &event_id,
        EventType::StudyAccessRequested,
        &StudyAccessRequested {
            study_id: id.to_string(),
            study_instance_uid: study.study_instance_uid.clone(),
        },
    );
    let request = Request {
        org,
        api_key,
        event: EventType::StudyAccessRequested,
        subject: id.to_string(),
        expected_study: Some(study.study_instance_uid.clone()),
        event_id,
        body,
    };
    run(state, partner, request).await
}

/// An ephemeral session asks its key's partner every time its link loads.
pub async fn session_access(state: &AppState, org: OrgId, id: &EphemeralSessionId) -> Access {
    let Some(partner) = state.partner.clone() else {
        return Access::NotNeeded;
    };
    let facts = match state.store.session_access_facts(org, id).await {
        Ok(Some(facts)) => facts,
        Ok(None) => return Access::NotNeeded,
        Err(e) => return trouble(org, "reading the session", e),
    };
    let Some(api_key) = facts.api_key_id else {
        return Access::NotNeeded;
    };
    // `options` exactly as the minting request sent them (as stored).
    let options = match facts
        .options_json
        .map(serde_json::value::RawValue::from_string)
        .transpose()
    {
        Ok(options) => options,
        Err(e) => return trouble(org, "reading the session's options", e),
    };
    let event_id = WebhookEventId::generate();
    let body = envelope(
        &event_id,
        EventType::EphemeralAccessRequested,
        &EphemeralAccessRequested {
            retrieval_id: facts.retrieval_id,
            options,
        },
    );
    let request = Request {
        org,
        api_key,
        event: EventType::EphemeralAccessRequested,
        subject: id.to_string(),
        expected_study: None,
        event_id,
        body,
    };
    run(state, partner, request).await
}

fn trouble(org: OrgId, what: &str, e: impl std::fmt::Display) -> Access {
    tracing::error!(%org, error = %e, "partner access: {what}");
    Access::Unavailable {
        refused: false,
        message: "The images cannot be retrieved right now. Try again in a moment.".into(),
    }
}

/// One access call to make.
struct Request {
    org: OrgId,
    api_key: ApiKeyId,
    event: EventType,
    /// The study (`stu_…`) or session (`eph_…`) the link opens.
    subject: String,
    /// A study link stores only instances of its own study.
    expected_study: Option<String>,
    /// The event's id and its exact bytes.
    event_id: WebhookEventId,
    body: String,
}

/// Makes the call (or joins the one under way for the same link) and waits
/// for it, at most the page's wait.
async fn run(state: &AppState, partner: PartnerAccess, request: Request) -> Access {
    let endpoints = match state
        .store
        .webhook_destinations(request.org, Some(request.api_key), request.event)
        .await
    {
        Ok(endpoints) => endpoints,
        Err(e) => return trouble(request.org, "reading webhook endpoints", e),
    };
    // One call: the first endpoint routing chooses, as for enrichment.
    let Some(endpoint) = endpoints.into_iter().next() else {
        return Access::NotNeeded;
    };
    let org = request.org;
    let key = format!("{org}/{}", request.subject);
    let wait = partner.config.page_wait;
    let mut done = {
        let mut in_flight = partner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        match in_flight.get(&key) {
            Some(running) => running.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                in_flight.insert(key.clone(), rx.clone());
                let state = state.clone();
                let partner = partner.clone();
                tokio::spawn(async move {
                    // Leaves the map however the task ends (a panic too), so
                    // the next opening starts afresh instead of joining a dead task.
                    let _leave = Leave(partner.in_flight.clone(), key);
                    let access = work(&state, &partner, &request, &endpoint).await;
                    let _ = tx.send(Some(access));
                });
                rx
            }
        }
    };
    let access = match tokio::time::timeout(wait, done.wait_for(Option::is_some)).await {
        Ok(Ok(access)) => access.clone().unwrap_or(Access::Pending),
        // The task ended without an answer (it panicked): say so plainly.
        Ok(Err(_)) => trouble(org, "the access task", "it ended without a result"),
        Err(_) => Access::Pending,
    };
    access
}

type InFlight = Arc<Mutex<HashMap<String, watch::Receiver<Option<Access>>>>>;

/// Removes a link's entry from the in-flight map when dropped.
struct Leave(InFlight, String);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// The call, then the fetch: what the page shows, audited.
async fn work(
    state: &AppState,
    partner: &PartnerAccess,
    request: &Request,
    endpoint: &lightbox_store::WebhookEndpoint,
) -> Access {
    let org = request.org;
    let event = request.event;
    let access = match ask(partner, endpoint, request).await {
        Err(why) => {
            tracing::info!(%org, webhook = %endpoint.id, event = event.as_str(), error = %why,
                "partner access: no usable answer");
            Access::Unavailable {
                refused: false,
                message: format!("The partner's archive did not answer usably: {why}."),
            }
        }
        Ok(answer) if !answer.authorized => Access::Unavailable {
            refused: true,
            message: answer
                .error
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| e.chars().take(MAX_ERROR_CHARS).collect())
                .unwrap_or_else(|| "The partner did not authorize access to these images.".into()),
        },
        Ok(answer) => fetch_all(state, partner, request, answer.urls).await,
    };
    let (status, outcome) = match &access {
        Access::Fetched { .. } => (200, AuditOutcome::Success),
        Access::Unavailable { refused: true, .. } => (403, AuditOutcome::Denied),
        _ => (502, AuditOutcome::Error),
    };
    let action = match event {
        EventType::StudyAccessRequested => "study.access_request",
        _ => "ephemeral_session.access_request",
    };
    state
        .audit
        .record(AuditEvent {
            id: AuditEventId::generate(),
            org_id: org,
            occurred_at: Timestamp::now(),
            actor_kind: ActorKind::SignedLink,
            actor_id: Some(request.subject.clone()),
            action: action.to_owned(),
            resource_type: lightbox_domain::audit::resource_type(action),
            resource_id: Some(request.subject.clone()),
            outcome,
            status,
            client_ip: None,
            request_id: None,
        })
        .await;
    access
}

/// The signed call and its strictly parsed answer.
async fn ask(
    partner: &PartnerAccess,
    endpoint: &lightbox_store::WebhookEndpoint,
    request: &Request,
) -> Result<AccessResponse, String> {
    let event = request.event;
    let count = |outcome: &'static str| {
        metrics::counter!("lightbox_webhook_attempts_total", "type" => event.as_str(), "outcome" => outcome)
            .increment(1);
    };
    let to = destination(&partner.key, endpoint).map_err(|e| {
        count("failed");
        format!("its endpoint's secret cannot be opened ({e})")
    })?;
    match partner
        .sender
        .call::<AccessResponse>(&to, request.event_id.as_str(), request.body.as_bytes())
        .await
    {
        Ok(answer) => {
            count("delivered");
            Ok(answer)
        }
        Err(e) => {
            count("failed");
            Err(match e {
                CallError::Failed(why) => why,
                // serde's message may quote the answer: keep only its position.
                CallError::Unparseable(_) => "its answer is not an access answer".into(),
            })
        }
    }
}

/// Fetches and stores every file of an authorized answer.
async fn fetch_all(
    state: &AppState,
    partner: &PartnerAccess,
    request: &Request,
    urls: Vec<String>,
) -> Access {
    let unavailable = |message: String| Access::Unavailable {
        refused: false,
        message,
    };
    if urls.is_empty() {
        return unavailable("The partner authorized access but named no image files.".into());
    }
    if urls.len() > MAX_URLS {
        return unavailable(format!(
            "The partner named {} files; at most {MAX_URLS} are fetched.",
            urls.len()
        ));
    }
    let delivery = Delivery {
        org_id: request.org,
        // The files come on behalf of the key whose partner sent them.
        source: DicomSource::Stow {
            api_key_id: request.api_key,
        },
        expected_study: request.expected_study.clone(),
    };
    let budget = AtomicU64::new(0);
    let total = urls.len();
    let results: Vec<(usize, Result<Stored, String>)> = {
        let (delivery, budget) = (&delivery, &budget);
        // Owned items: a closure over borrowed ones trips the Send check of the spawned task.
        let fetches = futures_util::stream::iter(urls.into_iter().enumerate())
            .map(move |(i, url): (usize, String)| async move {
                (i, fetch_one(state, partner, delivery, budget, &url).await)
            })
            .buffer_unordered(CONCURRENT_FETCHES)
            .collect::<Vec<_>>();
        match tokio::time::timeout(partner.config.fetch_timeout, fetches).await {
            Ok(results) => results,
            Err(_) => {
                return unavailable(format!(
                    "The partner's files did not arrive within {} s.",
                    partner.config.fetch_timeout.as_secs()
                ))
            }
        }
    };
    let mut study_uids: Vec<String> = Vec::new();
    let mut failures: Vec<(usize, String)> = Vec::new();
    for (i, result) in results {
        match result {
            Ok(stored) => {
                let uid = &stored.instance().study_instance_uid;
                if !study_uids.contains(uid) {
                    study_uids.push(uid.clone());
                }
            }
            Err(why) => failures.push((i, why)),
        }
    }
    failures.sort();
    let stored = total - failures.len();
    tracing::info!(org = %request.org, event = request.event.as_str(), stored, failed = failures.len(),
        "partner access: files fetched");
    if stored == 0 {
        let (i, why) = &failures[0];
        let more = if failures.len() > 1 {
            format!(" ({} of {total} files failed)", failures.len())
        } else {
            String::new()
        };
        return unavailable(format!(
            "None of the partner's files could be stored. File {} of {total}: {why}{more}.",
            i + 1
        ));
    }
    study_uids.sort();
    Access::Fetched {
        study_uids,
        stored,
        failed: failures.len(),
    }
}

/// One file: checked destination, a 2xx answer, a Part 10 head, then the
/// bytes through the spool (its size cap) and ingest's checks.
async fn fetch_one(
    state: &AppState,
    partner: &PartnerAccess,
    delivery: &Delivery,
    budget: &AtomicU64,
    url: &str,
) -> Result<Stored, String> {
    let url = check_destination(url, partner.config.allow_private).map_err(|e| {
        // The parser's message quotes the URL (a secret): keep only the gist.
        if e.contains("is not a URL") {
            "not a URL".to_owned()
        } else {
            e
        }
    })?;
    let mut response = partner
        .fetch
        .get(url)
        .send()
        .await
        .map_err(|e| with_causes(&e.without_url()))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "the file server redirected (HTTP {}); redirects are not followed",
            status.as_u16()
        ));
    }
    if !status.is_success() {
        return Err(format!("the file server answered HTTP {}", status.as_u16()));
    }
    let max_instance = state.ingest.config().max_instance_bytes;
    // A Part 10 file is its data set plus a small head: refuse early what
    // cannot fit (the spool enforces the exact cap).
    if response
        .content_length()
        .is_some_and(|n| n > max_instance.saturating_add(64 * 1024))
    {
        return Err(format!(
            "the file is larger than the {max_instance} bytes allowed"
        ));
    }
    let max_total = partner.config.max_total_bytes;
    let take = |chunk: &Bytes| -> Result<(), String> {
        let before = budget.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if before + chunk.len() as u64 > max_total {
            return Err(format!(
                "the files together are larger than the {max_total} bytes allowed"
            ));
        }
        Ok(())
    };
    let mut head = Vec::new();
    let mut ended = false;
    let parsed = loop {
        match part10_head(&head, ended) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => return Err(format!("not a DICOM file: {e}")),
        }
        match next_chunk(&mut response).await? {
            Some(chunk) => {
                take(&chunk)?;
                head.extend_from_slice(&chunk);
            }
            None => ended = true,
        }
    };
    let mut spool = state
        .ingest
        .spool(delivery, parsed.meta)
        .map_err(|e| e.to_string())?;
    spool
        .write(&head[parsed.data_start..])
        .await
        .map_err(|e| lightbox_dicom::IngestError::from(e).to_string())?;
    // The spool only counts bytes past its cap (STOW must drain the part);
    // here the download itself stops there.
    let mut data_len = (head.len() - parsed.data_start) as u64;
    while let Some(chunk) = next_chunk(&mut response).await? {
        take(&chunk)?;
        data_len += chunk.len() as u64;
        if data_len > max_instance {
            return Err(format!(
                "the instance is larger than the {max_instance} bytes allowed"
            ));
        }
        spool
            .write(&chunk)
            .await
            .map_err(|e| lightbox_dicom::IngestError::from(e).to_string())?;
    }
    state
        .ingest
        .finish(delivery, spool)
        .await
        .map_err(|e| e.to_string())
}

async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<Bytes>, String> {
    response
        .chunk()
        .await
        .map_err(|e| with_causes(&e.without_url()))
}

/// A plain page in the signed-link pages' look.
fn page(status: StatusCode, title: &str, body: &str, refresh: Option<u32>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Lightbox</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // The token is in the URL: keep it out of caches and Referer headers.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    if let Some(secs) = refresh {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            headers.insert(header::REFRESH, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_shows_the_partners_words_escaped_and_a_failure_is_a_bad_gateway() {
        let refused = Access::Unavailable {
            refused: true,
            message: "No <consent> & no \"images\"".into(),
        };
        let page = refused.interrupts().expect("a page");
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        let html = text(page).await;
        assert!(html.contains("Images unavailable"), "{html}");
        assert!(
            html.contains("No &lt;consent&gt; &amp; no &quot;images&quot;"),
            "{html}"
        );
        let failed = Access::Unavailable {
            refused: false,
            message: "timed out".into(),
        };
        assert_eq!(
            failed.interrupts().unwrap().status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn images_that_arrived_or_were_never_needed_let_the_link_open() {
        assert!(Access::NotNeeded.interrupts().is_none());
        let fetched = Access::Fetched {
            study_uids: vec!["1.2.3".into()],
            stored: 2,
            failed: 1,
        };
        assert!(fetched.interrupts().is_none());
        assert_eq!(fetched.study_uids(), ["1.2.3".to_owned()]);
        let pending = Access::Pending.interrupts().unwrap();
        assert_eq!(pending.status(), StatusCode::ACCEPTED);
        assert_eq!(pending.headers()[header::REFRESH], "5");
    }
}
