//! The OpenAPI document at `/openapi.json` is valid OpenAPI 3.1 and tells the
//! truth: every operation is called on a real server, and every response —
//! successes and errors, both products — is validated against the schema the
//! document gives for that operation and status. Objects are checked closed
//! (`additionalProperties: false` is added), so an undocumented field fails too.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;
use support::{unique_uid, Backend, TestServer, PNG};

enum Body {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
    Bytes(&'static [u8], &'static str),
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
}

/// Calls the server and checks each response against the document.
struct Checker {
    http: reqwest::Client,
    base: String,
    doc: Value,
    /// The document with every object schema closed, used for validation.
    closed: Value,
    /// (method, path template, status) of every checked response.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Checker {
    async fn new(server: &TestServer) -> Checker {
        let http = reqwest::Client::new();
        let doc: Value = http
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut closed = doc.clone();
        close_objects(&mut closed["components"]);
        close_objects(&mut closed["paths"]);
        Checker {
            http,
            base: server.base.clone(),
            doc,
            closed,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// `template` is the documented path (`/v1/viewer/studies/{study_id}`);
    /// `path` the concrete one, with its query string.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path: &str,
        auth: Auth<'_>,
        body: Body,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.http.request(method.clone(), url);
        if let Auth::Bearer(token) = auth {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Form(pairs) => request.form(&pairs),
            Body::Bytes(bytes, content_type) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes),
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = self.check(
            &method,
            template,
            status,
            content_type.as_deref(),
            &bytes,
            &text,
        );
        Reply { status, body, text }
    }

    fn check(
        &self,
        method: &Method,
        template: &str,
        status: StatusCode,
        content_type: Option<&str>,
        bytes: &[u8],
        text: &str,
    ) -> Value {
        let method_key = method.as_str().to_ascii_lowercase();
        let what = format!("{method} {template} -> {status}");
        let operation = &self.doc["paths"][template][&method_key];
        assert!(operation.is_object(), "{what}: operation not documented");
        let code = status.as_u16().to_string();
        let response = &operation["responses"][&code];
        assert!(
            response.is_object(),
            "{what}: status not documented for this operation; body: {text}"
        );
        self.seen.lock().unwrap().insert((
            method_key.clone(),
            template.to_owned(),
            status.as_u16(),
        ));
        let Some(content) = response["content"].as_object() else {
            assert!(
                bytes.is_empty(),
                "{what}: documented without a body: {text}"
            );
            return Value::Null;
        };
        let actual = content_type.unwrap_or("").split(';').next().unwrap().trim();
        let (media, spec) = content
            .iter()
            .find(|(media, _)| {
                media.as_str() == actual
                    || media
                        .strip_suffix("/*")
                        .is_some_and(|range| actual.starts_with(&format!("{range}/")))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{what}: content type {actual:?} not documented ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            });
        if media != "application/json" {
            return Value::Null;
        }
        let body: Value = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {text}"));
        assert!(spec["schema"].is_object(), "{what}: no schema");
        // The response's schema, with the document's components beside it so its $refs resolve.
        let closed_spec =
            &self.closed["paths"][template][&method_key]["responses"][&code]["content"][media];
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/$defs/response",
            "$defs": {"response": closed_spec["schema"]},
            "components": self.closed["components"],
        });
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: response does not match the document:\n  {}\nbody: {body}",
            errors.join("\n  ")
        );
        body
    }
}

/// Adds `additionalProperties: false` to every object schema that lists its
/// properties and says nothing about others.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, v) in map.iter_mut() {
                close_objects(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

async fn document_is_valid_openapi_31(backend: Backend) {
    let server = TestServer::start(backend).await;
    let checker = Checker::new(&server).await;
    let doc = &checker.doc;
    assert_eq!(doc["openapi"], "3.1.0");

    // The OpenAPI Initiative's schema for 3.1 documents (2022-10-07).
    let meta: Value = serde_json::from_str(include_str!("data/openapi-3.1-schema.json")).unwrap();
    let validator = jsonschema::validator_for(&meta).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid OpenAPI 3.1:\n{}",
        errors.join("\n")
    );

    // What the schema cannot say: operation ids are unique, every path
    // template's parameters are declared, every $ref resolves.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let in_template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_template, "{method} {path}: path parameters");
            assert!(!op["responses"].as_object().unwrap().is_empty());
        }
    }
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let pointer = target.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
    }
    // Every product endpoint is documented, with its security scheme.
    for (path, method, scheme) in [
        ("/v1/viewer/studies", "post", Some("apiKey")),
        (
            "/v1/viewer/users/invitations/{invitation_id}",
            "patch",
            Some("apiKey"),
        ),
        ("/v1/viewer/ephemeral-sessions", "post", Some("apiKey")),
        ("/v1/audit/events", "get", Some("apiKey")),
        ("/images/v1/{id}/{version}", "put", Some("oauth2")),
        ("/images/v1/updates/scan", "get", Some("oauth2")),
        ("/api/auth/v2/token", "post", None),
        ("/healthz", "get", None),
        ("/readyz", "get", None),
        ("/metrics", "get", None),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        match scheme {
            Some(s) => assert!(op["security"][0][s].is_array(), "{method} {path}: {s}"),
            None => assert!(op.get("security").is_none(), "{method} {path}: no auth"),
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["apiKey"]["scheme"], "bearer");
    assert_eq!(
        schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"],
        "/api/auth/v2/token"
    );

    // Swagger UI is served from the binary, referencing no other host.
    let page = checker
        .http
        .get(format!("{}/docs/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let init = checker
        .http
        .get(format!("{}/docs/swagger-initializer.js", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    let bundle = checker
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
}

async fn responses_match_the_document(backend: Backend) {
    use Auth::Bearer;
    let server = TestServer::start(backend).await;
    let org = server.create_org("Conformance Clinic");
    let c = Checker::new(&server).await;
    let key = org.api_key.as_str();
    let get = Method::GET;
    let post = Method::POST;
    let patch = Method::PATCH;

    // Operations.
    c.call(get.clone(), "/healthz", "/healthz", Auth::None, Body::None)
        .await;
    c.call(get.clone(), "/readyz", "/readyz", Auth::None, Body::None)
        .await;
    c.call(get.clone(), "/metrics", "/metrics", Auth::None, Body::None)
        .await;

    // Studies.
    let uid = unique_uid();
    let studies = "/v1/viewer/studies";
    let created = c
        .call(
            post.clone(),
            studies,
            studies,
            Bearer(key),
            Body::Json(json!({
                "severity": "high", "studyDescription": "CT chest", "studyInstanceUid": uid,
                "assignedTo": org.user_id, "expressCustomerId": "cus_1",
                "metadata": {"accession": "A-1"}
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let study_id = created.body["studyId"].as_str().unwrap().to_owned();
    let one = "/v1/viewer/studies/{study_id}";
    let path = format!("{studies}/{study_id}");
    assert_eq!(
        c.call(get.clone(), one, &path, Bearer(key), Body::None)
            .await
            .status,
        200
    );
    let by_uid = format!("{studies}/by-uid/{uid}");
    assert_eq!(
        c.call(
            get.clone(),
            "/v1/viewer/studies/by-uid/{uid}",
            &by_uid,
            Bearer(key),
            Body::None
        )
        .await
        .status,
        200
    );
    let patched = c
        .call(
            patch.clone(),
            one,
            &path,
            Bearer(key),
            Body::Json(json!({"severity": "stat", "assignedTo": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    for query in [
        "",
        "?limit=1",
        "?assignedTo=null&isCancelled=false&severity=stat",
    ] {
        let page = c
            .call(
                get.clone(),
                studies,
                &format!("{studies}{query}"),
                Bearer(key),
                Body::None,
            )
            .await;
        assert_eq!(page.status, 200);
    }
    // A second study so that `limit=1` has a next page.
    c.call(
        post.clone(),
        studies,
        studies,
        Bearer(key),
        Body::Json(json!({
            "severity": "normal", "studyDescription": "MR knee", "studyInstanceUid": unique_uid()
        })),
    )
    .await;
    let page = c
        .call(
            get.clone(),
            studies,
            &format!("{studies}?limit=1"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(page.body["hasMore"], true);
    let selector = json!({"studyId": study_id});
    for action in ["cancel", "uncancel", "reroute-url"] {
        let p = format!("{studies}/{action}");
        let r = c
            .call(
                post.clone(),
                &p,
                &p,
                Bearer(key),
                Body::Json(selector.clone()),
            )
            .await;
        assert_eq!(r.status, 200, "{action}: {}", r.text);
        if action == "reroute-url" {
            let url = r.body["url"].as_str().unwrap().to_owned();
            let page = c
                .call(
                    get.clone(),
                    "/viewer/open/{token}",
                    &url,
                    Auth::None,
                    Body::None,
                )
                .await;
            assert_eq!(page.status, 200);
            let bad = c
                .call(
                    get.clone(),
                    "/viewer/open/{token}",
                    "/viewer/open/forged",
                    Auth::None,
                    Body::None,
                )
                .await;
            assert_eq!(bad.status, 403);
        }
    }
    // Study errors, in the Viewer envelope.
    let missing = format!("{studies}/stu_01966b0e7f3a7c4e9a513f2b8d6c1e22");
    assert_eq!(
        c.call(get.clone(), one, &missing, Bearer(key), Body::None)
            .await
            .status,
        404
    );
    let r = c
        .call(
            get.clone(),
            one,
            &format!("{studies}/nope"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.call(get.clone(), one, &path, Auth::None, Body::None)
            .await
            .status,
        401
    );
    assert_eq!(
        c.call(get.clone(), one, &path, Bearer("lbk_wrong"), Body::None)
            .await
            .status,
        401
    );
    let dup = c
        .call(
            post.clone(),
            studies,
            studies,
            Bearer(key),
            Body::Json(json!({
                "severity": "high", "studyDescription": "again", "studyInstanceUid": uid
            })),
        )
        .await;
    assert_eq!(dup.status, 409);
    let invalid = c
        .call(
            post.clone(),
            studies,
            studies,
            Bearer(key),
            Body::Json(json!({
                "severity": "urgent", "studyDescription": "x", "studyInstanceUid": "1.2"
            })),
        )
        .await;
    assert_eq!(invalid.status, 400);
    let r = c
        .call(
            post.clone(),
            studies,
            studies,
            Bearer(key),
            Body::Bytes(b"x", "text/plain"),
        )
        .await;
    assert_eq!(r.status, 415);
    let cancel = "/v1/viewer/studies/cancel";
    let r = c
        .call(
            post.clone(),
            cancel,
            cancel,
            Bearer(key),
            Body::Json(json!({"studyInstanceUid": "1.2.3.999"})),
        )
        .await;
    assert_eq!(r.status, 404);

    // Users and invitations.
    let users = "/v1/viewer/users";
    let invited = c
        .call(
            post.clone(),
            users,
            users,
            Bearer(key),
            Body::Json(json!({
                "email": format!("ada-{}@example.org", uuid::Uuid::new_v4().simple()),
                "firstName": "Ada", "lastName": "Lovelace", "clinicRole": "Radiologist",
                "level": "member", "canManageStudies": true, "hasDashboardAccess": false,
                "phoneNumber": "15551234567"
            })),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let user_id = invited.body["userId"].as_str().unwrap().to_owned();
    let email = invited.body["email"].as_str().unwrap().to_owned();
    let user = "/v1/viewer/users/{user_id}";
    let user_path = format!("{users}/{user_id}");
    assert_eq!(
        c.call(get.clone(), user, &user_path, Bearer(key), Body::None)
            .await
            .status,
        200
    );
    let r = c
        .call(
            patch.clone(),
            user,
            &user_path,
            Bearer(key),
            Body::Json(json!({"middleName": "King", "level": "admin", "hasDashboardAccess": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .call(
            patch.clone(),
            user,
            &user_path,
            Bearer(key),
            Body::Json(json!({"email": "x@example.org"})),
        )
        .await;
    assert_eq!(r.status, 400);
    for query in ["", "?level=admin&limit=5"] {
        assert_eq!(
            c.call(
                get.clone(),
                users,
                &format!("{users}{query}"),
                Bearer(key),
                Body::None
            )
            .await
            .status,
            200
        );
    }
    let dup = c
        .call(
            post.clone(),
            users,
            users,
            Bearer(key),
            Body::Json(json!({
                "email": email, "firstName": "Ada", "lastName": "L", "clinicRole": "Radiologist",
                "level": "member", "canManageStudies": false, "hasDashboardAccess": false
            })),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.text);
    let invitations = "/v1/viewer/users/invitations";
    let list = c
        .call(
            get.clone(),
            invitations,
            &format!("{invitations}?status=sent&expired=all&userId={user_id}"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(list.status, 200);
    let invitation_id = list.body["invitations"][0]["invitationId"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", list.text))
        .to_owned();
    let invitation = "/v1/viewer/users/invitations/{invitation_id}";
    let inv_path = format!("{invitations}/{invitation_id}");
    assert_eq!(
        c.call(get.clone(), invitation, &inv_path, Bearer(key), Body::None)
            .await
            .status,
        200
    );
    let r = c
        .call(
            patch.clone(),
            invitation,
            &inv_path,
            Bearer(key),
            Body::Json(json!({"clinicRole": "Doctor"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let revoke = "/v1/viewer/users/invitations/revoke";
    let r = c
        .call(
            post.clone(),
            revoke,
            revoke,
            Bearer(key),
            Body::Json(json!({"invitationId": invitation_id})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Revoking the invitation revoked the user's access too.
    for action in ["reactivate", "revoke-access"] {
        let p = format!("{users}/{action}");
        let r = c
            .call(
                post.clone(),
                &p,
                &p,
                Bearer(key),
                Body::Json(json!({"userId": user_id})),
            )
            .await;
        assert_eq!(r.status, 200, "{action}: {}", r.text);
    }
    let r = c
        .call(
            get.clone(),
            invitations,
            &format!("{invitations}?startDate=yesterday"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 400);

    // Ephemeral sessions and their page.
    let sessions = "/v1/viewer/ephemeral-sessions";
    let r = c.call(post.clone(), sessions, sessions, Bearer(key), Body::Json(json!({
        "retrievalId": uid, "hangingProtocol": {"layout": "1x2", "viewportAssignments": ["a", null]},
        "options": {"theme": "dark"}
    }))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = r.body["url"].as_str().unwrap().to_owned();
    assert_eq!(
        c.call(
            get.clone(),
            "/viewer/session/{token}",
            &url,
            Auth::None,
            Body::None
        )
        .await
        .status,
        200
    );

    // The audit trail.
    let events = "/v1/audit/events";
    let r = c
        .call(
            get.clone(),
            events,
            &format!("{events}?limit=3"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.body["events"].as_array().unwrap().is_empty());
    let r = c
        .call(
            get.clone(),
            events,
            &format!("{events}?since=soon"),
            Bearer(key),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 400);

    // Images: the token endpoint, as JSON and as a form.
    let token_path = "/api/auth/v2/token";
    let r = c
        .call(
            post.clone(),
            token_path,
            token_path,
            Auth::None,
            Body::Json(json!({
                "client_id": org.client_id, "client_secret": org.client_secret
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let r = c
        .call(
            post.clone(),
            token_path,
            token_path,
            Auth::None,
            Body::Form(vec![
                ("client_id", org.client_id.clone()),
                ("client_secret", org.client_secret.clone()),
            ]),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .call(
            post.clone(),
            token_path,
            token_path,
            Auth::None,
            Body::Json(json!({
                "client_id": org.client_id, "client_secret": "wrong"
            })),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .call(
            post.clone(),
            token_path,
            token_path,
            Auth::None,
            Body::Bytes(b"x", "text/plain"),
        )
        .await;
    assert_eq!(r.status, 415);

    // Images: create, upload, read, update, search, scan, deactivate.
    let t = token.as_str();
    let images = "/images/v1";
    let image = |status: &str| {
        json!({
            "file_name": "card.png", "display_name": "Card (front)", "file_type": "image/png",
            "status": status,
            "coverage": {"id": "6f1c1e0a-8a53-4c55-9d7e-3a9f4c1b2d10", "side": "FRONT"},
            "patient": {"id": "pat-1", "notes": "scanned at intake"}
        })
    };
    let r = c
        .call(
            post.clone(),
            images,
            images,
            Bearer(t),
            Body::Json(image("PENDING")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let image_id = r.body["id"].as_str().unwrap().to_owned();
    let upload_url = r.body["signed_url"].as_str().unwrap().to_owned();
    let files = "/blobs/v1/images/{id}";
    let r = c
        .call(
            Method::PUT,
            files,
            &upload_url,
            Auth::None,
            Body::Bytes(PNG, "image/png"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .call(
            Method::PUT,
            files,
            &upload_url,
            Auth::None,
            Body::Bytes(PNG, "image/png"),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = c
        .call(
            Method::PUT,
            files,
            &format!("/blobs/v1/images/{image_id}?token=forged"),
            Auth::None,
            Body::Bytes(PNG, "image/png"),
        )
        .await;
    assert_eq!(r.status, 403);
    let one_image = "/images/v1/{id}";
    let r = c
        .call(
            get.clone(),
            one_image,
            &format!("{images}/{image_id}"),
            Bearer(t),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    let versioned = "/images/v1/{id}/{version}";
    let r = c
        .call(
            Method::PUT,
            versioned,
            &format!("{images}/{image_id}/1"),
            Bearer(t),
            Body::Json(image("UPLOADED")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read_url = r.body["signed_url"].as_str().unwrap().to_owned();
    let r = c
        .call(get.clone(), files, &read_url, Auth::None, Body::None)
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .call(
            get.clone(),
            files,
            &format!("/blobs/v1/images/{image_id}"),
            Auth::None,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 403);
    let stale = c
        .call(
            Method::PUT,
            versioned,
            &format!("{images}/{image_id}/1"),
            Bearer(t),
            Body::Json(image("UPLOADED")),
        )
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.body["content"]["latest_version"], 2);
    let r = c
        .call(
            post.clone(),
            images,
            images,
            Bearer(t),
            Body::Json(image("UPLOADED")),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .call(
            post.clone(),
            images,
            images,
            Bearer(t),
            Body::Json(json!({"file_name": 3})),
        )
        .await;
    assert_eq!(r.status, 400);
    for query in [
        "",
        "?patient_id=pat-1&sort_field=fileName&sort_direction=asc",
    ] {
        let r = c
            .call(
                get.clone(),
                images,
                &format!("{images}{query}"),
                Bearer(t),
                Body::None,
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let scan = "/images/v1/updates/scan";
    let r = c
        .call(
            get.clone(),
            scan,
            &format!("{scan}?since=2020-01-01T00:00:00Z&maxResults=10"),
            Bearer(t),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.call(get.clone(), scan, scan, Bearer(t), Body::None)
            .await
            .status,
        400
    );
    let r = c
        .call(
            Method::DELETE,
            versioned,
            &format!("{images}/{image_id}/2"),
            Bearer(t),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .call(
            get.clone(),
            one_image,
            &format!("{images}/01966b0e-7f3a-7c4e-9a51-3f2b8d6c1e26"),
            Bearer(t),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        c.call(get.clone(), images, images, Auth::None, Body::None)
            .await
            .status,
        401
    );
    assert_eq!(
        c.call(get.clone(), images, images, Bearer(key), Body::None)
            .await
            .status,
        401
    );

    // Every documented operation was exercised with a success.
    let seen = c.seen.lock().unwrap().clone();
    for (path, item) in c.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                seen.iter()
                    .any(|(m, p, s)| m == method && p == path && *s < 300),
                "{method} {path} was never called successfully"
            );
        }
    }
}

on_both_backends!(document_is_valid_openapi_31, responses_match_the_document);
