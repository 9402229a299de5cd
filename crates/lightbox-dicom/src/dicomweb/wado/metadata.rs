//! WADO-RS metadata from the stored DICOM JSON, assembled as text: the
//! relative `"BulkDataURI":"bulk/GGGGEEEE"` ingest wrote become absolute
//! URLs under the instance, and Pixel Data (which the stored JSON leaves out)
//! is named by a BulkDataURI too. Nothing is parsed again, so a series of
//! hundreds of instances costs a copy of their JSON, not a parse of it.

use super::is_native;
use lightbox_store::InstanceMetadata;

/// How ingest writes a relative bulk data URI (serde_json's compact form).
/// A JSON string cannot contain an unescaped `"`, so this never matches
/// inside a value.
const RELATIVE: &str = "\"BulkDataURI\":\"bulk/";

/// The searcher for [`RELATIVE`], built once: a series' metadata is searched
/// end to end (str::find's two-way search was 4 % of its CPU).
static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(RELATIVE));

/// `{base}/dicomweb/studies/{st}/series/{se}/instances/{sop}`.
pub fn instance_url(base: &str, study: &str, series: &str, sop: &str) -> String {
    format!("{base}/dicomweb/studies/{study}/series/{series}/instances/{sop}")
}

/// Appends one instance's DICOM JSON object to `out`, its bulk data URIs
/// resolved against `instance_url`.
pub fn write_instance(out: &mut String, row: &InstanceMetadata, instance_url: &str) {
    let json = row.metadata.trim_end();
    let Some(body) = json.strip_suffix('}') else {
        // Not an object: never written by ingest. Served as stored.
        out.push_str(json);
        return;
    };
    let mut rest = body;
    while let Some(at) = FINDER.find(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        out.push_str("\"BulkDataURI\":\"");
        out.push_str(instance_url);
        out.push_str("/bulk/");
        rest = &rest[at + RELATIVE.len()..];
    }
    out.push_str(rest);
    if row.has_pixel_data {
        if body.trim_end() != "{" {
            out.push(',');
        }
        let vr = if !is_native(&row.transfer_syntax_uid) || row.bits_allocated.unwrap_or(16) <= 8 {
            "OB"
        } else {
            "OW"
        };
        out.push_str("\"7FE00010\":{\"vr\":\"");
        out.push_str(vr);
        out.push_str("\",\"BulkDataURI\":\"");
        out.push_str(instance_url);
        out.push_str("/bulk/7FE00010\"}");
    }
    out.push('}');
}

/// Stands for the server's public base URL in a [`series_document`]: JSON
/// text never holds a raw control character (serde_json escapes them, and
/// the stored metadata is serde_json's), so every one in a document is the
/// start of a URL this module wrote.
const BASE: u8 = 0x01;

/// Every instance's JSON in one array, its URLs under `base`.
pub fn metadata_array(base: &str, study: &str, rows: &[InstanceMetadata]) -> String {
    let size: usize = rows.iter().map(|r| r.metadata.len() + 300).sum();
    let mut out = String::with_capacity(size + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let url = instance_url(base, study, &row.series_instance_uid, &row.sop_instance_uid);
        write_instance(&mut out, row, &url);
    }
    out.push(']');
    out
}

/// A series' metadata array with the public base of each URL left as a
/// placeholder that [`resolve`] fills in: the same document serves every
/// host name the server is reached by.
pub fn series_document(study: &str, rows: &[InstanceMetadata]) -> String {
    metadata_array(&char::from(BASE).to_string(), study, rows)
}

/// `document` with its URLs made absolute under `base`.
pub fn resolve(document: &[u8], base: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(document.len() + 256 * base.len());
    let mut rest = document;
    while let Some(at) = memchr::memchr(BASE, rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(base.as_bytes());
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// The first line of a kept series document: a version, then the series'
/// instance count and the document's length, so a document kept for fewer
/// instances, or cut short, is never served.
const KEPT_HEADER: &str = "lightbox-series-metadata/1";

/// A series document as it is kept, for `instance_count` instances.
pub fn encode_kept(instance_count: i64, document: &[u8]) -> bytes::Bytes {
    let mut kept = format!("{KEPT_HEADER} {instance_count} {}\n", document.len()).into_bytes();
    kept.extend_from_slice(document);
    kept.into()
}

/// The document in `kept` if it was kept for `instance_count` instances and
/// is whole.
pub fn decode_kept(kept: &bytes::Bytes, instance_count: i64) -> Option<bytes::Bytes> {
    let end = memchr::memchr(b'\n', &kept[..kept.len().min(80)])?;
    let header = std::str::from_utf8(&kept[..end]).ok()?;
    let mut fields = header.split(' ');
    if fields.next()? != KEPT_HEADER || fields.next()?.parse::<i64>().ok()? != instance_count {
        return None;
    }
    let length: usize = fields.next()?.parse().ok()?;
    (fields.next().is_none() && kept.len() - end - 1 == length).then(|| kept.slice(end + 1..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(metadata: serde_json::Value, has_pixel_data: bool) -> InstanceMetadata {
        InstanceMetadata {
            series_instance_uid: "1.2.3".into(),
            sop_instance_uid: "1.2.3.4".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            bits_allocated: Some(16),
            has_pixel_data,
            metadata: metadata.to_string(),
        }
    }

    #[test]
    fn bulk_data_uris_are_absolute_and_pixel_data_is_one() {
        let url = instance_url("http://h:1", "1.2", "1.2.3", "1.2.3.4");
        let stored = json!({
            "00080060": {"vr": "CS", "Value": ["CT"]},
            "00091010": {"vr": "OB", "BulkDataURI": "bulk/00091010"},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "\"BulkDataURI\":\"bulk/x"}]}
        });
        let mut out = String::new();
        write_instance(&mut out, &row(stored, true), &url);
        let served: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            served["00091010"]["BulkDataURI"],
            format!("{url}/bulk/00091010")
        );
        assert_eq!(
            served["00100010"]["Value"][0]["Alphabetic"],
            "\"BulkDataURI\":\"bulk/x"
        );
        assert_eq!(
            served["7FE00010"],
            json!({"vr": "OW", "BulkDataURI": format!("{url}/bulk/7FE00010")})
        );
        assert_eq!(served["00080060"]["Value"][0], "CT");
    }

    #[test]
    fn an_instance_without_pixels_or_attributes_stays_valid_json() {
        let mut out = String::new();
        write_instance(&mut out, &row(json!({}), true), "u");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            json!({"7FE00010": {"vr": "OW", "BulkDataURI": "u/bulk/7FE00010"}})
        );
        out.clear();
        write_instance(
            &mut out,
            &row(json!({"00080060": {"vr": "CS"}}), false),
            "u",
        );
        assert_eq!(out, r#"{"00080060":{"vr":"CS"}}"#);
    }

    #[test]
    fn a_series_document_resolves_against_any_base() {
        let rows = [
            row(
                json!({"00080060": {"vr": "CS", "Value": ["CT"]},
                              "00091010": {"vr": "OB", "BulkDataURI": "bulk/00091010"}}),
                true,
            ),
            row(json!({}), false),
        ];
        let document = series_document("1.2", &rows);
        let served: serde_json::Value =
            serde_json::from_slice(&resolve(document.as_bytes(), "http://h:1")).unwrap();
        let mut direct = String::new();
        write_instance(
            &mut direct,
            &rows[0],
            &instance_url("http://h:1", "1.2", "1.2.3", "1.2.3.4"),
        );
        assert_eq!(
            served[0],
            serde_json::from_str::<serde_json::Value>(&direct).unwrap()
        );
        assert_eq!(served[1], json!({}));
        assert_eq!(served.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_kept_document_is_served_only_for_its_count_and_whole() {
        let kept = encode_kept(2, b"[{},{}]");
        assert_eq!(&decode_kept(&kept, 2).unwrap()[..], b"[{},{}]");
        assert!(decode_kept(&kept, 3).is_none());
        assert!(decode_kept(&kept.slice(..kept.len() - 1), 2).is_none());
        assert!(decode_kept(&bytes::Bytes::from_static(b"[{},{}]"), 2).is_none());
        assert!(decode_kept(&bytes::Bytes::new(), 2).is_none());
    }
}
