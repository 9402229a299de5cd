//! The sender against a real HTTP server on loopback, answering as partners
//! sometimes do: properly, with garbage, too much, a redirect, too slowly,
//! 410, or 503 with `Retry-After`. Every case ends in a clear outcome within
//! the timeout, never a hang.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use lightbox_domain::webhook::AccessResponse;
use lightbox_webhooks::{CallError, Destination, Outcome, SendConfig, Sender, SigningSecret};
use std::time::{Duration, Instant};

/// The partner's secret; `/ok` answers 401 unless a `v1,` entry verifies.
fn secret() -> SigningSecret {
    SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()
}

async fn ok(headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    let expected = secret().sign(header("webhook-id"), timestamp, &body);
    if !header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [("content-type", "application/json")],
        r#"{"authorized":true,"urls":["https://pacs.example/1.dcm"],"unknown":1}"#,
    )
        .into_response()
}

async fn partner() -> String {
    let app = Router::new()
        .route("/ok", post(ok))
        .route("/garbage", post(|| async { "<html>not json</html>" }))
        .route(
            "/wrong-types",
            post(|| async { r#"{"authorized":"yes","urls":[]}"# }),
        )
        .route(
            "/huge",
            post(|| async {
                // Chunked, no Content-Length: the cap applies while reading.
                let chunk = Bytes::from(vec![b' '; 64 * 1024]);
                let chunks = (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/redirect",
            post(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/gone", post(|| async { StatusCode::GONE }))
        .route(
            "/busy",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "7")]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn sender(allow_private: bool) -> Sender {
    Sender::new(SendConfig {
        timeout: Duration::from_secs(1),
        max_response_bytes: 1024 * 1024,
        allow_private,
    })
}

fn to(base: &str, path: &str) -> Destination {
    Destination {
        url: format!("{base}{path}"),
        secrets: vec![SigningSecret::generate(), secret()],
    }
}

const BODY: &[u8] = br#"{"id":"whe_1","type":"study.access_requested","data":{}}"#;

#[tokio::test]
async fn a_signed_call_gets_the_partners_answer_parsed_strictly() {
    let base = partner().await;
    let sender = sender(true);
    let answer: AccessResponse = sender.call(&to(&base, "/ok"), "whe_1", BODY).await.unwrap();
    assert!(answer.authorized);
    assert_eq!(answer.urls, ["https://pacs.example/1.dcm"]);

    let unsigned = Destination {
        url: format!("{base}/ok"),
        secrets: vec![SigningSecret::generate()],
    };
    let refused = sender
        .call::<AccessResponse>(&unsigned, "whe_1", BODY)
        .await;
    assert_eq!(refused, Err(CallError::Failed("HTTP 401".into())));

    for path in ["/garbage", "/wrong-types"] {
        let got = sender
            .call::<AccessResponse>(&to(&base, path), "whe_1", BODY)
            .await;
        assert!(
            matches!(got, Err(CallError::Unparseable(_))),
            "{path}: {got:?}"
        );
    }
}

#[tokio::test]
async fn huge_answers_redirects_410_and_busy_partners_are_clear_outcomes() {
    let base = partner().await;
    let sender = sender(true);
    match sender.post(&to(&base, "/huge"), "whe_1", BODY).await {
        Outcome::Retry { error, .. } => assert!(error.contains("larger than"), "{error}"),
        other => panic!("huge: {other:?}"),
    }
    match sender.post(&to(&base, "/redirect"), "whe_1", BODY).await {
        Outcome::Retry { status, error, .. } => {
            assert_eq!(status, Some(302));
            assert!(error.contains("redirects are not followed"), "{error}");
        }
        other => panic!("redirect: {other:?}"),
    }
    assert_eq!(
        sender.post(&to(&base, "/gone"), "whe_1", BODY).await,
        Outcome::Gone
    );
    match sender.post(&to(&base, "/busy"), "whe_1", BODY).await {
        Outcome::Retry { status, after, .. } => {
            assert_eq!((status, after), (Some(503), Some(Duration::from_secs(7))));
        }
        other => panic!("busy: {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_partner_times_out_without_holding_up_other_calls() {
    let base = partner().await;
    let sender = Sender::new(SendConfig {
        timeout: Duration::from_secs(2),
        allow_private: true,
        ..SendConfig::default()
    });
    let started = Instant::now();
    let slow_partner = to(&base, "/slow");
    let slow = async {
        let outcome = sender.post(&slow_partner, "whe_1", BODY).await;
        (outcome, started.elapsed())
    };
    let fast = async {
        let answer = sender
            .call::<AccessResponse>(&to(&base, "/ok"), "whe_2", BODY)
            .await;
        (answer, started.elapsed())
    };
    let ((slow, slow_took), (fast, fast_took)) = tokio::join!(slow, fast);
    assert!(fast.is_ok(), "{fast:?}");
    assert!(
        fast_took < slow_took,
        "fast {fast_took:?}, slow {slow_took:?}"
    );
    match slow {
        Outcome::Retry { status: None, .. } => {}
        other => panic!("slow: {other:?}"),
    }
    // Given up at the timeout (2 s), not when the partner answers (30 s).
    assert!(slow_took < Duration::from_secs(6), "{slow_took:?}");
}

#[tokio::test]
async fn private_and_plain_http_destinations_need_the_allowance() {
    let base = partner().await;
    let strict = sender(false);
    // Plain http to loopback: refused before any byte leaves.
    match strict.post(&to(&base, "/ok"), "whe_1", BODY).await {
        Outcome::Failed { error } => assert!(error.contains("--webhook-allow-private"), "{error}"),
        other => panic!("http: {other:?}"),
    }
    let port = base.rsplit(':').next().unwrap();
    match strict
        .post(
            &to(&format!("https://127.0.0.1:{port}"), "/ok"),
            "whe_1",
            BODY,
        )
        .await
    {
        Outcome::Failed { error } => assert!(error.contains("private"), "{error}"),
        other => panic!("literal loopback: {other:?}"),
    }
    // A name resolving to loopback is refused when resolved.
    match strict
        .post(
            &to(&format!("https://localhost:{port}"), "/ok"),
            "whe_1",
            BODY,
        )
        .await
    {
        Outcome::Retry { error, .. } => assert!(error.contains("private"), "{error}"),
        other => panic!("name to loopback: {other:?}"),
    }
}
