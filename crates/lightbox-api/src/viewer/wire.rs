//! Viewer wire types: exactly the avara SDK's models, camelCase, every key
//! emitted (null where there is no value).

use lightbox_domain::study::{Metadata, Study};
use lightbox_domain::user::UserRef;
use lightbox_domain::Timestamp;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserReference<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub middle_name: Option<&'a str>,
    pub suffix1: Option<&'a str>,
    pub suffix2: Option<&'a str>,
}

impl<'a> From<&'a UserRef> for UserReference<'a> {
    fn from(u: &'a UserRef) -> Self {
        UserReference {
            user_id: u.id.as_str(),
            email: &u.email,
            first_name: &u.first_name,
            last_name: &u.last_name,
            middle_name: u.middle_name.as_deref(),
            suffix1: u.suffix1.as_deref(),
            suffix2: u.suffix2.as_deref(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyReference<'a> {
    pub api_key_id: String,
    pub description: &'a str,
    pub is_clinical_context_enrichment_enabled: bool,
    pub is_viewer_enabled: bool,
}

/// Lightbox does not host the Express product, so it knows no customer names:
/// the customer handle stands in as the name.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpressCustomerReference<'a> {
    pub express_customer_id: &'a str,
    pub express_customer_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyJson<'a> {
    pub study_id: &'a str,
    pub study_instance_uid: &'a str,
    pub study_description: &'a str,
    pub severity: &'static str,
    pub study_viewer_status: &'static str,
    pub is_cancelled: bool,
    pub cancelled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub assigned_to: Option<UserReference<'a>>,
    pub created_by_api_key: Option<ApiKeyReference<'a>>,
    pub created_by_user: Option<UserReference<'a>>,
    pub express_customer: Option<ExpressCustomerReference<'a>>,
    pub metadata: &'a Metadata,
}

impl<'a> From<&'a Study> for StudyJson<'a> {
    fn from(s: &'a Study) -> Self {
        StudyJson {
            study_id: s.id.as_str(),
            study_instance_uid: &s.study_instance_uid,
            study_description: &s.description,
            severity: s.severity.as_str(),
            study_viewer_status: s.viewer_status.as_str(),
            is_cancelled: s.is_cancelled,
            cancelled_at: s.cancelled_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
            assigned_to: s.assigned_to.as_ref().map(UserReference::from),
            created_by_api_key: s.created_by_api_key.as_ref().map(|k| ApiKeyReference {
                api_key_id: k.id.to_string(),
                description: &k.description,
                is_clinical_context_enrichment_enabled: false,
                is_viewer_enabled: true,
            }),
            created_by_user: s.created_by_user.as_ref().map(UserReference::from),
            express_customer: s
                .express_customer_id
                .as_deref()
                .map(|id| ExpressCustomerReference {
                    express_customer_id: id,
                    express_customer_name: id,
                }),
            metadata: &s.metadata,
        }
    }
}

#[derive(Serialize)]
pub struct StudyPageJson<'a> {
    pub studies: Vec<StudyJson<'a>>,
    pub cursor: Option<String>,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
}

#[derive(Serialize)]
pub struct SuccessResponse {
    pub success: bool,
    pub message: Option<String>,
}

#[derive(Serialize)]
pub struct UrlResponse {
    pub url: String,
}
