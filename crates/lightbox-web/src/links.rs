//! The links that let a person set a password: an invitation's, and a reset
//! link from `lightbox admin reset-password`. Both are signed links (the
//! API's `UrlSigner` and key), so nothing about them is stored, and both work once:
//! an invitation link opens only while the invitation is pending (accepting
//! it marks it accepted), and a reset link is bound to the password hash it
//! was made for, so it stops working as soon as any password is set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lightbox_blob::{Claims, SignError, UrlSigner};
use lightbox_domain::invitation::Invitation;
use lightbox_domain::{OrgId, Timestamp, UserId};
use sha2::{Digest, Sha256};

pub const INVITE: &str = "web-invite";
pub const RESET: &str = "web-password-reset";

/// How long a reset link works.
pub const RESET_TTL_SECS: i64 = 24 * 3600;

/// The path of an invitation's link (`/ui/invite/…`), valid until the invitation expires.
pub fn invitation_path(signer: &UrlSigner, invitation: &Invitation) -> String {
    let expires = invitation
        .expiry
        .unwrap_or_else(|| Timestamp::now().plus_seconds(7 * 86_400));
    let token = signer.sign(&Claims {
        purpose: INVITE.into(),
        org: invitation.org_id.to_string(),
        subject: invitation.id.to_string(),
        expires_at_ms: expires.millis(),
    });
    format!("/ui/invite/{token}")
}

/// The path of a one-time reset link (`/ui/reset/…`) for a user whose
/// password hash is now `current_hash`.
pub fn reset_path(
    signer: &UrlSigner,
    org_id: OrgId,
    user_id: &UserId,
    current_hash: Option<&str>,
) -> String {
    let token = signer.sign(&Claims {
        purpose: RESET.into(),
        org: org_id.to_string(),
        subject: format!("{user_id}.{}", stamp(current_hash)),
        expires_at_ms: Timestamp::now().plus_seconds(RESET_TTL_SECS).millis(),
    });
    format!("/ui/reset/{token}")
}

/// A reset link's user and the stamp of the hash it was made for.
pub struct ResetClaims {
    pub org_id: OrgId,
    pub user_id: UserId,
    stamp: String,
}

impl ResetClaims {
    /// Whether the user's password is still the one the link was made for.
    pub fn is_current(&self, hash: Option<&str>) -> bool {
        self.stamp == stamp(hash)
    }
}

pub fn verify_reset(signer: &UrlSigner, token: &str) -> Result<ResetClaims, SignError> {
    let claims = signer.verify(token, RESET, Timestamp::now().millis())?;
    let org_id = OrgId::parse(&claims.org).map_err(|_| SignError::Invalid)?;
    let (user, stamp) = claims.subject.split_once('.').ok_or(SignError::Invalid)?;
    Ok(ResetClaims {
        org_id,
        user_id: UserId::parse(user).map_err(|_| SignError::Invalid)?,
        stamp: stamp.to_owned(),
    })
}

/// A short digest of a password hash: the link names no part of the hash itself.
fn stamp(hash: Option<&str>) -> String {
    let digest = Sha256::digest(hash.unwrap_or("no password").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}
