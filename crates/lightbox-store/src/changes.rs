//! Study changes as they are written, for live views (the web worklist's
//! server-sent events). In this process only: a change written by another
//! replica is not seen here (PostgreSQL LISTEN/NOTIFY would carry it across).
//! Lagging receivers lose old changes rather than slow writers.

use crate::Store;
use lightbox_domain::{OrgId, StudyId};
use tokio::sync::broadcast;

/// A study was created or changed (fields, assignee, status, cancellation).
#[derive(Debug, Clone)]
pub struct StudyChange {
    pub org_id: OrgId,
    pub study_id: StudyId,
}

/// Changes buffered for a slow receiver before it starts missing some.
const BUFFER: usize = 1024;

pub(crate) fn channel() -> broadcast::Sender<StudyChange> {
    broadcast::channel(BUFFER).0
}

impl Store {
    /// Every study change committed through this store from now on, all organizations.
    pub fn subscribe_study_changes(&self) -> broadcast::Receiver<StudyChange> {
        self.changes.subscribe()
    }

    /// Announces a committed change (nobody listening is fine).
    pub fn study_changed(&self, org_id: OrgId, study_id: &StudyId) {
        let _ = self.changes.send(StudyChange {
            org_id,
            study_id: study_id.clone(),
        });
    }
}
