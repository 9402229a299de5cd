//! Pre-encounter Images API and its OAuth token endpoint over real HTTP, on
//! SQLite and PostgreSQL: tokens, versioning and conflicts, search and scan,
//! uploads and reads through signed URLs (local backend), limits,
//! concurrency and tenancy.

mod support;

use bytes::Bytes;
use lightbox_blob::{Claims, UrlSigner};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::{Backend, Org, TestServer, PNG};

on_both_backends!(
    tokens_are_issued_for_client_credentials_only,
    tokens_are_scoped_to_their_org_and_client_and_expire,
    images_are_versioned_with_conflicts,
    one_active_image_per_coverage_side,
    search_filters_sorts_and_hides_deactivated,
    scan_includes_deactivated_oldest_first_and_is_bounded,
    upload_once_then_read_back_through_the_signed_url,
    signed_urls_are_bound_to_their_object_and_expire,
    oversize_uploads_are_413_and_leave_nothing_behind,
    uploads_must_match_their_file_type,
    concurrent_writers_of_one_version_have_one_winner,
    organizations_never_see_each_other,
);

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

/// A PNG-looking file of `len` bytes whose tail identifies it.
fn png_of(len: usize, tag: u8) -> Vec<u8> {
    let mut bytes = PNG.to_vec();
    bytes.resize(len.max(PNG.len()), tag);
    bytes
}

/// An HTTP answer whose body may be empty (204) or not JSON.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        if self.bytes.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.bytes).unwrap_or_else(|_| {
            panic!(
                "{}: body is not JSON: {:?}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// Asserts the Images error envelope and returns its `content`.
    fn error(&self, status: StatusCode, name: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["errorName"], name, "{body}");
        assert!(body["content"]["message"].is_string(), "{body}");
        body["content"].clone()
    }
}

async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<reqwest::Body>,
    content_type: Option<&str>,
) -> Answer {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("request");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.unwrap(),
    }
}

/// An Images client: one organization's OAuth access token.
#[derive(Clone)]
struct Images {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Images {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        send(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            Some(&self.token),
            body.map(|b| reqwest::Body::from(b.to_string())),
            body.map(|_| "application/json"),
        )
        .await
    }

    async fn create(&self, body: Value) -> Value {
        let a = self.call(Method::POST, "/images/v1", Some(&body)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json());
        a.json()
    }

    async fn get(&self, id: &str) -> Answer {
        self.call(Method::GET, &format!("/images/v1/{id}"), None)
            .await
    }

    async fn update(&self, id: &str, version: i64, body: &Value) -> Answer {
        self.call(
            Method::PUT,
            &format!("/images/v1/{id}/{version}"),
            Some(body),
        )
        .await
    }

    async fn deactivate(&self, id: &str, version: i64) -> Answer {
        self.call(Method::DELETE, &format!("/images/v1/{id}/{version}"), None)
            .await
    }

    async fn list(&self, query: &str) -> Vec<Value> {
        let a = self
            .call(Method::GET, &format!("/images/v1{query}"), None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json());
        a.json().as_array().expect("a bare array").clone()
    }
}

async fn token_answer(server: &TestServer, body: String, content_type: &str) -> Answer {
    send(
        &reqwest::Client::new(),
        Method::POST,
        &format!("{}/api/auth/v2/token", server.base),
        None,
        Some(body.into()),
        Some(content_type),
    )
    .await
}

async fn access_token(server: &TestServer, org: &Org) -> String {
    let body = json!({"client_id": org.client_id, "client_secret": org.client_secret});
    let a = token_answer(server, body.to_string(), "application/json").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    a.json()["access_token"].as_str().unwrap().to_owned()
}

async fn images(server: &TestServer, org: &Org) -> Images {
    Images {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token: access_token(server, org).await,
    }
}

fn image_body(file_name: &str) -> Value {
    json!({
        "file_name": file_name, "display_name": format!("Display {file_name}"),
        "file_type": "image/png", "status": "PENDING",
    })
}

fn card(coverage: &str, side: &str) -> Value {
    json!({
        "file_name": format!("card-{side}.png"), "display_name": "Insurance card",
        "file_type": "image/png", "status": "PENDING",
        "coverage": {"id": coverage, "side": side},
    })
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn id_of(image: &Value) -> String {
    image["id"].as_str().unwrap().to_owned()
}

fn url_of(image: &Value) -> String {
    image["signed_url"].as_str().unwrap().to_owned()
}

/// An image without its signed_url, which carries a fresh expiry on every read.
fn without_url(image: &Value) -> Value {
    let mut image = image.clone();
    image.as_object_mut().unwrap().remove("signed_url");
    image
}

async fn put_bytes(url: &str, bytes: Vec<u8>) -> Answer {
    send(
        &reqwest::Client::new(),
        Method::PUT,
        url,
        None,
        Some(bytes.into()),
        Some("application/octet-stream"),
    )
    .await
}

async fn get_bytes(url: &str) -> Answer {
    send(&reqwest::Client::new(), Method::GET, url, None, None, None).await
}

/// Replaces the `token` query value of a signed URL.
fn with_token(url: &str, token: &str) -> String {
    let (base, _) = url.split_once("?token=").expect("a signed link");
    format!("{base}?token={token}")
}

fn token_of(url: &str) -> String {
    url.split_once("?token=").unwrap().1.to_owned()
}

/// Files left under the blob store's temporary directory (partial uploads).
fn leftover_temp_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.data_dir.path().join("blobs/.tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ------------------------------------------------------------------ tokens

async fn tokens_are_issued_for_client_credentials_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");

    // JSON, as the SDK sends it.
    let body = json!({"client_id": org.client_id, "client_secret": org.client_secret});
    let a = token_answer(&server, body.to_string(), "application/json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["cache-control"], "no-store");
    let t = a.json();
    assert_eq!(t["token_type"], "Bearer");
    // Hours, so the SDK (which refetches under 120 s) caches it: 5 h by default.
    assert_eq!(t["expires_in"], 5 * 3600);
    let json_token = t["access_token"].as_str().unwrap().to_owned();

    // Form-encoded, as the Candid docs allow.
    let form = format!(
        "client_id={}&client_secret={}",
        org.client_id, org.client_secret
    );
    let a = token_answer(&server, form, "application/x-www-form-urlencoded").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let form_token = a.json()["access_token"].as_str().unwrap().to_owned();

    for token in [&json_token, &form_token] {
        let api = Images {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            token: token.clone(),
        };
        assert!(api.list("").await.is_empty());
    }

    // Wrong secret, unknown or malformed client: one 401 for all, in the envelope.
    for (id, secret) in [
        (org.client_id.as_str(), "wrong-secret"),
        ("cli_0190a0f0-0000-7000-8000-000000000000", "x"),
        ("nonsense", org.client_secret.as_str()),
    ] {
        let body = json!({"client_id": id, "client_secret": secret});
        let a = token_answer(&server, body.to_string(), "application/json").await;
        a.error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    }
    // Other content types are the SDK's typed InvalidContentTypeError.
    let a = token_answer(&server, body.to_string(), "text/plain").await;
    a.error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "InvalidContentTypeError",
    );
    // Broken or incomplete bodies are 400s, never 500s.
    for (raw, ct) in [
        ("{not json", "application/json"),
        (r#"{"client_id": "x"}"#, "application/json"),
        ("client_id=x", "application/x-www-form-urlencoded"),
    ] {
        let a = token_answer(&server, raw.to_owned(), ct).await;
        a.error(StatusCode::BAD_REQUEST, "BadRequestError");
    }

    // Images takes access tokens only: no token, garbage, or a Viewer API key are 401.
    let http = reqwest::Client::new();
    let list = format!("{}/images/v1", server.base);
    for token in [None, Some("garbage"), Some(org.api_key.as_str())] {
        let a = send(&http, Method::GET, &list, token, None, None).await;
        a.error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    // And the Viewer API takes API keys only.
    let r = server.api(&json_token).get("/v1/viewer/studies").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

async fn tokens_are_scoped_to_their_org_and_client_and_expire(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a_org = server.create_org("A");
    let b_org = server.create_org("B");
    let a = images(&server, &a_org).await;
    let image = a.create(image_body("a.png")).await;
    // The token acts for its org and client: they are what the image records.
    assert_eq!(image["organization_id"], a_org.org_id.as_str());
    assert_eq!(image["updating_user_id"], a_org.client_id.as_str());

    // Tokens are signed with the server's key (in the database); mint some
    // with it to show what the server accepts.
    let signer = UrlSigner::new(
        server
            .setting(lightbox_api::SIGNING_KEY_SETTING)
            .await
            .into_bytes(),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mint = |org: &str, client: &str, purpose: &str, expires_at_ms: i64| {
        signer.sign(&Claims {
            purpose: purpose.into(),
            org: org.into(),
            subject: client.into(),
            expires_at_ms,
        })
    };
    let get = |token: String| {
        let a = a.clone();
        let id = id_of(&image);
        async move { Images { token, ..a }.get(&id).await }
    };
    // A genuine claim set is accepted (the minting is faithful) …
    let ok = get(mint(
        &a_org.org_id,
        &a_org.client_id,
        "images-access",
        now_ms + 60_000,
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // … but not once expired,
    let expired = get(mint(
        &a_org.org_id,
        &a_org.client_id,
        "images-access",
        now_ms - 1,
    ))
    .await;
    let content = expired.error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    assert!(
        content["message"].as_str().unwrap().contains("expired"),
        "{content}"
    );
    // nor when org and client do not belong together,
    for (org, client) in [
        (&a_org.org_id, &b_org.client_id),
        (&b_org.org_id, &a_org.client_id),
    ] {
        let a = get(mint(org, client, "images-access", now_ms + 60_000)).await;
        a.error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    }
    // nor for another purpose (a signed link's token is no access token),
    let link = token_of(&url_of(&image));
    get(link)
        .await
        .error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    let other = get(mint(
        &a_org.org_id,
        &a_org.client_id,
        "image-read",
        now_ms + 60_000,
    ))
    .await;
    other.error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    // nor altered.
    let mut bytes = a.token.clone().into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    get(String::from_utf8(bytes).unwrap())
        .await
        .error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
}

// ------------------------------------------------------------------ records

async fn images_are_versioned_with_conflicts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;

    let coverage = new_uuid();
    let created = api
        .create(json!({
            "file_name": "front.png", "display_name": "Card (front)", "file_type": "image/png",
            "status": "PENDING", "coverage": {"id": coverage, "side": "FRONT"},
            "patient": {"id": "pat-1", "notes": null}, "unknown_key": 1,
        }))
        .await;
    let id = id_of(&created);
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
    assert_eq!(created["version"], 1);
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["deactivated"], false);
    assert_eq!(
        created["coverage"],
        json!({"id": coverage, "side": "FRONT"})
    );
    assert_eq!(created["patient"], json!({"id": "pat-1", "notes": null}));
    assert_eq!(created["file_name"], "front.png");
    assert_eq!(created["display_name"], "Card (front)");
    assert_eq!(created["file_type"], "image/png");
    assert!(created.get("unknown_key").is_none());
    let updated_at = created["updated_at"].as_str().unwrap();
    assert!(
        updated_at.ends_with('Z') && updated_at.len() == "2024-05-01T12:34:56.789Z".len(),
        "{updated_at}"
    );
    let got = api.get(&id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(without_url(&got.json()), without_url(&created));

    // Update: full replace of the mutable fields, version + 1.
    let change = json!({
        "file_name": "front-2.png", "display_name": "Card", "file_type": "image/png",
        "status": "FAILED", "patient": {"id": "pat-1", "notes": "blurry"},
    });
    let a = api.update(&id, 1, &change).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let v2 = a.json();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "FAILED");
    assert_eq!(v2["coverage"], Value::Null, "omitted coverage means none");
    assert_eq!(v2["patient"]["notes"], "blurry");
    assert!(v2["updated_at"].as_str() >= created["updated_at"].as_str());

    // A stale version is 409 with the latest one; unknown ids are 404.
    let stale = api.update(&id, 1, &change).await;
    let content = stale.error(StatusCode::CONFLICT, "VersionConflictError");
    assert_eq!(content["latest_version"], 2);
    let ahead = api.update(&id, 3, &change).await;
    assert_eq!(
        ahead.error(StatusCode::CONFLICT, "VersionConflictError")["latest_version"],
        2
    );
    let unknown = new_uuid();
    api.get(&unknown)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    api.get("not-a-uuid")
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    api.update(&unknown, 1, &change)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    api.deactivate(&unknown, 1)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    let zero = api.update(&id, 0, &change).await;
    assert_eq!(
        zero.error(StatusCode::CONFLICT, "VersionConflictError")["latest_version"],
        2
    );
    api.call(Method::PUT, &format!("/images/v1/{id}/two"), Some(&change))
        .await
        .error(StatusCode::BAD_REQUEST, "BadRequestError");

    // Unknown paths and methods under the Images API answer in its envelope too.
    api.call(Method::GET, &format!("/images/v1/{id}/1/extra"), None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    api.call(Method::PATCH, "/images/v1", None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedError");
    api.call(Method::GET, "/api/auth/v2/token", None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedError");

    // Bad bodies are 400s in the envelope.
    for bad in [
        json!({"display_name": "x", "file_type": "image/png", "status": "PENDING"}),
        json!({"file_name": "", "display_name": "x", "file_type": "image/png", "status": "PENDING"}),
        json!({"file_name": "a", "display_name": "x", "file_type": "image/png", "status": "DONE"}),
        json!({"file_name": "a", "display_name": "x", "file_type": "image/png", "status": "PENDING",
               "coverage": {"id": "not-a-uuid", "side": "FRONT"}}),
        json!({"file_name": "a", "display_name": "x", "file_type": "image/png", "status": "PENDING",
               "coverage": {"id": new_uuid(), "side": "TOP"}}),
        json!([1, 2]),
    ] {
        let a = api.call(Method::POST, "/images/v1", Some(&bad)).await;
        a.error(StatusCode::BAD_REQUEST, "BadRequestError");
    }

    // Deactivate: stale 409, current 2xx, then still readable (version + 1).
    let a = api.deactivate(&id, 1).await;
    assert_eq!(
        a.error(StatusCode::CONFLICT, "VersionConflictError")["latest_version"],
        2
    );
    let a = api.deactivate(&id, 2).await;
    assert!(a.status.is_success(), "{}", a.status);
    let gone = api.get(&id).await.json();
    assert_eq!(gone["deactivated"], true);
    assert_eq!(gone["version"], 3);
    // Updating a deactivated image reactivates it.
    let a = api.update(&id, 3, &change).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert_eq!(a.json()["deactivated"], false);
    assert_eq!(a.json()["version"], 4);
}

async fn one_active_image_per_coverage_side(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let coverage = new_uuid();

    let front = api.create(card(&coverage, "FRONT")).await;
    let back = api.create(card(&coverage, "BACK")).await;
    let again = api
        .call(Method::POST, "/images/v1", Some(&card(&coverage, "FRONT")))
        .await;
    again.error(StatusCode::CONFLICT, "VersionConflictError");
    // Another coverage's FRONT is fine.
    api.create(card(&new_uuid(), "FRONT")).await;
    // Moving the BACK image to FRONT collides too.
    let a = api
        .update(&id_of(&back), 1, &card(&coverage, "FRONT"))
        .await;
    a.error(StatusCode::CONFLICT, "VersionConflictError");
    // Deactivated images do not count: replace the FRONT.
    let a = api.deactivate(&id_of(&front), 1).await;
    assert!(a.status.is_success());
    let replacement = api.create(card(&coverage, "FRONT")).await;
    assert_eq!(replacement["version"], 1);
    // … and the old one cannot come back while the replacement is active.
    let a = api
        .update(&id_of(&front), 2, &card(&coverage, "FRONT"))
        .await;
    a.error(StatusCode::CONFLICT, "VersionConflictError");
    assert_eq!(api.get(&id_of(&front)).await.json()["deactivated"], true);
}

async fn search_filters_sorts_and_hides_deactivated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let coverage = new_uuid();

    let mut made = Vec::new();
    for (name, display, file_type, patient, notes) in [
        ("c.png", "Zulu", "image/png", "pat-1", Some("left")),
        ("a.jpg", "Yankee", "image/jpeg", "pat-1", None),
        ("b.png", "Xray", "image/png", "pat-2", Some("left")),
    ] {
        let mut body = image_body(name);
        body["display_name"] = json!(display);
        body["file_type"] = json!(file_type);
        body["patient"] = json!({"id": patient, "notes": notes});
        made.push(api.create(body).await);
        // Distinct updated_at values (millisecond precision).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let with_cov = api.create(card(&coverage, "FRONT")).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let hidden = api.create(image_body("hidden.png")).await;
    assert!(api.deactivate(&id_of(&hidden), 1).await.status.is_success());

    let names = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|i| i["file_name"].as_str().unwrap().to_owned())
            .collect()
    };
    // Default: updatedAt desc, deactivated excluded; unknown params ignored.
    assert_eq!(
        names(&api.list("?whatever=1").await),
        ["card-FRONT.png", "b.png", "a.jpg", "c.png"]
    );
    assert_eq!(
        names(&api.list("?sort_field=updatedAt&sort_direction=asc").await),
        ["c.png", "a.jpg", "b.png", "card-FRONT.png"]
    );
    assert_eq!(
        names(&api.list("?sort_field=fileName&sort_direction=asc").await),
        ["a.jpg", "b.png", "c.png", "card-FRONT.png"]
    );
    assert_eq!(
        names(&api.list("?sort_field=displayName").await),
        ["c.png", "a.jpg", "b.png", "card-FRONT.png"]
    );
    assert_eq!(
        names(&api.list("?sort_field=fileType&sort_direction=asc").await)[0],
        "a.jpg"
    );
    // Filters: exact match, AND-combined.
    assert_eq!(
        names(&api.list("?patient_id=pat-1").await),
        ["a.jpg", "c.png"]
    );
    assert_eq!(
        names(&api.list("?file_type=image%2Fpng&patient_notes=left").await),
        ["b.png", "c.png"]
    );
    assert_eq!(
        names(&api.list("?patient_id=pat-1&patient_notes=left").await),
        ["c.png"]
    );
    assert_eq!(
        names(&api.list(&format!("?coverage_id={coverage}")).await),
        ["card-FRONT.png"]
    );
    assert_eq!(
        api.list(&format!("?coverage_id={coverage}")).await[0]["id"],
        with_cov["id"]
    );
    assert!(api.list("?patient_id=pat-9").await.is_empty());
    assert!(api.list("?patient_notes=lef").await.is_empty());
    // Values the SDK cannot send are 400s.
    for q in [
        "?sort_field=createdAt",
        "?sort_direction=up",
        "?coverage_id=not-a-uuid",
    ] {
        let a = api.call(Method::GET, &format!("/images/v1{q}"), None).await;
        a.error(StatusCode::BAD_REQUEST, "BadRequestError");
    }
    let _ = made;
}

async fn scan_includes_deactivated_oldest_first_and_is_bounded(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(&api.create(image_body(&format!("{i}.png"))).await));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Deactivating the first makes it the most recent change.
    assert!(api.deactivate(&ids[0], 1).await.status.is_success());

    let scan = |q: String| {
        let api = api.clone();
        async move {
            api.call(Method::GET, &format!("/images/v1/updates/scan{q}"), None)
                .await
        }
    };
    let all = scan("?since=2020-01-01T00:00:00Z".into()).await.json();
    let order: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [&ids[1], &ids[2], &ids[3], &ids[0]]);
    assert_eq!(all[3]["deactivated"], true);
    let stamps: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["updated_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    // The SDK's isoformat() spelling (microseconds, +00:00) works too.
    let sdk_style = scan("?since=2020-01-01T00:00:00.123000%2B00:00".into()).await;
    let ids_of = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(sdk_style.status, StatusCode::OK, "{}", sdk_style.json());
    assert_eq!(ids_of(&sdk_style.json()), ids_of(&all));
    // `since` is inclusive: the last item's time returns it again.
    let from_last = scan(format!("?since={}", stamps[3])).await.json();
    assert_eq!(from_last[0]["id"], ids[0].as_str());
    // Bounded by maxResults (default 100, at most 1000).
    let two = scan("?since=2020-01-01T00:00:00.000Z&maxResults=2".into())
        .await
        .json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    assert!(scan("?since=2999-01-01T00:00:00Z".into())
        .await
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    for q in [
        "",
        "?since=yesterday",
        "?since=2020-01-01T00:00:00Z&maxResults=0",
        "?since=2020-01-01T00:00:00Z&maxResults=1001",
    ] {
        scan(q.into())
            .await
            .error(StatusCode::BAD_REQUEST, "BadRequestError");
    }
}

// ------------------------------------------------------------------ bytes

async fn upload_once_then_read_back_through_the_signed_url(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;

    // Created UPLOADED without bytes is refused; PENDING gets an upload link.
    let mut uploaded = image_body("x.png");
    uploaded["status"] = json!("UPLOADED");
    let a = api.call(Method::POST, "/images/v1", Some(&uploaded)).await;
    a.error(StatusCode::UNPROCESSABLE_ENTITY, "UnprocessableEntityError");

    let image = api.create(image_body("scan.png")).await;
    let id = id_of(&image);
    let upload_url = url_of(&image);
    assert!(
        upload_url.starts_with(&format!("{}/blobs/v1/images/{id}?token=", server.base)),
        "{upload_url}"
    );
    // Marking it UPLOADED before any bytes arrived is refused.
    let a = api.update(&id, 1, &uploaded).await;
    a.error(StatusCode::UNPROCESSABLE_ENTITY, "UnprocessableEntityError");
    // The upload link does not read.
    get_bytes(&upload_url)
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");

    let bytes = png_of(300_000, 7);
    let a = put_bytes(&upload_url, bytes.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.bytes);
    // Once only.
    let again = put_bytes(&upload_url, png_of(100, 9)).await;
    again.error(StatusCode::CONFLICT, "VersionConflictError");

    // The image's link now reads the bytes back, as stored.
    let fresh = api.get(&id).await.json();
    assert_eq!(fresh["version"], 1, "the upload is not a metadata change");
    let read_url = url_of(&fresh);
    assert_ne!(read_url, upload_url);
    let a = get_bytes(&read_url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "image/png");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.bytes.as_ref(), bytes.as_slice());
    // A read link does not upload.
    put_bytes(&read_url, png_of(100, 1))
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");

    // Marking it UPLOADED now works, and the link keeps reading.
    let a = api.update(&id, 1, &uploaded).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let done = a.json();
    assert_eq!(done["status"], "UPLOADED");
    assert_eq!(done["version"], 2);
    assert_eq!(
        get_bytes(&url_of(&done)).await.bytes.as_ref(),
        bytes.as_slice()
    );
    // The stored file's type cannot be changed by metadata.
    let mut as_jpeg = uploaded.clone();
    as_jpeg["file_type"] = json!("image/jpeg");
    let a = api.update(&id, 2, &as_jpeg).await;
    a.error(StatusCode::UNPROCESSABLE_ENTITY, "UnprocessableEntityError");
    // Deactivated images still read (get returns them).
    assert!(api.deactivate(&id, 2).await.status.is_success());
    let gone = api.get(&id).await.json();
    assert_eq!(
        get_bytes(&url_of(&gone)).await.bytes.as_ref(),
        bytes.as_slice()
    );

    // A FAILED image without bytes has a link that finds nothing.
    let mut failed = image_body("f.png");
    failed["status"] = json!("FAILED");
    let f = api.create(failed).await;
    get_bytes(&url_of(&f))
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    put_bytes(&url_of(&f), png_of(50, 1))
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");
    assert_eq!(leftover_temp_files(&server), 0);
}

async fn signed_urls_are_bound_to_their_object_and_expire(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let a = api.create(image_body("a.png")).await;
    let b = api.create(image_body("b.png")).await;
    let a_url = url_of(&a);
    let b_url = url_of(&b);

    // Tampered: one character of the signature or of the claims changed.
    let token = token_of(&a_url);
    let (claims, sig) = token.split_once('.').unwrap();
    let flip = |s: &str| {
        let mut bytes = s.as_bytes().to_vec();
        bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for bad in [
        format!("{claims}.{}", flip(sig)),
        format!("{}.{sig}", flip(claims)),
        String::new(),
        "x".into(),
    ] {
        let url = with_token(&a_url, &bad);
        put_bytes(&url, PNG.to_vec())
            .await
            .error(StatusCode::FORBIDDEN, "ForbiddenError");
    }
    let bare = a_url.split_once('?').unwrap().0;
    put_bytes(bare, PNG.to_vec())
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");
    // Another object's link on this object's path, and this link on another path.
    let crossed = with_token(&a_url, &token_of(&b_url));
    let c = put_bytes(&crossed, PNG.to_vec()).await;
    let content = c.error(StatusCode::FORBIDDEN, "ForbiddenError");
    assert!(content["message"]
        .as_str()
        .unwrap()
        .contains("another object"));
    // Nothing above stored anything: both still take their own upload.
    assert_eq!(
        put_bytes(&a_url, png_of(64, 1)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        put_bytes(&b_url, png_of(64, 2)).await.status,
        StatusCode::OK
    );
    let a_read = url_of(&api.get(&id_of(&a)).await.json());
    let b_read = url_of(&api.get(&id_of(&b)).await.json());
    get_bytes(&with_token(&a_read, &token_of(&b_read)))
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");
    assert_eq!(
        get_bytes(&a_read).await.bytes.as_ref(),
        png_of(64, 1).as_slice()
    );

    // Expired: a server whose links live one second.
    let short = TestServer::start_with(backend, &["--signed-url-ttl-secs", "1"]).await;
    let org = short.create_org("Short");
    let api = images(&short, &org).await;
    let image = api.create(image_body("late.png")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = put_bytes(&url_of(&image), PNG.to_vec()).await;
    let content = late.error(StatusCode::FORBIDDEN, "ForbiddenError");
    assert!(content["message"].as_str().unwrap().contains("expired"));
    // A fresh link works.
    let fresh = url_of(&api.get(&id_of(&image)).await.json());
    assert_eq!(put_bytes(&fresh, PNG.to_vec()).await.status, StatusCode::OK);
}

async fn oversize_uploads_are_413_and_leave_nothing_behind(backend: Backend) {
    // Default cap: 25 MiB.
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let image = api.create(image_body("big.png")).await;
    let a = put_bytes(&url_of(&image), png_of(25 * 1024 * 1024 + 1, 0)).await;
    let content = a.error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeError");
    assert!(
        content["message"].as_str().unwrap().contains("26214400"),
        "{content}"
    );
    // Exactly at the cap is fine.
    let a = put_bytes(&url_of(&image), png_of(25 * 1024 * 1024, 0)).await;
    assert_eq!(a.status, StatusCode::OK);

    // A configured cap, and a streamed (chunked, no Content-Length) body that
    // only turns out too large midway.
    let small = TestServer::start_with(backend, &["--max-upload-bytes", "4096"]).await;
    let org = small.create_org("Small");
    let api = images(&small, &org).await;
    let image = api.create(image_body("chunked.png")).await;
    let url = url_of(&image);
    let chunks: Vec<Result<Bytes, std::io::Error>> = std::iter::once(Ok(Bytes::from(PNG)))
        .chain((0..10).map(|_| Ok(Bytes::from(vec![0u8; 1024]))))
        .collect();
    let a = send(
        &reqwest::Client::new(),
        Method::PUT,
        &url,
        None,
        Some(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        ))),
        None,
    )
    .await;
    a.error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeError");
    // Nothing half-written: no temp file, nothing readable, the link still takes an upload.
    assert_eq!(leftover_temp_files(&small), 0);
    let still = api.get(&id_of(&image)).await.json();
    assert_eq!(token_of(&url_of(&still)).len(), token_of(&url).len());
    get_bytes(&url_of(&still))
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");
    let ok = put_bytes(&url, png_of(4096, 3)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let read = url_of(&api.get(&id_of(&image)).await.json());
    assert_eq!(
        get_bytes(&read).await.bytes.as_ref(),
        png_of(4096, 3).as_slice()
    );
}

async fn uploads_must_match_their_file_type(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;

    let png = api.create(image_body("claims-png.png")).await;
    for wrong in [
        JPEG.to_vec(),
        b"plain text, not an image".to_vec(),
        Vec::new(),
    ] {
        let a = put_bytes(&url_of(&png), wrong).await;
        a.error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InvalidContentTypeError",
        );
    }
    assert_eq!(leftover_temp_files(&server), 0);
    get_bytes(&url_of(&api.get(&id_of(&png)).await.json()))
        .await
        .error(StatusCode::FORBIDDEN, "ForbiddenError");
    assert_eq!(
        put_bytes(&url_of(&png), PNG.to_vec()).await.status,
        StatusCode::OK
    );

    // file_type as an extension works too; a type Lightbox cannot verify takes no bytes.
    let mut jpg = image_body("photo.jpg");
    jpg["file_type"] = json!("jpg");
    let jpg = api.create(jpg).await;
    assert_eq!(
        put_bytes(&url_of(&jpg), JPEG.to_vec()).await.status,
        StatusCode::OK
    );
    let read = url_of(&api.get(&id_of(&jpg)).await.json());
    assert_eq!(get_bytes(&read).await.headers["content-type"], "image/jpeg");
    let mut text = image_body("notes.txt");
    text["file_type"] = json!("text/plain");
    let text = api.create(text).await;
    let a = put_bytes(&url_of(&text), b"hello".to_vec()).await;
    let content = a.error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "InvalidContentTypeError",
    );
    assert!(content["message"].as_str().unwrap().contains("text/plain"));
}

// ------------------------------------------------------------------ races, tenancy

async fn concurrent_writers_of_one_version_have_one_winner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = images(&server, &org).await;
    let image = api.create(image_body("race.png")).await;
    let id = id_of(&image);

    // 20 updates of version 1 at once: one 200, nineteen 409s naming version 2.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move {
                let mut body = image_body("race.png");
                body["display_name"] = json!(format!("writer {i}"));
                let a = api.update(&id, 1, &body).await;
                (i, a.status, a.json())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => winners.push((i, body)),
            StatusCode::CONFLICT => {
                assert_eq!(body["errorName"], "VersionConflictError", "{body}");
                assert_eq!(body["content"]["latest_version"], 2, "{body}");
            }
            other => panic!("writer {i}: {other} {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, won) = &winners[0];
    let now = api.get(&id).await.json();
    assert_eq!(now["version"], 2);
    assert_eq!(now["display_name"], format!("writer {winner}"));
    assert_eq!(without_url(&now), without_url(won));

    // 10 creates of the same coverage FRONT at once: one wins.
    let coverage = new_uuid();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (api, body) = (api.clone(), card(&coverage, "FRONT"));
            tokio::spawn(async move {
                api.call(Method::POST, "/images/v1", Some(&body))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT));
    assert_eq!(api.list(&format!("?coverage_id={coverage}")).await.len(), 1);

    // 8 uploads to one link at once: one stores its bytes, whole.
    let target = api.create(image_body("upload-race.png")).await;
    let url = url_of(&target);
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { (i, put_bytes(&url, png_of(200_000, i)).await.status) })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        let (i, status) = t.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
        if status == StatusCode::OK {
            stored.push(i);
        }
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    let read = url_of(&api.get(&id_of(&target)).await.json());
    assert_eq!(
        get_bytes(&read).await.bytes.as_ref(),
        png_of(200_000, stored[0]).as_slice()
    );
    assert_eq!(leftover_temp_files(&server), 0);
}

async fn organizations_never_see_each_other(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a_org = server.create_org("A");
    let b_org = server.create_org("B");
    let a = images(&server, &a_org).await;
    let b = images(&server, &b_org).await;

    let coverage = new_uuid();
    let mine = a.create(card(&coverage, "FRONT")).await;
    let id = id_of(&mine);
    assert_eq!(
        put_bytes(&url_of(&mine), png_of(128, 5)).await.status,
        StatusCode::OK
    );
    let pending = a.create(image_body("pending.png")).await;

    // B sees none of A's images, by any route.
    b.get(&id)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    b.update(&id, 1, &image_body("stolen.png"))
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    b.deactivate(&id, 1)
        .await
        .error(StatusCode::NOT_FOUND, "NotFoundError");
    assert!(b.list("").await.is_empty());
    assert!(b.list(&format!("?coverage_id={coverage}")).await.is_empty());
    let scan = b
        .call(
            Method::GET,
            "/images/v1/updates/scan?since=2020-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(scan.json(), json!([]));
    // Coverage sides are per organization: B's FRONT for the same id is fine.
    let theirs = b.create(card(&coverage, "FRONT")).await;
    assert_eq!(theirs["organization_id"], b_org.org_id.as_str());

    // B's links never open A's objects, on any path.
    let b_pending = b.create(image_body("b.png")).await;
    let b_upload = token_of(&url_of(&b_pending));
    assert_eq!(
        put_bytes(&url_of(&theirs), png_of(64, 6)).await.status,
        StatusCode::OK
    );
    let b_read = token_of(&url_of(&b.get(&id_of(&theirs)).await.json()));
    for (target, token) in [
        (&pending, &b_upload),
        (&mine, &b_read),
        (&pending, &b_read),
        (&mine, &b_upload),
    ] {
        let url = with_token(&url_of(target), token);
        put_bytes(&url, png_of(64, 7))
            .await
            .error(StatusCode::FORBIDDEN, "ForbiddenError");
        get_bytes(&url)
            .await
            .error(StatusCode::FORBIDDEN, "ForbiddenError");
    }

    // A's image is untouched.
    let after = a.get(&id).await.json();
    assert_eq!(without_url(&after), without_url(&mine));
    assert_eq!(
        get_bytes(&url_of(&after)).await.bytes.as_ref(),
        png_of(128, 5).as_slice()
    );
    assert_eq!(a.list("").await.len(), 2);
}

// ------------------------------------------------------------------ memory

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A 100 MiB upload streams to disk: the server's peak memory barely moves.
/// (A measurement with a wide margin, not a timing.)
#[tokio::test]
async fn a_100_mib_upload_streams_with_flat_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let server =
        TestServer::start_with(Backend::Sqlite, &["--max-upload-bytes", "209715200"]).await;
    let org = server.create_org("Big");
    let api = images(&server, &org).await;
    let image = api.create(image_body("huge.png")).await;
    // Warm up the allocator and connection pools with a small round trip first.
    let warm = api.create(image_body("warm.png")).await;
    assert_eq!(
        put_bytes(&url_of(&warm), png_of(1 << 20, 1)).await.status,
        StatusCode::OK
    );
    let before = peak_rss_kib(server.pid());

    let chunk = Bytes::from(vec![0x5a; 256 * 1024]);
    let n = (SIZE - PNG.len()) / chunk.len();
    let tail = SIZE - PNG.len() - n * chunk.len();
    let chunks = std::iter::once(Ok::<_, std::io::Error>(Bytes::from(PNG)))
        .chain((0..n).map(move |_| Ok(chunk.clone())))
        .chain(std::iter::once(Ok(Bytes::from(vec![0x5a; tail]))));
    let a = send(
        &reqwest::Client::new(),
        Method::PUT,
        &url_of(&image),
        None,
        Some(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        ))),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let after = peak_rss_kib(server.pid());
    let grew_mib = (after.saturating_sub(before)) / 1024;
    eprintln!(
        "peak RSS before {before} KiB, after {after} KiB (+{grew_mib} MiB) for a 100 MiB upload"
    );
    assert!(
        grew_mib < 32,
        "the server's peak memory grew by {grew_mib} MiB"
    );

    // And the whole file is there, streamed back out.
    let read = url_of(&api.get(&id_of(&image)).await.json());
    let response = reqwest::get(&read).await.unwrap();
    assert_eq!(response.content_length(), Some(SIZE as u64));
    let mut total = 0usize;
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, SIZE);
}
