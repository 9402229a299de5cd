//! One association: negotiate (the access check picks the organization),
//! then answer C-ECHO and C-STORE requests until release, abort or timeout.

use super::{Access, Decision, Routes, ScpConfig};
use crate::ingest::spool::MetaInfo;
use crate::ingest::{audit_event, Delivery, Incoming, Ingest};
use crate::protocol::command::{field, Command};
use crate::protocol::dimse::{Assembler, Event};
use crate::protocol::pdu::{self, Received};
use crate::protocol::status;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::server::AsyncServerAssociation;
use dicom_ul::association::{Association as _, AsyncAssociation as _};
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use dicom_ul::{Pdu, ServerAssociationOptions};
use lightbox_domain::audit::Outcome as AuditOutcome;
use lightbox_domain::dicom::DicomSource;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The AE title the receiver answers as (the called title routes, not this).
const THIS_AE_TITLE: &str = "LIGHTBOX";

/// A request whose data set is arriving.
struct Pending {
    context_id: u8,
    command: Command,
    /// None when the request is already refused: its data is read and dropped.
    spool: Option<Incoming>,
    refusal: u16,
}

pub(super) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    ingest: Ingest,
    routes: Routes,
    config: &ScpConfig,
) {
    let called = super::peek_called_title(&socket, config.establish_timeout).await;
    let snapshot = match routes.current(called.as_deref()).await {
        Ok(routes) => routes,
        Err(e) => {
            tracing::error!(error = %e, "dicom: cannot load AE titles; connection closed");
            return;
        }
    };
    let decision = Arc::new(Mutex::new(None));
    let access = Access {
        routes: snapshot,
        peer: peer.ip(),
        decision: decision.clone(),
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(access)
        .ae_title(THIS_AE_TITLE)
        .max_pdu_length(config.max_pdu)
        .promiscuous(true)
        .strict(true);
    // Every transfer syntax the registry knows, including those whose pixel
    // data it cannot decode (JPEG 2000, JPEG-LS, video): stored as received.
    for ts in TransferSyntaxRegistry.iter() {
        options = options.with_transfer_syntax(ts.uid());
    }
    let established =
        tokio::time::timeout(config.establish_timeout, options.establish_async(socket)).await;
    let decision = decision.lock().expect("not poisoned").take();
    let mut association = match (established, decision) {
        (Ok(Ok(association)), Some(Decision::Accepted { org_id })) => (association, org_id),
        (Ok(Err(_)), Some(Decision::UnknownTitle { called })) => {
            tracing::warn!(%peer, called, "dicom: association rejected: called AE title not recognized");
            return;
        }
        (Ok(Err(_)), Some(Decision::PeerNotAllowed { org_id, calling })) => {
            tracing::warn!(%peer, org = %org_id, calling, "dicom: association rejected: sender not allowed");
            let delivery = dimse_delivery(org_id, calling, peer);
            ingest.audit(audit_event(
                &delivery,
                "dicom_association.open",
                None,
                AuditOutcome::Denied,
                403,
            ));
            return;
        }
        (Ok(Err(e)), _) => {
            tracing::info!(%peer, error = %e, "dicom: association not established");
            return;
        }
        (Err(_), _) => {
            tracing::info!(%peer, "dicom: no association request in time; connection closed");
            return;
        }
        (Ok(Ok(association)), _) => {
            tracing::error!(%peer, "dicom: association without an access decision; aborted");
            let _ = association.abort().await;
            return;
        }
    };
    let (assoc, org_id) = (&mut association.0, association.1);
    let delivery = dimse_delivery(org_id, assoc.peer_ae_title().trim().to_owned(), peer);
    ingest.audit(audit_event(
        &delivery,
        "dicom_association.open",
        None,
        AuditOutcome::Success,
        200,
    ));
    tracing::info!(%peer, org = %org_id, calling = assoc.peer_ae_title(), "dicom: association accepted");

    let ended = serve_requests(assoc, &ingest, &delivery, config).await;
    match ended {
        Ended::Released => {
            let _ = association.0.send(&Pdu::ReleaseRP).await;
        }
        Ended::Aborted | Ended::Closed => {}
        Ended::Abort(why) => {
            tracing::warn!(%peer, why, "dicom: association aborted");
            let _ = association.0.abort().await;
        }
    }
}

fn dimse_delivery(
    org_id: lightbox_domain::OrgId,
    calling_ae_title: String,
    peer: SocketAddr,
) -> Delivery {
    Delivery {
        org_id,
        source: DicomSource::Dimse {
            calling_ae_title,
            address: Some(peer.ip()),
        },
        expected_study: None,
    }
}

enum Ended {
    Released,
    /// The peer aborted.
    Aborted,
    Closed,
    /// We abort, for this reason.
    Abort(String),
}

async fn serve_requests(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    ingest: &Ingest,
    delivery: &Delivery,
    config: &ScpConfig,
) -> Ended {
    let deadline = Instant::now() + config.association_timeout;
    let mut assembler = Assembler::new();
    let mut pending: Option<Pending> = None;
    loop {
        let wait = config
            .idle_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        // Whatever was arriving when the association ends is dropped with `pending`.
        let pdu = match tokio::time::timeout(wait, receive(assoc)).await {
            Err(_) if Instant::now() >= deadline => {
                return Ended::Abort("association time limit".into())
            }
            Err(_) => return Ended::Abort("idle timeout".into()),
            Ok(Err(Failed::Socket(e))) => {
                tracing::info!(error = %e, "dicom: association ended");
                return Ended::Closed;
            }
            Ok(Err(Failed::Protocol(e))) => return Ended::Abort(e.to_string()),
            Ok(Ok(pdu)) => pdu,
        };
        let values = match pdu {
            Received::Data(values) => values,
            Received::Other(Pdu::ReleaseRQ) => return Ended::Released,
            Received::Other(Pdu::AbortRQ { .. }) => return Ended::Aborted,
            Received::Other(other) => {
                return Ended::Abort(
                    format!("unexpected PDU {other:?}")
                        .chars()
                        .take(120)
                        .collect(),
                )
            }
        };
        for value in values {
            let event = match assembler.push(value) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(e) => return Ended::Abort(e.to_string()),
            };
            match event {
                Event::Command {
                    context_id,
                    command,
                } => match start(assoc, ingest, delivery, context_id, command).await {
                    Ok(Some(next)) => pending = Some(next),
                    Ok(None) => {}
                    Err(why) => return Ended::Abort(why),
                },
                Event::Data { bytes, last, .. } => {
                    let Some(request) = pending.as_mut() else {
                        return Ended::Abort("data without a request".into());
                    };
                    if let Some(spool) = request.spool.as_mut() {
                        if let Err(e) = spool.write(&bytes).await {
                            tracing::error!(error = %e, "dicom: cannot spool an instance");
                            request.spool = None;
                            request.refusal = status::OUT_OF_RESOURCES;
                        }
                    }
                    if last {
                        let request = pending.take().expect("checked above");
                        let code = match request.spool {
                            Some(spool) => match ingest.finish(delivery, spool).await {
                                Ok(outcome) => outcome.status(),
                                Err(e) => e.status(),
                            },
                            None => request.refusal,
                        };
                        if let Err(e) =
                            respond(assoc, request.context_id, &request.command, code).await
                        {
                            return Ended::Abort(e);
                        }
                    }
                }
            }
        }
    }
}

/// Bytes asked of the socket at a time, at least.
const READ_AHEAD: usize = 64 * 1024;

enum Failed {
    Socket(std::io::Error),
    Protocol(pdu::PduError),
}

/// The next PDU, P-DATA split in place ([`pdu::take`]): dicom-ul's own
/// `receive` copies every byte twice on the way.
async fn receive(assoc: &mut AsyncServerAssociation<TcpStream>) -> Result<Received, Failed> {
    use tokio::io::AsyncReadExt as _;
    let max = assoc.acceptor_max_pdu_length();
    loop {
        let (socket, buffer) = assoc.get_mut();
        let wanted = match pdu::take(buffer, max) {
            Ok(Ok(received)) => return Ok(received),
            Ok(Err(wanted)) => wanted,
            Err(e) => return Err(Failed::Protocol(e)),
        };
        buffer.reserve(wanted.max(READ_AHEAD));
        match socket.read_buf(buffer).await {
            Ok(0) => {
                return Err(Failed::Socket(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(_) => {}
            Err(e) => return Err(Failed::Socket(e)),
        }
    }
}

/// Acts on a complete command: answers at once when no data set follows,
/// else returns the request its data will complete.
async fn start(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    ingest: &Ingest,
    delivery: &Delivery,
    context_id: u8,
    command: Command,
) -> Result<Option<Pending>, String> {
    if !command.has_data_set {
        let code = if command.field == field::C_ECHO_RQ {
            status::SUCCESS
        } else {
            status::UNRECOGNIZED_OPERATION
        };
        respond(assoc, context_id, &command, code).await?;
        return Ok(None);
    }
    let mut request = Pending {
        context_id,
        command,
        spool: None,
        refusal: status::UNRECOGNIZED_OPERATION,
    };
    if request.command.field != field::C_STORE_RQ {
        return Ok(Some(request));
    }
    let transfer_syntax = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.id == context_id && pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_owned());
    let (Some(ts), Some(class), Some(instance)) = (
        transfer_syntax,
        request.command.affected_sop_class_uid.clone(),
        request.command.affected_sop_instance_uid.clone(),
    ) else {
        request.refusal = status::CANNOT_UNDERSTAND;
        return Ok(Some(request));
    };
    let calling = match &delivery.source {
        DicomSource::Dimse {
            calling_ae_title, ..
        } => Some(calling_ae_title.clone()),
        DicomSource::Stow { .. } => None,
    };
    let meta = MetaInfo {
        sop_class_uid: class,
        sop_instance_uid: instance,
        transfer_syntax_uid: ts,
        source_ae_title: calling,
    };
    match ingest.spool(delivery, meta) {
        Ok(spool) => request.spool = Some(spool),
        Err(e) => {
            tracing::warn!(error = %e, "dicom: cannot start an instance");
            request.refusal = e.status();
        }
    }
    Ok(Some(request))
}

async fn respond(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    context_id: u8,
    command: &Command,
    code: u16,
) -> Result<(), String> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: command.response(code),
        }],
    };
    assoc
        .send(&pdu)
        .await
        .map_err(|e| format!("cannot answer: {e}"))
}
