//! QIDO-RS query parameters (PS3.18 8.3.4): attribute matching by keyword or
//! tag, includefield, limit and offset, read into the store's query.
