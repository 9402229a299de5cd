//! The DIMSE receiver (C-ECHO and C-STORE SCP) on tokio.
//!
//! - One port for every organization: the called AE title picks the
//!   organization, checked while the association is negotiated (an unknown
//!   title gets A-ASSOCIATE-RJ, rejected-permanent, "called AE title not
//!   recognized"; a sender outside the organization's allow-list, "calling AE
//!   title not recognized").
//! - A semaphore bounds concurrent associations: a connection over the limit
//!   waits up to `establish_timeout` for a place, then is closed.
//! - Timeouts: `establish_timeout` (ARTIM) for the A-ASSOCIATE-RQ, `idle_timeout`
//!   between PDUs, `association_timeout` for a whole association. Past any of
//!   them the association is aborted, and an instance cut off mid-transfer is
//!   not indexed (its spool file is removed).
//! - Shutdown: stop accepting, then wait for the running associations.

mod association;

use crate::ingest::Ingest;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::AssociationRJServiceUserReason;
use lightbox_domain::dicom::DicomPeer;
use lightbox_domain::OrgId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The receiver's limits.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// The largest PDU we accept (we announce it; a larger one aborts the association).
    pub max_pdu: u32,
    /// Associations served at once.
    pub max_associations: usize,
    pub establish_timeout: Duration,
    pub idle_timeout: Duration,
    pub association_timeout: Duration,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            max_pdu: 116_794,
            max_associations: 64,
            establish_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            association_timeout: Duration::from_secs(3600),
        }
    }
}

/// One organization's route, as the access check sees it.
#[derive(Debug, Clone)]
struct Route {
    org_id: OrgId,
    peers: Vec<DicomPeer>,
}

/// Called AE title → route.
type RouteTable = Arc<HashMap<String, Route>>;

/// Called AE titles → organizations, loaded from the store and reused for a
/// second, so a title changed by `lightbox admin` (another process) is seen
/// by the next association.
#[derive(Clone)]
struct Routes {
    ingest: Ingest,
    cached: Arc<tokio::sync::Mutex<Option<(Instant, RouteTable)>>>,
}

const ROUTES_TTL: Duration = Duration::from_secs(1);

impl Routes {
    /// The routes, reloaded when older than a second or when they do not
    /// know `called` (an organization created a moment ago).
    async fn current(
        &self,
        called: Option<&str>,
    ) -> Result<RouteTable, lightbox_store::StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, routes)) = cached.as_ref() {
            let knows = called.is_none_or(|c| routes.contains_key(c));
            if at.elapsed() < ROUTES_TTL && knows {
                return Ok(routes.clone());
            }
        }
        let routes: HashMap<String, Route> = self
            .ingest
            .store()
            .dicom_routes()
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.ae_title.to_string(),
                    Route {
                        org_id: r.org_id,
                        peers: r.peers,
                    },
                )
            })
            .collect();
        let routes = Arc::new(routes);
        *cached = Some((Instant::now(), routes.clone()));
        Ok(routes)
    }
}

/// The access check for one connection: dicom-ul calls it synchronously
/// during negotiation, so it works on a snapshot of the routes and records
/// its decision for the association to read back.
struct Access {
    routes: RouteTable,
    peer: IpAddr,
    decision: Arc<Mutex<Option<Decision>>>,
}

#[derive(Debug, Clone)]
enum Decision {
    Accepted { org_id: OrgId },
    UnknownTitle { called: String },
    PeerNotAllowed { org_id: OrgId, calling: String },
}

impl AccessControl for Access {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&dicom_ul::pdu::UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let called = called_ae_title.trim();
        let (decision, result) = match self.routes.get(called) {
            None => (
                Decision::UnknownTitle {
                    called: called.to_owned(),
                },
                Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized),
            ),
            Some(route)
                if !route.peers.is_empty()
                    && !route
                        .peers
                        .iter()
                        .any(|p| p.admits(calling_ae_title, self.peer)) =>
            {
                (
                    Decision::PeerNotAllowed {
                        org_id: route.org_id,
                        calling: calling_ae_title.trim().to_owned(),
                    },
                    Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized),
                )
            }
            Some(route) => (
                Decision::Accepted {
                    org_id: route.org_id,
                },
                Ok(()),
            ),
        };
        *self.decision.lock().expect("not poisoned") = Some(decision);
        result
    }
}

/// The called AE title of the A-ASSOCIATE-RQ waiting on `socket`, read
/// without consuming it (PS3.8 9.3.2: bytes 10..26), so the access check can
/// use routes that know it. None when the first bytes are no such request.
async fn peek_called_title(socket: &tokio::net::TcpStream, wait: Duration) -> Option<String> {
    let mut head = [0u8; 26];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.peek(&mut head))
            .await
            .ok()?
            .ok()?;
        if n == 0 || head[0] != 0x01 {
            return None;
        }
        if n >= head.len() {
            let title = String::from_utf8_lossy(&head[10..26]).trim().to_owned();
            return Some(title);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serves associations on `listener` until `shutdown` resolves, then waits
/// for the associations in progress.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    config: ScpConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config = Arc::new(config);
    let routes = Routes {
        ingest: ingest.clone(),
        cached: Default::default(),
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_associations));
    let mut running = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "dicom: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Responses are small and awaited one by one: without TCP_NODELAY,
        // Nagle's algorithm and the peer's delayed ACK hold each ~40 ms.
        let _ = socket.set_nodelay(true);
        // Reap finished associations so the set stays small.
        while running.try_join_next().is_some() {}
        let (ingest, config, routes, permits) = (
            ingest.clone(),
            config.clone(),
            routes.clone(),
            permits.clone(),
        );
        running.spawn(async move {
            let permit =
                match tokio::time::timeout(config.establish_timeout, permits.acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        tracing::warn!(%peer, "dicom: too many associations; connection closed");
                        return;
                    }
                };
            association::run(socket, peer, ingest, routes, &config).await;
            drop(permit);
        });
    }
    tracing::info!(
        associations = running.len(),
        "dicom: waiting for associations to finish"
    );
    while running.join_next().await.is_some() {}
}
