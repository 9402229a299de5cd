//! The Viewer worklist API (`/v1/viewer/...`): camelCase JSON, API-key auth.

use crate::{Auth, Client, Error, Result};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $wire)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let all: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("`{s}` is not one of {}", all.join(", "))
                    })
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(Severity { Normal = "normal", High = "high", Stat = "stat" });
wire_enum!(StudyViewerStatus { Incomplete = "incomplete", Complete = "complete" });
wire_enum!(UserLevel { Owner = "owner", Admin = "admin", Member = "member" });

/// `null` and absent both read as an empty map.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Study {
    pub study_id: String,
    pub study_instance_uid: String,
    pub study_description: String,
    pub severity: Severity,
    pub study_viewer_status: StudyViewerStatus,
    pub is_cancelled: bool,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub assigned_to: Option<UserReference>,
    #[serde(default)]
    pub created_by_api_key: Option<ApiKeyReference>,
    #[serde(default)]
    pub created_by_user: Option<UserReference>,
    #[serde(default)]
    pub express_customer: Option<ExpressCustomerReference>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserReference {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub middle_name: Option<String>,
    #[serde(default)]
    pub suffix1: Option<String>,
    #[serde(default)]
    pub suffix2: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyReference {
    pub api_key_id: String,
    pub description: String,
    #[serde(default)]
    pub is_clinical_context_enrichment_enabled: Option<bool>,
    #[serde(default)]
    pub is_viewer_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpressCustomerReference {
    pub express_customer_id: String,
    pub express_customer_name: String,
}

/// The body of `POST /v1/viewer/studies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewStudy {
    pub study_instance_uid: String,
    pub study_description: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub express_customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl NewStudy {
    pub fn new(uid: impl Into<String>, description: impl Into<String>, severity: Severity) -> Self {
        NewStudy {
            study_instance_uid: uid.into(),
            study_description: description.into(),
            severity,
            assigned_to: None,
            express_customer_id: None,
            metadata: None,
        }
    }
}

/// The body of `PATCH /v1/viewer/studies/{id}`: `None` leaves a field as it
/// is; for the nullable ones `Some(None)` sends `null` (unassign, clear).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_viewer_status: Option<StudyViewerStatus>,
}

/// Filters of `GET /v1/viewer/studies`. `assigned_to` / `express_customer_id`
/// take `"null"` for "unassigned" / "no customer".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub express_customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Case-insensitive substring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_viewer_status: Option<StudyViewerStatus>,
    /// Page size, 1–100 (the server's default is 25).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A study named by its id or by its DICOM Study Instance UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudyRef {
    Id(String),
    Uid(String),
}

impl StudyRef {
    /// `stu_…` is an id; anything else a Study Instance UID.
    pub fn parse(s: &str) -> StudyRef {
        let s = s.trim();
        if s.starts_with("stu_") {
            StudyRef::Id(s.to_owned())
        } else {
            StudyRef::Uid(s.to_owned())
        }
    }

    fn body(&self) -> serde_json::Value {
        match self {
            StudyRef::Id(id) => serde_json::json!({ "studyId": id }),
            StudyRef::Uid(uid) => serde_json::json!({ "studyInstanceUid": uid }),
        }
    }
}

impl fmt::Display for StudyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StudyRef::Id(s) | StudyRef::Uid(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessResponse {
    pub success: bool,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UrlResponse {
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub user_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub clinic_role: String,
    pub level: UserLevel,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    /// `dashboard` or `api`.
    pub invited_source: String,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_login_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub middle_name: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub suffix1: Option<String>,
    #[serde(default)]
    pub suffix2: Option<String>,
    /// Lightbox extension: false once access is revoked.
    #[serde(default)]
    pub is_active: Option<bool>,
}

/// The body of `POST /v1/viewer/users` (invite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub clinic_role: String,
    /// `admin` or `member`.
    pub level: UserLevel,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix2: Option<String>,
}

/// Filters of `GET /v1/viewer/users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<UserLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One page of a listing, whatever its items key (`studies`, `users`, …).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    #[serde(alias = "studies", alias = "users", alias = "invitations")]
    pub items: Vec<T>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, rename = "hasMore")]
    pub has_more: Option<bool>,
}

impl<T> Page<T> {
    /// The cursor of the next page, if there is one (the avara SDK's rule).
    pub fn next_cursor(&self) -> Option<&str> {
        if self.has_more == Some(false) || self.items.is_empty() {
            return None;
        }
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

impl Client {
    /// `POST /v1/viewer/studies`. A Study Instance UID the organization has
    /// already used is a 409.
    pub async fn create_study(&self, study: &NewStudy) -> Result<Study> {
        let url = self.url(&["v1", "viewer", "studies"]);
        self.json(Auth::ApiKey, Method::POST, url, &|r| r.json(study))
            .await
    }

    /// `GET /v1/viewer/studies/{studyId}`.
    pub async fn get_study(&self, study_id: &str) -> Result<Study> {
        let url = self.url(&["v1", "viewer", "studies", study_id]);
        self.json(Auth::ApiKey, Method::GET, url, &|r| r).await
    }

    /// `GET /v1/viewer/studies/by-uid/{studyInstanceUid}`.
    pub async fn get_study_by_uid(&self, uid: &str) -> Result<Study> {
        let url = self.url(&["v1", "viewer", "studies", "by-uid", uid]);
        self.json(Auth::ApiKey, Method::GET, url, &|r| r).await
    }

    /// A study by id or by UID.
    pub async fn find_study(&self, study: &StudyRef) -> Result<Study> {
        match study {
            StudyRef::Id(id) => self.get_study(id).await,
            StudyRef::Uid(uid) => self.get_study_by_uid(uid).await,
        }
    }

    /// `PATCH /v1/viewer/studies/{studyId}`.
    pub async fn update_study(&self, study_id: &str, update: &StudyUpdate) -> Result<Study> {
        let url = self.url(&["v1", "viewer", "studies", study_id]);
        self.json(Auth::ApiKey, Method::PATCH, url, &|r| r.json(update))
            .await
    }

    /// `POST /v1/viewer/studies/cancel`. Cancelling a cancelled study is a 409.
    pub async fn cancel_study(&self, study: &StudyRef) -> Result<SuccessResponse> {
        self.study_action("cancel", study).await
    }

    /// `POST /v1/viewer/studies/uncancel`.
    pub async fn uncancel_study(&self, study: &StudyRef) -> Result<SuccessResponse> {
        self.study_action("uncancel", study).await
    }

    /// `POST /v1/viewer/studies/reroute-url`: a signed, expiring link to the study.
    pub async fn reroute_url(&self, study: &StudyRef) -> Result<UrlResponse> {
        self.study_action("reroute-url", study).await
    }

    async fn study_action<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        study: &StudyRef,
    ) -> Result<T> {
        let url = self.url(&["v1", "viewer", "studies", action]);
        let body = study.body();
        self.json(Auth::ApiKey, Method::POST, url, &|r| r.json(&body))
            .await
    }

    /// One page of `GET /v1/viewer/studies`.
    pub async fn list_studies_page(
        &self,
        filter: &StudyFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Study>> {
        self.page(&["v1", "viewer", "studies"], filter, cursor)
            .await
    }

    /// Every study matching `filter`, newest first, fetching pages as the
    /// stream is read.
    pub fn list_studies(&self, filter: StudyFilter) -> BoxStream<'static, Result<Study>> {
        self.paginate(&["v1", "viewer", "studies"], filter)
    }

    /// `GET /v1/viewer/users/{userId}`.
    pub async fn get_user(&self, user_id: &str) -> Result<User> {
        let url = self.url(&["v1", "viewer", "users", user_id]);
        self.json(Auth::ApiKey, Method::GET, url, &|r| r).await
    }

    /// Every user matching `filter` (revoked ones included).
    pub fn list_users(&self, filter: UserFilter) -> BoxStream<'static, Result<User>> {
        self.paginate(&["v1", "viewer", "users"], filter)
    }

    /// `POST /v1/viewer/users`: creates the user and a pending invitation.
    pub async fn invite_user(&self, user: &NewUser) -> Result<User> {
        let url = self.url(&["v1", "viewer", "users"]);
        self.json(Auth::ApiKey, Method::POST, url, &|r| r.json(user))
            .await
    }

    /// `POST /v1/viewer/users/revoke-access`.
    pub async fn revoke_user_access(&self, user_id: &str) -> Result<SuccessResponse> {
        self.user_action("revoke-access", user_id).await
    }

    /// `POST /v1/viewer/users/reactivate`.
    pub async fn reactivate_user(&self, user_id: &str) -> Result<SuccessResponse> {
        self.user_action("reactivate", user_id).await
    }

    async fn user_action(&self, action: &str, user_id: &str) -> Result<SuccessResponse> {
        let url = self.url(&["v1", "viewer", "users", action]);
        let body = serde_json::json!({ "userId": user_id });
        self.json(Auth::ApiKey, Method::POST, url, &|r| r.json(&body))
            .await
    }

    /// `POST /v1/viewer/ephemeral-sessions`: a 30-second link to a viewer
    /// session for `retrieval_id`. `hanging_protocol` and `options` are sent
    /// as given when set.
    pub async fn create_ephemeral_session(
        &self,
        retrieval_id: &str,
        hanging_protocol: Option<serde_json::Value>,
        options: Option<serde_json::Value>,
    ) -> Result<UrlResponse> {
        let url = self.url(&["v1", "viewer", "ephemeral-sessions"]);
        let mut body = serde_json::json!({ "retrievalId": retrieval_id });
        if let Some(p) = hanging_protocol {
            body["hangingProtocol"] = p;
        }
        if let Some(o) = options {
            body["options"] = o;
        }
        self.json(Auth::ApiKey, Method::POST, url, &|r| r.json(&body))
            .await
    }

    async fn page<T, Q>(&self, path: &[&str], filter: &Q, cursor: Option<&str>) -> Result<Page<T>>
    where
        T: serde::de::DeserializeOwned,
        Q: Serialize + Sync,
    {
        let url = self.url(path);
        self.json(Auth::ApiKey, Method::GET, url, &|r| {
            let r = r.query(filter);
            match cursor {
                Some(c) => r.query(&[("cursor", c)]),
                None => r,
            }
        })
        .await
    }

    fn paginate<T, Q>(&self, path: &[&str], filter: Q) -> BoxStream<'static, Result<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        Q: Serialize + Send + Sync + 'static,
    {
        let client = self.clone();
        let path: Arc<Vec<String>> = Arc::new(path.iter().map(|s| s.to_string()).collect());
        let filter = Arc::new(filter);
        // State: Some(cursor) while a page is left to fetch (None: the first).
        let pages = stream::try_unfold(Some(None::<String>), move |state| {
            let (client, path, filter) = (client.clone(), path.clone(), filter.clone());
            async move {
                let Some(cursor) = state else {
                    return Ok(None);
                };
                let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                let page: Page<T> = client.page(&segments, &*filter, cursor.as_deref()).await?;
                let next = page.next_cursor().map(|c| Some(c.to_owned()));
                Ok::<_, Error>(Some((page.items, next)))
            }
        });
        pages
            .map_ok(|items: Vec<T>| stream::iter(items.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }
}
