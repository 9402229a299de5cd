//! The audit trail: one append-only event per access to protected data.
//! Events name who, what and how it went; never secrets, tokens or signed URLs.

use crate::ids::OrgId;
use crate::study::wire_enum;
use crate::time::Timestamp;

crate::ids::prefixed_id!(
    /// An audit event (`aud_…`); time-ordered like every id.
    AuditEventId, "aud_", "eventId"
);

wire_enum!(
    /// The kind of credential behind an action.
    ActorKind, "actorType" {
        ApiKey = "api_key",
        OAuthClient = "oauth_client",
        User = "user",
        SignedLink = "signed_link",
        Operator = "operator",
        DicomPeer = "dicom_peer",
    }
);

wire_enum!(
    /// How the action ended, from its HTTP status.
    Outcome, "outcome" {
        Success = "success",
        Denied = "denied",
        NotFound = "not_found",
        Invalid = "invalid",
        Conflict = "conflict",
        RateLimited = "rate_limited",
        Error = "error",
    }
);

impl Outcome {
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=399 => Outcome::Success,
            401 | 403 | 410 => Outcome::Denied,
            404 => Outcome::NotFound,
            409 => Outcome::Conflict,
            429 => Outcome::RateLimited,
            400..=499 => Outcome::Invalid,
            _ => Outcome::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub org_id: OrgId,
    pub occurred_at: Timestamp,
    pub actor_kind: ActorKind,
    /// The credential's id (API key, OAuth client, user); for a signed link,
    /// the id of what the link opens. Never a secret.
    pub actor_id: Option<String>,
    /// `resource.verb`, e.g. `study.read`, `study.search`, `image.update`, `blob.read`.
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// What an operator did from the command line (no request, no credential).
    pub fn by_operator(org_id: OrgId, action: &str, resource_id: Option<String>) -> AuditEvent {
        AuditEvent {
            id: AuditEventId::generate(),
            org_id,
            occurred_at: Timestamp::now(),
            actor_kind: ActorKind::Operator,
            actor_id: None,
            action: action.to_owned(),
            resource_type: resource_type(action),
            resource_id,
            outcome: Outcome::Success,
            status: 200,
            client_ip: None,
            request_id: None,
        }
    }
}

/// The resource type an action names: `study.read` → `study`.
pub fn resource_type(action: &str) -> Option<String> {
    action.split_once('.').map(|(kind, _)| kind.to_owned())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub resource_id: Option<String>,
    pub actor_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_status() {
        assert_eq!(Outcome::from_status(201), Outcome::Success);
        assert_eq!(Outcome::from_status(401), Outcome::Denied);
        assert_eq!(Outcome::from_status(404), Outcome::NotFound);
        assert_eq!(Outcome::from_status(422), Outcome::Invalid);
        assert_eq!(Outcome::from_status(429), Outcome::RateLimited);
        assert_eq!(Outcome::from_status(503), Outcome::Error);
    }
}
