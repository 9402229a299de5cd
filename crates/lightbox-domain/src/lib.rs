//! Lightbox's domain: identifiers, validation rules, models and errors.
//!
//! Nothing here performs I/O. The store persists these types, the API maps
//! them to each product's wire format.

pub mod audit;
pub mod credentials;
pub mod dicom;
pub mod ephemeral;
pub mod error;
pub mod ids;
pub mod image;
pub mod invitation;
pub mod pagination;
pub mod qido;
pub mod study;
pub mod time;
pub mod user;
pub mod validate;
pub mod webhook;

pub use error::{Error, Result};
pub use ids::{ApiKeyId, ImageId, OAuthClientId, OrgId, StudyId, UserId};
pub use time::Timestamp;
