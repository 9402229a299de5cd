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
}
