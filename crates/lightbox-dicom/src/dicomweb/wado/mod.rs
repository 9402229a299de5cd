//! WADO-RS wire formats: lenient `Accept` negotiation (`accept`), stored
//! DICOM JSON served with resolvable BulkDataURIs (`metadata`), where a
//! frame lies in a stored file and how its bytes become little endian
//! (`frames`), and the decoding and transcoding done when the stored form is
//! not what was asked for (`transcode`, blocking: call it off the runtime).
//!
//! Dependencies run one way: `accept` and `frames` are pure; `transcode`
//! uses `frames` for the arithmetic of native pixel data.

pub mod accept;
pub mod frames;
pub mod metadata;
pub mod transcode;

/// Explicit VR Little Endian: what native frames are served as.
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Whether pixel data in this transfer syntax is native (not encapsulated).
/// Deflated data sets hold native pixel data once inflated.
pub fn is_native(transfer_syntax: &str) -> bool {
    matches!(
        transfer_syntax,
        EXPLICIT_LE | IMPLICIT_LE | EXPLICIT_BE | DEFLATED
    )
}

/// Whether Lightbox can decode this transfer syntax's pixel data (pure
/// Rust, dicom-pixeldata's `native` features): native, deflated, RLE
/// Lossless and the JPEG processes jpeg-decoder handles. JPEG 2000, JPEG-LS,
/// HTJ2K, JPEG XL and video are served as stored only.
pub fn is_decodable(transfer_syntax: &str) -> bool {
    is_native(transfer_syntax)
        || matches!(
            transfer_syntax,
            "1.2.840.10008.1.2.5"
                | "1.2.840.10008.1.2.4.50"
                | "1.2.840.10008.1.2.4.51"
                | "1.2.840.10008.1.2.4.57"
                | "1.2.840.10008.1.2.4.70"
        )
}

/// The transfer syntaxes Lightbox writes when asked for another than the
/// stored one: the uncompressed little-endian ones and Deflated. Lossy
/// re-encoding (JPEG baseline) is not offered: it would silently degrade a
/// diagnostic image.
pub fn is_producible(transfer_syntax: &str) -> bool {
    matches!(transfer_syntax, EXPLICIT_LE | IMPLICIT_LE | DEFLATED)
}

/// Whether an instance stored in `stored` (with `bits_allocated`) can be
/// served in `wanted`: the stored syntax itself, or a producible one when
/// its pixel data can be decoded (dicom-pixeldata decodes 8- and 16-bit
/// samples into native pixel data; native sources need no decoding).
pub fn can_serve_as(stored: &str, bits_allocated: Option<i64>, wanted: &str) -> bool {
    if stored == wanted {
        return true;
    }
    if !is_producible(wanted) || !is_decodable(stored) {
        return false;
    }
    is_native(stored) || bits_allocated.is_none_or(|b| b == 8 || b == 16)
}

/// The media type a compressed transfer syntax's frames have (PS3.18
/// table 8.7.3-2); None for native ones (`application/octet-stream`).
pub fn frame_media_type(transfer_syntax: &str) -> Option<&'static str> {
    Some(match transfer_syntax {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "image/jphc"
        }
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => {
            "image/jxl"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_can_be_served_in_which_syntax() {
        let jpeg = "1.2.840.10008.1.2.4.50";
        let j2k = "1.2.840.10008.1.2.4.90";
        assert!(can_serve_as(j2k, Some(16), j2k));
        assert!(!can_serve_as(j2k, Some(16), EXPLICIT_LE));
        assert!(can_serve_as(jpeg, Some(8), EXPLICIT_LE));
        assert!(!can_serve_as(jpeg, Some(8), "1.2.840.10008.1.2.4.70"));
        assert!(can_serve_as(EXPLICIT_BE, Some(32), EXPLICIT_LE));
        assert!(!can_serve_as("1.2.840.10008.1.2.5", Some(32), EXPLICIT_LE));
        assert!(can_serve_as(DEFLATED, Some(8), IMPLICIT_LE));
        assert!(!can_serve_as(EXPLICIT_LE, Some(16), EXPLICIT_BE));
    }
}
