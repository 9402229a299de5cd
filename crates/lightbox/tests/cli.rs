//! The operator verbs (`lightbox studies …`, `lightbox images …`) run as a
//! user would, against a real server.

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::{unique_uid, Backend, Org, TestServer, BIN, PNG};

/// Runs `lightbox ARGS` with the org's credentials in the environment.
fn run(server: &TestServer, org: &Org, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LIGHTBOX_URL", &server.base)
        .env("LIGHTBOX_API_KEY", &org.api_key)
        .env("LIGHTBOX_CLIENT_ID", &org.client_id)
        .env("LIGHTBOX_CLIENT_SECRET", &org.client_secret)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run lightbox")
}

fn ok_json(server: &TestServer, org: &Org, args: &[&str]) -> Value {
    let out = run(server, org, args);
    assert!(
        out.status.success(),
        "lightbox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn ok_text(server: &TestServer, org: &Org, args: &[&str]) -> String {
    let out = run(server, org, args);
    assert!(
        out.status.success(),
        "lightbox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn studies_verbs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("CLI Co");
    let uid = unique_uid();

    let created = ok_json(
        &server,
        &org,
        &[
            "studies",
            "create",
            "--uid",
            &uid,
            "--description",
            "CT Head",
            "--severity",
            "stat",
            "--metadata",
            "site=north",
            "--json",
        ],
    );
    let id = created["studyId"].as_str().unwrap().to_owned();
    assert_eq!(created["severity"], "stat");
    assert_eq!(created["metadata"]["site"], "north");

    // get by id and by UID; the table names the fields and values.
    assert_eq!(
        ok_json(&server, &org, &["studies", "get", &uid, "--json"])["studyId"],
        id
    );
    let table = ok_text(&server, &org, &["studies", "get", &id]);
    assert!(
        table.contains("studyInstanceUid") && table.contains(&uid),
        "{table}"
    );
    assert!(table.contains("site=north"), "{table}");

    let listed = ok_json(
        &server,
        &org,
        &["studies", "list", "--severity", "stat", "--json"],
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["studyId"], id);
    let table = ok_text(&server, &org, &["studies", "list"]);
    assert!(table.contains("STUDY ID") && table.contains(&id), "{table}");

    let cancelled = ok_json(&server, &org, &["studies", "cancel", &id, "--json"]);
    assert_eq!(cancelled["isCancelled"], true);
    let active = ok_json(
        &server,
        &org,
        &["studies", "list", "--cancelled", "false", "--json"],
    );
    assert_eq!(active, Value::Array(vec![]));

    // A refusal shows the server's message and exits non-zero.
    let out = run(&server, &org, &["studies", "cancel", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("409") && err.contains("already cancelled"),
        "{err}"
    );
}

async fn import_reports_each_row(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Import Co");
    let dir = tempfile::tempdir().unwrap();
    let (a, b, dup) = (unique_uid(), unique_uid(), unique_uid());
    ok_json(
        &server,
        &org,
        &[
            "studies",
            "create",
            "--uid",
            &dup,
            "--description",
            "old",
            "--json",
        ],
    );
    let mut csv = String::from("study_instance_uid,studyDescription,severity,metadata.site\n");
    csv += &format!("{a},MR Knee,high,north\n");
    csv += &format!("{dup},again,normal,\n"); // line 3: exists
    csv += "not a uid,XR,normal,\n"; // line 4: refused by the server
    csv += &format!("{b},\"Chest, PA\",,south\n");
    csv += &format!("{},CT,urgent,\n", unique_uid()); // line 6: bad severity
    for _ in 0..20 {
        csv += &format!("{},Bulk,normal,\n", unique_uid());
    }
    let file = dir.path().join("studies.csv");
    std::fs::write(&file, csv).unwrap();
    let file = file.to_str().unwrap();

    let out = run(
        &server,
        &org,
        &["studies", "import", file, "--concurrency", "4", "--json"],
    );
    assert!(
        !out.status.success(),
        "failed rows make the exit status non-zero"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"], 25);
    assert_eq!(report["created"].as_array().unwrap().len(), 22);
    let failed = report["failed"].as_array().unwrap();
    let lines: Vec<u64> = failed.iter().map(|f| f["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 6]);
    assert_eq!(failed[0]["status"], 409);
    assert_eq!(failed[1]["status"], 400);
    assert!(failed[2]["error"].as_str().unwrap().contains("urgent"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 of 25 rows failed"), "{stderr}");

    let chest = ok_json(&server, &org, &["studies", "get", &b, "--json"]);
    assert_eq!(chest["studyDescription"], "Chest, PA");
    assert_eq!(chest["severity"], "normal");
    assert_eq!(chest["metadata"]["site"], "south");
    let all = ok_json(&server, &org, &["studies", "list", "--all", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 23);

    // Re-running with --skip-existing: what exists is skipped, not failed.
    let out = run(
        &server,
        &org,
        &["studies", "import", file, "--skip-existing"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("25 rows: 0 created, 23 skipped (already there), 2 failed"),
        "{text}"
    );
    assert!(
        text.contains("not a uid"),
        "the failures table names the row: {text}"
    );
}

on_both_backends!(studies_verbs, import_reports_each_row);

#[tokio::test]
async fn images_upload_and_get() {
    let server = TestServer::start(Backend::Sqlite).await;
    let org = server.create_org("Upload Co");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("card-front.png");
    std::fs::write(&file, PNG).unwrap();
    let coverage = uuid::Uuid::new_v4().to_string();

    let image = ok_json(
        &server,
        &org,
        &[
            "images",
            "upload",
            file.to_str().unwrap(),
            "--patient-id",
            "pat-9",
            "--coverage-id",
            &coverage,
            "--side",
            "FRONT",
            "--json",
        ],
    );
    assert_eq!(image["status"], "UPLOADED");
    assert_eq!(image["file_type"], "image/png");
    assert_eq!(image["display_name"], "card-front.png");
    assert_eq!(image["coverage"]["side"], "FRONT");
    let id = image["id"].as_str().unwrap();

    let saved = dir.path().join("copy.png");
    let got = ok_json(
        &server,
        &org,
        &[
            "images",
            "get",
            id,
            "--output",
            saved.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(got["id"], id);
    assert_eq!(std::fs::read(&saved).unwrap(), PNG);
    let table = ok_text(&server, &org, &["images", "get", id]);
    assert!(
        table.contains("UPLOADED") && table.contains("pat-9"),
        "{table}"
    );

    // A file whose bytes are not its type: refused, the record named.
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, b"GIF89a pretending").unwrap();
    let out = run(&server, &org, &["images", "upload", fake.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stays PENDING") && err.contains("415"),
        "{err}"
    );

    let out = run(&server, &org, &["images", "get", "no-such-image"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFoundError"));
}

#[tokio::test]
async fn credentials_come_from_the_environment() {
    let server = TestServer::start(Backend::Sqlite).await;
    let out = Command::new(BIN)
        .args(["studies", "list", "--url", &server.base])
        .env_remove("LIGHTBOX_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIGHTBOX_API_KEY"));
    let out = Command::new(BIN)
        .args(["images", "get", "x", "--url", &server.base])
        .env_remove("LIGHTBOX_CLIENT_ID")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIGHTBOX_CLIENT_ID"));
}
