//! Webhook endpoints through `lightbox admin`, as an operator manages them:
//! secrets shown once and never stored in clear, rotation, enable/disable,
//! delete, tenancy, and clear refusals. Deliveries themselves are tested
//! end to end with the avara SDK's receiver in `tests/python/test_webhooks.py`.

mod support;

use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};
use support::{Backend, TestServer, BIN};

const KEY: &str = "q2sQ2Ht0F3Xc8h1V0aZ9Lr4T1mQ6yN8pW3kD5fJ7gH0=";

on_both_backends!(
    an_operator_creates_rotates_disables_and_deletes_an_endpoint,
    endpoint_commands_refuse_bad_input_and_other_organizations
);

/// The sealed secrets of every endpoint, read from the real database.
async fn stored_secrets(server: &TestServer) -> Vec<String> {
    const SQL: &str = "SELECT secret_sealed, previous_secret_sealed FROM webhook_endpoints";
    let rows = match server.database_url() {
        Some(url) => {
            let mut conn = PgConnection::connect(url).await.unwrap();
            sqlx::query(SQL)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .flat_map(|r| [r.get::<Option<String>, _>(0), r.get::<Option<String>, _>(1)])
                .flatten()
                .collect()
        }
        None => {
            let url = format!("sqlite://{}", server.sqlite_path().display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(SQL)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .flat_map(|r| [r.get::<Option<String>, _>(0), r.get::<Option<String>, _>(1)])
                .flatten()
                .collect()
        }
    };
    rows
}

fn admin_error(server: &TestServer, args: &[&str]) -> String {
    let out = server.admin_output(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn an_operator_creates_rotates_disables_and_deletes_an_endpoint(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.create_org("Acme");
    let hook = server.admin(&[
        "create-webhook",
        "--org",
        &acme.org_id,
        "--url",
        "https://hooks.example.com/lightbox",
        "--events",
        "study.created,image.uploaded",
        "--api-key",
        &acme.api_key_id,
        "--webhook-secret-key",
        KEY,
    ]);
    let id = hook["webhook_id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("whk_") && secret.starts_with("whsec_"),
        "{hook}"
    );
    assert_eq!(
        hook["events"],
        serde_json::json!(["study.created", "image.uploaded"])
    );
    assert_eq!(hook["api_key_id"], acme.api_key_id.as_str());

    // The database holds the secret sealed, never the secret.
    let stored = stored_secrets(&server).await;
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].contains(&secret["whsec_".len()..]),
        "secret stored in clear"
    );

    let listed = server.admin(&["list-webhooks", "--org", &acme.org_id]);
    assert_eq!(listed["webhook_id"], id.as_str());
    assert_eq!(listed["enabled"], true);
    assert!(
        listed.get("secret").is_none(),
        "listing shows no secret: {listed}"
    );

    let rotated = server.admin(&[
        "rotate-webhook-secret",
        "--org",
        &acme.org_id,
        "--id",
        &id,
        "--webhook-secret-key",
        KEY,
    ]);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_until"].is_string());
    let stored = stored_secrets(&server).await;
    assert_eq!(
        stored.len(),
        2,
        "old and new secret both kept for the overlap"
    );
    for sealed in &stored {
        assert!(!sealed.contains(&secret[6..]) && !sealed.contains(&new_secret[6..]));
    }

    // Rotating needs the key the secrets were sealed with.
    let other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let refused = admin_error(
        &server,
        &[
            "rotate-webhook-secret",
            "--org",
            &acme.org_id,
            "--id",
            &id,
            "--webhook-secret-key",
            other_key,
        ],
    );
    assert!(refused.contains("does not open"), "{refused}");

    server.admin(&["disable-webhook", "--org", &acme.org_id, "--id", &id]);
    let listed = server.admin(&["list-webhooks", "--org", &acme.org_id]);
    assert_eq!(listed["enabled"], false);
    assert_eq!(listed["disabled_reason"], "disabled by an operator");
    server.admin(&["enable-webhook", "--org", &acme.org_id, "--id", &id]);
    assert_eq!(
        server.admin(&["list-webhooks", "--org", &acme.org_id])["enabled"],
        true
    );

    server.admin(&["delete-webhook", "--org", &acme.org_id, "--id", &id]);
    let out = server.admin_output(&["list-webhooks", "--org", &acme.org_id]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
}

async fn endpoint_commands_refuse_bad_input_and_other_organizations(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.create_org("Acme");
    let other = server.create_org("Other");
    let url = "https://hooks.example.com/x";

    let no_key = admin_error(
        &server,
        &["create-webhook", "--org", &acme.org_id, "--url", url],
    );
    assert!(no_key.contains("--webhook-secret-key"), "{no_key}");
    let create = |extra: &[&str]| {
        let mut args = vec![
            "create-webhook",
            "--org",
            &acme.org_id,
            "--webhook-secret-key",
            KEY,
        ];
        args.extend_from_slice(extra);
        admin_error(&server, &args)
    };
    assert!(create(&["--url", "ftp://example.com/"]).contains("--url"));
    assert!(create(&["--url", "not a url"]).contains("--url"));
    assert!(create(&["--url", url, "--events", "study.deleted"]).contains("study.deleted"));
    let foreign_key = create(&["--url", url, "--api-key", &other.api_key_id]);
    assert!(
        foreign_key.contains("not one of this organization's"),
        "{foreign_key}"
    );
    let bad_key = admin_error(
        &server,
        &[
            "create-webhook",
            "--org",
            &acme.org_id,
            "--url",
            url,
            "--webhook-secret-key",
            "short",
        ],
    );
    assert!(bad_key.contains("32 bytes"), "{bad_key}");

    // Acme's endpoint is invisible and untouchable from Other.
    let hook = server.admin(&[
        "create-webhook",
        "--org",
        &acme.org_id,
        "--url",
        url,
        "--webhook-secret-key",
        KEY,
    ]);
    let id = hook["webhook_id"].as_str().unwrap();
    for verb in ["disable-webhook", "enable-webhook", "delete-webhook"] {
        let refused = admin_error(&server, &[verb, "--org", &other.org_id, "--id", id]);
        assert!(refused.contains("no webhook endpoint"), "{verb}: {refused}");
    }
    let theirs = server.admin_output(&["list-webhooks", "--org", &other.org_id]);
    assert_eq!(String::from_utf8_lossy(&theirs.stdout).trim(), "");
    let redeliver = admin_error(
        &server,
        &[
            "redeliver",
            "--org",
            &other.org_id,
            "--id",
            "whe_0123456789abcdef0123456789abcdef",
        ],
    );
    assert!(redeliver.contains("no webhook delivery"), "{redeliver}");
    let status = admin_error(
        &server,
        &[
            "webhook-deliveries",
            "--org",
            &acme.org_id,
            "--status",
            "lost",
        ],
    );
    assert!(status.contains("pending, delivered or dead"), "{status}");
}

/// `config show` never prints the webhook secret key.
#[test]
fn config_show_redacts_the_webhook_secret_key() {
    let out = std::process::Command::new(BIN)
        .args(["config", "show", "--json"])
        .env_remove("LIGHTBOX_CONFIG")
        .env("LIGHTBOX_WEBHOOK_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["settings"]["webhook_secret_key"]["value"],
        "<redacted>"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
}
