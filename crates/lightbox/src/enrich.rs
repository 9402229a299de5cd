//! The DICOM ingest's enrich hook: before a study DICOM seeds enters the
//! worklist, one signed `patient_study.enrichment_requested` call to the
//! partner endpoint that wants it (the STOW key's, else the organization's),
//! through the same sender as every synchronous webhook.
//!
//! The call is soft, as Avara's is: no endpoint, a secret that does not open,
//! a timeout, a non-2xx or an answer of the wrong shape all mean "nothing to
//! add", logged without the answer (patient data) or the secret. The instance is stored
//! either way. `--webhook-sync-timeout-secs` bounds the wait (the sender may
//! retry once if it could not connect, so twice that at most).

use futures_util::FutureExt;
use lightbox_dicom::{EnrichHook, NewStudyQuery};
use lightbox_domain::webhook::{
    envelope, Enrichment, EnrichmentRequested, EnrichmentResponse, EventType, WebhookEventId,
};
use lightbox_store::Store;
use lightbox_webhooks::{destination, CallError, SecretKey, Sender};
use std::sync::Arc;

const EVENT: EventType = EventType::PatientStudyEnrichmentRequested;

/// The worker's counter: a synchronous call is an attempt too.
fn count(outcome: &'static str) {
    metrics::counter!("lightbox_webhook_attempts_total", "type" => EVENT.as_str(), "outcome" => outcome)
        .increment(1);
}

pub fn hook(store: Store, key: SecretKey, sender: Sender) -> EnrichHook {
    let shared = Arc::new((store, key, sender));
    Arc::new(move |query: NewStudyQuery| {
        let shared = shared.clone();
        async move {
            let (store, key, sender) = &*shared;
            ask(store, key, sender, query).await
        }
        .boxed()
    })
}

async fn ask(
    store: &Store,
    key: &SecretKey,
    sender: &Sender,
    query: NewStudyQuery,
) -> Option<Enrichment> {
    let org = query.org_id;
    let endpoints = match store
        .webhook_destinations(org, query.api_key_id, EVENT)
        .await
    {
        Ok(endpoints) => endpoints,
        Err(e) => {
            tracing::warn!(%org, error = %e, "enrichment: cannot read webhook endpoints");
            return None;
        }
    };
    // One call: the first endpoint routing chooses.
    let endpoint = endpoints.first()?;
    let to = match destination(key, endpoint) {
        Ok(to) => to,
        Err(e) => {
            tracing::warn!(%org, webhook = %endpoint.id, error = %e, "enrichment: no usable secret");
            return None;
        }
    };
    let id = WebhookEventId::generate();
    let body = envelope(
        &id,
        EVENT,
        &EnrichmentRequested {
            clinic_id: org.to_string(),
            study_instance_uid: query.study_instance_uid,
            accession_number: query.accession_number.filter(|a| !a.is_empty()),
            patient_id: query.patient_id.filter(|p| !p.is_empty()),
        },
    );
    match sender
        .call::<EnrichmentResponse>(&to, id.as_str(), body.as_bytes())
        .await
    {
        Ok(answer) => {
            count("delivered");
            Some(answer.enrichment())
        }
        Err(e) => {
            count("failed");
            // A parse error quotes the answer, which is patient data: not logged.
            let error = match &e {
                CallError::Failed(why) => why.as_str(),
                CallError::Unparseable(_) => "the answer is not an enrichment",
            };
            tracing::info!(%org, webhook = %endpoint.id, event = %id, error,
                "enrichment: no usable answer; the study is seeded from its images alone");
            None
        }
    }
}
