//! `lightbox-bench`: seeds a database with N studies, starts the real
//! `lightbox serve` on it, and measures it over HTTP with concurrent clients;
//! alongside, the floor (a bare axum handler serving the same page from
//! memory, and the store's query time in-process) and, with `orthanc`,
//! Orthanc loaded with the same studies; with `dicom-ingest`, C-STORE of
//! generated CT instances into Lightbox, Orthanc and dcmtk's storescp. Speed
//! is reported, never asserted.

mod cpu;
mod ct;
mod data;
mod dicom_data;
mod dicom_seed;
mod dicomweb;
mod explain;
mod ingest;
mod load;
mod orthanc;
mod seed;
mod server;
mod targets;
mod web;

/// The server's allocator (see `lightbox`), so the in-process floor is
/// measured the same way.
#[cfg(not(windows))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use load::{drive, send, Stats};
use rand::Rng;
use seed::Seeded;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed (once) and measure Lightbox on SQLite or PostgreSQL.
    Run(RunArgs),
    /// Load Orthanc and Lightbox with the same studies and compare the same searches.
    Orthanc(orthanc::OrthancArgs),
    /// Send N generated CT instances with dcmtk's storescu to Lightbox's DICOM
    /// receiver (and Orthanc, and storescp) over 1 and 4 associations.
    DicomIngest(ingest::IngestArgs),
    /// DICOMweb at N studies: the DICOM index seeded beside the worklist, a
    /// real CT series stored through STOW-RS, OHIF's QIDO, metadata and frame
    /// requests measured (and Orthanc's, with --orthanc-studies).
    Dicomweb(dicomweb::DicomwebArgs),
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Studies to seed.
    #[arg(long, default_value_t = 10_000)]
    studies: u64,
    /// Directory for the SQLite database, blobs and the seed record; reused when
    /// it already holds a database seeded with as many studies.
    #[arg(long, default_value = "bench-data")]
    data_dir: PathBuf,
    /// `postgres://…` to measure PostgreSQL (the database is created, or reused when seeded).
    #[arg(long)]
    database_url: Option<String>,
    /// The `lightbox` binary to start.
    #[arg(long, default_value = "target/release/lightbox")]
    lightbox: PathBuf,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Total bytes uploaded in the image-upload scenario (in 16 MiB files).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    upload_bytes: u64,
    /// Run only the scenarios whose names contain one of these (repeatable);
    /// for iterating on one query. The reported runs measure everything.
    #[arg(long)]
    only: Vec<String>,
}

impl RunArgs {
    /// The SQLite database file in the data directory (as `lightbox serve --data-dir` names it).
    fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("lightbox.db")
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| scenario.contains(o.as_str()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await.map(|_| ()),
        Command::Orthanc(args) => orthanc::run(args).await,
        Command::DicomIngest(args) => ingest::run(args).await,
        Command::Dicomweb(args) => dicomweb::run(args).await,
    }
}

pub struct Setup {
    pub store: lightbox_store::Store,
    pub database_url: String,
    pub seeded: Seeded,
    pub backend: &'static str,
    /// For the bench's own look-ups (not measured).
    pub pool: sqlx::AnyPool,
}

/// Opens (migrating) the database and seeds it unless it already holds the studies.
pub async fn prepare(args: &RunArgs) -> anyhow::Result<Setup> {
    std::fs::create_dir_all(&args.data_dir)?;
    let state_path = args.data_dir.join("bench-seed.json");
    let (database_url, backend) = match &args.database_url {
        Some(url) => (url.clone(), "postgresql"),
        None => (
            format!("sqlite://{}", args.sqlite_path().display()),
            "sqlite",
        ),
    };
    let mut previous = Seeded::load(&state_path);
    if previous.as_ref().is_some_and(|s| s.studies != args.studies) {
        anyhow::bail!(
            "{} was seeded with {} studies; use another --data-dir (and database) for {}",
            args.data_dir.display(),
            previous.map_or(0, |s| s.studies),
            args.studies
        );
    }
    if backend == "postgresql" {
        ensure_pg_database(&database_url).await?;
    }
    let options = lightbox_store::StoreOptions::default();
    let opened = Instant::now();
    let store = lightbox_store::Store::open(Some(&database_url), &args.sqlite_path(), &options)
        .await
        .context("open the store")?;
    eprintln!(
        "store opened (migrations checked) in {:.0?}",
        opened.elapsed()
    );
    let seeded = match previous.take() {
        Some(seeded) => {
            eprintln!(
                "reusing the {} seeded studies in {}",
                seeded.studies,
                args.data_dir.display()
            );
            seeded
        }
        None => {
            let started = Instant::now();
            let seeded = seed::seed(&store, &database_url, args.studies).await?;
            seeded.save(&state_path)?;
            eprintln!(
                "seeded {} studies in {:.1?} ({:.0}/s)",
                args.studies,
                started.elapsed(),
                args.studies as f64 / started.elapsed().as_secs_f64()
            );
            seeded
        }
    };
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await?;
    Ok(Setup {
        store,
        database_url,
        seeded,
        backend,
        pool,
    })
}

/// Reads every table and index once: the SQLite files through the OS cache,
/// PostgreSQL's relations with `pg_prewarm` (`read` mode: into the OS cache,
/// not shared buffers, which stay as configured). On PostgreSQL it first
/// vacuums, as autovacuum would have by then: a table a migration just filled
/// has no visibility map yet, and without one the planner avoids index-only
/// scans. Before that it counts the description search's trigrams, as a
/// server running for five minutes would have: a database seeded or grown by
/// an earlier run otherwise lists every study under every trigram.
async fn warm(setup: &Setup, args: &RunArgs) -> anyhow::Result<()> {
    if setup.backend == "postgresql" {
        let count = setup.store.count_search_trigrams().await?;
        if count.marked_common > 0 {
            eprintln!(
                "counted search trigrams: {} marked common",
                count.marked_common
            );
        }
        sqlx::raw_sql("VACUUM").execute(&setup.pool).await?;
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            .execute(&setup.pool)
            .await
            .context("pg_prewarm (PostgreSQL contrib) is needed to warm the database")?;
        sqlx::raw_sql(
            "SELECT count(pg_prewarm(oid::regclass, 'read')) FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i', 't')",
        )
        .execute(&setup.pool)
        .await?;
        return Ok(());
    }
    let db = args.sqlite_path();
    for path in [lightbox_store::Store::sqlite_audit_path(&db), db] {
        let mut file = std::fs::File::open(&path)?;
        std::io::copy(&mut file, &mut std::io::sink())?;
    }
    Ok(())
}

/// Whether `url` names a PostgreSQL on this machine (its processes can be metered).
fn is_local_postgres(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .map(|host_port| host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
        .unwrap_or("");
    matches!(host, "" | "localhost" | "127.0.0.1" | "[::1]")
}

/// Creates the database named in `url` when missing (PostgreSQL).
async fn ensure_pg_database(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let (base, name) = url
        .rsplit_once('/')
        .context("database URL without a database name")?;
    let name = name.split('?').next().unwrap_or(name);
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

pub fn cursor_after(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("studies:{id}"))
}

/// Ids at many depths of the newest-first listing, for deep-page cursors.
async fn deep_ids(setup: &Setup) -> anyhow::Result<Vec<String>> {
    let n = setup.seeded.studies;
    let mut ids = Vec::new();
    // Offsets spread over the older half; each found once, outside the measurement.
    for k in 0..20u64 {
        let offset = n / 2 + (n / 2).saturating_sub(200) * k / 20;
        let id: Option<String> = sqlx::query_scalar::<_, String>(
            "SELECT id FROM studies WHERE org_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
        )
        .bind(&setup.seeded.org_id)
        .bind(offset as i64)
        .fetch_optional(&setup.pool)
        .await?;
        ids.extend(id);
    }
    Ok(ids)
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    auth: String,
}

impl Ctx {
    fn get(&self, path_and_query: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{}", self.base, path_and_query))
            .header("authorization", &self.auth)
    }
}

/// Every list scenario: (name, query string); `{user}`, `{customer}` and
/// `{cursor}` are replaced per request.
fn list_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        ("list: first page", ""),
        ("list: deep page (cursor)", "cursor={cursor}"),
        ("filter: severity=stat", "severity=stat"),
        ("filter: severity=high", "severity=high"),
        ("filter: status=incomplete", "studyViewerStatus=incomplete"),
        ("filter: status=complete", "studyViewerStatus=complete"),
        ("filter: isCancelled=true", "isCancelled=true"),
        ("filter: isCancelled=false", "isCancelled=false"),
        ("filter: assignedTo=user", "assignedTo={user}"),
        ("filter: assignedTo=null", "assignedTo=null"),
        ("filter: expressCustomerId", "expressCustomerId={customer}"),
        ("filter: expressCustomerId=null", "expressCustomerId=null"),
        ("contains: common (chest)", "studyDescription=chest"),
        ("contains: rare (arthrogram)", "studyDescription=arthrogram"),
        ("contains: short (ct)", "studyDescription=CT"),
        ("contains: absent (zzzq)", "studyDescription=zzzq"),
        (
            "combo: stat+incomplete+user",
            "severity=stat&studyViewerStatus=incomplete&assignedTo={user}",
        ),
        (
            "combo: cancelled+stat+customer",
            "isCancelled=true&severity=stat&expressCustomerId={customer}",
        ),
        (
            "combo: all six filters",
            "severity=high&studyViewerStatus=complete&isCancelled=false&assignedTo={user}&expressCustomerId={customer}&studyDescription=knee",
        ),
        (
            "combo: rare contains+cursor",
            "studyDescription=arthrogram&cursor={cursor}",
        ),
    ]
}

fn fill(template: &str, seeded: &Seeded, cursors: &[String], n: u64) -> String {
    let mut rng = rand::thread_rng();
    let mut q = format!("/v1/viewer/studies?limit=100&{template}");
    if q.contains("{user}") {
        q = q.replace(
            "{user}",
            &seeded.users[rng.gen_range(0..seeded.users.len())],
        );
    }
    if q.contains("{customer}") {
        q = q.replace(
            "{customer}",
            &data::customer_id(rng.gen_range(0..data::CUSTOMERS)),
        );
    }
    if q.contains("{cursor}") {
        q = q.replace("{cursor}", &cursors[n as usize % cursors.len().max(1)]);
    }
    q
}

pub async fn run(args: RunArgs) -> anyhow::Result<Value> {
    let setup = prepare(&args).await?;
    let seeded = setup.seeded.clone();
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results: Vec<Stats> = Vec::new();
    let mut report = json!({
        "backend": setup.backend,
        "studies": seeded.studies,
        "concurrency": args.concurrency,
        "seconds_per_scenario": args.seconds,
        "machine": server::machine(),
    });

    // Steady state: the database read once, so the run measures queries rather
    // than the first touch of each page (this VM's kernel also reclaims cold
    // page cache, so a database seeded a while ago is otherwise read from disk).
    let warmed = Instant::now();
    warm(&setup, &args).await?;
    eprintln!(
        "warmed the database in {:.1} s",
        warmed.elapsed().as_secs_f64()
    );

    // Plans first: every filter combination must walk an org-first index in keyset order.
    let plans = explain::check(&setup).await?;
    report["plans"] = plans;

    // Startup: spawn to the first healthy answer, three times; the last server stays up.
    let mut startups = Vec::new();
    let mut server = None;
    for _ in 0..3 {
        if let Some(s) = server.take() {
            drop::<server::Server>(s);
        }
        let s = server::Server::start(&args, &setup).await?;
        startups.push(s.startup.as_secs_f64() * 1000.0);
        server = Some(s);
    }
    let server = server.expect("started");
    eprintln!("startup (ms): {startups:?}");
    // CPU per request: the server's, and PostgreSQL's when it runs on this machine.
    let meter = cpu::Meter {
        server_pid: server.pid(),
        postgres: args.database_url.as_deref().is_some_and(is_local_postgres),
    };
    report["startup_ms"] = json!(startups);

    let ctx = Arc::new(Ctx {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        base: server.base.clone(),
        auth: format!("Bearer {}", seeded.api_key),
    });
    let deep = deep_ids(&setup).await?;
    let cursors = Arc::new(deep.iter().map(|id| cursor_after(id)).collect::<Vec<_>>());
    let seeded_arc = Arc::new(seeded.clone());

    for (name, template) in list_scenarios() {
        if !args.wants(name) {
            continue;
        }
        let (ctx, seeded, cursors) = (ctx.clone(), seeded_arc.clone(), cursors.clone());
        let stats = drive(name, &meter, args.concurrency, duration, None, move |n| {
            let (ctx, seeded, cursors) = (ctx.clone(), seeded.clone(), cursors.clone());
            async move {
                let url = fill(template, &seeded, &cursors, n);
                let (_, timing) = send(ctx.get(&url)).await?;
                Ok(timing)
            }
        })
        .await;
        eprintln!("{}", stats.row());
        results.push(stats);
    }

    // The web app's pages, each beside the API's answer to the same query.
    if args.wants("web") {
        let pages = web::measure(
            &args,
            &setup,
            &server.base,
            &meter,
            cursors.clone(),
            Arc::new(deep.clone()),
        )
        .await?;
        results.extend(pages);
    }

    // By Study Instance UID.
    if args.wants("by-uid lookup") {
        let (ctx, total) = (ctx.clone(), seeded.studies);
        let stats = drive(
            "by-uid lookup",
            &meter,
            args.concurrency,
            duration,
            None,
            move |_| {
                let ctx = ctx.clone();
                async move {
                    let i = rand::thread_rng().gen_range(0..total);
                    let (_, timing) =
                        send(ctx.get(&format!("/v1/viewer/studies/by-uid/{}", data::study_uid(i))))
                            .await?;
                    Ok(timing)
                }
            },
        )
        .await;
        eprintln!("{}", stats.row());
        results.push(stats);
    }

    // Create (writes; each with a fresh UID).
    if args.wants("create study") {
        let ctx = ctx.clone();
        let stamp = std::process::id();
        let users = seeded_arc.clone();
        let stats = drive("create study", &meter, args.concurrency, duration, None, move |n| {
            let (ctx, users) = (ctx.clone(), users.clone());
            async move {
                // A quarter unassigned, as seeded: the newest studies are the
                // first page of every later run, and all-assigned ones there
                // mislead the planner about `assignedTo=null` (BENCHMARKS.md).
                let user = (n % 4 != 0).then(|| &users.users[n as usize % users.users.len()]);
                let body = json!({
                    "studyInstanceUid": format!("1.2.826.0.1.3680043.8.499.{stamp}.{n}.{}", Instant::now().elapsed().as_nanos()),
                    "studyDescription": "CT CHEST W/O CONTRAST - BENCH",
                    "severity": "normal",
                    "assignedTo": user,
                });
                let request = ctx
                    .client
                    .post(format!("{}/v1/viewer/studies", ctx.base))
                    .header("authorization", &ctx.auth)
                    .json(&body);
                let (_, timing) = send(request).await?;
                Ok(timing)
            }
        })
        .await;
        eprintln!("{}", stats.row());
        results.push(stats);
    }

    // Image upload and read, against the disk's own sequential write speed.
    if args.wants("image") {
        let images = server::images(&ctx.client, &server.base, &seeded, &args).await?;
        report["images"] = images.json.clone();
        results.push(images.upload);
        results.push(images.read);
    }

    // The floor: the same first page from memory behind a bare axum handler.
    if args.wants("floor") {
        let page = send(ctx.get("/v1/viewer/studies?limit=100")).await?.0;
        let floor = server::floor(page, args.concurrency, duration).await?;
        eprintln!("{}", floor.row());
        results.push(floor);
    }

    // And the store's own time for the same queries, in this process (SQL + row mapping).
    if args.wants("store") {
        let in_process = cpu::Meter {
            server_pid: Some(std::process::id()),
            ..meter
        };
        for stats in explain::store_timings(&setup, &in_process, duration).await? {
            eprintln!("{}", stats.row());
            results.push(stats);
        }
    }

    report["results"] = json!(results.iter().map(Stats::json).collect::<Vec<_>>());
    let judged = targets::judge(&results, &startups, &report["images"], &report["plans"]);
    report["targets"] = targets::json(&judged);
    println!(
        "\n## {} — {} studies, {} clients\n",
        setup.backend, seeded.studies, args.concurrency
    );
    println!("{}", load::TABLE_HEADER);
    for stats in &results {
        println!("{}", stats.row());
    }
    println!("\nstartup (ms, spawn to first healthy answer): {startups:.0?}");
    println!("{}", serde_json::to_string_pretty(&report["images"])?);
    println!(
        "plans: {}",
        serde_json::to_string_pretty(&report["plans"]["summary"])?
    );
    if !judged.is_empty() {
        println!("\n### Targets (issue #5), as measured in this run\n");
        print!("{}", targets::markdown(&judged));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    drop(server);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::is_local_postgres;

    #[test]
    fn only_a_postgresql_on_this_machine_is_metered() {
        assert!(is_local_postgres(
            "postgres://postgres@127.0.0.1:5432/bench"
        ));
        assert!(is_local_postgres(
            "postgres://u:p@localhost/bench?sslmode=disable"
        ));
        assert!(is_local_postgres("postgres:///bench"));
        assert!(!is_local_postgres("postgres://db.internal:5432/bench"));
        assert!(!is_local_postgres("postgres://u@10.0.0.5/bench"));
    }
}
