//! QIDO-RS query parameters (PS3.18 8.3.4): attribute matching by keyword or
//! tag, includefield, limit and offset, read into the store's query; and the
//! results as DICOM JSON (PS3.18 10.6.3, default attributes per level).
//!
//! Keywords and tags are looked up in dicom-rs' standard dictionary, so any
//! real attribute is understood; only those the index keeps in a column
//! ([`Attribute`]) are matched, the others are ignored with a warning (which
//! PS3.18 8.3.4.1 allows). Malformed values are errors, never ignored.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;
use lightbox_domain::qido::{
    Attribute, Condition, Filter, Include, Level, MatchKind, Pattern, Query, DEFAULT_LIMIT,
    DEFAULT_LIMIT_WITHIN_STUDY, MAX_LIMIT, MAX_OFFSET,
};
use lightbox_domain::validate::dicom_uid;
use lightbox_domain::Error;
use lightbox_store::{QidoInstance, QidoRow, QidoSeries, QidoStudy};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// UIDs one list may name (`StudyInstanceUID=a\b\…`).
pub const MAX_UIDS: usize = 500;
/// Codes one list may name (`ModalitiesInStudy=CT,MR`).
pub const MAX_CODES: usize = 64;
/// The longest value of any other attribute.
pub const MAX_VALUE_CHARS: usize = 256;

/// The six QIDO-RS resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Studies,
    StudySeries { study: String },
    Series,
    SeriesInstances { study: String, series: String },
    StudyInstances { study: String },
    Instances,
}

/// A search read from a query string, with what it could not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: Query,
    /// Texts for `Warning: 299` headers (ASCII, no quotes).
    pub warnings: Vec<String>,
}

/// Warning text when the page was cut short (PS3.18 8.3.4.4).
pub const MORE_RESULTS: &str = "There are additional results that can be requested";

/// Reads a QIDO-RS query string (without the `?`) for `resource`.
pub fn parse(resource: Resource, raw_query: &str) -> Result<Search, Error> {
    let (level, study, series) = match resource {
        Resource::Studies => (Level::Study, None, None),
        Resource::StudySeries { study } => (Level::Series, Some(study), None),
        Resource::Series => (Level::Series, None, None),
        Resource::SeriesInstances { study, series } => (Level::Instance, Some(study), Some(series)),
        Resource::StudyInstances { study } => (Level::Instance, Some(study), None),
        Resource::Instances => (Level::Instance, None, None),
    };
    let mut query = Query {
        level,
        limit: if study.is_some() {
            DEFAULT_LIMIT_WITHIN_STUDY
        } else {
            DEFAULT_LIMIT
        },
        study,
        series,
        filters: Vec::new(),
        include: Include::Defaults,
        offset: 0,
    };
    let mut warnings = Vec::new();
    let mut unsupported: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        let (key, value) = (key.trim(), value.trim());
        match key {
            "" => continue,
            "limit" => {
                query.limit = number("limit", value)?;
                if query.limit == 0 {
                    return Err(Error::invalid("limit", "limit must be at least 1"));
                }
                query.limit = query.limit.min(MAX_LIMIT);
            }
            "offset" => {
                query.offset = number("offset", value)?;
                if query.offset > MAX_OFFSET {
                    return Err(Error::invalid(
                        "offset",
                        format!("offset must be at most {MAX_OFFSET}; narrow the search instead"),
                    ));
                }
            }
            "fuzzymatching" => match value {
                "false" | "" => {}
                "true" => warnings.push(
                    "The fuzzymatching parameter is not supported. Only literal matching has been performed."
                        .to_owned(),
                ),
                _ => {
                    return Err(Error::invalid(
                        "fuzzymatching",
                        format!("fuzzymatching must be true or false, not `{value}`"),
                    ))
                }
            },
            "includefield" => include(&mut query.include, value)?,
            "emptyvaluematching" | "multiplevaluematching" => {
                if !matches!(value, "true" | "false" | "") {
                    return Err(Error::invalid(
                        key,
                        format!("{key} must be true or false, not `{value}`"),
                    ));
                }
                if value == "true" {
                    warnings.push(format!("The {key} parameter is not supported."));
                }
            }
            _ => {
                if seen.iter().any(|k| k == key) {
                    return Err(Error::invalid(
                        key,
                        format!("{key} is given more than once; list values in one parameter"),
                    ));
                }
                seen.push(key.to_owned());
                if key.contains('.') {
                    // Sequence matching (`Seq.Attr`): understood, not indexed.
                    for part in key.split('.') {
                        tag(part)?;
                    }
                    unsupported.push(key.to_owned());
                    continue;
                }
                let tag = tag(key)?;
                let attribute = Attribute::by_tag(tag).filter(|a| a.level() <= level);
                let Some(attribute) = attribute else {
                    unsupported.push(key.to_owned());
                    continue;
                };
                if let Some(condition) = condition(attribute, value)? {
                    query.filters.push(Filter {
                        attribute,
                        condition,
                    });
                }
            }
        }
    }
    if !unsupported.is_empty() {
        warnings.push(format!(
            "The following attributes are not supported as query parameters and were ignored: {}",
            unsupported.join(", ")
        ));
    }
    Ok(Search { query, warnings })
}

fn number(field: &str, value: &str) -> Result<u32, Error> {
    value.parse::<u32>().map_err(|_| {
        Error::invalid(
            field,
            format!(
                "{field} must be a whole number from 0 to {}, not `{value}`",
                u32::MAX
            ),
        )
    })
}

/// An attribute named by keyword (`PatientName`) or tag (`00100010`).
pub fn tag(key: &str) -> Result<(u16, u16), Error> {
    let unknown = || {
        Error::invalid(
            key,
            format!("`{key}` is neither a DICOM attribute keyword nor a tag (GGGGEEEE)"),
        )
    };
    if key.len() == 8 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let group = u16::from_str_radix(&key[..4], 16).map_err(|_| unknown())?;
        let element = u16::from_str_radix(&key[4..], 16).map_err(|_| unknown())?;
        return Ok((group, element));
    }
    let entry = StandardDataDictionary.by_name(key).ok_or_else(unknown)?;
    let tag = entry.tag();
    Ok((tag.group(), tag.element()))
}

fn include(include: &mut Include, value: &str) -> Result<(), Error> {
    for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if key == "all" {
            *include = Include::All;
            continue;
        }
        let tag = tag(key).map_err(|_| {
            Error::invalid(
                "includefield",
                format!("includefield: `{key}` is neither a DICOM attribute keyword nor a tag"),
            )
        })?;
        match include {
            Include::All => {}
            Include::Defaults => *include = Include::Tags(vec![tag]),
            Include::Tags(tags) => {
                if !tags.contains(&tag) {
                    tags.push(tag)
                }
            }
        }
    }
    Ok(())
}

/// What `value` asks of `attribute`; None for universal matching (an empty
/// value or a lone `*`), which every result passes.
fn condition(attribute: Attribute, value: &str) -> Result<Option<Condition>, Error> {
    let field = attribute.keyword();
    if value.is_empty() || value == "*" {
        return Ok(None);
    }
    let invalid = |message: String| Error::invalid(field, message);
    let list = |max: usize| -> Result<Vec<&str>, Error> {
        let items: Vec<&str> = value
            .split([',', '\\'])
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if items.len() > max {
            return Err(invalid(format!(
                "{field} lists {} values; at most {max} are allowed",
                items.len()
            )));
        }
        Ok(items)
    };
    if !matches!(attribute.kind(), MatchKind::Uid | MatchKind::Code)
        && value.chars().count() > MAX_VALUE_CHARS
    {
        return Err(invalid(format!(
            "{field} is longer than {MAX_VALUE_CHARS} characters"
        )));
    }
    Ok(Some(match attribute.kind() {
        MatchKind::Uid => {
            let mut uids = Vec::new();
            for uid in list(MAX_UIDS)? {
                dicom_uid(field, uid)?;
                if !uids.iter().any(|p| p == &Pattern::Literal(uid.to_owned())) {
                    uids.push(Pattern::Literal(uid.to_owned()));
                }
            }
            Condition::OneOf(uids)
        }
        MatchKind::Code => {
            let codes = list(MAX_CODES)?;
            if codes.contains(&"*") {
                return Ok(None);
            }
            if let Some(long) = codes.iter().find(|c| c.len() > 16) {
                return Err(invalid(format!(
                    "{field}: `{long}` is longer than a code string may be (16)"
                )));
            }
            Condition::OneOf(codes.into_iter().map(pattern).collect())
        }
        MatchKind::Text { .. } => Condition::OneOf(vec![pattern(value)]),
        MatchKind::Integer => Condition::Integer(
            value
                .parse::<i64>()
                .map_err(|_| invalid(format!("{field} must be a whole number, not `{value}`")))?,
        ),
        MatchKind::Date => match value.split_once('-') {
            None => {
                date(field, value)?;
                Condition::OneOf(vec![Pattern::Literal(value.to_owned())])
            }
            Some((from, to)) => {
                let (from, to) = (from.trim(), to.trim());
                if from.is_empty() && to.is_empty() {
                    return Err(invalid(format!("{field}: a range needs at least one end")));
                }
                for end in [from, to].into_iter().filter(|e| !e.is_empty()) {
                    date(field, end)?;
                }
                if !from.is_empty() && !to.is_empty() && from > to {
                    return Err(invalid(format!(
                        "{field}: the range {value} ends before it starts"
                    )));
                }
                Condition::Range {
                    from: (!from.is_empty()).then(|| from.to_owned()),
                    to: (!to.is_empty()).then(|| to.to_owned()),
                }
            }
        },
        MatchKind::Time => {
            let (from, to) = match value.split_once('-') {
                None => (value, value),
                Some((from, to)) => (from.trim(), to.trim()),
            };
            if from.is_empty() && to.is_empty() {
                return Err(invalid(format!("{field}: a range needs at least one end")));
            }
            for end in [from, to].into_iter().filter(|e| !e.is_empty()) {
                time(field, end)?;
            }
            let to = (!to.is_empty()).then(|| end_of(to));
            if let Some(to) = &to {
                if !from.is_empty() && from > to.as_str() {
                    return Err(invalid(format!(
                        "{field}: the range {value} ends before it starts"
                    )));
                }
            }
            Condition::Range {
                from: (!from.is_empty()).then(|| from.to_owned()),
                to,
            }
        }
    }))
}

fn pattern(value: &str) -> Pattern {
    if value.contains(['*', '?']) {
        Pattern::Wildcard(value.to_owned())
    } else {
        Pattern::Literal(value.to_owned())
    }
}

/// A DA value: `YYYYMMDD`, a real calendar date.
fn date(field: &str, value: &str) -> Result<(), Error> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "{field}: `{value}` is not a date (YYYYMMDD) or a range of dates (a-b, a-, -b)"
            ),
        )
    };
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let year: u32 = value[..4].parse().map_err(|_| bad())?;
    let month: u32 = value[4..6].parse().map_err(|_| bad())?;
    let day: u32 = value[6..].parse().map_err(|_| bad())?;
    // `is_multiple_of` needs Rust 1.87; the workspace builds with 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day == 0 || day > days {
        return Err(bad());
    }
    Ok(())
}

/// A TM value: `HH[MM[SS[.F{1,6}]]]`.
fn time(field: &str, value: &str) -> Result<(), Error> {
    let bad = || {
        Error::invalid(
            field,
            format!("{field}: `{value}` is not a time (HHMMSS.FFFFFF, shorter allowed) or a range of times"),
        )
    };
    let (whole, fraction) = match value.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (value, None),
    };
    if !matches!(whole.len(), 2 | 4 | 6) || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if let Some(f) = fraction {
        if whole.len() != 6 || f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
    }
    let part = |at: usize| {
        whole
            .get(at..at + 2)
            .map(|p| p.parse::<u32>().unwrap_or(99))
    };
    if part(0).is_some_and(|h| h > 23)
        || part(2).is_some_and(|m| m > 59)
        || part(4).is_some_and(|s| s > 60)
    {
        return Err(bad());
    }
    Ok(())
}

/// The last moment a partial time covers (`10` → `105959.999999`), so an
/// upper bound of `1000` takes in 10:00:30.
fn end_of(time: &str) -> String {
    const LATEST: &str = "235959.999999";
    format!("{time}{}", LATEST.get(time.len()..).unwrap_or(""))
}

// ---------------------------------------------------------------- results

/// The results as DICOM JSON text: per row the level's default attributes
/// (tables 10.6.3-3 to -5, with the levels above for the organization-wide
/// `/series` and `/instances`), what `includefield` adds from the stored
/// DICOM JSON, and a RetrieveURL under `base` (the `/dicomweb` root).
///
/// Written as text, attributes in tag order: the stored JSON is read as
/// borrowed raw values and copied, never built into `serde_json::Value`
/// trees (which cost three quarters of a 101-study page's server time).
pub fn results(rows: &[QidoRow], query: &Query, base: &str) -> String {
    let mut out = String::with_capacity(rows.len() * 1024 + 2);
    out.push('[');
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_result(&mut out, row, query, base);
    }
    out.push(']');
    out
}

/// One result's elements by tag (`GGGGEEEE`), each as JSON text.
type Elements<'a> = BTreeMap<&'a str, Cow<'a, str>>;
/// Stored DICOM JSON read without copying: tag → the element's JSON text.
type Stored<'a> = BTreeMap<&'a str, &'a RawValue>;

fn write_result(out: &mut String, row: &QidoRow, query: &Query, base: &str) {
    let mut elements = Elements::new();
    let study_url = format!("{base}/studies/{}", row.study.attributes.study_instance_uid);
    let mut stored: Vec<Stored<'_>> = Vec::new();
    let mut url = study_url.clone();
    // Study attributes: at the study level, and above organization-wide
    // series and instances; otherwise only the study's UID.
    if query.level == Level::Study || query.study.is_none() {
        study_defaults(&mut elements, &row.study);
    }
    put(
        &mut elements,
        "0020000D",
        "UI",
        Some(&row.study.attributes.study_instance_uid),
    );
    let mut instance_metadata: Option<Stored<'_>> = None;
    if let Some(series) = &row.series {
        url = format!(
            "{study_url}/series/{}",
            series.attributes.series_instance_uid
        );
        let series_stored = stored_elements(&series.attributes.json);
        if query.level == Level::Series || query.series.is_none() {
            series_defaults(&mut elements, series, &series_stored);
        }
        put(
            &mut elements,
            "0020000E",
            "UI",
            Some(&series.attributes.series_instance_uid),
        );
        if let Some(instance) = &row.instance {
            url = format!("{url}/instances/{}", instance.sop_instance_uid);
            instance_defaults(&mut elements, instance);
            instance_metadata = Some(stored_elements(
                instance.metadata.as_deref().unwrap_or("{}"),
            ));
        }
        stored.push(series_stored);
    }
    stored.push(stored_elements(&row.study.attributes.json));
    let charset_given = instance_metadata
        .iter()
        .chain(&stored)
        .any(|m| m.contains_key("00080005"));
    let retrieve_url = format!(r#"{{"vr":"UR","Value":[{}]}}"#, json_string(&url));
    let from_stored = |key: &str| find_stored(instance_metadata.as_ref(), &stored, key, &url);
    match &query.include {
        Include::Defaults => {}
        Include::Tags(tags) => {
            for (group, element) in tags {
                let key = format!("{group:04X}{element:04X}");
                if key == "00081190" || elements.contains_key(key.as_str()) {
                    continue;
                }
                if let Some((key, value)) = from_stored(&key) {
                    elements.insert(key, value);
                }
            }
        }
        Include::All => {
            let keys: Vec<&str> = instance_metadata
                .iter()
                .chain(&stored)
                .flat_map(|m| m.keys().copied())
                .collect();
            for key in keys {
                if key != "00081190" && !elements.contains_key(key) {
                    if let Some((key, value)) = from_stored(key) {
                        elements.insert(key, value);
                    }
                }
            }
        }
    }
    elements.insert("00081190", Cow::Owned(retrieve_url));
    // Every value was decoded to Unicode at ingest: JSON text is UTF-8.
    if charset_given || elements.contains_key("00080005") {
        elements.insert(
            "00080005",
            Cow::Borrowed(r#"{"vr":"CS","Value":["ISO_IR 192"]}"#),
        );
    }
    out.push('{');
    for (n, (key, value)) in elements.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
}

/// The stored element `key`, from the instance's metadata first (its
/// BulkDataURIs, stored relative to the instance, made absolute), then the
/// series' and the study's JSON.
fn find_stored<'a>(
    instance: Option<&Stored<'a>>,
    stored: &[Stored<'a>],
    key: &str,
    instance_url: &str,
) -> Option<(&'a str, Cow<'a, str>)> {
    if let Some((k, v)) = instance.and_then(|m| m.get_key_value(key)) {
        return Some((*k, absolute_bulk_data(v.get(), instance_url)));
    }
    stored
        .iter()
        .find_map(|m| m.get_key_value(key))
        .map(|(k, v)| (*k, Cow::Borrowed(v.get())))
}

/// Stored DICOM JSON as borrowed elements; empty if it is not an object of
/// tag keys (which the index never writes).
fn stored_elements(json: &str) -> Stored<'_> {
    serde_json::from_str(json).unwrap_or_default()
}

/// An element's JSON text with a relative BulkDataURI (`bulk/GGGGEEEE`, as
/// stored) made absolute under the instance's URL.
fn absolute_bulk_data<'a>(element: &'a str, instance_url: &str) -> Cow<'a, str> {
    if !element.contains("\"BulkDataURI\"") {
        return Cow::Borrowed(element);
    }
    let Ok(mut value) = serde_json::from_str::<Value>(element) else {
        return Cow::Borrowed(element);
    };
    if let Some(Value::String(uri)) = value.get_mut("BulkDataURI") {
        if !uri.contains("://") && !uri.starts_with('/') {
            *uri = format!("{instance_url}/{uri}");
        }
    }
    Cow::Owned(value.to_string())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

fn put(out: &mut Elements<'_>, tag: &'static str, vr: &str, value: Option<&String>) {
    let element = match value {
        Some(v) => format!(r#"{{"vr":"{vr}","Value":[{}]}}"#, json_string(v)),
        None => format!(r#"{{"vr":"{vr}"}}"#),
    };
    out.insert(tag, Cow::Owned(element));
}

fn put_number(out: &mut Elements<'_>, tag: &'static str, vr: &str, value: Option<i64>) {
    let element = match value {
        Some(v) => format!(r#"{{"vr":"{vr}","Value":[{v}]}}"#),
        None => format!(r#"{{"vr":"{vr}"}}"#),
    };
    out.insert(tag, Cow::Owned(element));
}

/// A person name as DICOM JSON: `=`-separated groups are its alphabetic,
/// ideographic and phonetic forms.
fn put_name(out: &mut Elements<'_>, tag: &'static str, value: Option<&String>) {
    let element = match value {
        Some(name) => {
            let mut groups = Map::new();
            for (key, group) in ["Alphabetic", "Ideographic", "Phonetic"]
                .into_iter()
                .zip(name.split('='))
            {
                if !group.is_empty() {
                    groups.insert(key.into(), Value::String(group.to_owned()));
                }
            }
            json!({"vr": "PN", "Value": [groups]}).to_string()
        }
        None => r#"{"vr":"PN"}"#.to_owned(),
    };
    out.insert(tag, Cow::Owned(element));
}

fn study_defaults(out: &mut Elements<'_>, study: &QidoStudy) {
    let attributes = &study.attributes;
    put(out, "00080020", "DA", attributes.study_date.as_ref());
    put(out, "00080030", "TM", attributes.study_time.as_ref());
    put(out, "00080050", "SH", attributes.accession_number.as_ref());
    out.insert(
        "00080056",
        Cow::Borrowed(r#"{"vr":"CS","Value":["ONLINE"]}"#),
    );
    out.insert(
        "00080061",
        Cow::Owned(if study.modalities.is_empty() {
            r#"{"vr":"CS"}"#.to_owned()
        } else {
            json!({"vr": "CS", "Value": study.modalities}).to_string()
        }),
    );
    put_name(
        out,
        "00080090",
        attributes.referring_physician_name.as_ref(),
    );
    put_name(out, "00100010", attributes.patient_name.as_ref());
    put(out, "00100020", "LO", attributes.patient_id.as_ref());
    put(
        out,
        "00100030",
        "DA",
        attributes.patient_birth_date.as_ref(),
    );
    put(out, "00100040", "CS", attributes.patient_sex.as_ref());
    put(out, "00200010", "SH", attributes.study_id.as_ref());
    put_number(out, "00201206", "IS", Some(study.series_count));
    put_number(out, "00201208", "IS", Some(study.instance_count));
}

fn series_defaults<'a>(out: &mut Elements<'a>, series: &QidoSeries, stored: &Stored<'a>) {
    put(out, "00080060", "CS", series.attributes.modality.as_ref());
    put(
        out,
        "0008103E",
        "LO",
        series.attributes.series_description.as_ref(),
    );
    put_number(out, "00200011", "IS", series.attributes.series_number);
    put_number(out, "00201209", "IS", Some(series.instance_count));
    // Performed Procedure Step start and Request Attributes are kept only
    // in the stored JSON; they are defaults when the series has them.
    for key in ["00400244", "00400245", "00400275"] {
        if let Some((key, value)) = stored.get_key_value(key) {
            out.insert(key, Cow::Borrowed(value.get()));
        }
    }
}

fn instance_defaults(out: &mut Elements<'_>, instance: &QidoInstance) {
    put(out, "00080016", "UI", Some(&instance.sop_class_uid));
    put(out, "00080018", "UI", Some(&instance.sop_instance_uid));
    out.insert(
        "00080056",
        Cow::Borrowed(r#"{"vr":"CS","Value":["ONLINE"]}"#),
    );
    put_number(out, "00200013", "IS", instance.instance_number);
    put_number(out, "00280010", "US", instance.rows);
    put_number(out, "00280011", "US", instance.columns);
    put_number(out, "00280100", "US", instance.bits_allocated);
    put_number(out, "00280008", "IS", instance.number_of_frames);
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightbox_domain::dicom::{SeriesAttributes, StudyAttributes};

    fn studies(query: &str) -> Result<Search, Error> {
        parse(Resource::Studies, query)
    }

    fn field(e: Error) -> Option<String> {
        match e {
            Error::Invalid { field, .. } => field,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn ohifs_study_list_query_reads_as_one_filter_per_field() {
        let s = studies(
            "PatientName=*doe*&00100020=*id*&AccessionNumber=*a*&StudyDescription=*d*\
             &ModalitiesInStudy=CT%2CMR&StudyDate=20010101-20031231&limit=101&offset=0\
             &fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030",
        )
        .unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let q = s.query;
        assert_eq!((q.limit, q.offset), (101, 0));
        let by = |a: Attribute| {
            q.filters
                .iter()
                .find(|f| f.attribute == a)
                .unwrap()
                .condition
                .clone()
        };
        assert_eq!(
            by(Attribute::PatientName),
            Condition::OneOf(vec![Pattern::Wildcard("*doe*".into())])
        );
        assert_eq!(
            by(Attribute::PatientId),
            Condition::OneOf(vec![Pattern::Wildcard("*id*".into())])
        );
        assert_eq!(
            by(Attribute::ModalitiesInStudy),
            Condition::OneOf(vec![
                Pattern::Literal("CT".into()),
                Pattern::Literal("MR".into())
            ])
        );
        assert_eq!(
            by(Attribute::StudyDate),
            Condition::Range {
                from: Some("20010101".into()),
                to: Some("20031231".into())
            }
        );
        assert_eq!(
            q.include,
            Include::Tags(vec![
                (0x0008, 0x1030),
                (0x0008, 0x0060),
                (0x0008, 0x0090),
                (0x0010, 0x0030)
            ])
        );
    }

    #[test]
    fn uid_lists_split_on_commas_and_backslashes() {
        let q = studies("StudyInstanceUID=1.2.3%5C1.2.4,1.2.5")
            .unwrap()
            .query;
        assert_eq!(
            q.filters[0].condition,
            Condition::OneOf(
                ["1.2.3", "1.2.4", "1.2.5"]
                    .map(|u| Pattern::Literal(u.into()))
                    .to_vec()
            )
        );
        assert_eq!(
            field(studies("StudyInstanceUID=1.2.3,1.2.x").unwrap_err()).as_deref(),
            Some("StudyInstanceUID")
        );
        assert!(studies("StudyInstanceUID=1.2.*").is_err());
    }

    #[test]
    fn open_date_ranges_and_partial_times() {
        let q = studies("StudyDate=-19991231&StudyTime=10-1030")
            .unwrap()
            .query;
        assert_eq!(
            q.filters[0].condition,
            Condition::Range {
                from: None,
                to: Some("19991231".into())
            }
        );
        assert_eq!(
            q.filters[1].condition,
            Condition::Range {
                from: Some("10".into()),
                to: Some("103059.999999".into())
            }
        );
        let q = studies("StudyDate=20010101-").unwrap().query;
        assert_eq!(
            q.filters[0].condition,
            Condition::Range {
                from: Some("20010101".into()),
                to: None
            }
        );
    }

    #[test]
    fn malformed_values_are_400s_naming_the_field() {
        for (query, f) in [
            ("StudyDate=2001-01-01", "StudyDate"),
            ("StudyDate=20010230", "StudyDate"),
            ("StudyDate=20030101-20010101", "StudyDate"),
            ("StudyDate=-", "StudyDate"),
            ("StudyTime=2500", "StudyTime"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=0", "limit"),
            ("offset=1000001", "offset"),
            ("NoSuchKeyword=1", "NoSuchKeyword"),
            ("includefield=Nope", "includefield"),
            ("fuzzymatching=maybe", "fuzzymatching"),
            ("PatientID=a&PatientID=b", "PatientID"),
        ] {
            assert_eq!(
                field(studies(query).unwrap_err()).as_deref(),
                Some(f),
                "{query}"
            );
        }
        let instances = parse(Resource::Instances, "InstanceNumber=one").unwrap_err();
        assert_eq!(field(instances).as_deref(), Some("InstanceNumber"));
    }

    #[test]
    fn unindexed_and_lower_level_keys_are_ignored_with_a_warning() {
        let s =
            studies("InstitutionName=X&SOPInstanceUID=1.2.3&OtherPatientIDsSequence.PatientID=1")
                .unwrap();
        assert!(s.query.filters.is_empty());
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0]
            .contains("InstitutionName, SOPInstanceUID, OtherPatientIDsSequence.PatientID"));
        let s = parse(
            Resource::Instances,
            "SOPInstanceUID=1.2.3&fuzzymatching=true",
        )
        .unwrap();
        assert_eq!(s.query.filters.len(), 1);
        assert!(s.warnings[0].contains("fuzzymatching"));
    }

    #[test]
    fn tags_and_keywords_name_the_same_attribute_and_universal_values_match_all() {
        assert_eq!(tag("00100010").unwrap(), tag("PatientName").unwrap());
        let q = studies("PatientName=&00100020=*&ModalitiesInStudy=CT,*")
            .unwrap()
            .query;
        assert!(q.filters.is_empty());
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(studies("").unwrap().query.limit, DEFAULT_LIMIT);
        assert_eq!(studies("limit=50000").unwrap().query.limit, MAX_LIMIT);
        let within = parse(
            Resource::StudySeries {
                study: "1.2".into(),
            },
            "",
        )
        .unwrap()
        .query;
        assert_eq!(within.limit, DEFAULT_LIMIT_WITHIN_STUDY);
        assert_eq!(within.study.as_deref(), Some("1.2"));
    }

    fn row() -> QidoRow {
        QidoRow {
            study: QidoStudy {
                attributes: StudyAttributes {
                    study_instance_uid: "1.2.3".into(),
                    patient_name: Some("Yamada^Tarou=山田^太郎".into()),
                    patient_id: Some("P1".into()),
                    patient_sex: Some("M".into()),
                    study_date: Some("20010101".into()),
                    study_description: Some("Head".into()),
                    json: r#"{"00080005":{"vr":"CS","Value":["ISO 2022 IR 87"]},"00081030":{"vr":"LO","Value":["Head"]}}"#.into(),
                    ..StudyAttributes::default()
                },
                modalities: vec!["CT".into(), "MR".into()],
                series_count: 2,
                instance_count: 5,
            },
            series: Some(QidoSeries {
                attributes: SeriesAttributes {
                    series_instance_uid: "1.2.3.4".into(),
                    modality: Some("CT".into()),
                    series_number: Some(2),
                    json: r#"{"00080021":{"vr":"DA","Value":["20010101"]}}"#.into(),
                    ..SeriesAttributes::default()
                },
                instance_count: 3,
            }),
            instance: Some(QidoInstance {
                sop_instance_uid: "1.2.3.4.5".into(),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                instance_number: Some(7),
                rows: Some(16),
                columns: Some(16),
                bits_allocated: Some(16),
                number_of_frames: None,
                metadata: Some(r#"{"00091001":{"vr":"OB","BulkDataURI":"bulk/00091001"}}"#.into()),
            }),
        }
    }

    #[test]
    fn a_study_result_has_the_default_attributes_and_its_retrieve_url() {
        let mut r = row();
        r.series = None;
        r.instance = None;
        let q = studies("includefield=StudyDescription").unwrap().query;
        let out: Value = serde_json::from_str(&results(&[r], &q, "http://h/dicomweb")).unwrap();
        let s = &out[0];
        assert_eq!(s["0020000D"]["Value"][0], "1.2.3");
        assert_eq!(s["00080061"]["Value"], json!(["CT", "MR"]));
        assert_eq!(s["00201206"]["Value"][0], 2);
        assert_eq!(s["00201208"]["Value"][0], 5);
        assert_eq!(
            s["00100010"]["Value"][0],
            json!({"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"})
        );
        assert_eq!(s["00081190"]["Value"][0], "http://h/dicomweb/studies/1.2.3");
        assert_eq!(s["00081030"]["Value"][0], "Head");
        assert_eq!(s["00080005"]["Value"][0], "ISO_IR 192");
        assert_eq!(s["00080020"]["vr"], "DA");
        assert!(s.get("00080060").is_none());
        // Attributes in tag order (the workspace's serde_json keeps the order read).
        let tags: Vec<&String> = s.as_object().unwrap().keys().collect();
        let mut sorted = tags.clone();
        sorted.sort();
        assert_eq!(tags, sorted);
    }

    #[test]
    fn an_instance_result_under_a_series_has_its_own_attributes_and_absolute_bulk_data() {
        let q = parse(
            Resource::SeriesInstances {
                study: "1.2.3".into(),
                series: "1.2.3.4".into(),
            },
            "includefield=all",
        )
        .unwrap()
        .query;
        let out: Value = serde_json::from_str(&results(&[row()], &q, "http://h/dicomweb")).unwrap();
        let i = &out[0];
        let url = "http://h/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5";
        assert_eq!(i["00081190"]["Value"][0], url);
        assert_eq!(i["00280010"]["Value"][0], 16);
        assert_eq!(i["00091001"]["BulkDataURI"], format!("{url}/bulk/00091001"));
        assert_eq!(i["00080021"]["Value"][0], "20010101");
        assert_eq!(i["0020000E"]["Value"][0], "1.2.3.4");
        // Within a study, the study's own attributes are not repeated by default.
        let q = parse(
            Resource::SeriesInstances {
                study: "1.2.3".into(),
                series: "1.2.3.4".into(),
            },
            "",
        )
        .unwrap()
        .query;
        let out: Value = serde_json::from_str(&results(&[row()], &q, "http://h/dicomweb")).unwrap();
        assert!(out[0].get("00100020").is_none());
        assert!(out[0].get("00201209").is_none());
    }
}
