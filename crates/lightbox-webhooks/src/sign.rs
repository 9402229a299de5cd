//! Standard Webhooks v1 signatures: `v1,` + base64 HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}`, over the exact bytes sent.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// An endpoint's signing secret. Shown to the partner once as `whsec_` +
/// base64; its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// 24 random bytes: a multiple of 3, so the base64 has no padding that the
    /// SDKs' decoders might disagree on (32 characters).
    pub fn generate() -> SigningSecret {
        let mut bytes = vec![0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        SigningSecret(bytes)
    }

    /// Reads `whsec_…` (or bare base64), as the SDKs do.
    pub fn parse(text: &str) -> Option<SigningSecret> {
        let b64 = text.strip_prefix(PREFIX).unwrap_or(text);
        STANDARD
            .decode(b64)
            .ok()
            .filter(|b| !b.is_empty())
            .map(SigningSecret)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> SigningSecret {
        SigningSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text a partner configures: `whsec_` + base64.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one `v1,` entry per secret, space-separated
/// (during a rotation both the new and the old secret sign, so a receiver
/// holding either verifies).
pub fn signature_header(
    secrets: &[SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vector of the Standard Webhooks reference libraries.
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = secret.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn generated_secrets_round_trip_and_both_sign_during_a_rotation() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let shown = new.reveal();
        assert!(
            shown.starts_with("whsec_") && shown.len() == 6 + 32,
            "{shown}"
        );
        assert_eq!(SigningSecret::parse(&shown), Some(new.clone()));
        let header = signature_header(&[new.clone(), old.clone()], "whe_1", 1, b"{}");
        let entries: Vec<_> = header.split(' ').collect();
        assert_eq!(
            entries,
            [new.sign("whe_1", 1, b"{}"), old.sign("whe_1", 1, b"{}")]
        );
        assert_ne!(entries[0], entries[1]);
        assert!(!format!("{new:?}").contains(&shown[6..]));
        assert_eq!(SigningSecret::parse("whsec_"), None);
        assert_eq!(SigningSecret::parse("whsec_!!"), None);
    }
}
