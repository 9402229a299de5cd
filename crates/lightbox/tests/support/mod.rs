//! Test harness: runs the real `lightbox` binary on a real SQLite file or a
//! throw-away PostgreSQL database, and talks to it over HTTP on loopback.
//!
//! PostgreSQL comes from `LIGHTBOX_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`): each server gets its own
//! database there, dropped afterwards.
#![allow(dead_code)]

pub mod dicom;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_lightbox");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each `async fn name(backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Sqlite).await } )+ }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Postgres).await } )+ }
    };
}

fn admin_database_url() -> String {
    std::env::var("LIGHTBOX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A PostgreSQL database that exists for one test.
pub struct ThrowawayDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ThrowawayDb {
    pub async fn create() -> ThrowawayDb {
        let admin_url = admin_database_url();
        let name = format!("lightbox_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at LIGHTBOX_TEST_DATABASE_URL ({admin_url}) is required: {e}")
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        ThrowawayDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, so use a fresh one on another thread.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestServer {
    child: Child,
    extra_args: Vec<String>,
    pub backend: Backend,
    pub base: String,
    /// The DICOM receiver's address, when started with `--dicom-listen`.
    pub dicom: Option<String>,
    pub data_dir: TempDir,
    db: Option<ThrowawayDb>,
    http: reqwest::Client,
}

/// Credentials of an organization made with `lightbox admin create-org`.
#[derive(Debug, Clone)]
pub struct Org {
    pub org_id: String,
    pub user_id: String,
    pub api_key: String,
    pub api_key_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The called AE title DICOM senders use to reach the organization.
    pub dicom_ae_title: String,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, &[]).await
    }

    /// Starts `lightbox serve` with extra flags and waits until it listens.
    pub async fn start_with(backend: Backend, extra_args: &[&str]) -> TestServer {
        let data_dir = TempDir::new().unwrap();
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(ThrowawayDb::create().await),
        };
        let extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let (child, base, dicom) = spawn(
            &data_dir,
            db.as_ref().map(|d| d.url.as_str()),
            &extra_args,
            "127.0.0.1:0",
        );
        TestServer {
            child,
            dicom,
            extra_args,
            backend,
            base,
            data_dir,
            db,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Asks the server to stop (SIGTERM); returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap()
    }

    /// Starts the server again on the same data and address.
    pub fn restart(&mut self) {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let (child, base, dicom) =
            spawn(&self.data_dir, self.database_url(), &self.extra_args, &addr);
        self.child = child;
        self.base = base;
        self.dicom = dicom;
    }

    /// The server process id (e.g. to read its memory use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A value from the server's `settings` table, read from its real database.
    pub async fn setting(&self, key: &str) -> String {
        const SQL: &str = "SELECT value FROM settings WHERE key = $1";
        match self.database_url() {
            Some(url) => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(SQL)
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            None => {
                let url = format!("sqlite://{}", self.sqlite_path().display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(SQL)
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    pub fn database_url(&self) -> Option<&str> {
        self.db.as_ref().map(|d| d.url.as_str())
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.path().join("lightbox.db")
    }

    /// The SQLite file holding the audit trail.
    pub fn sqlite_audit_path(&self) -> PathBuf {
        lightbox_store::Store::sqlite_audit_path(&self.sqlite_path())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs `lightbox admin ARGS --json` against this server's database.
    /// Runs `lightbox admin ARGS --json` on this server's database.
    pub fn admin_output(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(BIN);
        command
            .arg("admin")
            .args(args)
            .arg("--json")
            .env("LIGHTBOX_DATA_DIR", self.data_dir.path())
            .env_remove("DATABASE_URL");
        if let Some(url) = self.database_url() {
            command.env("DATABASE_URL", url);
        }
        command.output().expect("run lightbox admin")
    }

    /// Runs `lightbox admin ARGS --json`, asserting success; returns its JSON.
    pub fn admin(&self, args: &[&str]) -> Value {
        let out = self.admin_output(args);
        assert!(
            out.status.success(),
            "lightbox admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
    }

    pub fn create_org(&self, name: &str) -> Org {
        let email = format!("owner-{}@example.org", uuid::Uuid::new_v4().simple());
        let v = self.admin(&["create-org", "--name", name, "--owner-email", &email]);
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("create-org output lacks {k}: {v}"))
                .to_owned()
        };
        Org {
            org_id: s("org_id"),
            user_id: s("user_id"),
            api_key: s("api_key"),
            api_key_id: s("api_key_id"),
            client_id: s("client_id"),
            client_secret: s("client_secret"),
            dicom_ae_title: s("dicom_ae_title"),
        }
    }

    /// Adds a member to `org`; returns the user id.
    pub fn create_user(&self, org: &Org, email: &str) -> String {
        let v = self.admin(&[
            "create-user",
            "--org",
            &org.org_id,
            "--email",
            email,
            "--first-name",
            "Rita",
            "--last-name",
            "Adler",
        ]);
        v["user_id"].as_str().unwrap().to_owned()
    }

    pub fn api(&self, api_key: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            key: Some(api_key.to_owned()),
        }
    }

    /// An Images API client for `org`, holding a fresh access token.
    pub async fn images_api(&self, org: &Org) -> Api {
        let r = self
            .anonymous()
            .post(
                "/api/auth/v2/token",
                json!({"client_id": org.client_id, "client_secret": org.client_secret}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        self.api(r.body["access_token"].as_str().unwrap())
    }

    pub fn anonymous(&self) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            key: None,
        }
    }
}

/// Runs `lightbox serve` and waits for its "listening on" line (after the
/// "dicom listening on" line, when the DICOM receiver is on).
fn spawn(
    data_dir: &TempDir,
    database_url: Option<&str>,
    extra_args: &[String],
    listen: &str,
) -> (Child, String, Option<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.path().join("server.log"))
        .unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", listen])
        .args(extra_args)
        .env("LIGHTBOX_DATA_DIR", data_dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let mut child = command.spawn().expect("start lightbox");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut dicom = None;
    loop {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(addr) = line.trim().strip_prefix("dicom listening on ") {
            dicom = Some(addr.to_owned());
            continue;
        }
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let log =
                std::fs::read_to_string(data_dir.path().join("server.log")).unwrap_or_default();
            panic!("lightbox did not start: {line:?}\n{log}")
        };
        return (child, base.to_owned(), dicom);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON client bound to one API key.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    key: Option<String>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        // Every body is JSON but a 204's, which is empty.
        let body = match (status, text.as_str()) {
            (StatusCode::NO_CONTENT, "") => Value::Null,
            _ => serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}")),
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(&body)).await
    }

    /// Creates a study and returns it, asserting success.
    pub async fn create_study(&self, body: Value) -> Value {
        let r = self.post("/v1/viewer/studies", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

/// The secret of a credential as issued (`lbk_<32 hex key id>_<secret>` or
/// `lbs_<secret>`). Not split at the last `_`: base64url secrets contain `_`
/// too, and the tail after one can be a couple of characters that any log has.
pub fn secret_part(credential: &str) -> &str {
    match credential.strip_prefix("lbk_") {
        Some(rest) => &rest[33..],
        None => credential.strip_prefix("lbs_").unwrap_or(credential),
    }
}

/// Every page of `filter`'s studies straight from the store, `limit` at a
/// time, following its cursors; as ids.
pub async fn listed_ids(
    store: &lightbox_store::Store,
    org: lightbox_domain::OrgId,
    filter: &lightbox_domain::study::StudyFilter,
    limit: u32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<lightbox_domain::StudyId> = None;
    loop {
        let page = store
            .list_studies(org, filter, limit, after.as_ref())
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        ids.extend(page.items.iter().map(|s| s.id.as_str().to_owned()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

/// A connection to the PostgreSQL database at `url`, migrated as an older
/// Lightbox left it: by the migrations numbered before `first_new`.
pub async fn postgres_before(url: &str, first_new: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let older = migrations_before("postgres", first_new);
    sqlx::migrate::Migrator::new(older.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn
}

/// Writes bare organizations straight into a PostgreSQL database (for tests
/// that build one as an older release left it, or load many studies).
pub async fn insert_orgs(conn: &mut PgConnection, orgs: &[lightbox_domain::OrgId]) {
    for org in orgs {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'Org', 0)")
            .bind(org.to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// Writes one study straight into a PostgreSQL database, its search column
/// lowercased as the store writes it.
pub async fn insert_study(
    conn: &mut PgConnection,
    org: lightbox_domain::OrgId,
    id: &str,
    uid: &str,
    description: &str,
    severity: lightbox_domain::study::Severity,
) {
    sqlx::query(
        "INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, \
         severity, viewer_status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'incomplete', 0, 0)",
    )
    .bind(org.to_string())
    .bind(id)
    .bind(uid)
    .bind(description)
    .bind(description.to_lowercase())
    .bind(severity.as_str())
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// The migrations of `dialect` (`sqlite` or `postgres`) numbered before
/// `first_new`, as an older Lightbox shipped them, to make a database that a
/// test then upgrades; `sqlx::migrate::Migrator::new` takes the folder.
pub fn migrations_before(dialect: &str, first_new: &str) -> TempDir {
    let older = TempDir::new().unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lightbox-store/migrations")
        .join(dialect);
    for entry in std::fs::read_dir(&all).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().as_ref() < first_new {
            std::fs::copy(all.join(&name), older.path().join(&name)).unwrap();
        }
    }
    older
}

/// A DICOM UID no other test uses.
pub fn unique_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128() >> 8)
}

/// The start of a PNG (signature and header chunk): enough for Lightbox's
/// magic-number check, which is all the tests need of an image file.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

pub fn image_body(coverage: &str, side: &str, patient: &str) -> Value {
    json!({
        "file_name": "card.png",
        "display_name": "Insurance card",
        "file_type": "image/png",
        "status": "PENDING",
        "coverage": {"id": coverage, "side": side},
        "patient": {"id": patient, "notes": "front desk scan"},
    })
}

/// Creates an image and uploads its bytes; returns the image after upload.
pub async fn image_with_file(api: &Api, patient: &str) -> Value {
    let coverage = uuid::Uuid::new_v4().to_string();
    let r = api
        .post("/images/v1", image_body(&coverage, "FRONT", patient))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = r.body["signed_url"].as_str().unwrap().to_owned();
    let put = api.http.put(&url).body(PNG.to_vec()).send().await.unwrap();
    assert!(put.status().is_success(), "upload: {}", put.status());
    let id = r.body["id"].as_str().unwrap();
    let r = api.get(&format!("/images/v1/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}
