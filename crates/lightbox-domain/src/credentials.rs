//! Credentials: how API keys and OAuth client secrets look, and how they are
//! stored. Only a SHA-256 digest of each secret is ever persisted; the secrets
//! are 256-bit random values, so a fast hash is enough (no password stretching
//! needed) and lookups stay cheap.

use crate::ids::ApiKeyId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const API_KEY_PREFIX: &str = "lbk_";
const CLIENT_SECRET_PREFIX: &str = "lbs_";

/// 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a secret: what the store keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares a presented secret with a stored digest in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A freshly minted API key: the full token is shown once, the digest is stored.
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub token: String,
    pub secret_hash: String,
}

impl NewApiKey {
    pub fn generate() -> Self {
        let id = ApiKeyId::generate();
        let secret = random_secret();
        let token = format!("{API_KEY_PREFIX}{}_{secret}", id.uuid().simple());
        NewApiKey {
            id,
            token,
            secret_hash: hash_secret(&secret),
        }
    }
}

/// Splits a presented API key `lbk_<32 hex key id>_<secret>` into its id and secret.
/// The id lets the store find the key by primary key; the secret is then checked
/// against the stored digest.
pub fn parse_api_key(token: &str) -> Option<(ApiKeyId, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (hex, secret) = (rest.get(..32)?, rest.get(32..)?.strip_prefix('_')?);
    if secret.is_empty() {
        return None;
    }
    let uuid = Uuid::try_parse(hex).ok()?;
    Some((ApiKeyId::parse(&uuid.to_string()).ok()?, secret))
}

/// A freshly minted OAuth client secret.
pub struct NewClientSecret {
    pub secret: String,
    pub secret_hash: String,
}

impl NewClientSecret {
    pub fn generate() -> Self {
        let secret = format!("{CLIENT_SECRET_PREFIX}{}", random_secret());
        let secret_hash = hash_secret(&secret);
        NewClientSecret {
            secret,
            secret_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_round_trips_and_verifies() {
        let key = NewApiKey::generate();
        let (id, secret) = parse_api_key(&key.token).expect("parses");
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.secret_hash));
        assert!(!secret_matches("wrong", &key.secret_hash));
        assert!(!key.token.contains(&key.secret_hash));
    }

    #[test]
    fn malformed_api_keys_are_rejected() {
        for bad in [
            "",
            "lbk_",
            "lbk_xyz",
            "Bearer x",
            "lbk_0123456789abcdef0123456789abcdef_",
            "lbk_0123456789abcdef0123456789abcdefXsecret",
        ] {
            assert!(parse_api_key(bad).is_none(), "{bad} parsed");
        }
    }
}
