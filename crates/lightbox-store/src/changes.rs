//! Study changes as they are written, for live views (the web worklist's
//! server-sent events).
//!
//! On SQLite there is one process, and an in-process channel is all there
//! is. On PostgreSQL, replicas share the database, so each change is also
//! sent with `pg_notify` on [`CHANNEL`], and a store that has live views
//! LISTENs there and passes on the changes other processes wrote (its own are
//! already in its channel). Lagging receivers lose old changes rather than
//! slow writers; so do all receivers of a replica while its LISTEN connection
//! is down (the worklist's reload-on-lag covers both).

use crate::{Dialect, Store};
use lightbox_domain::{OrgId, StudyId};
use sqlx::postgres::PgListener;
use sqlx::AnyPool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// A study was created or changed (fields, assignee, status, cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudyChange {
    Changed {
        org_id: OrgId,
        study_id: StudyId,
    },
    /// Changes may have been missed (another replica's, while this one's
    /// LISTEN connection was down): views should reload.
    Missed,
}

/// Changes buffered for a slow receiver before it starts missing some.
const BUFFER: usize = 1024;
/// The PostgreSQL notification channel; the payload is `origin org_id study_id`.
const CHANNEL: &str = "lightbox_study_changes";

pub(crate) struct Changes {
    tx: broadcast::Sender<StudyChange>,
    /// Tells this store's notifications from other processes' (random per store).
    origin: String,
    /// PostgreSQL: where to LISTEN; the listener starts with the first subscriber.
    listen_url: Option<String>,
    listening: OnceLock<()>,
}

impl Changes {
    pub(crate) fn new(listen_url: Option<&str>) -> Arc<Changes> {
        Arc::new(Changes {
            tx: broadcast::channel(BUFFER).0,
            origin: uuid::Uuid::new_v4().simple().to_string(),
            listen_url: listen_url.map(str::to_owned),
            listening: OnceLock::new(),
        })
    }
}

impl Store {
    /// Every study change committed from now on, all organizations: this
    /// process's, and on PostgreSQL every replica's.
    pub fn subscribe_study_changes(&self) -> broadcast::Receiver<StudyChange> {
        self.hear_other_replicas();
        self.changes.tx.subscribe()
    }

    /// On PostgreSQL, starts listening for other processes' changes (once;
    /// later calls do nothing). A server calls it at start, so the first
    /// subscriber misses nothing written while the LISTEN was being set up.
    pub fn hear_other_replicas(&self) {
        if let Some(url) = &self.changes.listen_url {
            self.changes.listening.get_or_init(|| {
                tokio::spawn(listen(url.clone(), self.changes.clone()));
            });
        }
    }

    /// Announces a committed change (nobody listening is fine).
    pub fn study_changed(&self, org_id: OrgId, study_id: &StudyId) {
        let _ = self.changes.tx.send(StudyChange::Changed {
            org_id,
            study_id: study_id.clone(),
        });
        if self.dialect == Dialect::Postgres {
            let payload = format!("{} {org_id} {study_id}", self.changes.origin);
            tokio::spawn(notify(self.write.clone(), payload));
        }
    }
}

async fn notify(pool: AnyPool, payload: String) {
    let sent = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(&payload)
        .execute(&pool)
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not tell other replicas of a study change");
    }
}

/// Passes other processes' changes on to this store's channel, reconnecting
/// (with a growing pause) whenever the connection drops.
async fn listen(url: String, changes: Arc<Changes>) {
    let mut pause = Duration::from_millis(250);
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    pause = Duration::from_millis(250);
                    // `try_recv` answers `None` when the connection was lost.
                    while let Ok(Some(note)) = listener.try_recv().await {
                        if let Some(change) = parse(note.payload(), &changes.origin) {
                            let _ = changes.tx.send(change);
                        }
                    }
                    tracing::warn!("lost the connection that hears other replicas' study changes");
                    let _ = changes.tx.send(StudyChange::Missed);
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for study changes"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect to hear study changes"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Another process's change from a notification payload (our own are skipped).
fn parse(payload: &str, own_origin: &str) -> Option<StudyChange> {
    let mut parts = payload.split(' ');
    let (origin, org, study) = (parts.next()?, parts.next()?, parts.next()?);
    if origin == own_origin {
        return None;
    }
    Some(StudyChange::Changed {
        org_id: OrgId::parse(org).ok()?,
        study_id: StudyId::parse(study).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_other_processes_become_changes() {
        let study = StudyId::generate();
        let org = OrgId::generate();
        let payload = format!("them {org} {study}");
        assert_eq!(
            parse(&payload, "us"),
            Some(StudyChange::Changed {
                org_id: org,
                study_id: study
            })
        );
        assert_eq!(parse(&payload, "them"), None);
        assert_eq!(parse("them garbage", "us"), None);
    }
}
