//! What WADO-RS reads from the DICOM index: a study's or series' instances
//! with their stored metadata, blob keys and frame locations.

