//! WADO-RS wire formats: Accept negotiation, multipart/related responses,
//! metadata with BulkDataURIs, and the transfer syntaxes Lightbox can produce.
