//! Object storage and URL signing.

pub mod signer;
pub mod store;

pub use signer::{Claims, SignError, UrlSigner};
pub use store::{BlobError, BlobStore, BlobStream, ListedBlob, LocalFiles, READ_BUFFER};
