//! Lightbox's DICOM archive: DIMSE in, STOW-RS's wire format, and the ingest
//! pipeline both feed. It uses the store and the blob store directly, never
//! the JSON API.
//!
//! # Layout
//! - `protocol`: bytes and messages only (no store, no blob, no sockets):
//!   command sets (`command`), PDVs reassembled into messages (`dimse`),
//!   and the statuses failures map to (`status`).
//! - `scp`: the C-ECHO / C-STORE receiver: accept loop, association limit,
//!   timeouts, the called-AE-title access check (`mod.rs`), and one
//!   association's request loop (`association`).
//! - `ingest`: shared by C-STORE and STOW, knowing neither: the spool file
//!   (`spool`), the walk over element headers that checks lengths and finds
//!   pixel data and frames (`layout`), what the index keeps (`attributes`),
//!   and the pipeline itself (`mod.rs`: spool → check → blob → the enrich
//!   hook, for a new study → index).
//! - `dicomweb`: DICOMweb wire formats for the HTTP handlers in
//!   `lightbox-api`: multipart/related in and out (`multipart`) and the
//!   STOW-RS response (`stow`).
//! - `render`: a stored Part 10 file's frame as a JPEG or PNG for people
//!   (WADO-RS rendered and thumbnails): pure, bytes in and bytes out.
//!
//! Dependencies run one way: `protocol` ← `scp` → `ingest` ← `dicomweb`;
//! `render` depends on none of them.

pub mod dicomweb;
pub mod ingest;
pub mod protocol;
pub mod render;
pub mod scp;

pub use ingest::{
    Delivery, EnrichHook, Incoming, Ingest, IngestConfig, IngestError, NewStudyQuery, Outcome,
};
pub use scp::{serve, ScpConfig};
