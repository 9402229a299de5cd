//! DICOMweb's wire formats, for the HTTP handlers in `lightbox-api`:
//! multipart/related media types and Part 10 parts (`multipart`), and
//! STOW-RS's store-and-report loop and response (`stow`), and series
//! metadata kept whole in the blob store (`series_documents`).

pub mod multipart;
pub mod qido;
pub mod series_documents;
pub mod stow;
pub mod wado;
