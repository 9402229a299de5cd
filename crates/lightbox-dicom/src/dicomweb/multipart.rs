//! `multipart/related` as DICOMweb uses it: parsing the request's media type
//! (parameters quoted or not, any case: Python's dicomweb-client quotes
//! `type` and `boundary`), and reading the file meta at the head of a Part 10
//! part without holding more of it than the meta.

use crate::ingest::spool::MetaInfo;
use dicom_object::meta::FileMetaTable;

/// A parsed media type: `type/subtype` lowercased, and its parameters
/// (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(value: &str) -> Option<MediaType> {
        let mut pieces = split_unquoted(value, ';').into_iter();
        let essence = pieces.next()?.trim().to_ascii_lowercase();
        if !essence.contains('/') {
            return None;
        }
        let params = pieces
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name.trim().to_ascii_lowercase(), value.to_owned()))
            })
            .collect();
        Some(MediaType { essence, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on `sep` outside double quotes.
pub fn split_unquoted(value: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            pieces.push(&value[start..i]);
            start = i + c.len_utf8();
        }
    }
    pieces.push(&value[start..]);
    pieces
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelatedError {
    #[error("expected multipart/related; type=\"application/dicom\", got `{0}`")]
    Unsupported(String),
    #[error("the multipart/related media type has no boundary")]
    NoBoundary,
}

/// The boundary of a `multipart/related` body of DICOM parts. A `type`
/// other than `application/dicom` is unsupported (415); a missing one is
/// taken as DICOM.
pub fn related_dicom_boundary(content_type: Option<&str>) -> Result<String, RelatedError> {
    let raw = content_type.unwrap_or("");
    let media = MediaType::parse(raw).ok_or_else(|| RelatedError::Unsupported(raw.to_owned()))?;
    if media.essence != "multipart/related" {
        return Err(RelatedError::Unsupported(raw.to_owned()));
    }
    if let Some(kind) = media.param("type") {
        if !kind.eq_ignore_ascii_case("application/dicom") {
            return Err(RelatedError::Unsupported(raw.to_owned()));
        }
    }
    match media.param("boundary") {
        Some(b) if !b.is_empty() && b.len() <= 200 => Ok(b.to_owned()),
        _ => Err(RelatedError::NoBoundary),
    }
}

/// The most of a part read before its file meta must be complete.
pub const MAX_META_BYTES: usize = 64 * 1024;

/// The head of a Part 10 file: its meta and where the data set starts.
#[derive(Debug, Clone)]
pub struct Part10Head {
    pub meta: MetaInfo,
    pub data_start: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("not a DICOM Part 10 file (no `DICM` prefix)")]
    NotPart10,
    #[error("the file meta is unreadable: {0}")]
    BadMeta(String),
}

/// Reads the file meta at the start of `head`; `Ok(None)` when more bytes
/// are needed (and `complete` is false). A 128-byte preamble is optional.
pub fn part10_head(head: &[u8], complete: bool) -> Result<Option<Part10Head>, HeadError> {
    let need_more = |len: usize| -> Result<Option<Part10Head>, HeadError> {
        if complete || len > MAX_META_BYTES + 132 {
            Err(HeadError::BadMeta("the file ends inside its meta".into()))
        } else {
            Ok(None)
        }
    };
    let magic_at = if head.len() >= 132 && &head[128..132] == b"DICM" {
        128
    } else if head.starts_with(b"DICM") {
        0
    } else if head.len() < 132 && !complete {
        return Ok(None);
    } else {
        return Err(HeadError::NotPart10);
    };
    let meta_at = magic_at + 4;
    // (0002,0000) UL, explicit VR little endian: 8 bytes of header, 4 of value.
    if head.len() < meta_at + 12 {
        return need_more(head.len());
    }
    let group = &head[meta_at..meta_at + 12];
    if group[..6] != [0x02, 0x00, 0x00, 0x00, b'U', b'L'] {
        return Err(HeadError::BadMeta(
            "it does not start with its group length".into(),
        ));
    }
    let length = u32::from_le_bytes([group[8], group[9], group[10], group[11]]) as usize;
    if length > MAX_META_BYTES {
        return Err(HeadError::BadMeta(format!("a file meta of {length} bytes")));
    }
    let data_start = meta_at + 12 + length;
    if head.len() < data_start {
        return need_more(head.len());
    }
    let table = FileMetaTable::from_reader(&head[magic_at..data_start])
        .map_err(|e| HeadError::BadMeta(e.to_string()))?;
    let clean = |s: &str| s.trim_end_matches(['\0', ' ']).to_owned();
    Ok(Some(Part10Head {
        meta: MetaInfo {
            sop_class_uid: clean(table.media_storage_sop_class_uid()),
            sop_instance_uid: clean(table.media_storage_sop_instance_uid()),
            transfer_syntax_uid: clean(table.transfer_syntax()),
            source_ae_title: table.source_application_entity_title().map(clean),
        },
        data_start,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_unquoted_parameters_are_read() {
        for header in [
            r#"multipart/related; type="application/dicom"; boundary="abc;def""#,
            "Multipart/Related;type=application/dicom;boundary=abc;def",
        ] {
            let boundary = related_dicom_boundary(Some(header));
            if header.contains('"') {
                assert_eq!(boundary.unwrap(), "abc;def");
            } else {
                assert_eq!(boundary.unwrap(), "abc");
            }
        }
        assert_eq!(
            related_dicom_boundary(Some("multipart/related; boundary=x")).unwrap(),
            "x"
        );
    }

    #[test]
    fn other_media_types_are_unsupported() {
        assert!(matches!(
            related_dicom_boundary(Some("application/json")),
            Err(RelatedError::Unsupported(_))
        ));
        assert!(matches!(
            related_dicom_boundary(Some(
                r#"multipart/related; type="application/dicom+json"; boundary=x"#
            )),
            Err(RelatedError::Unsupported(_))
        ));
        assert!(matches!(
            related_dicom_boundary(None),
            Err(RelatedError::Unsupported(_))
        ));
        assert_eq!(
            related_dicom_boundary(Some("multipart/related; type=application/dicom")),
            Err(RelatedError::NoBoundary)
        );
    }

    fn part10(preamble: bool) -> Vec<u8> {
        let table = dicom_object::meta::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap();
        let mut bytes = if preamble { vec![0u8; 128] } else { Vec::new() };
        bytes.extend_from_slice(b"DICM");
        table.write(&mut bytes).unwrap();
        bytes.extend_from_slice(b"DATASET");
        bytes
    }

    #[test]
    fn the_meta_is_read_with_or_without_a_preamble() {
        for preamble in [true, false] {
            let bytes = part10(preamble);
            let head = part10_head(&bytes, true).unwrap().unwrap();
            assert_eq!(&bytes[head.data_start..], b"DATASET");
            assert_eq!(head.meta.sop_instance_uid, "1.2.3.4");
            assert_eq!(head.meta.transfer_syntax_uid, "1.2.840.10008.1.2.1");
            // Cut short, it asks for more; complete but short, it fails.
            assert_eq!(
                part10_head(&bytes[..140], false)
                    .unwrap()
                    .map(|h| h.data_start),
                None
            );
            assert!(part10_head(&bytes[..140], true).is_err());
        }
        assert_eq!(
            part10_head(&[b'x'; 300], false).unwrap_err(),
            HeadError::NotPart10
        );
    }
}
