//! `lightbox-client` against the real server: both APIs, pagination,
//! error envelopes, token caching and renewal, retries and timeouts.

mod support;

use futures_util::{StreamExt, TryStreamExt};
use lightbox_client::{
    Client, CoverageAssociation, CoverageImageSide, Envelope, Error, ImageQuery, ImageStatus,
    NewImage, NewStudy, PatientAssociation, Severity, StudyFilter, StudyRef, StudyUpdate,
    StudyViewerStatus,
};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use support::{unique_uid, Backend, Org, TestServer, BIN, PNG};

fn client(server: &TestServer, org: &Org) -> Client {
    Client::builder(&server.base)
        .api_key(&org.api_key)
        .client_credentials(&org.client_id, &org.client_secret)
        .build()
        .unwrap()
}

/// How many audit events with `action` the organization has.
fn audit_count(server: &TestServer, org: &Org, action: &str) -> usize {
    let mut command = Command::new(BIN);
    command
        .args([
            "admin",
            "audit",
            "--org",
            &org.org_id,
            "--action",
            action,
            "--json",
        ])
        .env("LIGHTBOX_DATA_DIR", server.data_dir.path())
        .env_remove("DATABASE_URL");
    if let Some(url) = server.database_url() {
        command.env("DATABASE_URL", url);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().count()
}

async fn studies_through_the_client(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Client Co");
    let c = client(&server, &org);

    let uid = unique_uid();
    let mut new = NewStudy::new(&uid, "CT Head", Severity::Stat);
    new.metadata = Some(BTreeMap::from([("site".into(), "north".into())]));
    let created = c.create_study(&new).await.unwrap();
    assert!(created.study_id.starts_with("stu_"));
    assert_eq!(created.severity, Severity::Stat);
    assert_eq!(created.study_viewer_status, StudyViewerStatus::Incomplete);
    assert_eq!(created.metadata["site"], "north");
    assert!(created.created_by_api_key.is_some());

    assert_eq!(c.get_study(&created.study_id).await.unwrap(), created);
    assert_eq!(c.get_study_by_uid(&uid).await.unwrap(), created);
    assert_eq!(c.find_study(&StudyRef::parse(&uid)).await.unwrap(), created);

    let updated = c
        .update_study(
            &created.study_id,
            &StudyUpdate {
                metadata: Some(None),
                study_viewer_status: Some(StudyViewerStatus::Complete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(updated.metadata.is_empty(), "null clears metadata");
    assert_eq!(updated.study_viewer_status, StudyViewerStatus::Complete);

    // A duplicate UID: the Viewer envelope, whole.
    let err = c.create_study(&new).await.unwrap_err();
    let api = err.api().expect("an API error");
    assert_eq!(api.status, 409);
    assert_eq!(api.kind(), Some("conflict"));
    assert!(matches!(api.envelope, Envelope::Viewer(_)));

    let err = c
        .create_study(&NewStudy::new("not a uid", "x", Severity::Normal))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.api().unwrap().field(), Some("studyInstanceUid"));

    let err = c
        .get_study("stu_00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(err.api().unwrap().is_not_found());

    assert!(
        c.cancel_study(&StudyRef::Uid(uid.clone()))
            .await
            .unwrap()
            .success
    );
    assert!(c.get_study(&created.study_id).await.unwrap().is_cancelled);
    let again = c
        .cancel_study(&StudyRef::Id(created.study_id.clone()))
        .await;
    assert_eq!(again.unwrap_err().status(), Some(409));
    assert!(c.uncancel_study(&StudyRef::Uid(uid)).await.unwrap().success);
    let link = c
        .reroute_url(&StudyRef::Id(created.study_id))
        .await
        .unwrap();
    assert!(link.url.contains("/viewer/open/"), "{}", link.url);
}

async fn listing_streams_every_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Pages Co");
    let other = server.create_org("Other Co");
    let c = client(&server, &org);
    let mut made = Vec::new();
    for i in 0..7 {
        let severity = if i % 2 == 0 {
            Severity::High
        } else {
            Severity::Normal
        };
        let s = c
            .create_study(&NewStudy::new(unique_uid(), format!("MR {i}"), severity))
            .await
            .unwrap();
        made.push(s.study_id);
    }
    client(&server, &other)
        .create_study(&NewStudy::new(unique_uid(), "elsewhere", Severity::High))
        .await
        .unwrap();

    // Pages of 3: the stream follows the cursor through all 7, newest first.
    let all: Vec<String> = c
        .list_studies(StudyFilter {
            limit: Some(3),
            ..Default::default()
        })
        .map_ok(|s| s.study_id)
        .try_collect()
        .await
        .unwrap();
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);

    // Filters are kept on every page.
    let high: Vec<_> = c
        .list_studies(StudyFilter {
            severity: Some(Severity::High),
            limit: Some(1),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(high.len(), 4);
    assert!(high.iter().all(|s| s.severity == Severity::High));

    // Reading part of the stream fetches only what is read.
    let first_two: Vec<_> = c
        .list_studies(StudyFilter {
            limit: Some(2),
            ..Default::default()
        })
        .take(2)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(first_two.len(), 2);
    assert_eq!(audit_count(&server, &org, "study.search"), 3 + 4 + 1);

    let page = c
        .list_studies_page(
            &StudyFilter {
                limit: Some(5),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    let rest = c
        .list_studies_page(
            &StudyFilter {
                limit: Some(5),
                ..Default::default()
            },
            page.next_cursor(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next_cursor(), None);
}

async fn images_through_the_client(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Images Co");
    let c = client(&server, &org);
    let coverage = uuid::Uuid::new_v4().to_string();

    let mut new = NewImage::new("card-front.png", "Card (front)", "image/png");
    new.coverage = Some(CoverageAssociation {
        id: coverage.clone(),
        side: CoverageImageSide::Front,
    });
    new.patient = Some(PatientAssociation {
        id: "pat-1".into(),
        notes: None,
    });
    let image = c.upload_image(&new, PNG.into()).await.unwrap();
    assert_eq!(image.status, ImageStatus::Uploaded);
    assert_eq!(image.version, 2);
    assert_eq!(image.coverage.as_ref().unwrap().id, coverage);
    assert_eq!(c.download_image(&image).await.unwrap().as_ref(), PNG);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.png");
    assert_eq!(
        c.download_image_to(&image, &path).await.unwrap(),
        PNG.len() as u64
    );
    assert_eq!(std::fs::read(&path).unwrap(), PNG);

    assert_eq!(c.get_image(&image.id).await.unwrap().id, image.id);
    let found = c
        .search_images(&ImageQuery {
            patient_id: Some("pat-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);

    // A stale version: the Images envelope with latest_version.
    let err = c
        .update_image(&image.id, 1, &image.fields())
        .await
        .unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.status, 409);
    assert_eq!(api.kind(), Some("VersionConflictError"));
    assert_eq!(api.latest_version(), Some(2));

    // Bytes that are not the declared type are refused by the signed link.
    let pending = c
        .create_image(&NewImage::new("x.png", "x", "image/png"))
        .await
        .unwrap();
    let err = c
        .upload_image_bytes(&pending, b"GIF89a not a png".as_slice().into())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(415), "{err}");

    c.deactivate_image(&image.id, image.version).await.unwrap();
    assert!(c.get_image(&image.id).await.unwrap().deactivated);
    let err = c.get_image("not-an-id").await.unwrap_err();
    assert!(matches!(err.api().unwrap().envelope, Envelope::Images(_)));

    // Every call above shared one access token.
    assert_eq!(audit_count(&server, &org, "auth.token"), 1);
}

on_both_backends!(
    studies_through_the_client,
    listing_streams_every_page,
    images_through_the_client
);

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let server = TestServer::start(Backend::Sqlite).await;
    let org = server.create_org("Renew Co");
    // Tokens live 5 hours by default; a longer margin means "renew before each call".
    let c = Client::builder(&server.base)
        .client_credentials(&org.client_id, &org.client_secret)
        .token_refresh_margin(Duration::from_secs(24 * 3600))
        .build()
        .unwrap();
    for _ in 0..3 {
        c.search_images(&ImageQuery::default()).await.unwrap();
    }
    assert_eq!(audit_count(&server, &org, "auth.token"), 3);

    // Concurrent first calls share one token request.
    let c = client(&server, &org);
    let query = ImageQuery::default();
    let calls = (0..5).map(|_| c.search_images(&query));
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(audit_count(&server, &org, "auth.token"), 4);
}

#[tokio::test]
async fn credentials_missing_or_wrong() {
    let server = TestServer::start(Backend::Sqlite).await;
    let org = server.create_org("Creds Co");
    let none = Client::builder(&server.base).build().unwrap();
    assert!(matches!(
        none.get_study_by_uid("1.2").await.unwrap_err(),
        Error::Config(_)
    ));
    assert!(matches!(
        none.get_image("x").await.unwrap_err(),
        Error::Config(_)
    ));

    let wrong = Client::builder(&server.base)
        .api_key("lbk_wrong")
        .client_credentials(&org.client_id, "lbs_wrong")
        .build()
        .unwrap();
    let err = wrong.get_study_by_uid("1.2").await.unwrap_err();
    assert_eq!(err.api().unwrap().kind(), Some("unauthorized"));
    let err = wrong.get_image("x").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.api().unwrap().kind(), Some("UnauthorizedError"));
    // The key and the secret never show in the client's Debug output.
    let shown = format!("{wrong:?}");
    assert!(
        !shown.contains("lbk_wrong") && !shown.contains("lbs_wrong"),
        "{shown}"
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    // One request a second per credential, no burst beyond that.
    let server = TestServer::start_with(
        Backend::Sqlite,
        &["--rate-limit-per-second", "1", "--rate-limit-burst", "1"],
    )
    .await;
    let org = server.create_org("Busy Co");
    let uid = unique_uid();
    let patient = client(&server, &org);
    patient
        .create_study(&NewStudy::new(&uid, "CT", Severity::Normal))
        .await
        .unwrap();
    for _ in 0..3 {
        patient.get_study_by_uid(&uid).await.unwrap();
    }

    let impatient = Client::builder(&server.base)
        .api_key(&org.api_key)
        .max_retries(0)
        .build()
        .unwrap();
    let _ = impatient.get_study_by_uid(&uid).await;
    let err = impatient.get_study_by_uid(&uid).await.unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.status, 429);
    assert_eq!(api.kind(), Some("rate_limited"));
    assert!(api.retry_after.is_some_and(|d| d >= Duration::from_secs(1)));

    // A Retry-After longer than the client will wait is returned, not slept on.
    let hasty = Client::builder(&server.base)
        .api_key(&org.api_key)
        .max_retry_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let _ = hasty.get_study_by_uid(&uid).await;
    assert_eq!(
        hasty.get_study_by_uid(&uid).await.unwrap_err().status(),
        Some(429)
    );
}

#[tokio::test]
async fn unreachable_and_silent_servers_fail_within_bounds() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::builder(format!("http://127.0.0.1:{port}"))
        .api_key("lbk_x")
        .max_retries(1)
        .build()
        .unwrap();
    let err = c.get_study_by_uid("1.2").await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { timeout: false, .. }),
        "{err}"
    );

    // A server that accepts and never answers: the timeout ends each attempt.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let c = Client::builder(format!("http://{addr}"))
        .api_key("lbk_x")
        .timeout(Duration::from_millis(300))
        .max_retries(1)
        .build()
        .unwrap();
    let err = c.get_study_by_uid("1.2").await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { timeout: true, .. }),
        "{err}"
    );
    hold.abort();
}
