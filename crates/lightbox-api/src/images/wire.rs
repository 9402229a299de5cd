//! Images wire types: the candidhealth SDK's models, snake_case, no aliases.

use lightbox_domain::image::{
    parse_coverage_id, CoverageAssociation, CoverageImageSide, Image, ImageStatus, MutableImage,
    PatientAssociation,
};
use lightbox_domain::{Error, Timestamp};
use serde::{Deserialize, Serialize};

/// `MutableImage`, the body of create and update. Absent and `null` optional
/// fields mean the same; unknown keys are ignored.
#[derive(Deserialize)]
pub struct MutableImageBody {
    file_name: String,
    display_name: String,
    file_type: String,
    status: ImageStatus,
    #[serde(default)]
    coverage: Option<CoverageBody>,
    #[serde(default)]
    patient: Option<PatientBody>,
}

#[derive(Deserialize)]
struct CoverageBody {
    id: String,
    side: CoverageImageSide,
}

#[derive(Deserialize)]
struct PatientBody {
    id: String,
    #[serde(default)]
    notes: Option<String>,
}

impl MutableImageBody {
    pub fn into_domain(self) -> Result<MutableImage, Error> {
        let coverage = self
            .coverage
            .map(|c| {
                Ok::<_, Error>(CoverageAssociation {
                    id: parse_coverage_id("coverage.id", &c.id)?,
                    side: c.side,
                })
            })
            .transpose()?;
        let fields = MutableImage {
            file_name: self.file_name,
            display_name: self.display_name,
            file_type: self.file_type,
            status: self.status,
            coverage,
            patient: self.patient.map(|p| PatientAssociation {
                id: p.id,
                notes: p.notes,
            }),
        };
        fields.validate()?;
        Ok(fields)
    }
}

#[derive(Serialize)]
pub struct CoverageJson {
    id: String,
    side: &'static str,
}

#[derive(Serialize)]
pub struct PatientJson<'a> {
    id: &'a str,
    notes: Option<&'a str>,
}

/// `Image`: every key emitted (`coverage`/`patient` as null when absent).
#[derive(Serialize)]
pub struct ImageJson<'a> {
    id: String,
    file_name: &'a str,
    display_name: &'a str,
    file_type: &'a str,
    status: &'static str,
    coverage: Option<CoverageJson>,
    patient: Option<PatientJson<'a>>,
    signed_url: String,
    organization_id: String,
    deactivated: bool,
    version: i64,
    updated_at: Timestamp,
    updating_user_id: &'a str,
}

impl<'a> ImageJson<'a> {
    pub fn new(image: &'a Image, signed_url: String) -> Self {
        let f = &image.fields;
        ImageJson {
            id: image.id.to_string(),
            file_name: &f.file_name,
            display_name: &f.display_name,
            file_type: &f.file_type,
            status: f.status.as_str(),
            coverage: f.coverage.as_ref().map(|c| CoverageJson {
                id: c.id.hyphenated().to_string(),
                side: c.side.as_str(),
            }),
            patient: f.patient.as_ref().map(|p| PatientJson {
                id: &p.id,
                notes: p.notes.as_deref(),
            }),
            signed_url,
            organization_id: image.org_id.to_string(),
            deactivated: image.deactivated,
            version: image.version,
            updated_at: image.updated_at,
            updating_user_id: &image.updating_user_id,
        }
    }
}
