//! DICOM archive concepts that need no DICOM library: called AE titles (how
//! DIMSE, which has no credentials, finds its organization), the senders an
//! organization lets in, and what ingest records about each instance.

use crate::error::{Error, Result};

/// The longest AE title DICOM allows (PS3.5 table 6.2-1, VR AE).
pub const MAX_AE_TITLE_LEN: usize = 16;

/// A called AE title: how an association names the organization it sends to.
/// Restricted to `A-Z 0-9 _ -` so it survives every modality's configuration
/// screen and compares exactly (DICOM itself pads and allows more).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AeTitle(String);

impl AeTitle {
    pub fn parse(s: &str) -> Result<AeTitle> {
        let title = s.trim();
        if title.is_empty() || title.len() > MAX_AE_TITLE_LEN {
            return Err(Error::invalid(
                "ae_title",
                format!("AE title `{s}` must be 1 to {MAX_AE_TITLE_LEN} characters"),
            ));
        }
        if !title
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(Error::invalid(
                "ae_title",
                format!("AE title `{s}` may contain only A-Z, 0-9, `_` and `-`"),
            ));
        }
        Ok(AeTitle(title.to_owned()))
    }

    /// A title made from an organization's name (`Acme Imaging` →
    /// `ACME_IMAGING`), or None when the name has nothing usable.
    pub fn from_name(name: &str) -> Option<AeTitle> {
        let mut title = String::new();
        for c in name.chars() {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                title.push(c);
            } else if !title.is_empty() && !title.ends_with('_') {
                title.push('_');
            }
            if title.len() == MAX_AE_TITLE_LEN {
                break;
            }
        }
        let title = title.trim_end_matches('_');
        AeTitle::parse(title).ok()
    }

    /// `LB` and 14 random hex digits: the fallback when a name's title is taken.
    pub fn random() -> AeTitle {
        let hex = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase();
        AeTitle(format!("LB{}", &hex[..MAX_AE_TITLE_LEN - 2]))
    }

    /// Wraps a value read back from our own store.
    pub fn from_trusted(s: String) -> AeTitle {
        AeTitle(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AeTitle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of an organization's sender allow-list. Once the list has an
/// entry, an association must match one: by calling AE title, by source
/// address, or by both when the entry names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomPeer {
    pub calling_ae_title: Option<String>,
    pub address: Option<std::net::IpAddr>,
}

impl DicomPeer {
    pub fn new(calling_ae_title: Option<&str>, address: Option<&str>) -> Result<DicomPeer> {
        let calling_ae_title = match calling_ae_title {
            // Calling titles are the sender's own: any AE characters, compared trimmed.
            Some(t) if t.trim().is_empty() || t.trim().len() > MAX_AE_TITLE_LEN => {
                return Err(Error::invalid(
                    "calling_ae_title",
                    format!("calling AE title `{t}` must be 1 to {MAX_AE_TITLE_LEN} characters"),
                ))
            }
            Some(t) => Some(t.trim().to_owned()),
            None => None,
        };
        let address =
            match address {
                Some(a) => Some(a.parse().map_err(|_| {
                    Error::invalid("address", format!("`{a}` is not an IP address"))
                })?),
                None => None,
            };
        if calling_ae_title.is_none() && address.is_none() {
            return Err(Error::bad_request(
                "a DICOM peer needs a calling AE title, an address, or both",
            ));
        }
        Ok(DicomPeer {
            calling_ae_title,
            address,
        })
    }

    pub fn admits(&self, calling_ae_title: &str, address: std::net::IpAddr) -> bool {
        let ae_ok = self
            .calling_ae_title
            .as_deref()
            .is_none_or(|t| t == calling_ae_title.trim());
        let address_ok = self
            .address
            .is_none_or(|a| a == address || a.to_canonical() == address.to_canonical());
        ae_ok && address_ok
    }
}

/// Who sent an instance: a DIMSE peer or a STOW-RS caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DicomSource {
    Dimse {
        calling_ae_title: String,
        address: Option<std::net::IpAddr>,
    },
    Stow {
        api_key_id: crate::ApiKeyId,
    },
}

/// Patient and study attributes of an instance, as the study index keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyAttributes {
    pub study_instance_uid: String,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_id: Option<String>,
    pub study_description: Option<String>,
    /// Patient- and study-level elements as DICOM JSON (an object).
    pub json: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesAttributes {
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub series_date: Option<String>,
    pub series_time: Option<String>,
    /// Series-level elements as DICOM JSON (an object).
    pub json: String,
}

/// One stored instance: where its file is and what the index answers from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceRecord {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub number_of_frames: Option<i64>,
    pub transfer_syntax_uid: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the data set bytes (after the file meta).
    pub sha256: String,
    pub blob_key: String,
    pub pixel_data_offset: Option<i64>,
    pub pixel_data_length: Option<i64>,
    /// Per frame, its fragments' `[offset, length]` in the file, as JSON.
    pub frames: Option<String>,
    /// The instance as DICOM JSON without bulk data.
    pub metadata: String,
}

/// Everything one instance adds to the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedInstance {
    pub study: StudyAttributes,
    pub series: SeriesAttributes,
    pub instance: InstanceRecord,
}

impl IndexedInstance {
    /// The worklist description of a study seeded by this instance:
    /// StudyDescription, else modality and study date, else a generic label.
    pub fn worklist_description(&self) -> String {
        if let Some(d) = self
            .study
            .study_description
            .as_deref()
            .filter(|d| !d.trim().is_empty())
        {
            return d.trim().to_owned();
        }
        let parts: Vec<&str> = [
            self.series.modality.as_deref(),
            self.study.study_date.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
        if parts.is_empty() {
            "DICOM study".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles_are_short_and_plain() {
        assert_eq!(AeTitle::parse("LB_ACME-1").unwrap().as_str(), "LB_ACME-1");
        for bad in ["", "lower", "WAY_TOO_LONG_A_TITLE", "SP ACE", "A/B"] {
            assert!(AeTitle::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_name_becomes_a_title() {
        let title = |n| AeTitle::from_name(n).map(|t| t.to_string());
        assert_eq!(title("Acme Imaging").as_deref(), Some("ACME_IMAGING"));
        assert_eq!(
            title("St. Mary's Hospital Radiology").as_deref(),
            Some("ST_MARY_S_HOSPIT")
        );
        assert_eq!(title("  --  ").as_deref(), None);
        assert_eq!(AeTitle::random().as_str().len(), 16);
    }

    #[test]
    fn worklist_descriptions_fall_back_to_modality_and_date() {
        let mut i = IndexedInstance::default();
        assert_eq!(i.worklist_description(), "DICOM study");
        i.series.modality = Some("CT".into());
        i.study.study_date = Some("20240131".into());
        assert_eq!(i.worklist_description(), "CT 20240131");
        i.study.study_description = Some(" Head ".into());
        assert_eq!(i.worklist_description(), "Head");
    }

    #[test]
    fn peers_match_on_what_they_name() {
        let ip = |s: &str| s.parse().unwrap();
        let ct = DicomPeer::new(Some("CT1"), None).unwrap();
        assert!(ct.admits("CT1 ", ip("10.0.0.9")));
        assert!(!ct.admits("MR1", ip("10.0.0.9")));
        let both = DicomPeer::new(Some("CT1"), Some("127.0.0.1")).unwrap();
        assert!(both.admits("CT1", ip("127.0.0.1")));
        assert!(both.admits("CT1", ip("::ffff:127.0.0.1")));
        assert!(!both.admits("CT1", ip("127.0.0.2")));
        assert!(DicomPeer::new(None, None).is_err());
        assert!(DicomPeer::new(None, Some("nope")).is_err());
    }
}
