//! The pre-encounter Images API (`/images/v1`): snake_case JSON, OAuth
//! access tokens, image bytes through each image's `signed_url`.

use crate::viewer::wire_enum;
use crate::{Auth, Client, Error, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::AsyncWriteExt;

wire_enum!(ImageStatus { Pending = "PENDING", Uploaded = "UPLOADED", Failed = "FAILED" });
wire_enum!(CoverageImageSide { Front = "FRONT", Back = "BACK" });
wire_enum!(ImageSortField {
    UpdatedAt = "updatedAt",
    FileName = "fileName",
    DisplayName = "displayName",
    FileType = "fileType",
    Status = "status",
});
wire_enum!(SortDirection { Asc = "asc", Desc = "desc" });

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageAssociation {
    /// A UUID.
    pub id: String,
    pub side: CoverageImageSide,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientAssociation {
    pub id: String,
    #[serde(default)]
    pub notes: Option<String>,
}

/// `MutableImage`: the body of create and update (update replaces every field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewImage {
    pub file_name: String,
    pub display_name: String,
    /// A media type (`image/png`) or extension (`png`).
    pub file_type: String,
    pub status: ImageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageAssociation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientAssociation>,
}

impl NewImage {
    /// A `PENDING` image with no associations.
    pub fn new(
        file_name: impl Into<String>,
        display_name: impl Into<String>,
        file_type: impl Into<String>,
    ) -> Self {
        NewImage {
            file_name: file_name.into(),
            display_name: display_name.into(),
            file_type: file_type.into(),
            status: ImageStatus::Pending,
            coverage: None,
            patient: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub file_name: String,
    pub display_name: String,
    pub file_type: String,
    pub status: ImageStatus,
    #[serde(default)]
    pub coverage: Option<CoverageAssociation>,
    #[serde(default)]
    pub patient: Option<PatientAssociation>,
    /// Upload link while the image is `PENDING` without bytes, read link after.
    pub signed_url: String,
    pub organization_id: String,
    pub deactivated: bool,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub updating_user_id: String,
}

impl Image {
    /// Its mutable fields, as a body for [`Client::update_image`].
    pub fn fields(&self) -> NewImage {
        NewImage {
            file_name: self.file_name.clone(),
            display_name: self.display_name.clone(),
            file_type: self.file_type.clone(),
            status: self.status,
            coverage: self.coverage.clone(),
            patient: self.patient.clone(),
        }
    }
}

/// Filters of `GET /images/v1` (exact matches, AND-combined).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_field: Option<ImageSortField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_direction: Option<SortDirection>,
}

/// `POST /api/auth/v2/token`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
}

/// The media type Lightbox expects for a file name's extension, if it
/// verifies that kind of file.
pub fn media_type_for(file_name: &str) -> Option<&'static str> {
    let ext = Path::new(file_name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "tif" | "tiff" => "image/tiff",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

impl Client {
    /// `POST /images/v1`. Create images `PENDING`, then upload their bytes.
    pub async fn create_image(&self, image: &NewImage) -> Result<Image> {
        let url = self.url(&["images", "v1"]);
        self.json(Auth::Token, Method::POST, url, &|r| r.json(image))
            .await
    }

    /// `GET /images/v1/{id}` (deactivated images too).
    pub async fn get_image(&self, id: &str) -> Result<Image> {
        let url = self.url(&["images", "v1", id]);
        self.json(Auth::Token, Method::GET, url, &|r| r).await
    }

    /// `PUT /images/v1/{id}/{version}`: replaces the mutable fields. A stale
    /// `version` is a 409 whose error carries `latest_version`.
    pub async fn update_image(&self, id: &str, version: i64, image: &NewImage) -> Result<Image> {
        let url = self.url(&["images", "v1", id, &version.to_string()]);
        self.json(Auth::Token, Method::PUT, url, &|r| r.json(image))
            .await
    }

    /// `DELETE /images/v1/{id}/{version}`: soft delete.
    pub async fn deactivate_image(&self, id: &str, version: i64) -> Result<()> {
        let url = self.url(&["images", "v1", id, &version.to_string()]);
        self.execute(Auth::Token, Method::DELETE, url, None, &|r| r)
            .await?;
        Ok(())
    }

    /// `GET /images/v1`: active images matching `query` (one answer, no pages).
    pub async fn search_images(&self, query: &ImageQuery) -> Result<Vec<Image>> {
        let url = self.url(&["images", "v1"]);
        self.json(Auth::Token, Method::GET, url, &|r| r.query(query))
            .await
    }

    /// PUTs `bytes` to a `PENDING` image's `signed_url` (the link is its own
    /// authorization; no token is sent).
    pub async fn upload_image_bytes(&self, image: &Image, bytes: Bytes) -> Result<()> {
        let url = signed_url(image)?;
        let content_type = image.file_type.clone();
        self.execute(
            Auth::None,
            Method::PUT,
            url,
            Some(self.transfer_timeout()),
            &|r| {
                r.header(CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone())
            },
        )
        .await?;
        Ok(())
    }

    /// The whole flow for one file: creates the image `PENDING`, uploads the
    /// bytes, marks it `UPLOADED`; returns the final record.
    pub async fn upload_image(&self, image: &NewImage, bytes: Bytes) -> Result<Image> {
        let created = self
            .create_image(&NewImage {
                status: ImageStatus::Pending,
                ..image.clone()
            })
            .await?;
        self.upload_image_bytes(&created, bytes).await?;
        let uploaded = NewImage {
            status: ImageStatus::Uploaded,
            ..created.fields()
        };
        self.update_image(&created.id, created.version, &uploaded)
            .await
    }

    /// Starts reading the image's file through its `signed_url`.
    async fn open_download(&self, image: &Image) -> Result<(Url, reqwest::Response)> {
        let url = signed_url(image)?;
        let response = self
            .execute(
                Auth::None,
                Method::GET,
                url.clone(),
                Some(self.transfer_timeout()),
                &|r| r,
            )
            .await?;
        Ok((url, response))
    }

    /// The image's bytes, through its `signed_url`.
    pub async fn download_image(&self, image: &Image) -> Result<Bytes> {
        let (url, response) = self.open_download(image).await?;
        response.bytes().await.map_err(|e| transport(&url, e))
    }

    /// Streams the image's bytes into `path` (written to a temporary file
    /// beside it, renamed into place when complete); returns the byte count.
    pub async fn download_image_to(&self, image: &Image, path: &Path) -> Result<u64> {
        let (url, response) = self.open_download(image).await?;
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(".part");
        let partial = std::path::PathBuf::from(partial);
        let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        let result: Result<()> = async {
            while let Some(chunk) = stream.try_next().await.map_err(|e| transport(&url, e))? {
                file.write_all(&chunk).await.map_err(io)?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        tokio::fs::rename(&partial, path).await.map_err(io)?;
        Ok(written)
    }
}

fn signed_url(image: &Image) -> Result<Url> {
    Url::parse(&image.signed_url).map_err(|e| Error::Decode {
        url: image.signed_url.clone(),
        status: 200,
        message: format!("image {} has no usable signed_url: {e}", image.id),
    })
}

fn transport(url: &Url, e: reqwest::Error) -> Error {
    Error::Transport {
        url: url.to_string(),
        timeout: e.is_timeout(),
        source: Box::new(e),
    }
}
