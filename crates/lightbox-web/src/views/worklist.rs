//! The worklist: the organization's studies, newest first, with the API's
//! filters plus "assigned to me" / "unassigned", a description search, and
//! keyset paging ("load more", or on scroll). Every filter lives in the query
//! string, so back, reload and a shared link show the same list.
//!
//! Row actions (claim, complete, cancel, uncancel) are form posts: htmx swaps
//! the returned row in place; without scripts they redirect back to the list.

use super::{error_page, is_htmx, manages_studies, render, AssetUrlsRef, HtmlForm, Nav};
use crate::audit;
use crate::login::WebUser;
use crate::WebState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_domain::pagination::{decode_cursor, encode_cursor};
use lightbox_domain::study::{
    RefFilter, Severity, Study, StudyFilter, StudyPatch, StudySelector, ViewerStatus,
};
use lightbox_domain::{validate, Error, StudyId, Timestamp, UserId};
use serde::Deserialize;

const PAGE_SIZE: u32 = 50;
const CURSOR_KIND: &str = "studies";

/// The worklist's query string. Empty means "any".
#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    status: String,
    /// `no` (active), `yes` (cancelled), empty (both).
    #[serde(default)]
    cancelled: String,
    /// `me`, `none`, or a user id.
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    customer: String,
    /// Description contains (case-insensitive).
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

impl Filters {
    fn to_store(&self, me: &UserId) -> Result<StudyFilter, Error> {
        let non_empty = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let q = non_empty(&self.q);
        if let Some(q) = &q {
            validate::bounded_text("q", q, validate::MAX_DESCRIPTION_CHARS)?;
        }
        Ok(StudyFilter {
            assigned_to: match self.assignee.as_str() {
                "" => None,
                "me" => Some(RefFilter::Is(me.clone())),
                "none" => Some(RefFilter::IsNull),
                id => Some(RefFilter::Is(UserId::parse_for("assignee", id)?)),
            },
            express_customer_id: match non_empty(&self.customer) {
                None => None,
                Some(c) => {
                    validate::express_customer_id("customer", &c)?;
                    Some(RefFilter::Is(c))
                }
            },
            is_cancelled: match self.cancelled.as_str() {
                "" => None,
                "yes" => Some(true),
                "no" => Some(false),
                other => {
                    return Err(Error::invalid(
                        "cancelled",
                        format!("cancelled must be yes or no, got `{other}`"),
                    ))
                }
            },
            severity: non_empty(&self.severity)
                .map(|s| Severity::parse(&s))
                .transpose()?,
            viewer_status: non_empty(&self.status)
                .map(|s| ViewerStatus::parse(&s))
                .transpose()?,
            description_contains: q,
        })
    }

    /// The query string of this list (without the page position), for links.
    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("severity", self.severity.as_str()),
            ("status", &self.status),
            ("cancelled", &self.cancelled),
            ("assignee", &self.assignee),
            ("customer", &self.customer),
            ("q", self.q.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    fn list_url(&self) -> String {
        match self.query() {
            q if q.is_empty() => "/ui/worklist".into(),
            q => format!("/ui/worklist?{q}"),
        }
    }
}

/// One worklist row as shown.
pub struct Row {
    id: String,
    description: String,
    /// `stat`, `high`, `normal`: a CSS class; the label says it in words too.
    severity: &'static str,
    severity_label: &'static str,
    assignee: Option<String>,
    mine: bool,
    complete: bool,
    cancelled: bool,
    created: String,
    updated: String,
    can_claim: bool,
    can_complete: bool,
    can_cancel: bool,
    can_uncancel: bool,
    /// What the last action on this row said (e.g. who holds it).
    notice: Option<String>,
    /// The list to return to after a plain (script-less) form post.
    back: String,
    /// The study's Study Instance UID (to find its images).
    uid: String,
    /// What the archive holds for the study, when it has images.
    images: Option<Images>,
}

/// The DICOM columns of a study with images in the archive.
pub struct Images {
    /// e.g. `CT, SR`.
    pub modalities: String,
    pub series: i64,
    pub instances: i64,
    /// `YYYY-MM-DD`, or empty when the images have no StudyDate.
    pub study_date: String,
    /// `FAMILY, Given` from the DICOM PatientName, or empty.
    pub patient_name: String,
    pub patient_id: String,
}

impl Images {
    pub fn of(summary: &lightbox_store::DicomStudySummary) -> Images {
        Images {
            modalities: summary.modalities.join(", "),
            series: summary.series_count,
            instances: summary.instance_count,
            study_date: summary
                .study_date
                .as_deref()
                .map(dicom_date)
                .unwrap_or_default(),
            patient_name: summary
                .patient_name
                .as_deref()
                .map(person_name)
                .unwrap_or_default(),
            patient_id: summary.patient_id.clone().unwrap_or_default(),
        }
    }
}

/// A DICOM person name (`FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`, then `=`-separated
/// ideographic and phonetic forms) as people write it: `FAMILY, PREFIX GIVEN
/// MIDDLE SUFFIX`. Only the alphabetic form is shown; empty components are dropped.
fn person_name(pn: &str) -> String {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let c: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let part = |i: usize| c.get(i).copied().unwrap_or_default();
    let rest: Vec<&str> = [part(3), part(1), part(2), part(4)]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    match (part(0), rest.is_empty()) {
        (family, true) => family.to_owned(),
        ("", false) => rest.join(" "),
        (family, false) => format!("{family}, {}", rest.join(" ")),
    }
}

/// DICOM's `YYYYMMDD` as `YYYY-MM-DD` (anything else as it is).
fn dicom_date(d: &str) -> String {
    let d = d.trim();
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_owned()
    }
}

/// Fills in the DICOM columns of `rows` with one query. A failure leaves
/// them empty (logged): the worklist itself is still right.
pub(super) async fn with_images(state: &WebState, user: &WebUser, mut rows: Vec<Row>) -> Vec<Row> {
    let uids: Vec<&str> = rows.iter().map(|r| r.uid.as_str()).collect();
    match state.store.dicom_study_summaries(user.org_id, &uids).await {
        Ok(found) => {
            for row in &mut rows {
                row.images = found.get(&row.uid).map(Images::of);
            }
        }
        Err(e) => tracing::warn!(error = %e, "worklist: the archive's columns are unavailable"),
    }
    rows
}

pub(super) fn when(t: Timestamp) -> String {
    // `2026-12-03T07:12:45.123Z` → `2026-12-03 07:12`
    let s = t.to_rfc3339();
    format!("{} {}", &s[..10], &s[11..16])
}

impl Row {
    pub(super) fn of(study: &Study, viewer: &WebUser, back: &str) -> Row {
        let me = &viewer.user.reference.id;
        let mine = study.assigned_to.as_ref().is_some_and(|u| &u.id == me);
        let manager = manages_studies(&viewer.user);
        let complete = study.viewer_status == ViewerStatus::Complete;
        Row {
            id: study.id.to_string(),
            description: study.description.clone(),
            severity: study.severity.as_str(),
            severity_label: match study.severity {
                Severity::Stat => "STAT",
                Severity::High => "HIGH",
                Severity::Normal => "normal",
            },
            assignee: study
                .assigned_to
                .as_ref()
                .map(|u| format!("{} {}", u.first_name, u.last_name)),
            mine,
            complete,
            cancelled: study.is_cancelled,
            created: when(study.created_at),
            updated: when(study.updated_at),
            can_claim: !study.is_cancelled && !complete && study.assigned_to.is_none(),
            can_complete: !study.is_cancelled && !complete && (mine || manager),
            can_cancel: manager && !study.is_cancelled,
            can_uncancel: manager && study.is_cancelled,
            notice: None,
            back: back.to_owned(),
            uid: study.study_instance_uid.clone(),
            images: None,
        }
    }
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    assets: AssetUrlsRef,
    nav: Nav,
    severity: String,
    status: String,
    cancelled: String,
    assignee: String,
    customer: String,
    q: String,
    rows: Vec<Row>,
    more: Option<String>,
}

/// The rows alone, for htmx (filter changes and "load more").
#[derive(Template)]
#[template(path = "worklist_rows.html")]
struct WorklistRows {
    rows: Vec<Row>,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "worklist_row.html")]
struct WorklistRow {
    row: Row,
}

/// One row's HTML, as the worklist shows it (for the live stream).
pub(super) fn row_html(row: Row) -> String {
    WorklistRow { row }.render().unwrap_or_default()
}

fn bad_request(e: Error) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Filter not understood",
        &e.to_string(),
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "worklist");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Try again in a moment.",
    )
}

fn audit_unavailable() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The audit trail cannot be written right now, so nothing is shown. Try again in a moment.",
    )
}

pub async fn page(
    State(state): State<WebState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(filters)) = query else {
        return bad_request(Error::bad_request(
            "the worklist's query string is malformed",
        ));
    };
    let me = user.user.reference.id.clone();
    let store_filter = match filters.to_store(&me) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let after = match filters.after.as_str() {
        "" => None,
        cursor => match decode_cursor(CURSOR_KIND, cursor, StudyId::parse) {
            Ok(id) => Some(id),
            Err(e) => return bad_request(e),
        },
    };
    let page = match state
        .store
        .list_studies(user.org_id, &store_filter, PAGE_SIZE, after.as_ref())
        .await
    {
        Ok(page) => page,
        Err(e) => return internal(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        "study.search",
        None,
        200,
    )
    .await
    {
        return audit_unavailable();
    }
    let back = filters.list_url();
    let rows: Vec<Row> = page
        .items
        .iter()
        .map(|s| Row::of(s, &user, &back))
        .collect();
    let rows = with_images(&state, &user, rows).await;
    let more = page.next_after.map(|last| {
        let cursor = encode_cursor(CURSOR_KIND, last.as_str());
        let sep = if back.contains('?') { '&' } else { '?' };
        format!("{back}{sep}after={cursor}")
    });
    // A history restore wants the whole page even though htmx sends it.
    let fragment = is_htmx(&headers) && !headers.contains_key("hx-history-restore-request");
    let mut response = if fragment {
        render(StatusCode::OK, &WorklistRows { rows, more })
    } else {
        render(
            StatusCode::OK,
            &WorklistPage {
                assets: crate::assets::urls(),
                nav: Nav::of(&user),
                severity: filters.severity.clone(),
                status: filters.status.clone(),
                cancelled: filters.cancelled.clone(),
                assignee: filters.assignee.clone(),
                customer: filters.customer.clone(),
                q: filters.q.clone(),
                rows,
                more,
            },
        )
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("HX-Request"));
    response
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    back: String,
}

/// After an action: the row (htmx), or back to the list (plain form post).
fn answer(headers: &axum::http::HeaderMap, status: StatusCode, row: Row) -> Response {
    if is_htmx(headers) {
        return render(status, &WorklistRow { row });
    }
    if status.is_success() {
        return Redirect::to(&row.back).into_response();
    }
    error_page(
        status,
        "Not done",
        row.notice
            .as_deref()
            .unwrap_or("The study could not be changed."),
    )
}

/// Loads the study named in the path, in the user's organization only:
/// another organization's id is "not found", exactly like a made-up one.
async fn study_of(state: &WebState, user: &WebUser, study_id: &str) -> Result<Study, Response> {
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            "Study not found",
            "There is no such study.",
        )
    };
    let id = StudyId::parse(study_id).map_err(|_| not_found())?;
    state
        .store
        .study(user.org_id, &id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)
}

/// One row action as asked for: which study, the list to return to, its
/// audit action, and who may do it (judged on the row as it is now).
struct RowAction {
    study_id: String,
    back: String,
    action: &'static str,
    allowed: fn(&Row) -> bool,
}

/// The list to return to after a script-less post: only the worklist itself.
fn safe_back(back: String) -> String {
    if back.starts_with("/ui/worklist") {
        back
    } else {
        "/ui/worklist".into()
    }
}

/// Runs one row action: loads the study, checks the rule, applies the change,
/// audits it, and answers with the row as it now is.
async fn act(
    state: WebState,
    user: WebUser,
    headers: axum::http::HeaderMap,
    spec: RowAction,
    change: impl std::future::Future<Output = Result<Study, Error>>,
) -> Response {
    let RowAction {
        study_id,
        back,
        action,
        allowed,
    } = spec;
    let back = safe_back(back);
    let study = match study_of(&state, &user, &study_id).await {
        Ok(study) => study,
        Err(page) => return page,
    };
    let row = Row::of(&study, &user, &back);
    if !allowed(&row) {
        let mut row = row;
        row.notice = Some("You may not do that to this study now.".into());
        audit::record(
            &state,
            &user.origin,
            user.org_id,
            &user.user.reference.id,
            action,
            Some(&study_id),
            403,
        )
        .await;
        return answer(&headers, StatusCode::FORBIDDEN, row);
    }
    let (status, study, notice) = match change.await {
        Ok(study) => (StatusCode::OK, study, None),
        Err(Error::Conflict(message)) => {
            // Someone changed it meanwhile: show the row as it is now, and why.
            let current = study_of(&state, &user, &study_id).await.unwrap_or(study);
            (StatusCode::CONFLICT, current, Some(capitalise(&message)))
        }
        Err(Error::NotFound(_)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Study not found",
                "There is no such study.",
            )
        }
        Err(e) => return internal(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &user.user.reference.id,
        action,
        Some(&study_id),
        status.as_u16(),
    )
    .await
    {
        return audit_unavailable();
    }
    let mut row = Row::of(&study, &user, &back);
    row.notice = notice;
    let row = with_images(&state, &user, vec![row]).await.remove(0);
    answer(&headers, status, row)
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parse_id(study_id: &str) -> StudyId {
    // `act` loads the study first and answers 404 for a bad id, so this id is valid when used.
    StudyId::parse(study_id).unwrap_or_else(|_| StudyId::from_trusted(study_id.to_owned()))
}

pub async fn claim(
    State(state): State<WebState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
    Path(study_id): Path<String>,
    HtmlForm(form): HtmlForm<ActionForm>,
) -> Response {
    let (store, org, me, id) = (
        state.store.clone(),
        user.org_id,
        user.user.reference.id.clone(),
        parse_id(&study_id),
    );
    // Claiming a study someone else took meanwhile is the store's conflict, not a refusal here.
    let spec = RowAction {
        study_id,
        back: form.back,
        action: "study.claim",
        allowed: |row| !row.cancelled && !row.complete,
    };
    act(state, user, headers, spec, async move {
        store.claim_study(org, &id, &me).await
    })
    .await
}

pub async fn complete(
    State(state): State<WebState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
    Path(study_id): Path<String>,
    HtmlForm(form): HtmlForm<ActionForm>,
) -> Response {
    let (store, org, id) = (state.store.clone(), user.org_id, parse_id(&study_id));
    let spec = RowAction {
        study_id,
        back: form.back,
        action: "study.update",
        allowed: |row| row.can_complete,
    };
    act(state, user, headers, spec, async move {
        let patch = StudyPatch {
            viewer_status: Some(ViewerStatus::Complete),
            ..StudyPatch::default()
        };
        store.update_study(org, &id, &patch).await
    })
    .await
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    back: String,
    /// Set by the confirmation (a dialog with scripts, a page without).
    #[serde(default)]
    confirmed: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    assets: AssetUrlsRef,
    nav: Nav,
    question: String,
    action: String,
    back: String,
}

async fn set_cancelled(
    state: WebState,
    user: WebUser,
    headers: axum::http::HeaderMap,
    study_id: String,
    form: CancelForm,
    cancel: bool,
) -> Response {
    let verb = if cancel { "cancel" } else { "uncancel" };
    if form.confirmed != "yes" {
        let study = match study_of(&state, &user, &study_id).await {
            Ok(study) => study,
            Err(page) => return page,
        };
        return render(
            StatusCode::OK,
            &ConfirmPage {
                assets: crate::assets::urls(),
                nav: Nav::of(&user),
                question: format!(
                    "{} the study “{}”?",
                    if cancel {
                        "Cancel"
                    } else {
                        "Restore (uncancel)"
                    },
                    study.description
                ),
                action: format!("/ui/studies/{study_id}/{verb}"),
                back: safe_back(form.back),
            },
        );
    }
    let (store, org, id) = (state.store.clone(), user.org_id, parse_id(&study_id));
    let allowed: fn(&Row) -> bool = if cancel {
        |row| row.can_cancel
    } else {
        |row| row.can_uncancel
    };
    let action = if cancel {
        "study.cancel"
    } else {
        "study.uncancel"
    };
    let spec = RowAction {
        study_id,
        back: form.back,
        action,
        allowed,
    };
    act(state, user, headers, spec, async move {
        store
            .set_cancelled(org, &StudySelector::Id(id), cancel)
            .await
    })
    .await
}

pub async fn cancel(
    State(state): State<WebState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
    Path(study_id): Path<String>,
    HtmlForm(form): HtmlForm<CancelForm>,
) -> Response {
    set_cancelled(state, user, headers, study_id, form, true).await
}

pub async fn uncancel(
    State(state): State<WebState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
    Path(study_id): Path<String>,
    HtmlForm(form): HtmlForm<CancelForm>,
) -> Response {
    set_cancelled(state, user, headers, study_id, form, false).await
}

#[cfg(test)]
mod tests {
    use super::person_name;

    #[test]
    fn person_names_read_as_written() {
        assert_eq!(person_name("DOE^JOHN"), "DOE, JOHN");
        assert_eq!(person_name("Doe^Jane^Q^Dr^MD"), "Doe, Dr Jane Q MD");
        assert_eq!(
            person_name("CompressedSamples^CT1"),
            "CompressedSamples, CT1"
        );
        assert_eq!(person_name("ANONYMOUS"), "ANONYMOUS");
        assert_eq!(person_name("^JOHN"), "JOHN");
        assert_eq!(
            person_name("Yamada^Tarou=山田^太郎=やまだ^たろう"),
            "Yamada, Tarou"
        );
        assert_eq!(person_name(""), "");
    }
}
