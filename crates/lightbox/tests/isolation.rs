//! Tenancy: for every endpoint that names or lists an organization's data, a
//! second organization's credentials get 404 (or an empty page) and never a
//! byte of the first organization's data; signed links of one organization
//! never open another's object; each API's credentials are refused by the other.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{image_body, image_with_file, unique_uid, Api, Backend, Org, TestServer, PNG};

on_both_backends!(
    another_org_gets_nothing_from_any_endpoint,
    signed_links_never_cross_objects_or_orgs,
    concurrent_creates_of_one_uid_make_exactly_one_study,
    oversized_bodies_get_the_envelope,
);

/// What one organization holds, and the strings that must never reach another.
struct Holdings {
    study_id: String,
    uid: String,
    user_id: String,
    invitation_id: String,
    image_id: String,
    image_version: i64,
    coverage_id: String,
    email: String,
    secrets: Vec<String>,
}

async fn holdings(server: &TestServer, org: &Org, images: &Api) -> Holdings {
    let api = server.api(&org.api_key);
    let marker = format!("marker-{}", uuid::Uuid::new_v4().simple());
    let invited = api
        .post(
            "/v1/viewer/users",
            json!({
                "email": format!("{marker}@a.example"),
                "firstName": marker, "lastName": marker,
                "level": "member", "clinicRole": "Radiologist",
                "canManageStudies": true, "hasDashboardAccess": false,
            }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let user_id = invited.body["userId"].as_str().unwrap().to_owned();
    let invitations = api
        .get(&format!("/v1/viewer/users/invitations?userId={user_id}"))
        .await;
    let invitation_id = invitations.body["invitations"][0]["invitationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no invitation: {}", invitations.body))
        .to_owned();
    let uid = unique_uid();
    let study = api
        .create_study(json!({
            "severity": "stat", "studyDescription": marker.clone(), "studyInstanceUid": uid,
            "assignedTo": user_id, "metadata": {"marker": marker.clone()},
        }))
        .await;
    let image = image_with_file(images, &marker).await;
    Holdings {
        study_id: study["studyId"].as_str().unwrap().to_owned(),
        uid,
        user_id,
        invitation_id,
        image_id: image["id"].as_str().unwrap().to_owned(),
        image_version: image["version"].as_i64().unwrap(),
        coverage_id: image["coverage"]["id"].as_str().unwrap().to_owned(),
        email: format!("{marker}@a.example"),
        secrets: vec![marker, org.org_id.clone()],
    }
}

type Call = (Method, String, Option<Value>, &'static [u16]);

/// Makes each call as `api` and checks its answer with [`assert_sealed`].
async fn probe(api: &Api, calls: Vec<Call>, a: &Holdings, covered: &mut Vec<String>) {
    for (method, path, body, allowed) in calls {
        let r = api.send(method.clone(), &path, body.as_ref()).await;
        let what = format!("{method} {path}");
        assert_sealed(&what, r.status, &r.body.to_string(), a, allowed);
        covered.push(format!("{method} {}", path.split('?').next().unwrap()));
    }
}

/// Every operation of the server's OpenAPI document, as `METHOD /template`.
async fn documented_operations(server: &TestServer) -> Vec<String> {
    let doc = server.anonymous().get("/openapi.json").await.body;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// Whether the concrete `call` (`METHOD /path`) is an instance of `operation`.
fn instance_of(call: &str, operation: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) =
        (call.split('/').collect(), operation.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || (y.starts_with('{') && y.ends_with('}')))
}

/// Asserts that `reply` shows none of `a`'s data and is one of `allowed`.
fn assert_sealed(what: &str, status: StatusCode, body: &str, a: &Holdings, allowed: &[u16]) {
    assert!(
        allowed.contains(&status.as_u16()),
        "{what}: got {status}, expected one of {allowed:?}: {body}"
    );
    let mut needles = vec![
        a.study_id.as_str(),
        a.user_id.as_str(),
        a.invitation_id.as_str(),
        a.image_id.as_str(),
    ];
    needles.extend(a.secrets.iter().map(String::as_str));
    // An error message may echo the id the caller sent, never more.
    let echoed: Vec<&str> = needles
        .iter()
        .copied()
        .filter(|n| body.contains(n))
        .collect();
    if status.is_success() {
        assert!(echoed.is_empty(), "{what}: leaked {echoed:?}: {body}");
    } else {
        for n in &a.secrets {
            assert!(!body.contains(n.as_str()), "{what}: leaked {n}: {body}");
        }
    }
}

async fn another_org_gets_nothing_from_any_endpoint(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = (server.create_org("A"), server.create_org("B"));
    let images_a = server.images_api(&a).await;
    let held = holdings(&server, &a, &images_a).await;
    let viewer_b = server.api(&b.api_key);
    let images_b = server.images_api(&b).await;
    // B has data of its own, so lists are not trivially empty.
    let b_study = viewer_b
        .create_study(
            json!({"severity": "normal", "studyDescription": "B", "studyInstanceUid": held.uid}),
        )
        .await;
    assert_eq!(
        b_study["studyInstanceUid"],
        held.uid.as_str(),
        "UIDs are per org"
    );
    image_with_file(&images_b, "b-patient").await;

    let (s, u, i, uid) = (
        &held.study_id,
        &held.user_id,
        &held.invitation_id,
        &held.uid,
    );
    let a_uid = a_only_uid(&server, &a).await;
    let b_own = b_study["studyId"].as_str().unwrap().to_owned();
    let marker = &held.secrets[0];
    let new_uid = unique_uid();
    #[rustfmt::skip]
    let viewer_calls: Vec<Call> = vec![
        (Method::GET, format!("/v1/viewer/studies/{s}"), None, &[404]),
        (Method::PATCH, format!("/v1/viewer/studies/{s}"), Some(json!({"studyDescription": "x"})), &[404]),
        (Method::GET, format!("/v1/viewer/studies/by-uid/{a_uid}"), None, &[404]),
        (Method::POST, "/v1/viewer/studies/cancel".into(), Some(json!({"studyId": s})), &[404]),
        (Method::POST, "/v1/viewer/studies/cancel".into(), Some(json!({"studyInstanceUid": a_uid})), &[404]),
        (Method::POST, "/v1/viewer/studies/uncancel".into(), Some(json!({"studyId": s})), &[404]),
        (Method::POST, "/v1/viewer/studies/reroute-url".into(), Some(json!({"studyId": s})), &[404]),
        (Method::POST, "/v1/viewer/studies".into(), Some(json!({"severity": "high", "studyDescription": "x", "studyInstanceUid": new_uid, "assignedTo": u})), &[400, 404, 422]),
        (Method::PATCH, format!("/v1/viewer/studies/{b_own}"), Some(json!({"assignedTo": u})), &[400, 404, 422]),
        (Method::GET, "/v1/viewer/studies?limit=100".into(), None, &[200]),
        (Method::GET, format!("/v1/viewer/studies?assignedTo={u}"), None, &[200, 400, 404]),
        (Method::GET, format!("/v1/viewer/studies?studyDescription={marker}"), None, &[200]),
        (Method::GET, format!("/v1/viewer/users/{u}"), None, &[404]),
        (Method::PATCH, format!("/v1/viewer/users/{u}"), Some(json!({"firstName": "x"})), &[404]),
        (Method::POST, "/v1/viewer/users/revoke-access".into(), Some(json!({"userId": u})), &[404]),
        (Method::POST, "/v1/viewer/users/reactivate".into(), Some(json!({"userId": u})), &[404]),
        (Method::GET, "/v1/viewer/users?limit=100".into(), None, &[200]),
        (Method::GET, format!("/v1/viewer/users?email={marker}@a.example"), None, &[200]),
        (Method::GET, format!("/v1/viewer/users/invitations/{i}"), None, &[404]),
        (Method::PATCH, format!("/v1/viewer/users/invitations/{i}"), Some(json!({"firstName": "x"})), &[404]),
        (Method::POST, "/v1/viewer/users/invitations/revoke".into(), Some(json!({"invitationId": i})), &[404]),
        (Method::POST, "/v1/viewer/users/invitations/revoke".into(), Some(json!({"userId": u})), &[404]),
        (Method::GET, "/v1/viewer/users/invitations?limit=100".into(), None, &[200]),
        (Method::GET, format!("/v1/viewer/users/invitations?userId={u}"), None, &[200, 404]),
    ];
    let mut covered = Vec::new();
    probe(&viewer_b, viewer_calls, &held, &mut covered).await;
    // Emails are per organization: B may invite the same person, as a user of its own.
    #[rustfmt::skip]
    let invite = json!({"email": held.email, "firstName": "B", "lastName": "B", "level": "member", "clinicRole": "Radiologist", "canManageStudies": true, "hasDashboardAccess": false});
    let r = viewer_b.post("/v1/viewer/users", invite).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_ne!(r.body["userId"], held.user_id.as_str());
    covered.push("POST /v1/viewer/users".into());
    // B's trail holds B's own attempts (with the ids B sent) and nothing of A's.
    let r = viewer_b.get("/v1/audit/events?limit=100").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let events = r.body["events"].as_array().unwrap();
    assert!(!events.is_empty());
    for event in events {
        let actor = event["actorId"].as_str().unwrap_or_default();
        assert!(
            [b.api_key_id.as_str(), b.client_id.as_str()].contains(&actor)
                || event["actorType"] == "signed_link",
            "an event of another actor: {event}"
        );
        assert!(actor != a.api_key_id && actor != a.client_id, "{event}");
    }
    // The study UID A shares with B resolves to B's own study.
    let r = viewer_b
        .get(&format!("/v1/viewer/studies/by-uid/{uid}"))
        .await;
    assert_eq!(r.body["studyId"], b_study["studyId"]);

    let (m, v) = (&held.image_id, held.image_version);
    #[rustfmt::skip]
    let image_calls: Vec<Call> = vec![
        (Method::GET, format!("/images/v1/{m}"), None, &[404]),
        (Method::PUT, format!("/images/v1/{m}/{v}"), Some(image_body(&uuid::Uuid::new_v4().to_string(), "BACK", "x")), &[404]),
        (Method::DELETE, format!("/images/v1/{m}/{v}"), None, &[404]),
        (Method::GET, "/images/v1?limit=100".into(), None, &[200]),
        (Method::GET, format!("/images/v1?patient_id={marker}"), None, &[200]),
        (Method::GET, "/images/v1/updates/scan?since=1970-01-01T00:00:00Z".into(), None, &[200]),
        // A's coverage already has a FRONT; B's own coverage of the same id is free.
        (Method::POST, "/images/v1".into(), Some(image_body(&held.coverage_id, "FRONT", "b-patient")), &[200]),
    ];
    probe(&images_b, image_calls, &held, &mut covered).await;
    // A's image is untouched by all of that.
    let r = images_a.get(&format!("/images/v1/{m}")).await;
    assert_eq!(
        (r.status, r.body["version"].as_i64()),
        (StatusCode::OK, Some(v))
    );
    assert_eq!(r.body["deactivated"], false);

    // Each API refuses the other's credentials.
    let r = server.api(&a.api_key).get(&format!("/images/v1/{m}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = images_a.get(&format!("/v1/viewer/studies/{s}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // The matrix covers every documented operation, but these, checked elsewhere.
    let elsewhere = [
        "GET /v1/audit/events",               // above: B's trail has nothing of A's
        "POST /v1/viewer/ephemeral-sessions", // names no stored resource
        "POST /api/auth/v2/token",            // B's own credentials only
        "GET /viewer/open/{token}",           // signed links: the next test
        "GET /viewer/session/{token}",
        "GET /blobs/v1/images/{id}",
        "PUT /blobs/v1/images/{id}",
        "GET /healthz", // no organization data
        "GET /readyz",
        "GET /metrics",
    ];
    for operation in documented_operations(&server).await {
        let probed = covered.iter().any(|call| instance_of(call, &operation));
        assert!(
            probed || elsewhere.contains(&operation.as_str()),
            "{operation} is not in the isolation matrix"
        );
    }
}

/// A UID only org A has (the shared one resolves in B too).
async fn a_only_uid(server: &TestServer, a: &Org) -> String {
    let uid = unique_uid();
    server
        .api(&a.api_key)
        .create_study(
            json!({"severity": "normal", "studyDescription": "A only", "studyInstanceUid": uid}),
        )
        .await;
    uid
}

/// Swaps the object id in a signed link's path for `other`, keeping its token.
fn retarget(url: &str, own: &str, other: &str) -> String {
    assert!(url.contains(own), "{url} does not name {own}");
    url.replace(own, other)
}

async fn signed_links_never_cross_objects_or_orgs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = (server.create_org("A"), server.create_org("B"));
    let (images_a, images_b) = (server.images_api(&a).await, server.images_api(&b).await);
    let image_a = image_with_file(&images_a, "pa").await;
    let image_b = image_with_file(&images_b, "pb").await;
    let (id_a, id_b) = (
        image_a["id"].as_str().unwrap(),
        image_b["id"].as_str().unwrap(),
    );
    let http = &images_a.http;

    // Each link reads its own object.
    let own = http
        .get(image_b["signed_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(own.bytes().await.unwrap().as_ref(), PNG);

    // B's read link pointed at A's object is refused, and so the other way round.
    for (url, own_id, other_id) in [
        (image_b["signed_url"].as_str().unwrap(), id_b, id_a),
        (image_a["signed_url"].as_str().unwrap(), id_a, id_b),
    ] {
        let r = http
            .get(retarget(url, own_id, other_id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "read via a foreign link");
        let body = r.bytes().await.unwrap();
        assert!(
            !body.windows(PNG.len()).any(|w| w == PNG),
            "image bytes leaked"
        );
    }

    // A fresh upload link of B can't write into A's object either.
    let pending = images_b
        .post(
            "/images/v1",
            image_body(&uuid::Uuid::new_v4().to_string(), "BACK", "pb"),
        )
        .await;
    let upload = pending.body["signed_url"].as_str().unwrap();
    let pending_id = pending.body["id"].as_str().unwrap();
    let r = http
        .put(retarget(upload, pending_id, id_a))
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Viewer study links are org-bound in the same way.
    let viewer_b = server.api(&b.api_key);
    let study = viewer_b
        .create_study(json!({"severity": "normal", "studyDescription": "B study", "studyInstanceUid": unique_uid()}))
        .await;
    let link = viewer_b
        .post(
            "/v1/viewer/studies/reroute-url",
            json!({"studyId": study["studyId"]}),
        )
        .await;
    let url = link.body["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", link.body));
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tampered = format!("{}x", url);
    let r = http.get(tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

async fn concurrent_creates_of_one_uid_make_exactly_one_study(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("A");
    let api = server.api(&org.api_key);
    let uid = unique_uid();
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let api = api.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                api.post(
                    "/v1/viewer/studies",
                    json!({"severity": "normal", "studyDescription": format!("try {n}"), "studyInstanceUid": uid}),
                )
                .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            StatusCode::CREATED => created.push(r.body),
            StatusCode::CONFLICT => {
                assert_eq!(r.headers["x-should-retry"], "false");
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    let r = api.get(&format!("/v1/viewer/studies/by-uid/{uid}")).await;
    assert_eq!(r.body["studyId"], created[0]["studyId"]);
    assert_eq!(r.body["studyDescription"], created[0]["studyDescription"]);
}

/// Sends only the head of a request announcing a `length`-byte body and
/// returns the status and JSON body the server answers with before reading it.
async fn announce_body(api: &Api, path: &str, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = api.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        api.key().unwrap()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read = socket.read_to_end(&mut reply);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {reply}")),
    )
}

async fn oversized_bodies_get_the_envelope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("A");
    let api = server.api(&org.api_key);
    let images = server.images_api(&org).await;
    // Viewer: {"type","message"}; Images: {"errorName","content"}.
    let (status, body) = announce_body(&api, "/v1/viewer/studies", 2 << 20).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    let (status, body) = announce_body(&images, "/images/v1", 2 << 20).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errorName"], "PayloadTooLargeError", "{body}");
    assert!(body["content"]["message"].is_string(), "{body}");
    // Nothing was written.
    let r = api.get("/v1/viewer/studies").await;
    assert_eq!(
        r.body["studies"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.body
    );
}
