//! Pre-encounter images: insurance-card and patient photos or scans, with
//! their metadata versioned for optimistic concurrency.

use crate::error::{Error, Result};
use crate::ids::{ImageId, OrgId};
use crate::study::wire_enum;
use crate::time::Timestamp;
use crate::validate;
use uuid::Uuid;

wire_enum!(
    /// Where the image's bytes are, as the client reports it.
    ImageStatus, "status" { Pending = "PENDING", Uploaded = "UPLOADED", Failed = "FAILED" }
);
wire_enum!(
    /// Which side of an insurance card an image shows.
    CoverageImageSide, "side" { Front = "FRONT", Back = "BACK" }
);
wire_enum!(
    /// Sort keys of the image search; camelCase on the wire.
    ImageSortField, "sort_field" {
        UpdatedAt = "updatedAt", FileName = "fileName", DisplayName = "displayName",
        FileType = "fileType", Status = "status",
    }
);
wire_enum!(
    SortDirection, "sort_direction" { Asc = "asc", Desc = "desc" }
);

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_FILE_TYPE_CHARS: usize = 127;
pub const MAX_PATIENT_ID_CHARS: usize = 128;
pub const MAX_NOTES_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageAssociation {
    pub id: Uuid,
    pub side: CoverageImageSide,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientAssociation {
    /// Lightbox does not host patients: the id is kept as an opaque string.
    pub id: String,
    pub notes: Option<String>,
}

/// The fields a client sets, on create and (in full) on every update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableImage {
    pub file_name: String,
    pub display_name: String,
    pub file_type: String,
    pub status: ImageStatus,
    pub coverage: Option<CoverageAssociation>,
    pub patient: Option<PatientAssociation>,
}

impl MutableImage {
    pub fn validate(&self) -> Result<()> {
        validate::required_text("file_name", &self.file_name, MAX_NAME_CHARS)?;
        validate::required_text("display_name", &self.display_name, MAX_NAME_CHARS)?;
        validate::required_text("file_type", &self.file_type, MAX_FILE_TYPE_CHARS)?;
        if let Some(patient) = &self.patient {
            validate::required_text("patient.id", &patient.id, MAX_PATIENT_ID_CHARS)?;
            if let Some(notes) = &patient.notes {
                validate::bounded_text("patient.notes", notes, MAX_NOTES_CHARS)?;
            }
        }
        Ok(())
    }
}

/// The stored bytes of an image, once an upload has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Object key in the blob store.
    pub key: String,
    pub size: i64,
    /// The media type the bytes were recognised as (not the client's claim).
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub org_id: OrgId,
    pub id: ImageId,
    pub version: i64,
    pub fields: MutableImage,
    pub deactivated: bool,
    pub updated_at: Timestamp,
    pub updating_user_id: String,
    /// Random per image: binds upload links, and names the upload object.
    pub upload_nonce: String,
    pub blob: Option<StoredBlob>,
}

impl Image {
    /// Whether the image's link should let the client upload bytes: once only,
    /// and only while the image is waiting for them.
    pub fn accepts_upload(&self) -> bool {
        self.blob.is_none() && self.fields.status == ImageStatus::Pending && !self.deactivated
    }
}

/// Exact-match filters of the image search, AND-combined.
#[derive(Debug, Clone, Default)]
pub struct ImageFilter {
    pub patient_id: Option<String>,
    pub coverage_id: Option<Uuid>,
    pub file_type: Option<String>,
    pub patient_notes: Option<String>,
}

/// A version conflict: the caller's version is not the stored one.
pub fn stale_version(id: &ImageId, given: i64, latest: i64) -> Error {
    Error::VersionConflict {
        message: format!("image {id} is at version {latest}, not {given}: read it again and retry"),
        latest_version: Some(latest),
    }
}

/// A media type Lightbox can verify by content, and how a `file_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Heif,
    Tiff,
    Bmp,
}

impl FileKind {
    /// Reads a `file_type` given as a media type (`image/png`, parameters ignored)
    /// or a bare extension (`png`, `.jpg`). `None`: a type Lightbox cannot verify.
    pub fn from_file_type(file_type: &str) -> Option<FileKind> {
        let t = file_type.split(';').next().unwrap_or("").trim();
        let t = t.to_ascii_lowercase();
        let t = t.trim_start_matches('.');
        Some(match t {
            "image/png" | "png" => FileKind::Png,
            "image/jpeg" | "image/jpg" | "image/pjpeg" | "jpeg" | "jpg" => FileKind::Jpeg,
            "image/gif" | "gif" => FileKind::Gif,
            "image/webp" | "webp" => FileKind::Webp,
            "application/pdf" | "pdf" => FileKind::Pdf,
            "image/heic"
            | "image/heif"
            | "image/heic-sequence"
            | "image/heif-sequence"
            | "heic"
            | "heif" => FileKind::Heif,
            "image/tiff" | "tiff" | "tif" => FileKind::Tiff,
            "image/bmp" | "bmp" => FileKind::Bmp,
            _ => return None,
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            FileKind::Png => "image/png",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Gif => "image/gif",
            FileKind::Webp => "image/webp",
            FileKind::Pdf => "application/pdf",
            FileKind::Heif => "image/heif",
            FileKind::Tiff => "image/tiff",
            FileKind::Bmp => "image/bmp",
        }
    }

    /// Bytes needed from the start of a file to recognise any kind.
    pub const SNIFF_LEN: usize = 16;

    /// Recognises a file by its first bytes (at least [`Self::SNIFF_LEN`] of
    /// them unless the file is shorter).
    pub fn sniff(head: &[u8]) -> Option<FileKind> {
        let starts = |magic: &[u8]| head.starts_with(magic);
        if starts(b"\x89PNG\r\n\x1a\n") {
            Some(FileKind::Png)
        } else if starts(&[0xFF, 0xD8, 0xFF]) {
            Some(FileKind::Jpeg)
        } else if starts(b"GIF87a") || starts(b"GIF89a") {
            Some(FileKind::Gif)
        } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
            Some(FileKind::Webp)
        } else if starts(b"%PDF-") {
            Some(FileKind::Pdf)
        } else if head.get(4..8) == Some(b"ftyp")
            && head.get(8..12).is_some_and(|brand| {
                [
                    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif",
                ]
                .iter()
                .any(|b| brand == *b)
            })
        {
            Some(FileKind::Heif)
        } else if starts(b"II*\0") || starts(b"MM\0*") {
            Some(FileKind::Tiff)
        } else if starts(b"BM") && head.len() >= 14 {
            Some(FileKind::Bmp)
        } else {
            None
        }
    }
}

/// Parses a coverage id: the SDK types it as a UUID, so anything else is refused.
pub fn parse_coverage_id(field: &str, s: &str) -> Result<Uuid> {
    Uuid::try_parse(s).map_err(|_| Error::invalid(field, format!("{field}: `{s}` is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_and_magic_bytes() {
        assert_eq!(FileKind::from_file_type("image/PNG"), Some(FileKind::Png));
        assert_eq!(FileKind::from_file_type(".jpg"), Some(FileKind::Jpeg));
        assert_eq!(
            FileKind::from_file_type("application/pdf; charset=binary"),
            Some(FileKind::Pdf)
        );
        assert_eq!(FileKind::from_file_type("text/plain"), None);
        assert_eq!(
            FileKind::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(FileKind::Png)
        );
        assert_eq!(
            FileKind::sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Some(FileKind::Jpeg)
        );
        assert_eq!(
            FileKind::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(FileKind::Webp)
        );
        assert_eq!(
            FileKind::sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some(FileKind::Heif)
        );
        assert_eq!(FileKind::sniff(b"%PDF-1.7\n"), Some(FileKind::Pdf));
        assert_eq!(FileKind::sniff(b"GIF89a"), Some(FileKind::Gif));
        assert_eq!(FileKind::sniff(b"hello world"), None);
        assert_eq!(FileKind::sniff(b""), None);
    }
}
