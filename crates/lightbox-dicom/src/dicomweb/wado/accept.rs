//! Lenient `Accept` negotiation for WADO-RS: parameters quoted or not, in
//! any case, several ranges (or headers) with q-values, `*/*`. The first
//! range in order of preference that Lightbox can satisfy wins; none is 406.
//! No `Accept` at all means "whatever the server stores".

use super::{frame_media_type, is_decodable, is_native, EXPLICIT_LE, IMPLICIT_LE};
use crate::dicomweb::multipart::{split_unquoted, MediaType};

/// The media ranges of `Accept`, most preferred first (stable for equal
/// q-values); ranges with q=0 are left out. No or an empty header is `*/*`.
pub fn media_ranges(accept: Option<&str>) -> Vec<MediaType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return vec![MediaType::parse("*/*").expect("a media type")];
    };
    let mut ranges: Vec<(f32, MediaType)> = split_unquoted(accept, ',')
        .into_iter()
        .filter_map(MediaType::parse)
        .map(|m| {
            let q = m
                .param("q")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, m)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges.into_iter().map(|(_, m)| m).collect()
}

/// A transfer syntax to serve in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// The stored bytes, as they are.
    Stored,
    /// This transfer syntax (which may still be the stored one).
    Uid(String),
}

/// How to answer a study, series or instance retrieve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomChoice {
    /// False only for a single instance asked for as bare `application/dicom`.
    pub multipart: bool,
    pub syntax: Syntax,
}

/// Chooses how to serve Part 10 files: `multipart/related` with `type`
/// `application/dicom` (or none) and `transfer-syntax` absent or `*` (the
/// stored bytes) or one `can_produce` admits for every instance; `*/*`;
/// for a single instance also bare `application/dicom`.
pub fn negotiate_dicom(
    ranges: &[MediaType],
    single_instance: bool,
    can_produce: impl Fn(&str) -> bool,
) -> Option<DicomChoice> {
    for range in ranges {
        let multipart = match range.essence.as_str() {
            "*/*" | "multipart/*" => {
                return Some(DicomChoice {
                    multipart: true,
                    syntax: Syntax::Stored,
                })
            }
            "multipart/related" => {
                if !range
                    .param("type")
                    .is_none_or(|t| t.eq_ignore_ascii_case("application/dicom"))
                {
                    continue;
                }
                true
            }
            "application/dicom" if single_instance => false,
            _ => continue,
        };
        let syntax = match range.param("transfer-syntax") {
            None | Some("*") => Syntax::Stored,
            Some(ts) if can_produce(ts) => Syntax::Uid(ts.to_owned()),
            Some(_) => continue,
        };
        return Some(DicomChoice { multipart, syntax });
    }
    None
}

/// How frames (or pixel data as bulk data) are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSyntax {
    /// As stored: native pixel data as little-endian bytes, encapsulated
    /// pixel data as its fragments, in the stored transfer syntax.
    AsStored,
    /// Decoded to native little-endian samples (Explicit VR Little Endian).
    Decoded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameChoice {
    /// False only when one frame is asked for as a bare (single-part) type.
    pub multipart: bool,
    pub syntax: FrameSyntax,
    /// The media type of each part (and of the multipart's `type`).
    pub media_type: String,
    /// The transfer syntax each part is in.
    pub transfer_syntax: String,
}

impl FrameChoice {
    /// A part's `Content-Type`: cornerstone reads its `transfer-syntax`.
    pub fn part_content_type(&self) -> String {
        format!(
            "{}; transfer-syntax={}",
            self.media_type, self.transfer_syntax
        )
    }
}

/// Chooses how to serve frames of an instance stored in `stored`.
///
/// - `*/*`, `multipart/*` or `multipart/related` without `type`: as stored.
/// - `type=application/octet-stream`: with `transfer-syntax=*` as stored
///   (OHIF's header); with none or an uncompressed little-endian one,
///   native samples (decoded when the instance is compressed and Lightbox
///   can decode it); with the stored one, as stored.
/// - `type=image/jpeg` (and the other compressed frame types): as stored,
///   when that is the stored compression.
/// - The same types bare (not multipart) when one frame is asked for.
pub fn negotiate_frames(
    ranges: &[MediaType],
    stored: &str,
    single_frame: bool,
) -> Option<FrameChoice> {
    let native = is_native(stored);
    let as_stored = |media: Option<&str>| FrameChoice {
        multipart: true,
        syntax: FrameSyntax::AsStored,
        media_type: match (native, media) {
            (false, Some(media)) => media.to_owned(),
            _ => "application/octet-stream".to_owned(),
        },
        transfer_syntax: if native {
            EXPLICIT_LE.to_owned()
        } else {
            stored.to_owned()
        },
    };
    let decoded = || FrameChoice {
        multipart: true,
        syntax: if native {
            FrameSyntax::AsStored
        } else {
            FrameSyntax::Decoded
        },
        media_type: "application/octet-stream".to_owned(),
        transfer_syntax: EXPLICIT_LE.to_owned(),
    };
    for range in ranges {
        let (multipart, kind) = match range.essence.as_str() {
            "*/*" | "multipart/*" => return Some(as_stored(None)),
            "multipart/related" => (
                true,
                range
                    .param("type")
                    .unwrap_or("application/octet-stream")
                    .to_ascii_lowercase(),
            ),
            other if single_frame => (false, other.to_owned()),
            _ => continue,
        };
        let ts = range.param("transfer-syntax");
        let choice = match kind.as_str() {
            "application/octet-stream" | "application/*" | "*/*" => match ts {
                Some("*") => Some(as_stored(None)),
                None | Some(EXPLICIT_LE) | Some(IMPLICIT_LE) => {
                    (native || is_decodable(stored)).then(decoded)
                }
                Some(ts) if ts == stored => Some(as_stored(None)),
                Some(_) => None,
            },
            media => (frame_media_type(stored) == Some(media)
                && ts.is_none_or(|ts| ts == "*" || ts == stored))
            .then(|| as_stored(Some(media))),
        };
        if let Some(choice) = choice {
            return Some(FrameChoice {
                multipart,
                ..choice
            });
        }
    }
    None
}

/// Whether `Accept` admits DICOM JSON (`application/dicom+json`,
/// `application/json`, `application/*`, `*/*`).
pub fn accepts_json(ranges: &[MediaType]) -> bool {
    ranges.iter().any(|r| {
        matches!(
            r.essence.as_str(),
            "application/dicom+json" | "application/json" | "application/*" | "*/*"
        )
    })
}

/// Whether `Accept` admits a bulk data value other than pixel data as
/// `application/octet-stream` (in a multipart or bare); `Some(multipart)`.
pub fn negotiate_octets(ranges: &[MediaType]) -> Option<bool> {
    ranges.iter().find_map(|r| match r.essence.as_str() {
        "*/*" | "multipart/*" => Some(true),
        "multipart/related"
            if r.param("type").is_none_or(|t| {
                t.eq_ignore_ascii_case("application/octet-stream")
            }) =>
        {
            Some(true)
        }
        "application/octet-stream" | "application/*" => Some(false),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &str = "1.2.840.10008.1.2.4.50";
    const J2K: &str = "1.2.840.10008.1.2.4.90";

    fn dicom(accept: Option<&str>, single: bool) -> Option<DicomChoice> {
        negotiate_dicom(&media_ranges(accept), single, |ts| ts == IMPLICIT_LE)
    }

    #[test]
    fn retrieve_accept_is_read_leniently() {
        let stored = Some(DicomChoice {
            multipart: true,
            syntax: Syntax::Stored,
        });
        assert_eq!(dicom(None, false), stored);
        assert_eq!(dicom(Some(""), false), stored);
        assert_eq!(dicom(Some("*/*"), false), stored);
        assert_eq!(
            dicom(Some(r#"multipart/related; type="application/dicom""#), false),
            stored
        );
        assert_eq!(
            dicom(
                Some("Multipart/Related;Type=application/dicom;transfer-syntax=*"),
                false
            ),
            stored
        );
        assert_eq!(
            dicom(
                Some(r#"multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2""#),
                false
            ),
            Some(DicomChoice {
                multipart: true,
                syntax: Syntax::Uid(IMPLICIT_LE.into())
            })
        );
        // One that cannot be produced, then a fallback the client also takes.
        assert_eq!(
            dicom(
                Some(&format!(
                    "multipart/related; type=application/dicom; transfer-syntax={JPEG}, \
                     multipart/related; type=application/dicom; q=0.5"
                )),
                false
            ),
            stored
        );
        assert_eq!(
            dicom(
                Some(&format!(
                    "multipart/related; type=application/dicom; transfer-syntax={JPEG}"
                )),
                false
            ),
            None
        );
        assert_eq!(dicom(Some("application/json"), false), None);
        assert_eq!(dicom(Some("*/*; q=0"), false), None);
        assert_eq!(dicom(Some("application/dicom"), false), None);
        assert_eq!(
            dicom(Some("application/dicom"), true),
            Some(DicomChoice {
                multipart: false,
                syntax: Syntax::Stored
            })
        );
    }

    #[test]
    fn ohif_frames_get_the_stored_compression() {
        let ohif = media_ranges(Some(
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
        ));
        let choice = negotiate_frames(&ohif, JPEG, false).unwrap();
        assert_eq!(choice.syntax, FrameSyntax::AsStored);
        assert_eq!(
            choice.part_content_type(),
            format!("application/octet-stream; transfer-syntax={JPEG}")
        );
        // Native data is always served little endian, whatever the stored order.
        let choice = negotiate_frames(&ohif, "1.2.840.10008.1.2.2", false).unwrap();
        assert_eq!(choice.transfer_syntax, EXPLICIT_LE);
    }

    #[test]
    fn frames_without_a_transfer_syntax_are_uncompressed() {
        let plain = media_ranges(Some(r#"multipart/related; type="application/octet-stream""#));
        let choice = negotiate_frames(&plain, JPEG, false).unwrap();
        assert_eq!(choice.syntax, FrameSyntax::Decoded);
        assert_eq!(choice.transfer_syntax, EXPLICIT_LE);
        // JPEG 2000 cannot be decoded here: 406.
        assert_eq!(negotiate_frames(&plain, J2K, false), None);
        let as_jp2 = media_ranges(Some("multipart/related; type=image/jp2"));
        assert_eq!(
            negotiate_frames(&as_jp2, J2K, false)
                .unwrap()
                .part_content_type(),
            format!("image/jp2; transfer-syntax={J2K}")
        );
        assert_eq!(negotiate_frames(&as_jp2, JPEG, false), None);
        assert_eq!(
            negotiate_frames(&media_ranges(Some("image/png")), JPEG, true),
            None
        );
        let bare = negotiate_frames(
            &media_ranges(Some("application/octet-stream")),
            EXPLICIT_LE,
            true,
        )
        .unwrap();
        assert!(!bare.multipart);
        assert_eq!(
            negotiate_frames(
                &media_ranges(Some("application/octet-stream")),
                EXPLICIT_LE,
                false
            ),
            None
        );
    }

    #[test]
    fn metadata_and_bulk_types() {
        assert!(accepts_json(&media_ranges(None)));
        assert!(accepts_json(&media_ranges(Some("application/dicom+json"))));
        assert!(!accepts_json(&media_ranges(Some(
            "multipart/related; type=application/dicom+xml"
        ))));
        assert_eq!(
            negotiate_octets(&media_ranges(Some(
                "multipart/related; type=\"application/octet-stream\""
            ))),
            Some(true)
        );
        assert_eq!(
            negotiate_octets(&media_ranges(Some("application/octet-stream"))),
            Some(false)
        );
        assert_eq!(negotiate_octets(&media_ranges(Some("text/html"))), None);
    }
}
