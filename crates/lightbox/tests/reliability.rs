//! Guarantees: the audit trail, rate limits, crash safety and graceful shutdown,
//! on SQLite and PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{image_body, image_with_file, unique_uid, Api, Backend, TestServer};

on_both_backends!(
    every_access_is_audited_and_the_trail_is_append_only,
    every_image_and_blob_access_is_audited,
    revoked_credentials_stop_working_at_once,
    each_credential_is_rate_limited_on_its_own,
    acknowledged_writes_survive_a_crash,
    sigterm_lets_in_flight_requests_finish,
);

/// Databases from before the audit file kept the trail in the main SQLite
/// file (migration 0005); the store moves it on start, once, losing nothing
/// and copying nothing twice, even after a crash between copy and drop.
#[tokio::test]
async fn a_trail_in_the_main_sqlite_file_moves_to_the_audit_file() {
    let mut server = TestServer::start(Backend::Sqlite).await;
    let org = server.create_org("A");
    let api = server.api(&org.api_key);
    let study = api
        .create_study(json!({"studyInstanceUid": unique_uid(), "studyDescription": "CT HEAD", "severity": "normal"}))
        .await;
    let before = audit_events(&api, "").await;
    server.terminate();

    // The old layout: the table in the main file, holding every event (as a
    // crash after the copy would leave it) and one the audit file lacks.
    let main_url = format!("sqlite://{}", server.sqlite_path().display());
    let mut main = sqlx::SqliteConnection::connect(&main_url).await.unwrap();
    sqlx::raw_sql(include_str!(
        "../../lightbox-store/migrations/sqlite/0005_audit.sql"
    ))
    .execute(&mut main)
    .await
    .unwrap();
    sqlx::query("ATTACH DATABASE $1 AS audit_file")
        .bind(server.sqlite_audit_path().display().to_string())
        .execute(&mut main)
        .await
        .unwrap();
    sqlx::query("INSERT INTO main.audit_events SELECT * FROM audit_file.audit_events")
        .execute(&mut main)
        .await
        .unwrap();
    let only_in_main = "aud_00000000000000000000000000000001";
    sqlx::query(
        "INSERT INTO main.audit_events SELECT org_id, $1, occurred_at, actor_type, actor_id, \
         'study.read', resource_type, resource_id, outcome, status, client_ip, request_id \
         FROM audit_file.audit_events WHERE action = 'study.create'",
    )
    .bind(only_in_main)
    .execute(&mut main)
    .await
    .unwrap();
    main.close().await.unwrap();

    server.restart();
    let after = audit_events(&api, "").await;
    let ids: Vec<&str> = after
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "an event was copied twice: {ids:?}"
    );
    assert!(ids.contains(&only_in_main), "{ids:?}");
    for event in &before {
        assert!(
            ids.contains(&event["eventId"].as_str().unwrap()),
            "{event} lost"
        );
    }
    let moved = after.iter().find(|e| e["eventId"] == only_in_main).unwrap();
    assert_eq!(moved["resourceId"], study["studyId"]);
    // Gone from the main file.
    let mut main = sqlx::SqliteConnection::connect(&main_url).await.unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'audit_events'")
            .fetch_one(&mut main)
            .await
            .unwrap();
    assert_eq!(tables, 0);
}

async fn audit_events(api: &Api, query: &str) -> Vec<Value> {
    let r = api
        .get(&format!("/v1/audit/events?limit=100&{query}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["events"].as_array().unwrap().clone()
}

/// The trail oldest first, as (action, resourceId, `third`) triples.
fn trail(events: &[Value], third: &str) -> Vec<(String, String, String)> {
    let field = |e: &Value, k: &str| e[k].as_str().unwrap_or("-").to_owned();
    events
        .iter()
        .rev()
        .map(|e| (field(e, "action"), field(e, "resourceId"), field(e, third)))
        .collect()
}

fn owned(triples: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    triples
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// Runs `sql` straight against the server's database and returns the error it gets.
async fn direct_sql_error(server: &TestServer, sql: &str) -> String {
    let result = match server.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", server.sqlite_audit_path().display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(server.database_url().unwrap())
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
    };
    result
        .expect_err("the statement must be refused")
        .to_string()
}

async fn every_access_is_audited_and_the_trail_is_append_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.create_org("A");
    let b = server.create_org("B");
    let (api_a, api_b) = (server.api(&a.api_key), server.api(&b.api_key));
    let uid = unique_uid();

    let created = api_a
        .post(
            "/v1/viewer/studies",
            json!({"severity": "stat", "studyDescription": "CT", "studyInstanceUid": uid}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let create_request_id = created.headers["x-request-id"].to_str().unwrap().to_owned();
    let id = created.body["studyId"].as_str().unwrap().to_owned();
    let path = format!("/v1/viewer/studies/{id}");
    api_a.get(&path).await;
    api_a.get(&format!("/v1/viewer/studies/by-uid/{uid}")).await;
    api_a.get("/v1/viewer/studies?severity=stat").await;
    api_a
        .patch(&path, json!({"studyViewerStatus": "complete"}))
        .await;
    assert_eq!(
        api_a.patch(&path, json!({"severity": null})).await.status,
        StatusCode::BAD_REQUEST
    );
    api_a
        .post(
            "/v1/viewer/studies/cancel",
            json!({"studyInstanceUid": uid}),
        )
        .await;
    let link = api_a
        .post("/v1/viewer/studies/reroute-url", json!({"studyId": id}))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::OK);
    // B probing A's study, and a caller without a valid key.
    assert_eq!(api_b.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.api("lbk_bogus").get(&path).await.status,
        StatusCode::UNAUTHORIZED
    );

    let events = audit_events(&api_a, "").await;
    let seen = trail(&events, "outcome");
    let expected = owned(&[
        ("study.create", id.as_str(), "success"),
        ("study.read", id.as_str(), "success"),
        ("study.read", id.as_str(), "success"),
        ("study.search", "-", "success"),
        ("study.update", id.as_str(), "success"),
        ("study.update", id.as_str(), "invalid"),
        ("study.cancel", id.as_str(), "success"),
        ("study.link", id.as_str(), "success"),
        ("study.view", id.as_str(), "success"),
    ]);
    assert_eq!(seen, expected, "{events:#?}");
    for e in &events {
        assert_eq!(e["clientIp"], "127.0.0.1");
        assert!(e["requestId"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(e["occurredAt"].as_str().unwrap().ends_with('Z'));
        if e["action"] == "study.view" {
            assert_eq!(
                (e["actorType"].as_str(), e["actorId"].as_str()),
                (Some("signed_link"), Some(id.as_str()))
            );
        } else {
            assert_eq!(
                (e["actorType"].as_str(), e["actorId"].as_str()),
                (Some("api_key"), Some(a.api_key_id.as_str()))
            );
        }
    }
    assert_eq!(
        events.last().unwrap()["requestId"],
        create_request_id.as_str()
    );

    // B's probe is in B's trail only; the unauthenticated call is in nobody's.
    let b_events = audit_events(&api_b, "").await;
    assert_eq!(b_events.len(), 1, "{b_events:#?}");
    assert_eq!(
        (
            b_events[0]["action"].as_str(),
            b_events[0]["outcome"].as_str()
        ),
        (Some("study.read"), Some("not_found"))
    );
    // Filters, and reading the trail is itself audited.
    assert_eq!(audit_events(&api_a, "action=study.read").await.len(), 2);
    // Every event but the search names the study.
    let about_study = audit_events(&api_a, &format!("resourceId={id}")).await;
    assert_eq!(about_study.len(), 8);
    assert_eq!(audit_events(&api_a, "action=audit.search").await.len(), 3);

    // No secret, token or signed link in the trail.
    let dump = serde_json::to_string(&audit_events(&api_a, "").await).unwrap();
    let token = link.rsplit('/').next().unwrap();
    let key_secret = support::secret_part(&a.api_key);
    assert!(!dump.contains(token) && !dump.contains(key_secret) && !dump.contains("viewer/open"));

    // The operator's view matches the API's.
    let out = std::process::Command::new(support::BIN)
        .args([
            "admin",
            "audit",
            "--org",
            &a.org_id,
            "--json",
            "--action",
            "study.create",
        ])
        .env("LIGHTBOX_DATA_DIR", server.data_dir.path())
        .envs(
            server
                .database_url()
                .map(|u| ("DATABASE_URL", u.to_owned())),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["resource_id"], id.as_str());

    // Append-only, enforced by the database itself.
    for sql in [
        "UPDATE audit_events SET outcome = 'success'",
        "DELETE FROM audit_events",
    ] {
        let error = direct_sql_error(&server, sql).await;
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(audit_events(&api_b, "").await.len(), 2);
}

async fn every_image_and_blob_access_is_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("A");
    let images = server.images_api(&org).await;
    let image = image_with_file(&images, "patient-7").await;
    let id = image["id"].as_str().unwrap();
    let read = images
        .http
        .get(image["signed_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    images.get("/images/v1?patient_id=patient-7").await;
    images
        .get("/images/v1/updates/scan?since=1970-01-01T00:00:00Z")
        .await;
    let coverage = uuid::Uuid::new_v4().to_string();
    let updated = images
        .send(
            reqwest::Method::PUT,
            &format!("/images/v1/{id}/1"),
            Some(&image_body(&coverage, "BACK", "patient-7")),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let gone = images
        .send(reqwest::Method::DELETE, &format!("/images/v1/{id}/2"), None)
        .await;
    assert!(gone.status.is_success(), "{}", gone.body);

    // The trail is read with a Viewer key of the same organization.
    let events = audit_events(&server.api(&org.api_key), "").await;
    let seen = trail(&events, "actorType");
    let expected = owned(&[
        ("auth.token", "-", "oauth_client"),
        ("image.create", id, "oauth_client"),
        ("blob.write", id, "signed_link"),
        ("image.read", id, "oauth_client"),
        ("blob.read", id, "signed_link"),
        ("image.search", "-", "oauth_client"),
        ("image.scan", "-", "oauth_client"),
        ("image.update", id, "oauth_client"),
        ("image.deactivate", id, "oauth_client"),
    ]);
    assert_eq!(seen, expected, "{events:#?}");
    // Neither the token nor the signed link's signature is recorded.
    let dump = serde_json::to_string(&events).unwrap();
    let token = images.key().unwrap();
    let signature = image["signed_url"]
        .as_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap();
    assert!(!dump.contains(token) && !dump.contains(signature));
    assert!(!dump.contains(&org.client_secret));
}

async fn revoked_credentials_stop_working_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = (server.create_org("A"), server.create_org("B"));
    let key = server.admin(&["create-api-key", "--org", &a.org_id]);
    let viewer = server.api(key["api_key"].as_str().unwrap());
    assert_eq!(
        viewer.get("/v1/viewer/studies").await.status,
        StatusCode::OK
    );
    let client = server.admin(&["create-client", "--org", &a.org_id]);
    let second = support::Org {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        client_secret: client["client_secret"].as_str().unwrap().to_owned(),
        ..a.clone()
    };
    let images = server.images_api(&second).await;
    assert_eq!(images.get("/images/v1").await.status, StatusCode::OK);

    // Another organization's operator command cannot revoke them.
    let key_id = key["api_key_id"].as_str().unwrap();
    let foreign = server.admin_output(&["revoke-api-key", "--org", &b.org_id, "--id", key_id]);
    assert!(!foreign.status.success());
    assert_eq!(
        viewer.get("/v1/viewer/studies").await.status,
        StatusCode::OK
    );

    server.admin(&["revoke-api-key", "--org", &a.org_id, "--id", key_id]);
    assert_eq!(
        viewer.get("/v1/viewer/studies").await.status,
        StatusCode::UNAUTHORIZED
    );
    server.admin(&[
        "revoke-client",
        "--org",
        &a.org_id,
        "--id",
        &second.client_id,
    ]);
    // The token issued before is dead, and no new one is issued.
    assert_eq!(
        images.get("/images/v1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = server
        .anonymous()
        .post(
            "/api/auth/v2/token",
            json!({"client_id": second.client_id, "client_secret": second.client_secret}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // Revoking twice is an error; the organization's other credentials still work.
    let again = server.admin_output(&["revoke-api-key", "--org", &a.org_id, "--id", key_id]);
    assert!(!again.status.success());
    let default = server.api(&a.api_key);
    assert_eq!(
        default.get("/v1/viewer/studies").await.status,
        StatusCode::OK
    );
    let images = server.images_api(&a).await;
    assert_eq!(images.get("/images/v1").await.status, StatusCode::OK);
}

async fn each_credential_is_rate_limited_on_its_own(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &["--rate-limit-per-second", "1", "--rate-limit-burst", "3"],
    )
    .await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    // Sent at once, so that a slow (loaded) machine cannot refill the bucket between them.
    let replies =
        futures_util::future::join_all((0..8).map(|_| api.get("/v1/viewer/studies"))).await;
    let mut retry_after = None;
    let (mut ok, mut limited) = (0, 0);
    for r in &replies {
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(r.body["type"], "rate_limited");
                let secs = r.headers["retry-after"].to_str().unwrap();
                retry_after = Some(secs.parse::<u64>().unwrap());
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    // The burst of 3, and at most one more if a second passed meanwhile.
    assert!(
        (3..=4).contains(&ok) && ok + limited == 8,
        "{ok} ok, {limited} limited"
    );
    let retry_after = retry_after.unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");

    // Another credential has its own budget.
    let other = server.admin(&["create-api-key", "--org", &org.org_id]);
    assert_eq!(
        server
            .api(other["api_key"].as_str().unwrap())
            .get("/v1/viewer/studies")
            .await
            .status,
        StatusCode::OK
    );
    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(api.get("/v1/viewer/studies").await.status, StatusCode::OK);
    let limited = audit_events(&server.api(other["api_key"].as_str().unwrap()), "").await;
    assert!(limited.iter().any(|e| e["outcome"] == "rate_limited"));
}

/// What a writer saw acknowledged before the server died.
#[derive(Default)]
struct Acknowledged {
    /// study id -> (uid, last acknowledged description, description sent after it, if any)
    studies: HashMap<String, (String, String, Option<String>)>,
    /// Studies whose read was answered (a read's audit event is not flushed
    /// before its answer, but it is committed: a crash of the server keeps it).
    read: Vec<String>,
}

async fn acknowledged_writes_survive_a_crash(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--rate-limit-per-second", "0"]).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (api, acked) = (api.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let uid = unique_uid();
                    let body = json!({"severity": "normal", "studyDescription": format!("w{w} n{n} v0"), "studyInstanceUid": uid});
                    let Ok(r) = api.http.post(format!("{}/v1/viewer/studies", api.base)).bearer_auth(api_key(&api)).json(&body).send().await else { return };
                    let Ok(study) = r.json::<Value>().await else { return };
                    let id = study["studyId"].as_str().unwrap().to_owned();
                    acked.lock().unwrap().studies.insert(id.clone(), (uid, format!("w{w} n{n} v0"), None));
                    let Ok(r) = api.http.get(format!("{}/v1/viewer/studies/{id}", api.base)).bearer_auth(api_key(&api)).send().await else { return };
                    if r.status() != StatusCode::OK || r.json::<Value>().await.is_err() {
                        return;
                    }
                    acked.lock().unwrap().read.push(id.clone());
                    for v in 1..=2 {
                        let description = format!("w{w} n{n} v{v}");
                        acked.lock().unwrap().studies.get_mut(&id).unwrap().2 = Some(description.clone());
                        let sent = api
                            .http
                            .patch(format!("{}/v1/viewer/studies/{id}", api.base))
                            .bearer_auth(api_key(&api))
                            .json(&json!({"studyDescription": description}))
                            .send()
                            .await;
                        let acknowledged = match sent {
                            Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.is_ok(),
                            _ => false,
                        };
                        if !acknowledged {
                            return;
                        }
                        let mut acked = acked.lock().unwrap();
                        let entry = acked.studies.get_mut(&id).unwrap();
                        entry.1 = description;
                        entry.2 = None;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    server.restart();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.studies.len() > 20,
        "the load made only {} studies",
        acked.studies.len()
    );
    for (id, (uid, last_acked, in_flight)) in &acked.studies {
        let r = api_at(&server, &org.api_key)
            .get(&format!("/v1/viewer/studies/{id}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "acknowledged study {id} lost");
        assert_eq!(r.body["studyInstanceUid"], uid.as_str());
        let stored = r.body["studyDescription"].as_str().unwrap();
        // An update sent but not acknowledged may or may not have landed; an acknowledged one must have.
        assert!(
            stored == last_acked || Some(stored) == in_flight.as_deref(),
            "{id}: stored {stored:?}, acknowledged {last_acked:?}"
        );
    }
    // Every acknowledged create and read was audited before it was acknowledged.
    let fresh = api_at(&server, &org.api_key);
    for (action, ids) in [
        (
            "study.create",
            acked.studies.keys().cloned().collect::<Vec<_>>(),
        ),
        ("study.read", acked.read.clone()),
    ] {
        let mut audited = std::collections::HashSet::new();
        let mut cursor = String::new();
        loop {
            let r = fresh
                .get(&format!(
                    "/v1/audit/events?action={action}&limit=100&cursor={cursor}"
                ))
                .await
                .body;
            audited.extend(
                r["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["resourceId"].as_str().unwrap().to_owned()),
            );
            match r["cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert!(ids.len() > 20, "only {} of {action}", ids.len());
        for id in &ids {
            assert!(
                audited.contains(id),
                "acknowledged {action} of {id} has no audit event"
            );
        }
    }
    if backend == Backend::Sqlite {
        for db in [server.sqlite_path(), server.sqlite_audit_path()] {
            let url = format!("sqlite://{}", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let check: (String,) = sqlx::query_as("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(check.0, "ok", "{}", db.display());
        }
    }
}

fn api_key(api: &Api) -> String {
    api.key().unwrap().to_owned()
}

fn api_at(server: &TestServer, key: &str) -> Api {
    server.api(key)
}

async fn sigterm_lets_in_flight_requests_finish(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--rate-limit-per-second", "0"]).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    for i in 0..100 {
        api.create_study(json!({"severity": "high", "studyDescription": format!("s{i}"), "studyInstanceUid": unique_uid()}))
            .await;
    }
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let url = format!("{}/v1/viewer/studies?limit=100", api.base);
                match api.http.get(url).bearer_auth(api_key(&api)).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.json::<Value>().await.map_err(|e| e.to_string())?;
                        assert_eq!(status, StatusCode::OK);
                        assert_eq!(body["studies"].as_array().unwrap().len(), 100);
                        Ok(true)
                    }
                    // Refused or closed before any response: the server had not
                    // read the request (a connection still in the accept backlog,
                    // or accepted but idle, is closed on shutdown, as HTTP/1.1
                    // allows). A response once started must arrive whole, above.
                    Err(e) if e.is_connect() || e.is_request() => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = server.terminate();
    let mut completed = 0;
    for r in requests {
        match r.await.unwrap() {
            Ok(done) => completed += usize::from(done),
            Err(e) => panic!("a request was cut off by shutdown: {e}"),
        }
    }
    assert!(status.success(), "exit status {status}");
    assert!(
        completed > 0,
        "no request was in flight when SIGTERM arrived"
    );
}
