//! What the index keeps of an instance, read from its file up to Pixel Data
//! (values decoded per Specific Character Set by dicom-object): the QIDO
//! attributes of its patient, study, series and instance, and the instance
//! as DICOM JSON with bulk data left out.

use super::charset;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use lightbox_domain::dicom::{IndexedInstance, InstanceRecord, SeriesAttributes, StudyAttributes};
use serde_json::{Map, Value};

/// Binary values longer than this (as base64) are not kept inline in the
/// stored JSON; WADO-RS names them with a BulkDataURI instead.
pub const MAX_INLINE_BINARY: usize = 1024;

/// Elements of the patient and study levels (PS3.18 table 10.6.3-3 and the
/// Patient/General Study modules), kept with the study for includefield.
const STUDY_TAGS: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_DESCRIPTION,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::INSTITUTION_NAME,
];

/// Elements of the series level (table 10.6.3-4 and the General Series module).
const SERIES_TAGS: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::MODALITY,
    tags::SERIES_DESCRIPTION,
    tags::SERIES_INSTANCE_UID,
    tags::SERIES_NUMBER,
    tags::SERIES_DATE,
    tags::SERIES_TIME,
    tags::BODY_PART_EXAMINED,
    tags::PATIENT_POSITION,
    tags::LATERALITY,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_START_TIME,
    tags::REQUEST_ATTRIBUTES_SEQUENCE,
    tags::MANUFACTURER,
    tags::STATION_NAME,
];

#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    #[error("the data set cannot be read: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Invalid(String),
}

/// The data set's own SOP class and instance, for checking them against the
/// file meta (or the C-STORE command).
#[derive(Debug, Clone)]
pub struct Read {
    pub indexed: IndexedInstance,
    pub sop_class_uid: String,
}

/// Reads a Part 10 file (preamble first) up to Pixel Data. UIDs must be
/// present and valid DICOM UIDs; everything else is optional.
pub fn read(file: impl std::io::Read) -> Result<Read, AttributeError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .read_preamble(ReadPreamble::Always)
        .from_reader(file)
        .map_err(|e| AttributeError::Unreadable(e.to_string()))?;
    let data: &InMemDicomObject = &obj;
    let uid = |tag: Tag, name: &str| -> Result<String, AttributeError> {
        let value = text(data, tag)
            .ok_or_else(|| AttributeError::Invalid(format!("the data set has no {name}")))?;
        lightbox_domain::validate::dicom_uid(name, &value)
            .map_err(|e| AttributeError::Invalid(e.to_string()))?;
        Ok(value)
    };
    let study_instance_uid = uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let series_instance_uid = uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let sop_instance_uid = uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let sop_class_uid = uid(tags::SOP_CLASS_UID, "SOPClassUID")?;

    let mut json = dicom_json::to_value(data)
        .map_err(|e| AttributeError::Unreadable(format!("as DICOM JSON: {e}")))?;
    let charset = data
        .get(tags::SPECIFIC_CHARACTER_SET)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.into_owned())
        .filter(|s| charset::uses_code_extensions(s));
    if let Some(charset) = &charset {
        redecode_strings(&mut json, charset);
    }
    let Value::Object(mut json) = json else {
        return Err(AttributeError::Unreadable(
            "DICOM JSON is not an object".into(),
        ));
    };
    leave_out_bulk_data(&mut json, true);
    let decoded = |data: &InMemDicomObject, tag: Tag| {
        let value = text(data, tag)?;
        Some(match &charset {
            Some(charset) => charset::redecode(&value, charset).unwrap_or(value),
            None => value,
        })
    };

    // Trailing empty component groups of a person name carry nothing (PS3.5 6.2).
    let name = |tag| decoded(data, tag).map(|n| n.trim_end_matches(['=', '^']).to_owned());
    let study = StudyAttributes {
        study_instance_uid,
        patient_name: name(tags::PATIENT_NAME),
        patient_id: decoded(data, tags::PATIENT_ID),
        patient_birth_date: decoded(data, tags::PATIENT_BIRTH_DATE),
        patient_sex: decoded(data, tags::PATIENT_SEX),
        study_date: decoded(data, tags::STUDY_DATE),
        study_time: decoded(data, tags::STUDY_TIME),
        accession_number: decoded(data, tags::ACCESSION_NUMBER),
        referring_physician_name: name(tags::REFERRING_PHYSICIAN_NAME),
        study_id: decoded(data, tags::STUDY_ID),
        study_description: decoded(data, tags::STUDY_DESCRIPTION),
        json: subset(&json, STUDY_TAGS),
    };
    let series = SeriesAttributes {
        series_instance_uid,
        modality: decoded(data, tags::MODALITY),
        series_number: int(data, tags::SERIES_NUMBER),
        series_description: decoded(data, tags::SERIES_DESCRIPTION),
        series_date: decoded(data, tags::SERIES_DATE),
        series_time: decoded(data, tags::SERIES_TIME),
        json: subset(&json, SERIES_TAGS),
    };
    let instance = InstanceRecord {
        sop_instance_uid,
        sop_class_uid: sop_class_uid.clone(),
        instance_number: int(data, tags::INSTANCE_NUMBER),
        rows: int(data, tags::ROWS),
        columns: int(data, tags::COLUMNS),
        bits_allocated: int(data, tags::BITS_ALLOCATED),
        number_of_frames: int(data, tags::NUMBER_OF_FRAMES),
        metadata: Value::Object(json).to_string(),
        ..InstanceRecord::default()
    };
    Ok(Read {
        indexed: IndexedInstance {
            study,
            series,
            instance,
        },
        sop_class_uid,
    })
}

/// Decodes again every string under `value` (DICOM JSON) that dicom-rs left
/// byte for byte under ISO 2022 code extensions.
fn redecode_strings(value: &mut Value, charset: &str) {
    match value {
        Value::String(s) => {
            if let Some(decoded) = charset::redecode(s, charset) {
                *s = decoded;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redecode_strings(v, charset)),
        Value::Object(map) => map.values_mut().for_each(|v| redecode_strings(v, charset)),
        _ => {}
    }
}

/// The element's value as text, trimmed; None when absent or empty.
fn text(data: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = data.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_owned())
}

fn int(data: &InMemDicomObject, tag: Tag) -> Option<i64> {
    text(data, tag)?
        .split('\\')
        .next()?
        .trim()
        .parse::<f64>()
        .ok()
        .map(|v| v as i64)
}

fn subset(json: &Map<String, Value>, wanted: &[Tag]) -> String {
    let mut out = Map::new();
    for tag in wanted {
        let key = format!("{:04X}{:04X}", tag.group(), tag.element());
        if let Some(value) = json.get(&key) {
            out.insert(key, value.clone());
        }
    }
    Value::Object(out).to_string()
}

/// Replaces large inline binary values: at the top level with a
/// `BulkDataURI` relative to the instance (`bulk/GGGGEEEE`, which WADO-RS
/// resolves), inside sequences by the bare VR (no value kept).
fn leave_out_bulk_data(elements: &mut Map<String, Value>, top_level: bool) {
    for (tag, element) in elements.iter_mut() {
        let Value::Object(element) = element else {
            continue;
        };
        let large = element
            .get("InlineBinary")
            .and_then(Value::as_str)
            .is_some_and(|b| b.len() > MAX_INLINE_BINARY);
        if large {
            element.remove("InlineBinary");
            if top_level {
                element.insert("BulkDataURI".into(), Value::String(format!("bulk/{tag}")));
            }
        }
        if let Some(Value::Array(items)) = element.get_mut("Value") {
            for item in items {
                if let Value::Object(item) = item {
                    leave_out_bulk_data(item, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_binaries_become_bulk_data_uris() {
        let big = "A".repeat(MAX_INLINE_BINARY + 4);
        let mut elements = json!({
            "00091010": {"vr": "OB", "InlineBinary": big},
            "00091011": {"vr": "OB", "InlineBinary": "AAAA"},
            "00082112": {"vr": "SQ", "Value": [{"00091010": {"vr": "OB", "InlineBinary": big}}]}
        });
        leave_out_bulk_data(elements.as_object_mut().unwrap(), true);
        assert_eq!(
            elements["00091010"],
            json!({"vr": "OB", "BulkDataURI": "bulk/00091010"})
        );
        assert_eq!(elements["00091011"]["InlineBinary"], "AAAA");
        assert_eq!(
            elements["00082112"]["Value"][0]["00091010"],
            json!({"vr": "OB"})
        );
    }
}
