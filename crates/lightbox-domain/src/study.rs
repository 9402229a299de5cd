//! The Viewer worklist's study.

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, StudyId, UserId};
use crate::time::Timestamp;
use crate::user::UserRef;
use crate::validate;
use std::collections::BTreeMap;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> $crate::Result<Self> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::Error::invalid(
                        $field,
                        format!(
                            "`{s}` is not a valid {}; expected one of: {}",
                            $field,
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }
        }

        // The OpenAPI schema: a string with exactly the wire values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// How urgent a study is.
    Severity, "severity" { Normal = "normal", High = "high", Stat = "stat" }
);
wire_enum!(
    /// Whether the reading of a study is done.
    ViewerStatus, "studyViewerStatus" { Incomplete = "incomplete", Complete = "complete" }
);

pub type Metadata = BTreeMap<String, String>;

/// The API key that created a study, as shown on the study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRef {
    pub id: ApiKeyId,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Study {
    pub id: StudyId,
    pub study_instance_uid: String,
    pub description: String,
    pub severity: Severity,
    pub viewer_status: ViewerStatus,
    pub is_cancelled: bool,
    pub cancelled_at: Option<Timestamp>,
    pub assigned_to: Option<UserRef>,
    pub express_customer_id: Option<String>,
    pub created_by_api_key: Option<ApiKeyRef>,
    pub created_by_user: Option<UserRef>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Who performs an action: the credential the request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    User(UserId),
}

#[derive(Debug, Clone)]
pub struct NewStudy {
    pub study_instance_uid: String,
    pub description: String,
    pub severity: Severity,
    pub assigned_to: Option<UserId>,
    pub express_customer_id: Option<String>,
    pub metadata: Metadata,
}

impl NewStudy {
    pub fn validate(&self) -> Result<()> {
        validate::dicom_uid("studyInstanceUid", &self.study_instance_uid)?;
        validate::required_text(
            "studyDescription",
            &self.description,
            validate::MAX_DESCRIPTION_CHARS,
        )?;
        if let Some(customer) = &self.express_customer_id {
            validate::express_customer_id("expressCustomerId", customer)?;
        }
        validate::metadata(&self.metadata)
    }
}

/// A partial update. `None` leaves a field alone; for the nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct StudyPatch {
    pub description: Option<String>,
    pub severity: Option<Severity>,
    pub viewer_status: Option<ViewerStatus>,
    pub assigned_to: Option<Option<UserId>>,
    /// Replaces the whole map (no merge); `Some(None)` empties it.
    pub metadata: Option<Option<Metadata>>,
}

impl StudyPatch {
    pub fn validate(&self) -> Result<()> {
        if let Some(description) = &self.description {
            validate::required_text(
                "studyDescription",
                description,
                validate::MAX_DESCRIPTION_CHARS,
            )?;
        }
        if let Some(Some(metadata)) = &self.metadata {
            validate::metadata(metadata)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.description.is_none()
            && self.severity.is_none()
            && self.viewer_status.is_none()
            && self.assigned_to.is_none()
            && self.metadata.is_none()
    }
}

/// How a request names one study: by id, by DICOM UID, or both (which must agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudySelector {
    Id(StudyId),
    Uid(String),
    Both(StudyId, String),
}

impl StudySelector {
    pub fn from_parts(id: Option<&str>, uid: Option<&str>) -> Result<Self> {
        let id = id.map(StudyId::parse).transpose()?;
        if let Some(uid) = uid {
            validate::dicom_uid("studyInstanceUid", uid)?;
        }
        match (id, uid) {
            (Some(id), Some(uid)) => Ok(StudySelector::Both(id, uid.to_owned())),
            (Some(id), None) => Ok(StudySelector::Id(id)),
            (None, Some(uid)) => Ok(StudySelector::Uid(uid.to_owned())),
            (None, None) => Err(Error::bad_request(
                "give `studyId` or `studyInstanceUid` to name the study",
            )),
        }
    }
}

/// A filter on a nullable reference: match a value, or match "none set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefFilter<T> {
    Is(T),
    IsNull,
}

#[derive(Debug, Clone, Default)]
pub struct StudyFilter {
    pub assigned_to: Option<RefFilter<UserId>>,
    pub express_customer_id: Option<RefFilter<String>>,
    pub is_cancelled: Option<bool>,
    pub severity: Option<Severity>,
    pub viewer_status: Option<ViewerStatus>,
    /// Case-insensitive substring of the description.
    pub description_contains: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_their_wire_names_only() {
        assert_eq!(Severity::parse("stat").unwrap(), Severity::Stat);
        assert!(Severity::parse("STAT").is_err());
        assert_eq!(
            ViewerStatus::parse("complete").unwrap().as_str(),
            "complete"
        );
        let err = Severity::parse("urgent").unwrap_err().to_string();
        assert!(err.contains("normal, high, stat"), "{err}");
    }

    #[test]
    fn selector_requires_one_name() {
        assert!(StudySelector::from_parts(None, None).is_err());
        assert!(StudySelector::from_parts(Some("nope"), None).is_err());
        assert_eq!(
            StudySelector::from_parts(None, Some("1.2")).unwrap(),
            StudySelector::Uid("1.2".into())
        );
    }
}
