//! Invitations: `POST /v1/viewer/users` creates a user and its invitation.

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, OrgId, UserId};
use crate::study::wire_enum;
use crate::time::Timestamp;
use crate::user::User;

crate::ids::prefixed_id!(
    /// An invitation (`inv_…`).
    InvitationId, "inv_", "invitationId"
);

wire_enum!(
    InvitationStatus, "status" { Sent = "sent", Accepted = "accepted", Rejected = "rejected", Revoked = "revoked" }
);
wire_enum!(
    InvitationExpiredFilter, "expired" { All = "all", Expired = "expired", NotExpired = "not-expired" }
);

/// How long an invitation sent through the API stays open.
pub const INVITATION_TTL_DAYS: i64 = 7;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub org_id: OrgId,
    /// The invited user as it is now; the invitation has no copy of its own.
    pub user: User,
    pub status: InvitationStatus,
    pub inviter_id: Option<UserId>,
    pub invited_by_api_key_id: Option<ApiKeyId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expiry: Option<Timestamp>,
}

impl Invitation {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// Only an open invitation (sent, not expired) may be edited or revoked.
    pub fn ensure_open(&self, now: Timestamp) -> Result<()> {
        if self.status != InvitationStatus::Sent {
            return Err(Error::Conflict(format!(
                "invitation {} is {}, not pending",
                self.id,
                self.status.as_str()
            )));
        }
        if self.is_expired(now) {
            return Err(Error::Conflict(format!(
                "invitation {} has expired",
                self.id
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct InvitationFilter {
    pub statuses: Vec<InvitationStatus>,
    pub expired: Option<InvitationExpiredFilter>,
    /// Created at or after this instant.
    pub created_from: Option<Timestamp>,
    /// Created before this instant.
    pub created_before: Option<Timestamp>,
    pub user_id: Option<UserId>,
}

/// Parses `YYYY-MM-DD` as the start of that day in UTC.
pub fn parse_date(field: &str, s: &str) -> Result<Timestamp> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Timestamp::from_millis(dt.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("{field} must be a date as YYYY-MM-DD, got `{s}`"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("d", "1970-01-02").unwrap().millis(), 86_400_000);
        for bad in [
            "2024-13-01",
            "2024-1-1",
            "yesterday",
            "2024-01-01T00:00:00Z",
        ] {
            assert!(parse_date("d", bad).is_err(), "{bad}");
        }
    }
}
