//! Signing secrets at rest. A signing secret cannot be hashed (Lightbox
//! needs it to sign), so the database holds it sealed with XChaCha20-Poly1305
//! under the webhook secret key from configuration, never in clear. The
//! endpoint id is the associated data: a sealed secret copied onto another
//! endpoint does not open.

use crate::send::Destination;
use crate::sign::SigningSecret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lightbox_domain::Timestamp;
use lightbox_store::WebhookEndpoint;
use rand::RngCore;

const VERSION: &str = "x1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "the webhook secret key must be 32 bytes, as 64 hex digits or base64 \
         (e.g. `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error("a stored webhook secret does not open with the configured webhook secret key")]
    WrongKey,
}

/// The key that seals signing secrets (`--webhook-secret-key`). Every replica
/// and the admin CLI need the same one; losing it means rotating every
/// endpoint's secret.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// 32 bytes as 64 hex digits or (padded or not) base64.
    pub fn parse(text: &str) -> Result<SecretKey, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SealError::BadKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| SealError::BadKey)?
        };
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        Ok(SecretKey(
            XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SealError::BadKey)?,
        ))
    }

    /// `x1:` + base64(nonce ‖ ciphertext), bound to `context`.
    pub fn seal(&self, secret: &SigningSecret, context: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encrypting a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<SigningSecret, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > 24)
            .ok_or(SealError::WrongKey)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(SigningSecret::from_bytes)
            .map_err(|_| SealError::WrongKey)
    }
}

/// Where to send `endpoint`'s events and the secrets that sign them now: the
/// current one, and the previous one while its rotation overlap lasts.
pub fn destination(key: &SecretKey, endpoint: &WebhookEndpoint) -> Result<Destination, SealError> {
    let ctx = context(endpoint.id.as_str());
    let mut secrets = vec![key.open(&endpoint.secret_sealed, &ctx)?];
    if let Some((sealed, until)) = &endpoint.previous_secret {
        if Timestamp::now() < *until {
            secrets.push(key.open(sealed, &ctx)?);
        }
    }
    Ok(Destination {
        url: endpoint.url.clone(),
        secrets,
    })
}

/// The associated data of an endpoint's secrets (current and previous).
pub fn context(endpoint_id: &str) -> String {
    format!("lightbox webhook {endpoint_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = SecretKey::parse(&"ab".repeat(32)).unwrap();
        let other = SecretKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let secret = SigningSecret::generate();
        let sealed = key.seal(&secret, "whk_1 current");
        assert!(!sealed.contains(&secret.reveal()[6..]));
        assert_eq!(key.open(&sealed, "whk_1 current").unwrap(), secret);
        assert!(key.open(&sealed, "whk_2 current").is_err());
        assert!(other.open(&sealed, "whk_1 current").is_err());
        assert!(key.open("x1:AAAA", "whk_1 current").is_err());
        assert_ne!(
            key.seal(&secret, "c"),
            key.seal(&secret, "c"),
            "fresh nonce each time"
        );
        for bad in ["", "short", &"ab".repeat(31)] {
            assert!(SecretKey::parse(bad).is_err(), "{bad}");
        }
    }
}
