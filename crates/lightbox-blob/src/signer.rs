//! Short-lived signed links that carry their own authorization.
//!
//! A token is `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`. The
//! claims bind the link to one purpose, one organization and one subject (a
//! study, an object key), so a token minted for one thing opens nothing else.
//! The key is shared by every replica through the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// What the link is for, e.g. `study-view`; checked on use.
    pub purpose: String,
    pub org: String,
    pub subject: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Malformed, altered, signed with another key, or minted for another purpose.
    #[error("the link is not valid")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl UrlSigner {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        UrlSigner { key: key.into() }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        // Fields never contain '\n' (ids and a fixed purpose), so it separates them unambiguously.
        let payload = format!(
            "{}\n{}\n{}\n{}",
            claims.purpose, claims.org, claims.subject, claims.expires_at_ms
        );
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Checks the signature first (in constant time), then purpose and expiry.
    pub fn verify(&self, token: &str, purpose: &str, now_ms: i64) -> Result<Claims, SignError> {
        let (payload_b64, sig_b64) = token.split_once('.').ok_or(SignError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| SignError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| SignError::Invalid)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&sig).map_err(|_| SignError::Invalid)?;

        let payload = String::from_utf8(payload).map_err(|_| SignError::Invalid)?;
        let mut fields = payload.split('\n');
        let mut next = || fields.next().ok_or(SignError::Invalid);
        let claims = Claims {
            purpose: next()?.to_owned(),
            org: next()?.to_owned(),
            subject: next()?.to_owned(),
            expires_at_ms: next()?.parse().map_err(|_| SignError::Invalid)?,
        };
        if claims.purpose != purpose {
            return Err(SignError::Invalid);
        }
        if now_ms >= claims.expires_at_ms {
            return Err(SignError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            purpose: "study-view".into(),
            org: "org-1".into(),
            subject: "stu_1".into(),
            expires_at_ms: exp,
        }
    }

    #[test]
    fn genuine_tokens_verify_until_expiry() {
        let signer = UrlSigner::new(b"k".to_vec());
        let token = signer.sign(&claims(1_000));
        assert_eq!(signer.verify(&token, "study-view", 999), Ok(claims(1_000)));
        assert_eq!(
            signer.verify(&token, "study-view", 1_000),
            Err(SignError::Expired)
        );
    }

    #[test]
    fn altered_foreign_or_repurposed_tokens_fail() {
        let signer = UrlSigner::new(b"k".to_vec());
        let token = signer.sign(&claims(1_000));
        let (payload, sig) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("study-view\norg-1\nstu_2\n1000");
        for bad in [
            format!("{forged_payload}.{sig}"),
            format!("{payload}.{}", &sig[1..]),
            format!("{payload}x.{sig}"),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                signer.verify(&bad, "study-view", 0),
                Err(SignError::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            UrlSigner::new(b"other".to_vec()).verify(&token, "study-view", 0),
            Err(SignError::Invalid)
        );
        assert_eq!(
            signer.verify(&token, "blob-get", 0),
            Err(SignError::Invalid)
        );
    }
}
