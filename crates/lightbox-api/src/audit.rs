//! The audit trail, recorded around every authenticated request.
//!
//! A `route_layer` middleware knows the route and the outcome; the credential
//! extractor tells it who is calling through an [`AuditSlot`] in the request,
//! and a handler may name the resource it touched with [`AuditResource`] on the
//! response (creates, lookups by UID). The event is committed before the
//! response leaves: a writer task commits events in batches (group commit),
//! so auditing every read costs one shared transaction, not one per request.
//! A change's event is on the disk before its response leaves; a read's is
//! flushed within a second after (see [`AuditLog::record_read`]).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lightbox_domain::audit::{resource_type, ActorKind, AuditEvent, AuditEventId, Outcome};
use lightbox_domain::{OrgId, Timestamp};
use lightbox_store::{Flush, Store};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// Who a request acts as, once its credential is known.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub org_id: OrgId,
    pub kind: ActorKind,
    pub id: Option<String>,
}

/// Filled by the credential extractor; read by the middleware after the handler.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<AuditActor>>>);

impl AuditSlot {
    pub fn set(&self, actor: AuditActor) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }

    fn take(&self) -> Option<AuditActor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Names the resource a response is about, when the path does not.
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// Marks `response` as being about `resource_id`.
pub fn about(resource_id: impl Into<String>, mut response: Response) -> Response {
    response
        .extensions_mut()
        .insert(AuditResource(resource_id.into()));
    response
}

struct Pending {
    event: AuditEvent,
    flush: Flush,
    stored: oneshot::Sender<bool>,
}

/// Handle to the audit writer task.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Pending>,
}

const MAX_BATCH: usize = 256;

/// About how long a read's event may wait in the OS's cache (SQLite) or
/// PostgreSQL's WAL buffers before it is flushed to the disk.
const READS_FLUSHED_WITHIN: Duration = Duration::from_secs(1);

impl AuditLog {
    pub fn start(store: Store) -> AuditLog {
        let (sender, mut receiver) = mpsc::channel::<Pending>(4096);
        // Reads' events are flushed beside the writer, not by it: a sync in
        // its loop would hold up every event behind it.
        let unflushed = Arc::new(Notify::new());
        let flusher = tokio::spawn({
            let (store, unflushed) = (store.clone(), unflushed.clone());
            async move {
                loop {
                    unflushed.notified().await;
                    // One sync for all the reads of the interval.
                    tokio::time::sleep(READS_FLUSHED_WITHIN / 2).await;
                    if let Err(e) = store.flush_audit().await {
                        tracing::error!(error = %e, "audit trail could not be flushed");
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let flush = if batch.iter().any(|p| p.flush == Flush::Now) {
                    Flush::Now
                } else {
                    Flush::Later
                };
                let (events, acks): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|p| (p.event, p.stored)).unzip();
                let stored = match store.append_audit_events(&events, flush).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, events = events.len(), "audit events could not be stored");
                        false
                    }
                };
                if stored && flush == Flush::Later {
                    unflushed.notify_one();
                }
                for ack in acks {
                    let _ = ack.send(stored);
                }
            }
            flusher.abort();
            let _ = store.flush_audit().await;
        });
        AuditLog { sender }
    }

    /// A fire-and-forget sink for components outside the HTTP stack (the
    /// DICOM receiver): events join the same batches.
    pub fn sink(&self) -> std::sync::Arc<dyn Fn(AuditEvent) + Send + Sync> {
        let log = self.clone();
        std::sync::Arc::new(move |event| {
            let log = log.clone();
            tokio::spawn(async move {
                log.record(event).await;
            });
        })
    }

    /// Stores `event`; true once it is committed and on the disk.
    pub async fn record(&self, event: AuditEvent) -> bool {
        self.append(event, Flush::Now).await
    }

    /// Stores the event of a request that changed nothing; true once it is
    /// committed, which it is before a crash of Lightbox can lose it. Its
    /// flush to the disk follows within [`READS_FLUSHED_WITHIN`]: a frame or
    /// a search then does not wait for the disk (an `fsync` takes longer
    /// than reading a 512 KiB frame), and a power cut may lose the last
    /// second of reads, never a change's event.
    pub async fn record_read(&self, event: AuditEvent) -> bool {
        self.append(event, Flush::Later).await
    }

    async fn append(&self, event: AuditEvent, flush: Flush) -> bool {
        let (ack, stored) = oneshot::channel();
        let pending = Pending {
            event,
            flush,
            stored: ack,
        };
        if self.sender.send(pending).await.is_err() {
            return false;
        }
        stored.await.unwrap_or(false)
    }
}

/// What a route does, as an audit action, and whether its path names the resource.
fn action(method: &Method, route: &str) -> (String, bool) {
    let known = match (method.as_str(), route) {
        ("POST", "/v1/viewer/studies") => Some(("study.create", false)),
        ("GET", "/v1/viewer/studies") => Some(("study.search", false)),
        ("GET", "/v1/viewer/studies/{study_id}") => Some(("study.read", true)),
        ("PATCH", "/v1/viewer/studies/{study_id}") => Some(("study.update", true)),
        ("GET", "/v1/viewer/studies/by-uid/{uid}") => Some(("study.read", false)),
        ("POST", "/v1/viewer/studies/cancel") => Some(("study.cancel", false)),
        ("POST", "/v1/viewer/studies/uncancel") => Some(("study.uncancel", false)),
        ("POST", "/v1/viewer/studies/reroute-url") => Some(("study.link", false)),
        ("GET", "/viewer/open/{token}") => Some(("study.view", false)),
        ("POST", "/v1/viewer/users") => Some(("user.invite", false)),
        ("GET", "/v1/viewer/users") => Some(("user.search", false)),
        ("GET", "/v1/viewer/users/{user_id}") => Some(("user.read", true)),
        ("PATCH", "/v1/viewer/users/{user_id}") => Some(("user.update", true)),
        ("POST", "/v1/viewer/users/reactivate") => Some(("user.reactivate", false)),
        ("POST", "/v1/viewer/users/revoke-access") => Some(("user.revoke_access", false)),
        ("GET", "/v1/viewer/users/invitations") => Some(("invitation.search", false)),
        ("GET", "/v1/viewer/users/invitations/{invitation_id}") => Some(("invitation.read", true)),
        ("PATCH", "/v1/viewer/users/invitations/{invitation_id}") => {
            Some(("invitation.update", true))
        }
        ("POST", "/v1/viewer/users/invitations/revoke") => Some(("invitation.revoke", false)),
        ("POST", "/v1/viewer/ephemeral-sessions") => Some(("ephemeral_session.create", false)),
        ("GET", "/viewer/session/{token}") => Some(("ephemeral_session.view", false)),
        ("GET", "/v1/audit/events") => Some(("audit.search", false)),
        ("POST", "/api/auth/v2/token") => Some(("auth.token", false)),
        ("POST", "/images/v1") => Some(("image.create", false)),
        ("GET", "/images/v1") => Some(("image.search", false)),
        ("GET", "/images/v1/updates/scan") => Some(("image.scan", false)),
        ("GET", "/images/v1/{id}") => Some(("image.read", true)),
        ("PUT", "/images/v1/{id}/{version}") => Some(("image.update", true)),
        ("DELETE", "/images/v1/{id}/{version}") => Some(("image.deactivate", true)),
        ("PUT", "/blobs/v1/images/{id}") => Some(("blob.write", true)),
        ("GET", "/blobs/v1/images/{id}") => Some(("blob.read", true)),
        ("POST", "/dicomweb/studies") => Some(("dicom.stow", false)),
        ("POST", "/dicomweb/studies/{study}") => Some(("dicom.stow", false)),
        ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}") => {
            Some(("dicom_instance.read", false))
        }
        ("GET", r) if r.starts_with("/dicomweb/") => Some((dicomweb_read_action(r), false)),
        _ => None,
    };
    match known {
        Some((action, id_in_path)) => (action.to_owned(), id_in_path),
        // A route missing from the table is still recorded, under its method and template.
        None => (format!("{method} {route}"), false),
    }
}

/// DICOMweb reads by kind: searches (QIDO-RS resources end in a collection),
/// metadata, frames, bulk data, rendered images, and whole retrieves.
fn dicomweb_read_action(route: &str) -> &'static str {
    let last = route.rsplit('/').next().unwrap_or_default();
    if route.contains("/frames/") && !route.ends_with("/rendered") && !route.ends_with("/thumbnail")
    {
        "dicom.frames"
    } else {
        match last {
            "studies" | "series" | "instances" => "dicom.search",
            "metadata" => "dicom.metadata",
            "rendered" | "thumbnail" => "dicom.render",
            _ if route.contains("/bulk/") => "dicom.bulk",
            _ => "dicom.retrieve",
        }
    }
}

/// The middleware: run the request, then append its audit event.
pub async fn record_requests(
    State(state): State<AppState>,
    matched: MatchedPath,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let (action, id_in_path) = action(&method, matched.as_str());
    let path_id = if id_in_path {
        params.iter().next().map(|(_, v)| v.to_owned())
    } else {
        None
    };
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client_ip = client_ip(&request, state.config.trust_forwarded_for);

    let response = next.run(request).await;

    let Some(actor) = slot.take() else {
        // No organization is known (e.g. a bad credential): nothing to attribute.
        return response;
    };
    let resource_id = response
        .extensions()
        .get::<AuditResource>()
        .map(|r| r.0.clone())
        .or(path_id);
    let status = response.status().as_u16();
    let event = AuditEvent {
        id: AuditEventId::generate(),
        org_id: actor.org_id,
        occurred_at: Timestamp::now(),
        actor_kind: actor.kind,
        actor_id: actor.id,
        resource_type: resource_type(&action),
        action,
        resource_id,
        outcome: Outcome::from_status(status),
        status,
        client_ip,
        request_id,
    };
    // GET and HEAD change nothing (every route keeps to that).
    let recorded = if method == Method::GET || method == Method::HEAD {
        state.audit.record_read(event).await
    } else {
        state.audit.record(event).await
    };
    if recorded {
        response
    } else {
        // Protected data leaves only with its audit record.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the audit trail cannot be written right now; try again",
        )
        .into_response()
    }
}

fn client_ip(request: &Request, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|ip| ip.trim().to_owned());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::dicomweb_read_action;

    #[test]
    fn dicomweb_reads_are_named_by_kind() {
        let instance = "/dicomweb/studies/{study}/series/{series}/instances/{instance}";
        for (route, action) in [
            ("/dicomweb/studies".to_owned(), "dicom.search"),
            (
                "/dicomweb/studies/{study}/series".to_owned(),
                "dicom.search",
            ),
            (format!("{instance}/metadata"), "dicom.metadata"),
            (format!("{instance}/frames/{{frames}}"), "dicom.frames"),
            (
                format!("{instance}/frames/{{frame}}/rendered"),
                "dicom.render",
            ),
            (
                "/dicomweb/studies/{study}/thumbnail".to_owned(),
                "dicom.render",
            ),
            (format!("{instance}/bulk/{{tag}}"), "dicom.bulk"),
            (
                "/dicomweb/studies/{study}/series/{series}".to_owned(),
                "dicom.retrieve",
            ),
        ] {
            assert_eq!(dicomweb_read_action(&route), action, "{route}");
        }
    }
}
