//! Webhooks as partners see them: event types with their wire names, the
//! `{"id","type","data"}` envelope, each event's `data`, the answers the
//! synchronous calls expect, and when a failed delivery is tried again.
//!
//! The wire contract is Avara's (avara 0.3.0, Standard Webhooks v1); the
//! `study.*` and `image.uploaded` events are Lightbox's own, in the same
//! envelope. Everything here is pure: the store writes envelopes into the
//! outbox, `lightbox-webhooks` signs and sends them.

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, StudyId};
use crate::study::{wire_enum, Severity, Study, ViewerStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

crate::ids::prefixed_id!(
    /// A webhook endpoint (`whk_…`).
    WebhookEndpointId, "whk_", "webhookId"
);
crate::ids::prefixed_id!(
    /// One event sent to one endpoint (`whe_…`): the envelope's `id` and the
    /// `webhook-id` header, the same on every attempt (the receiver's
    /// idempotency key).
    WebhookEventId, "whe_", "eventId"
);

wire_enum!(
    /// Event types, as the envelope's `type` spells them.
    EventType, "eventType" {
        StudyCreated = "study.created",
        StudyUpdated = "study.updated",
        StudyAssigned = "study.assigned",
        StudyCompleted = "study.completed",
        StudyCancelled = "study.cancelled",
        StudyImagesReceived = "study.images_received",
        ImageUploaded = "image.uploaded",
        StudyAccessRequested = "study.access_requested",
        EphemeralAccessRequested = "ephemeral.access_requested",
        PatientStudyEnrichmentRequested = "patient_study.enrichment_requested",
    }
);

impl EventType {
    /// Whether the event goes through the outbox (the partner acknowledges it
    /// later) rather than as one call someone waits on.
    pub fn is_async(self) -> bool {
        !matches!(
            self,
            EventType::StudyAccessRequested
                | EventType::EphemeralAccessRequested
                | EventType::PatientStudyEnrichmentRequested
        )
    }

    /// Parses `--events a,b,c`; empty means every type.
    pub fn parse_list(list: &str) -> Result<Vec<EventType>> {
        let mut types = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let t = EventType::parse(name)?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(types)
    }
}

/// Which events an endpoint wants: `[]` is all of them.
pub fn subscribes(event_types: &[EventType], t: EventType) -> bool {
    event_types.is_empty() || event_types.contains(&t)
}

/// The exact bytes of an event: `{"id":…,"type":…,"data":…}`, nothing else at
/// the top level (Avara sends no timestamp there). Serialised once, stored, and
/// signed and sent byte for byte on every attempt.
pub fn envelope(id: &WebhookEventId, event_type: EventType, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Envelope<'a, D> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'static str,
        data: &'a D,
    }
    serde_json::to_string(&Envelope {
        id: id.as_str(),
        event_type: event_type.as_str(),
        data,
    })
    .expect("event data always serialises")
}

/// `data` of every `study.*` event: the study as it is after the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyEventData {
    pub study_id: String,
    pub study_instance_uid: String,
    pub study_description: String,
    pub severity: Severity,
    pub study_viewer_status: ViewerStatus,
    pub is_cancelled: bool,
    /// `usr_…`, or null when nobody is assigned.
    pub assigned_to: Option<String>,
    pub express_customer_id: Option<String>,
    /// The API key that created the study (its endpoint gets the events).
    pub created_by_api_key_id: Option<String>,
    /// When the change happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// `study.updated` only: the request fields that changed, by wire name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<&'static str>>,
    /// `study.assigned` only: who was assigned before (null: nobody).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_assigned_to: Option<Option<String>>,
}

impl StudyEventData {
    pub fn of(study: &StudyFacts, at: Timestamp) -> StudyEventData {
        StudyEventData {
            study_id: study.id.to_string(),
            study_instance_uid: study.study_instance_uid.clone(),
            study_description: study.description.clone(),
            severity: study.severity,
            study_viewer_status: study.viewer_status,
            is_cancelled: study.is_cancelled,
            assigned_to: study.assigned_to.clone(),
            express_customer_id: study.express_customer_id.clone(),
            created_by_api_key_id: study.created_by_api_key_id.map(|k| k.to_string()),
            occurred_at: at.to_rfc3339(),
            changes: None,
            previous_assigned_to: None,
        }
    }
}

/// The columns of a study an event reports (the store reads them inside the
/// changing transaction, without the joins of [`Study`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyFacts {
    pub id: StudyId,
    pub study_instance_uid: String,
    pub description: String,
    pub severity: Severity,
    pub viewer_status: ViewerStatus,
    pub is_cancelled: bool,
    pub assigned_to: Option<String>,
    pub express_customer_id: Option<String>,
    pub created_by_api_key_id: Option<ApiKeyId>,
}

impl From<&Study> for StudyFacts {
    fn from(s: &Study) -> Self {
        StudyFacts {
            id: s.id.clone(),
            study_instance_uid: s.study_instance_uid.clone(),
            description: s.description.clone(),
            severity: s.severity,
            viewer_status: s.viewer_status,
            is_cancelled: s.is_cancelled,
            assigned_to: s.assigned_to.as_ref().map(|u| u.id.to_string()),
            express_customer_id: s.express_customer_id.clone(),
            created_by_api_key_id: s.created_by_api_key.as_ref().map(|k| k.id),
        }
    }
}

/// The `study.*` events one change of `before` into `after` is reported as:
/// `study.updated` for every change (with `changes`), and besides it
/// `study.assigned` when the assignee changed, `study.completed` when the
/// viewer status became complete, `study.cancelled` when it was cancelled.
pub fn study_change_events(
    before: &StudyFacts,
    after: &StudyFacts,
    at: Timestamp,
) -> Vec<(EventType, StudyEventData)> {
    let mut changes = Vec::new();
    if before.description != after.description {
        changes.push("studyDescription");
    }
    if before.severity != after.severity {
        changes.push("severity");
    }
    if before.viewer_status != after.viewer_status {
        changes.push("studyViewerStatus");
    }
    if before.assigned_to != after.assigned_to {
        changes.push("assignedTo");
    }
    if before.is_cancelled != after.is_cancelled {
        changes.push("isCancelled");
    }
    let mut events = Vec::new();
    if before.is_cancelled != after.is_cancelled && after.is_cancelled {
        events.push((EventType::StudyCancelled, StudyEventData::of(after, at)));
    }
    if before.assigned_to != after.assigned_to {
        let mut data = StudyEventData::of(after, at);
        data.previous_assigned_to = Some(before.assigned_to.clone());
        events.push((EventType::StudyAssigned, data));
    }
    if before.viewer_status != after.viewer_status && after.viewer_status == ViewerStatus::Complete
    {
        events.push((EventType::StudyCompleted, StudyEventData::of(after, at)));
    }
    // Metadata-only changes still count: the study changed.
    let mut data = StudyEventData::of(after, at);
    data.changes = Some(changes);
    events.insert(0, (EventType::StudyUpdated, data));
    events
}

/// `data` of `image.uploaded`: an image's verified file has been stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUploadedData {
    pub image_id: String,
    pub file_name: String,
    pub display_name: String,
    pub file_type: String,
    /// The verified type of the stored bytes, e.g. `image/jpeg`.
    pub content_type: String,
    pub size_bytes: i64,
    pub patient_id: Option<String>,
    pub occurred_at: String,
}

/// `data` of `study.images_received`: DICOM instances arrived for a study.
/// One event covers a burst (instances arriving with less than the quiet
/// period between them): the counts are the study's after the burst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesReceivedData {
    /// The worklist study (`stu_…`) the images belong to.
    pub study_id: String,
    pub study_instance_uid: String,
    /// Series and instances the archive holds for the study now.
    pub series_count: i64,
    pub instance_count: i64,
    /// The study's modalities, sorted (e.g. `["CT", "SR"]`).
    pub modalities: Vec<String>,
    /// New instances in this burst (repeats of stored ones are not counted).
    pub received_instance_count: i64,
    pub created_by_api_key_id: Option<String>,
    /// When the burst's first and last instances were stored (RFC 3339).
    pub first_received_at: String,
    pub occurred_at: String,
}

impl ImagesReceivedData {
    /// This burst's data after one more instance: `self` describes the study
    /// now, `held` the event as it was queued so far.
    pub fn extending(mut self, held: &ImagesReceivedData) -> ImagesReceivedData {
        self.received_instance_count += held.received_instance_count;
        self.first_received_at = held.first_received_at.clone();
        self
    }
}

// ---------------------------------------------------------------- synchronous calls

/// `data` of `study.access_requested`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyAccessRequested {
    pub study_id: String,
    pub study_instance_uid: String,
}

/// `data` of `ephemeral.access_requested`; `options` is echoed verbatim.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralAccessRequested {
    pub retrieval_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Box<serde_json::value::RawValue>>,
}

/// `data` of `patient_study.enrichment_requested`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentRequested {
    /// The organization (Avara's clinic), a plain UUID.
    pub clinic_id: String,
    pub study_instance_uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
}

/// A non-DICOM file offered with the images.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaUrl {
    pub url: String,
    pub mime_type: String,
    pub file_name: Option<String>,
}

/// The answer to `study.access_requested` and `ephemeral.access_requested`.
/// Unknown fields are ignored; a missing required field or a wrong type makes
/// the whole answer a failure. `manifest`/`manifests` are kept as JSON: they
/// are optional hints, and Avara ignores invalid values in them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessResponse {
    pub authorized: bool,
    pub urls: Vec<String>,
    pub error: Option<String>,
    pub media_urls: Option<Vec<MediaUrl>>,
    pub manifest: Option<serde_json::Value>,
    pub manifests: Option<Vec<serde_json::Value>>,
}

/// A measure with its unit, as enrichment answers give height and weight.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Measure {
    pub value: f64,
    pub unit: String,
}

/// The answer to `patient_study.enrichment_requested`: any subset, `{}` too.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentResponse {
    pub date_of_birth: Option<String>,
    pub external_patient_id: Option<String>,
    pub facility_name: Option<String>,
    pub mrn: Option<String>,
    pub patient_name: Option<String>,
    pub procedure: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_description: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub severity: Option<Severity>,
    pub sex: Option<String>,
    pub height: Option<Measure>,
    pub weight: Option<Measure>,
    pub express_customer_id: Option<String>,
}

/// What an enrichment answer changes on a study DICOM ingest is about to
/// seed: only what passes the worklist's own validation (the answer is the
/// partner's, so a bad field is dropped, not the whole answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    pub severity: Option<Severity>,
    pub description: Option<String>,
    pub express_customer_id: Option<String>,
    /// Patient and order fields, under their answer names (`patientName`,
    /// `dateOfBirth`, `mrn`, …; measures as `"180 cm"`), kept in the study's
    /// metadata.
    pub metadata: crate::study::Metadata,
}

impl EnrichmentResponse {
    /// The answer, as changes to a new worklist study.
    pub fn enrichment(&self) -> Enrichment {
        use crate::validate;
        let description = self
            .study_description
            .as_deref()
            .or(self.procedure.as_deref())
            .map(str::trim)
            .filter(|d| {
                validate::required_text("studyDescription", d, validate::MAX_DESCRIPTION_CHARS)
                    .is_ok()
            })
            .map(str::to_owned);
        let express_customer_id = self
            .express_customer_id
            .clone()
            .filter(|c| validate::express_customer_id("expressCustomerId", c).is_ok());
        let measure = |m: &Option<Measure>| m.as_ref().map(|m| format!("{} {}", m.value, m.unit));
        let fields = [
            ("patientName", self.patient_name.clone()),
            ("dateOfBirth", self.date_of_birth.clone()),
            ("sex", self.sex.clone()),
            ("mrn", self.mrn.clone()),
            ("externalPatientId", self.external_patient_id.clone()),
            ("facilityName", self.facility_name.clone()),
            (
                "referringPhysicianName",
                self.referring_physician_name.clone(),
            ),
            ("procedure", self.procedure.clone()),
            ("studyDate", self.study_date.clone()),
            ("studyTime", self.study_time.clone()),
            ("height", measure(&self.height)),
            ("weight", measure(&self.weight)),
        ];
        let metadata = fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.trim().to_owned())))
            .filter(|(_, v)| {
                !v.is_empty() && v.chars().count() <= validate::MAX_METADATA_VALUE_CHARS
            })
            .collect();
        Enrichment {
            severity: self.severity,
            description,
            express_customer_id,
            metadata,
        }
    }
}

// ---------------------------------------------------------------- retries

/// When failed deliveries are tried again: the delay before each attempt after
/// the first, which is immediate. Standard Webhooks' schedule by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// Standard Webhooks: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 14 h, 20 h and 24 h after the previous attempt (about 75 h in all).
const STANDARD_DELAYS_SECS: [u64; 9] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
];

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            delays: STANDARD_DELAYS_SECS
                .iter()
                .map(|&s| Duration::from_secs(s))
                .collect(),
        }
    }
}

impl RetrySchedule {
    /// From `5,300,1800` (seconds, decimals allowed), the delays before the
    /// second, third, … attempt.
    pub fn parse(list: &str) -> Result<RetrySchedule> {
        let delays = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<f64>() {
                Ok(secs) if secs.is_finite() && (0.0..=7.0 * 86400.0).contains(&secs) => {
                    Ok(Duration::from_secs_f64(secs))
                }
                _ => Err(Error::invalid(
                    "webhook_retry_delays",
                    format!("`{s}` is not a number of seconds between 0 and a week"),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RetrySchedule { delays })
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// After `attempts_made` failed attempts, how long to wait before the next
    /// one; `None` when that was the last.
    pub fn next_attempt(&self, attempts_made: u32) -> Option<Duration> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }
}

/// [`RetrySchedule::next_attempt`] of the standard schedule.
pub fn next_attempt(attempts_made: u32) -> Option<Duration> {
    RetrySchedule::default().next_attempt(attempts_made)
}

/// `delay` moved by up to ±20 %, `spread` in [-1, 1] choosing where: replicas
/// retrying after one outage do not all call at the same instant.
pub fn jittered(delay: Duration, spread: f64) -> Duration {
    let factor = 1.0 + 0.2 * spread.clamp(-1.0, 1.0);
    delay.mul_f64(factor)
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date,
/// capped at a day; `None` when unreadable.
pub fn retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(24 * 3600);
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let ms = at.timestamp_millis().saturating_sub(now.millis()).max(0);
    Some(Duration::from_millis(ms as u64).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrichment_answer_keeps_its_valid_fields_and_drops_the_rest() {
        let answer: EnrichmentResponse = serde_json::from_str(
            r#"{"severity":"stat","studyDescription":" Chest CT ","expressCustomerId":"not-a-customer",
                "patientName":"DOE^JANE","mrn":"","height":{"value":180,"unit":"cm"},"unknown":1}"#,
        )
        .unwrap();
        let e = answer.enrichment();
        assert_eq!(e.severity, Some(Severity::Stat));
        assert_eq!(e.description.as_deref(), Some("Chest CT"));
        assert_eq!(e.express_customer_id, None);
        assert_eq!(
            e.metadata.into_iter().collect::<Vec<_>>(),
            [
                ("height".to_owned(), "180 cm".to_owned()),
                ("patientName".to_owned(), "DOE^JANE".to_owned())
            ]
        );
        let empty: EnrichmentResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.enrichment(), Enrichment::default());
        assert!(serde_json::from_str::<EnrichmentResponse>(r#"{"severity":"urgent"}"#).is_err());
    }

    #[test]
    fn the_standard_schedule_retries_nine_times_over_about_75_hours() {
        let s = |secs: u64| Some(Duration::from_secs(secs));
        let table = [
            (0, None),
            (1, s(5)),
            (2, s(300)),
            (3, s(1800)),
            (4, s(7200)),
            (5, s(18_000)),
            (6, s(36_000)),
            (7, s(50_400)),
            (8, s(72_000)),
            (9, s(86_400)),
            (10, None),
            (11, None),
        ];
        for (made, expected) in table {
            assert_eq!(next_attempt(made), expected, "after {made} attempts");
        }
        assert_eq!(RetrySchedule::default().attempts(), 10);
        let total: u64 = (1..10).map(|n| next_attempt(n).unwrap().as_secs()).sum();
        assert_eq!(total, 75 * 3600 + 35 * 60 + 5);
    }

    #[test]
    fn a_configured_schedule_reads_seconds() {
        let schedule = RetrySchedule::parse("1.5, 2").unwrap();
        assert_eq!(schedule.attempts(), 3);
        assert_eq!(schedule.next_attempt(1), Some(Duration::from_millis(1500)));
        assert_eq!(schedule.next_attempt(2), Some(Duration::from_secs(2)));
        assert_eq!(schedule.next_attempt(3), None);
        assert_eq!(RetrySchedule::parse("").unwrap().attempts(), 1);
        for bad in ["x", "-1", "1,,nan", "9999999"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let d = Duration::from_secs(100);
        let secs = |spread: f64| jittered(d, spread).as_secs_f64();
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(near(secs(0.0), 100.0));
        assert!(near(secs(1.0), 120.0), "{}", secs(1.0));
        assert!(near(secs(-1.0), 80.0), "{}", secs(-1.0));
        assert!(near(secs(7.0), 120.0), "clamped: {}", secs(7.0));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Timestamp::parse_rfc3339("2015-10-21T07:27:00Z").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("999999", now),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn the_envelope_is_id_type_data_and_nothing_else() {
        let id = WebhookEventId::parse("whe_0123456789abcdef0123456789abcdef").unwrap();
        let body = envelope(
            &id,
            EventType::StudyAccessRequested,
            &StudyAccessRequested {
                study_id: "stu_0123456789abcdef0123456789abcdef".into(),
                study_instance_uid: "1.2.3".into(),
            },
        );
        assert_eq!(
            body,
            r#"{"id":"whe_0123456789abcdef0123456789abcdef","type":"study.access_requested","data":{"studyId":"stu_0123456789abcdef0123456789abcdef","studyInstanceUid":"1.2.3"}}"#
        );
    }

    fn facts() -> StudyFacts {
        StudyFacts {
            id: StudyId::generate(),
            study_instance_uid: "1.2.3".into(),
            description: "CT".into(),
            severity: Severity::Normal,
            viewer_status: ViewerStatus::Incomplete,
            is_cancelled: false,
            assigned_to: None,
            express_customer_id: None,
            created_by_api_key_id: None,
        }
    }

    #[test]
    fn a_change_is_reported_as_updated_plus_what_it_means() {
        let at = Timestamp::now();
        let before = facts();
        let mut after = before.clone();
        after.assigned_to = Some("usr_0123456789abcdef0123456789abcdef".into());
        after.viewer_status = ViewerStatus::Complete;
        let events = study_change_events(&before, &after, at);
        let types: Vec<_> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            types,
            [
                EventType::StudyUpdated,
                EventType::StudyAssigned,
                EventType::StudyCompleted
            ]
        );
        assert_eq!(
            events[0].1.changes,
            Some(vec!["studyViewerStatus", "assignedTo"])
        );
        assert_eq!(events[1].1.previous_assigned_to, Some(None));
        let json = serde_json::to_value(&events[2].1).unwrap();
        assert!(json.get("changes").is_none());
        assert!(json.get("previousAssignedTo").is_none());
        assert_eq!(json["assignedTo"], "usr_0123456789abcdef0123456789abcdef");

        let mut cancelled = before.clone();
        cancelled.is_cancelled = true;
        let types: Vec<_> = study_change_events(&before, &cancelled, at)
            .iter()
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(types, [EventType::StudyUpdated, EventType::StudyCancelled]);
    }

    #[test]
    fn access_answers_are_parsed_strictly_but_tolerate_unknown_fields() {
        let ok: AccessResponse =
            serde_json::from_str(r#"{"authorized":true,"urls":["https://x/1.dcm"],"extra":1}"#)
                .unwrap();
        assert!(ok.authorized);
        for bad in [
            r#"{"urls":[]}"#,
            r#"{"authorized":"yes","urls":[]}"#,
            r#"{"authorized":true,"urls":"https://x"}"#,
            "<html>",
        ] {
            assert!(
                serde_json::from_str::<AccessResponse>(bad).is_err(),
                "{bad}"
            );
        }
        let enrich: EnrichmentResponse = serde_json::from_str(r#"{"severity":"stat"}"#).unwrap();
        assert_eq!(enrich.severity, Some(Severity::Stat));
        assert!(serde_json::from_str::<EnrichmentResponse>(r#"{"severity":"urgent"}"#).is_err());
    }

    #[test]
    fn event_lists_parse_and_reject_unknown_types() {
        assert_eq!(
            EventType::parse_list("study.created, image.uploaded,study.created").unwrap(),
            [EventType::StudyCreated, EventType::ImageUploaded]
        );
        assert!(EventType::parse_list("").unwrap().is_empty());
        assert!(EventType::parse_list("study.deleted").is_err());
        assert!(subscribes(&[], EventType::ImageUploaded));
        assert!(!subscribes(
            &[EventType::StudyCreated],
            EventType::ImageUploaded
        ));
    }
}
