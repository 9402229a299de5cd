//! Operations endpoints on a real server: Prometheus `/metrics` (requests by
//! route template, latency histograms, DB pool, blob bytes), `/readyz`
//! against the database and the blob store, and JSON logs carrying request ids.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use support::{image_with_file, unique_uid, Backend, TestServer, PNG};

async fn text(url: String) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The value of the sample whose name-and-labels line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_pool_and_blob_bytes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Metrics Clinic");
    let api = server.api(&org.api_key);
    let study = api
        .create_study(json!({"severity": "normal", "studyDescription": "x", "studyInstanceUid": unique_uid()}))
        .await;
    let id = study["studyId"].as_str().unwrap();
    for _ in 0..3 {
        let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
        assert_eq!(r.status, 200);
        // The server's own time for the request, as benchmarks read it.
        let timing = r.headers["server-timing"].to_str().unwrap();
        let millis: f64 = timing.strip_prefix("app;dur=").unwrap().parse().unwrap();
        assert!(millis > 0.0, "{timing}");
    }
    assert_eq!(
        api.get("/v1/viewer/studies/stu_0123456789abcdef0123456789abcdef")
            .await
            .status,
        404
    );

    // An image upload and download through Lightbox (local blob store).
    let images = server.images_api(&org).await;
    let image = image_with_file(&images, "patient-1").await;
    let got = reqwest::get(image["signed_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);

    let (status, metrics) = text(format!("{}/metrics", server.base)).await;
    assert_eq!(status, 200);
    // By route template: the study id never becomes a label.
    let reads = sample(
        &metrics,
        r#"lightbox_http_requests_total{method="GET",route="/v1/viewer/studies/{study_id}",status="200"}"#,
    );
    assert_eq!(reads, Some(3.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"lightbox_http_requests_total{method="GET",route="/v1/viewer/studies/{study_id}",status="404"}"#
        ),
        Some(1.0)
    );
    assert!(!metrics.contains(id), "raw ids stay out of labels");
    assert_eq!(
        sample(
            &metrics,
            r#"lightbox_http_request_duration_seconds_count{method="GET",route="/v1/viewer/studies/{study_id}"}"#
        ),
        Some(4.0),
        "{metrics}"
    );
    assert!(metrics.contains(r#"lightbox_http_request_duration_seconds_bucket{method="GET",route="/v1/viewer/studies/{study_id}",le="0.005"}"#));
    assert_eq!(
        sample(&metrics, "lightbox_blob_bytes_uploaded_total"),
        Some(PNG.len() as f64)
    );
    assert_eq!(
        sample(&metrics, "lightbox_blob_bytes_downloaded_total"),
        Some(PNG.len() as f64)
    );
    let pool = match backend {
        Backend::Sqlite => "read",
        Backend::Postgres => "shared",
    };
    let size = sample(
        &metrics,
        &format!("lightbox_db_pool_connections{{pool=\"{pool}\"}}"),
    )
    .unwrap();
    let idle = sample(
        &metrics,
        &format!("lightbox_db_pool_idle_connections{{pool=\"{pool}\"}}"),
    )
    .unwrap();
    assert!(size >= 1.0 && idle <= size, "{metrics}");
}

async fn readyz_checks_database_and_blob_store(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ready = format!("{}/readyz", server.base);
    let (status, body) = text(ready.clone()).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"database": "ok", "blobStore": "ok"}})
    );

    // The blob store breaks: its scratch directory becomes a file.
    let scratch = server.data_dir.path().join("blobs/.tmp");
    std::fs::remove_dir_all(&scratch).unwrap();
    std::fs::write(&scratch, b"not a directory").unwrap();
    let (status, body) = text(ready.clone()).await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["checks"],
        json!({"database": "ok", "blobStore": "failed"})
    );
    // Liveness does not depend on it.
    assert_eq!(text(format!("{}/healthz", server.base)).await.0, 200);
    std::fs::remove_file(&scratch).unwrap();
    std::fs::create_dir(&scratch).unwrap();
    assert_eq!(text(ready.clone()).await.0, 200);

    if backend == Backend::Postgres {
        // The database goes away.
        let url = server.database_url().unwrap().to_owned();
        let (admin_url, name) = url.rsplit_once('/').unwrap();
        let mut admin = PgConnection::connect(&format!("{admin_url}/postgres"))
            .await
            .unwrap();
        admin
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        let (status, body) = text(ready).await;
        assert_eq!(status, 503, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["checks"]["database"], "failed");
        assert_eq!(text(format!("{}/healthz", server.base)).await.0, 200);
    }
}

async fn json_logs_carry_request_ids(backend: Backend) {
    let server = TestServer::start_with(backend, &["--log-format", "json"]).await;
    let org = server.create_org("Log Clinic");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/viewer/studies", server.base))
        .bearer_auth(&org.api_key)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    // A request without an id gets one, echoed back.
    let r = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36);
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let traced = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("no log line with the request id:\n{log}"));
    assert_eq!(traced["span"]["route"], "/v1/viewer/studies");
    assert!(lines
        .iter()
        .any(|l| l["span"]["request_id"] == generated.as_str()));
    assert!(!log.contains(&org.api_key), "API keys stay out of logs");
    // The listening record is JSON too; stdout kept its plain line (the harness read it).
    let listening = lines
        .iter()
        .find(|l| l["fields"]["addr"].is_string())
        .unwrap_or_else(|| panic!("no listening record:\n{log}"));
    assert_eq!(
        listening["fields"]["message"],
        format!("listening on {}", server.base)
    );
}

on_both_backends!(
    metrics_count_requests_pool_and_blob_bytes,
    readyz_checks_database_and_blob_store,
    json_logs_carry_request_ids,
);
