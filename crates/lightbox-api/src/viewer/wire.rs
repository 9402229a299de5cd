//! Viewer wire types: exactly the avara SDK's models, camelCase, every key
//! emitted (null where there is no value).

use lightbox_domain::invitation::Invitation;
use lightbox_domain::study::{Metadata, Study};
use lightbox_domain::user::{User, UserRef};
use lightbox_domain::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyReference<'a> {
    pub api_key_id: String,
    pub description: &'a str,
    pub is_clinical_context_enrichment_enabled: bool,
    pub is_viewer_enabled: bool,
}

/// Lightbox does not host the Express product, so it knows no customer names:
/// the customer handle stands in as the name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpressCustomerReference<'a> {
    pub express_customer_id: &'a str,
    pub express_customer_name: &'a str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Study, example = json!({
    "studyId": "stu_01966b0e7f3a7c4e9a513f2b8d6c1e22",
    "studyInstanceUid": "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
    "studyDescription": "CT chest without contrast",
    "severity": "high", "studyViewerStatus": "incomplete",
    "isCancelled": false, "cancelledAt": null,
    "createdAt": "2025-01-30T12:34:56.789Z", "updatedAt": "2025-01-30T12:34:56.789Z",
    "assignedTo": null,
    "createdByApiKey": {"apiKeyId": "01966b0e-0000-7000-8000-000000000001",
        "description": "PACS bridge", "isClinicalContextEnrichmentEnabled": false,
        "isViewerEnabled": true},
    "createdByUser": null, "expressCustomer": null,
    "metadata": {"accession": "A-1001"}
}))]
pub struct StudyJson<'a> {
    pub study_id: &'a str,
    pub study_instance_uid: &'a str,
    pub study_description: &'a str,
    #[schema(value_type = lightbox_domain::study::Severity)]
    pub severity: &'static str,
    #[schema(value_type = lightbox_domain::study::ViewerStatus)]
    pub study_viewer_status: &'static str,
    pub is_cancelled: bool,
    pub cancelled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub assigned_to: Option<UserReference<'a>>,
    pub created_by_api_key: Option<ApiKeyReference<'a>>,
    pub created_by_user: Option<UserReference<'a>>,
    pub express_customer: Option<ExpressCustomerReference<'a>>,
    #[schema(value_type = BTreeMap<String, String>)]
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

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": true, "message": "study stu_01966b0e7f3a7c4e9a513f2b8d6c1e22 cancelled"}))]
pub struct SuccessResponse {
    pub success: bool,
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"url": "https://lightbox.example.org/viewer/open/eyJ..."}))]
pub struct UrlResponse {
    pub url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User, example = json!({
    "userId": "usr_01966b0e7f3a7c4e9a513f2b8d6c1e23", "email": "ada@example.org",
    "firstName": "Ada", "lastName": "Lovelace", "clinicRole": "Radiologist",
    "level": "member", "canManageStudies": true, "hasDashboardAccess": false,
    "invitedSource": "api", "createdAt": "2025-01-30T12:34:56.789Z", "lastLoginAt": null,
    "middleName": null, "phoneNumber": null, "suffix1": null, "suffix2": null,
    "isActive": true
}))]
pub struct UserJson<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub clinic_role: &'a str,
    #[schema(value_type = lightbox_domain::user::UserLevel)]
    pub level: &'static str,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    #[schema(value_type = lightbox_domain::user::InvitedSource)]
    pub invited_source: &'static str,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    pub middle_name: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub suffix1: Option<&'a str>,
    pub suffix2: Option<&'a str>,
    /// Lightbox extension: false once access is revoked (the SDK model has no such field).
    pub is_active: bool,
}

impl<'a> From<&'a User> for UserJson<'a> {
    fn from(u: &'a User) -> Self {
        let r = &u.reference;
        UserJson {
            user_id: r.id.as_str(),
            email: &r.email,
            first_name: &r.first_name,
            last_name: &r.last_name,
            clinic_role: &u.clinic_role,
            level: u.level.as_str(),
            can_manage_studies: u.can_manage_studies,
            has_dashboard_access: u.has_dashboard_access,
            invited_source: u.invited_source.as_str(),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            middle_name: r.middle_name.as_deref(),
            phone_number: u.phone_number.as_deref(),
            suffix1: r.suffix1.as_deref(),
            suffix2: r.suffix2.as_deref(),
            is_active: u.is_active,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Invitation, example = json!({
    "invitationId": "inv_01966b0e7f3a7c4e9a513f2b8d6c1e24",
    "userId": "usr_01966b0e7f3a7c4e9a513f2b8d6c1e23",
    "clinicId": "01966b0e-7f3a-7c4e-9a51-3f2b8d6c1e25", "email": "ada@example.org",
    "firstName": "Ada", "lastName": "Lovelace", "clinicRole": "Radiologist",
    "level": "member", "canManageStudies": true, "hasDashboardAccess": false,
    "invitedSource": "api", "status": "sent", "inviterId": null,
    "createdAt": "2025-01-30T12:34:56.789Z", "updatedAt": "2025-01-30T12:34:56.789Z",
    "expiry": "2025-02-06T12:34:56.789Z",
    "invitedByApiKeyId": "01966b0e-0000-7000-8000-000000000001",
    "middleName": null, "phoneNumber": null, "suffix1": null, "suffix2": null
}))]
pub struct InvitationJson<'a> {
    pub invitation_id: &'a str,
    pub user_id: &'a str,
    pub clinic_id: String,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub clinic_role: &'a str,
    #[schema(value_type = lightbox_domain::user::UserLevel)]
    pub level: &'static str,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    #[schema(value_type = lightbox_domain::user::InvitedSource)]
    pub invited_source: &'static str,
    #[schema(value_type = lightbox_domain::invitation::InvitationStatus)]
    pub status: &'static str,
    /// null for invitations sent through the API (then `invitedByApiKeyId` is set).
    pub inviter_id: Option<&'a str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expiry: Option<Timestamp>,
    pub invited_by_api_key_id: Option<String>,
    pub middle_name: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub suffix1: Option<&'a str>,
    pub suffix2: Option<&'a str>,
}

impl<'a> From<&'a Invitation> for InvitationJson<'a> {
    fn from(i: &'a Invitation) -> Self {
        let u = &i.user;
        let r = &u.reference;
        InvitationJson {
            invitation_id: i.id.as_str(),
            user_id: r.id.as_str(),
            clinic_id: i.org_id.to_string(),
            email: &r.email,
            first_name: &r.first_name,
            last_name: &r.last_name,
            clinic_role: &u.clinic_role,
            level: u.level.as_str(),
            can_manage_studies: u.can_manage_studies,
            has_dashboard_access: u.has_dashboard_access,
            invited_source: u.invited_source.as_str(),
            status: i.status.as_str(),
            inviter_id: i.inviter_id.as_ref().map(|u| u.as_str()),
            created_at: i.created_at,
            updated_at: i.updated_at,
            expiry: i.expiry,
            invited_by_api_key_id: i.invited_by_api_key_id.map(|k| k.to_string()),
            middle_name: r.middle_name.as_deref(),
            phone_number: u.phone_number.as_deref(),
            suffix1: r.suffix1.as_deref(),
            suffix2: r.suffix2.as_deref(),
        }
    }
}

/// One page of a listing: `{"<items key>": [...], "hasMore": ..., "cursor": ...}`,
/// written straight to the response (not built as a `Value` first: a page of
/// 100 studies is most of a listing's serialisation time).
pub struct PageJson<T> {
    items_key: &'static str,
    items: Vec<T>,
    cursor: Option<String>,
}

pub fn page_json<T: Serialize>(
    items_key: &'static str,
    items: Vec<T>,
    cursor: Option<String>,
) -> PageJson<T> {
    PageJson {
        items_key,
        items,
        cursor,
    }
}

impl<T: Serialize> Serialize for PageJson<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(self.items_key, &self.items)?;
        map.serialize_entry("hasMore", &self.cursor.is_some())?;
        map.serialize_entry("cursor", &self.cursor)?;
        map.end()
    }
}
