//! Images wire types: the candidhealth SDK's models, snake_case, no aliases.

use lightbox_domain::image::{
    parse_coverage_id, CoverageAssociation, CoverageImageSide, Image, ImageStatus, MutableImage,
    PatientAssociation,
};
use lightbox_domain::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `MutableImage`, the body of create and update. Absent and `null` optional
/// fields mean the same; unknown keys are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = MutableImage, example = json!({
    "file_name": "card-front.jpg", "display_name": "Insurance card (front)",
    "file_type": "image/jpeg", "status": "PENDING",
    "coverage": {"id": "6f1c1e0a-8a53-4c55-9d7e-3a9f4c1b2d10", "side": "FRONT"},
    "patient": null
}))]
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

#[derive(Deserialize, ToSchema)]
#[schema(as = MutableImageCoverage)]
struct CoverageBody {
    /// The coverage's UUID.
    id: String,
    side: CoverageImageSide,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = MutableImagePatient)]
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

#[derive(Serialize, ToSchema)]
#[schema(as = ImageCoverage)]
pub struct CoverageJson {
    #[schema(format = Uuid)]
    id: String,
    #[schema(value_type = CoverageImageSide)]
    side: &'static str,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ImagePatient)]
pub struct PatientJson<'a> {
    id: &'a str,
    notes: Option<&'a str>,
}

/// `Image`: every key emitted (`coverage`/`patient` as null when absent).
#[derive(Serialize, ToSchema)]
#[schema(as = Image, example = json!({
    "id": "01966b0e-7f3a-7c4e-9a51-3f2b8d6c1e26", "file_name": "card-front.jpg",
    "display_name": "Insurance card (front)", "file_type": "image/jpeg", "status": "PENDING",
    "coverage": {"id": "6f1c1e0a-8a53-4c55-9d7e-3a9f4c1b2d10", "side": "FRONT"},
    "patient": null,
    "signed_url": "https://lightbox.example.org/blobs/v1/images/01966b0e-7f3a-7c4e-9a51-3f2b8d6c1e26?token=eyJ...",
    "organization_id": "01966b0e-7f3a-7c4e-9a51-3f2b8d6c1e25", "deactivated": false,
    "version": 1, "updated_at": "2025-01-30T12:34:56.789Z",
    "updating_user_id": "cli_01966b0e7f3a7c4e9a513f2b8d6c1e27"
}))]
pub struct ImageJson<'a> {
    #[schema(format = Uuid)]
    id: String,
    file_name: &'a str,
    display_name: &'a str,
    file_type: &'a str,
    #[schema(value_type = ImageStatus)]
    status: &'static str,
    coverage: Option<CoverageJson>,
    patient: Option<PatientJson<'a>>,
    /// While PENDING, where to PUT the file once; afterwards, where to GET it. Expires.
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
