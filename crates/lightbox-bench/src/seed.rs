//! Loads the database directly (not through the API): the organization and
//! its users through the store, then studies in large multi-row INSERTs.
//! Every index and trigger the migrations define stays in place, so the
//! database is exactly what the API would have built.

use crate::data::Generator;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lightbox_domain::user::{InvitedSource, NewUser, UserLevel};
use lightbox_domain::Timestamp;
use lightbox_store::{NewOrg, Store};
use serde_json::json;
use sqlx::{Connection, QueryBuilder};
use std::path::Path;

pub const ASSIGNEES: usize = 40;
/// Rows per INSERT statement (16 columns each, under both engines' parameter limits).
const BATCH: usize = 1000;
/// Rows per transaction.
const TX_ROWS: u64 = 50_000;
pub const SEED: u64 = 20_261_123;

/// What a later run needs to drive a seeded database.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Seeded {
    pub org_id: String,
    pub api_key: String,
    pub api_key_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub users: Vec<String>,
    pub studies: u64,
    pub now_ms: i64,
}

impl Seeded {
    pub fn load(path: &Path) -> Option<Seeded> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The seeded organization's owner (an admin who may sign in to the web app).
pub const OWNER_EMAIL: &str = "owner@bench.example";

/// Creates the organization and users, then `studies` studies.
pub async fn seed(store: &Store, database_url: &str, studies: u64) -> anyhow::Result<Seeded> {
    let org = store
        .create_org(&NewOrg {
            name: "Bench Radiology".into(),
            owner_email: OWNER_EMAIL.into(),
        })
        .await?;
    let mut users = Vec::new();
    for i in 0..ASSIGNEES {
        let user = store
            .create_user(
                org.org_id,
                &NewUser {
                    email: format!("radiologist{i}@bench.example"),
                    first_name: format!("Reader{i}"),
                    last_name: "Bench".into(),
                    middle_name: None,
                    suffix1: None,
                    suffix2: None,
                    phone_number: None,
                    clinic_role: "Radiologist".into(),
                    level: UserLevel::Member,
                    can_manage_studies: true,
                    has_dashboard_access: false,
                    invited_source: InvitedSource::Dashboard,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("create user: {e}"))?;
        users.push(user.reference.id.to_string());
    }
    let seeded = Seeded {
        org_id: org.org_id.to_string(),
        api_key: org.api_key.clone(),
        api_key_id: org.api_key_id.to_string(),
        client_id: org.client_id.to_string(),
        client_secret: org.client_secret.clone(),
        users,
        studies,
        now_ms: Timestamp::now().millis(),
    };
    insert_studies(database_url, &seeded).await?;
    Ok(seeded)
}

macro_rules! push_rows {
    ($builder:expr, $rows:expr, $seeded:expr, $flag:expr) => {
        $builder.push_values($rows, |mut b, s| {
            let search = s.description.to_lowercase();
            b.push_bind($seeded.org_id.clone())
                .push_bind(s.id.clone())
                .push_bind(s.uid.clone())
                .push_bind(s.description.clone())
                .push_bind(search)
                .push_bind(s.severity)
                .push_bind(s.viewer_status)
                .push_bind($flag(s.cancelled_at.is_some()))
                .push_bind(s.cancelled_at)
                .push_bind(s.assignee.map(|a| $seeded.users[a].clone()))
                .push_bind(s.customer.clone())
                .push_bind($seeded.api_key_id.clone())
                .push_bind(None::<String>)
                .push_bind(json!({ "accessionNumber": s.accession }).to_string())
                .push_bind(s.created_at)
                .push_bind(s.cancelled_at.unwrap_or(s.created_at));
        });
    };
}

const INSERT: &str =
    "INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, \
     severity, viewer_status, is_cancelled, cancelled_at, assigned_to, express_customer_id, \
     created_by_api_key_id, created_by_user_id, metadata, created_at, updated_at) ";

async fn insert_studies(database_url: &str, seeded: &Seeded) -> anyhow::Result<()> {
    let progress = bar(seeded.studies, "seeding studies");
    let mut generator =
        Generator::new(SEED, seeded.studies, seeded.users.len(), seeded.now_ms).peekable();
    if database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(database_url).await?;
        while generator.peek().is_some() {
            let mut tx = conn.begin().await?;
            let mut in_tx = 0;
            while in_tx < TX_ROWS && generator.peek().is_some() {
                let rows: Vec<_> = generator.by_ref().take(BATCH).collect();
                let mut builder = QueryBuilder::<sqlx::Postgres>::new(INSERT);
                push_rows!(builder, rows.iter(), seeded, |b: bool| b);
                builder
                    .build()
                    .execute(&mut *tx)
                    .await
                    .context("insert studies")?;
                in_tx += rows.len() as u64;
                progress.inc(rows.len() as u64);
            }
            tx.commit().await?;
        }
        // What autovacuum does after a bulk load: statistics and the visibility
        // map (index-only scans need it). Commits above are synchronous: VACUUM
        // cannot mark pages all-visible behind an unflushed asynchronous commit.
        sqlx::query("VACUUM ANALYZE studies")
            .execute(&mut conn)
            .await?;
        let (pages, visible): (i32, i32) = sqlx::query_as(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'studies'",
        )
        .fetch_one(&mut conn)
        .await?;
        eprintln!("after VACUUM: {visible} of {pages} heap pages all-visible");
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        while generator.peek().is_some() {
            let mut tx = conn.begin().await?;
            let mut in_tx = 0;
            while in_tx < TX_ROWS && generator.peek().is_some() {
                let rows: Vec<_> = generator.by_ref().take(BATCH / 2).collect();
                let mut builder = QueryBuilder::<sqlx::Sqlite>::new(INSERT);
                push_rows!(builder, rows.iter(), seeded, i64::from);
                builder
                    .build()
                    .execute(&mut *tx)
                    .await
                    .context("insert studies")?;
                in_tx += rows.len() as u64;
                progress.inc(rows.len() as u64);
            }
            tx.commit().await?;
        }
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await?;
    }
    progress.finish();
    Ok(())
}
