//! Passwords: the rules a new one must meet, and argon2id hashing.
//!
//! NIST SP 800-63B's advice: a minimum length, no composition rules, and a
//! check against passwords known to be common. zxcvbn holds the common-password
//! and dictionary lists and also catches keyboard walks and repeats.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

pub const MIN_LENGTH: usize = 12;
/// Long enough for any passphrase; bounds the hashing work a request can ask for.
pub const MAX_LENGTH: usize = 256;

/// Why a new password is refused, in words for the person choosing it.
pub fn check_new(password: &str, email: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!(
            "Use at least {MIN_LENGTH} characters (this one has {length})."
        ));
    }
    if length > MAX_LENGTH {
        return Err(format!("Use at most {MAX_LENGTH} characters."));
    }
    let local_part = email.split('@').next().unwrap_or_default();
    // zxcvbn scores 0-4; below 3 the password is common, a dictionary word with
    // small changes, or guessable from the e-mail address.
    match zxcvbn::zxcvbn(password, &[local_part, email]).score() as u8 {
        0..=2 => Err(
            "This password is too common or too easy to guess. Try a few unrelated words.".into(),
        ),
        _ => Ok(()),
    }
}

/// An argon2id PHC string (salt and parameters included).
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches the stored hash (false for a malformed hash).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the time of one verification, so that an unknown e-mail address or
/// an account without a password answers as slowly as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a password anyone has"));
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_common_passwords_are_refused() {
        assert!(check_new("short", "a@b.org").unwrap_err().contains("12"));
        for common in [
            "password1234",
            "123456789012",
            "qwertyuiopas",
            "aliceexample2024",
        ] {
            assert!(
                check_new(common, "aliceexample@example.org").is_err(),
                "{common} was accepted"
            );
        }
        assert!(check_new("correct horse battery staple", "a@b.org").is_ok());
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("correct horse battery staple");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapler", &stored));
        assert!(!verify("anything", "not a hash"));
    }
}
