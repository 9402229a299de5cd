//! Object storage and URL signing.

pub mod signer;

pub use signer::{Claims, SignError, UrlSigner};
