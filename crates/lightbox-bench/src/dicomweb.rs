//! `lightbox-bench dicomweb`: DICOMweb at N studies (issue #16). Seeds the
//! worklist (`seed.rs`) and the DICOM index (`dicom_seed.rs`), stores one real
//! 500-slice CT series through the server's STOW-RS (so frames are read from
//! real files), then measures what OHIF asks: its study-list QIDO (PatientName
//! `*needle*` rare and common + StudyDate range + ModalitiesInStudy, limit 101),
//! the StudyInstanceUID and PatientID (priors) look-ups, a study's series,
//! series metadata of a 500-instance series (read again, and as the first
//! read after a change, with the server's kept copy removed), frames against plain reads of
//! the same bytes from the same files (warm and cold page cache). Beside it:
//! the same SQL in-process with its plan, and with `--orthanc-studies`, Orthanc
//! (DICOMweb plugin, default `StudiesMetadata`/`SeriesMetadata`: `Full`)
//! loaded with the newest studies and the same real series, asked the same.

use crate::cpu::Meter;
use crate::data::Generator;
use crate::dicom_data::{self, COMMON_NAME, RARE_NAME};
use crate::dicom_seed::{self, DicomSeeded};
use crate::load::{drive, send, Stats};
use crate::orthanc::{element, secondary_capture_header, Orthanc, OrthancConfig};
use crate::seed::SEED;
use crate::{ct, server, RunArgs, Setup};
use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::Row;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DicomwebArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Load Orthanc with this many of the newest studies (0: no Orthanc).
    #[arg(long, default_value_t = 0)]
    orthanc_studies: u64,
    /// The Orthanc server binary.
    #[arg(long, default_value = "/usr/sbin/Orthanc")]
    orthanc: PathBuf,
    /// The DICOMweb plugin.
    #[arg(
        long,
        default_value = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
    )]
    dicomweb_plugin: PathBuf,
    #[arg(long, default_value_t = 18043)]
    orthanc_port: u16,
}

/// The real series: one study, one series of 500 CT slices, 512×512 16-bit.
const REAL: ct::CtSet = ct::CtSet {
    instances: 500,
    matrix: 512,
};
const ACCEPT_JSON: &str = "application/dicom+json";
const ACCEPT_FRAMES: &str = "multipart/related; type=application/octet-stream; transfer-syntax=*";

/// OHIF's study-list request (research/dicom.md §3), with its includefields.
fn ohif_list(name: Option<&str>, date_range: &str) -> String {
    let name = name.map_or(String::new(), |n| format!("PatientName=*{n}*&"));
    format!(
        "/studies?{name}StudyDate={date_range}&ModalitiesInStudy=CT,MR&limit=101&offset=0\
         &fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
    )
}

/// The real series' UIDs.
fn real_uids() -> anyhow::Result<(String, String, Vec<String>)> {
    let first = ct::instance_in_series_of(&REAL, 0, REAL.instances)?;
    let text = |o: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>, tag| {
        o.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches('\0').to_owned())
            .unwrap_or_default()
    };
    let st = text(&first, dicom_dictionary_std::tags::STUDY_INSTANCE_UID);
    let se = text(&first, dicom_dictionary_std::tags::SERIES_INSTANCE_UID);
    let mut sops = Vec::new();
    for i in 0..REAL.instances {
        let o = ct::instance_in_series_of(&REAL, i, REAL.instances)?;
        sops.push(text(&o, dicom_dictionary_std::tags::SOP_INSTANCE_UID));
    }
    Ok((st, se, sops))
}

/// Part 10 bytes of the real series' instance `i`.
fn real_file(i: u64) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    ct::instance_in_series_of(&REAL, i, REAL.instances)?.write_all(&mut out)?;
    Ok(out)
}

/// Stores the real series through STOW-RS (25 instances a request) unless
/// the index already has it.
async fn stow_real(setup: &Setup, base: &str, client: &reqwest::Client) -> anyhow::Result<()> {
    let (_, se, _) = real_uids()?;
    let have: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dicom_instances WHERE org_id = $1 AND series_instance_uid = $2",
    )
    .bind(&setup.seeded.org_id)
    .bind(&se)
    .fetch_one(&setup.pool)
    .await?;
    if have as u64 >= REAL.instances {
        return Ok(());
    }
    let started = Instant::now();
    let boundary = "lightbox-bench-boundary";
    for chunk in (0..REAL.instances).collect::<Vec<_>>().chunks(25) {
        let mut body = Vec::new();
        for &i in chunk {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&real_file(i)?);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        send(
            client
                .post(format!("{base}/dicomweb/studies"))
                .header("authorization", format!("Bearer {}", setup.seeded.api_key))
                .header(
                    "content-type",
                    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                )
                .header("accept", ACCEPT_JSON)
                .body(body),
        )
        .await
        .context("STOW of the real series")?;
    }
    eprintln!(
        "stored the real {}-instance series through STOW-RS in {:.1} s",
        REAL.instances,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where each real instance's pixels lie: (file, offset, length).
async fn real_pixels(setup: &Setup, data_dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64, u64)>> {
    let (_, se, _) = real_uids()?;
    let rows = sqlx::query(
        "SELECT blob_key, pixel_data_offset, pixel_data_length FROM dicom_instances \
         WHERE org_id = $1 AND series_instance_uid = $2 ORDER BY instance_number",
    )
    .bind(&setup.seeded.org_id)
    .bind(&se)
    .fetch_all(&setup.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let key: String = r.try_get("blob_key")?;
            let offset: Option<i64> = r.try_get("pixel_data_offset")?;
            let length: Option<i64> = r.try_get("pixel_data_length")?;
            Ok((
                data_dir.join("blobs").join(key),
                offset.context("native pixel data has an offset")? as u64,
                length.context("and a length")? as u64,
            ))
        })
        .collect()
}

/// Drops the files' pages from the page cache (POSIX_FADV_DONTNEED: this
/// process's own request, no privileges, no effect on other files).
fn drop_cache(files: &[(PathBuf, u64, u64)]) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    for (path, _, _) in files {
        let f = std::fs::File::open(path)?;
        // SAFETY: a valid descriptor; fadvise only advises the kernel.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    Ok(())
}

/// Plain reads of the same pixel bytes (pread of each range), one file after
/// another: MB/s.
fn plain_reads(files: &[(PathBuf, u64, u64)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut total = 0;
    for (path, offset, length) in files {
        let f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; *length as usize];
        f.read_exact_at(&mut buf, *offset)?;
        total += buf.len();
    }
    Ok(total as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// A bound value of a raw query.
#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// The SQL the QIDO and metadata requests run (as `lightbox-store`'s
/// `qido.rs` writes it: wildcards as GLOB on SQLite, LIKE … ESCAPE on
/// PostgreSQL; every value bound), to time in-process and to explain.
/// `name_years`: the database has migration 0018's name-year index; the
/// store adds its condition to a search by an uncommon name within three
/// years, which both needles are (~900 and ~10 candidates at 1M studies).
fn raw_queries(
    sqlite: bool,
    name_years: bool,
    org: &str,
    range: &str,
    d: &DicomSeeded,
) -> Vec<(String, String, Vec<Bind>)> {
    let (from, to) = range.split_once('-').unwrap_or((range, range));
    let cols = "st.study_instance_uid, st.patient_name, st.patient_id, st.patient_birth_date, \
        st.patient_sex, st.study_date, st.study_time, st.accession_number, \
        st.referring_physician_name, st.study_id, st.study_description, st.modalities, \
        CAST(st.series_count AS BIGINT) AS c1, CAST(st.instance_count AS BIGINT) AS c2, st.attributes";
    let order = |limit: &str| {
        format!(" ORDER BY st.created_at DESC, st.study_instance_uid DESC LIMIT {limit} OFFSET 0")
    };
    let t = |s: &str| Bind::Text(s.to_owned());
    // Binds `value` as the next parameter and names it.
    fn arg(binds: &mut Vec<Bind>, value: Bind) -> String {
        binds.push(value);
        format!("${}", binds.len())
    }
    let list = |name: Option<&str>| {
        let mut binds = Vec::new();
        let mut sql = format!(
            "SELECT {cols} FROM dicom_studies st WHERE st.org_id = {}",
            arg(&mut binds, t(org))
        );
        let (op, esc, any, sep) = if sqlite {
            ("GLOB", "", "*", "\\")
        } else {
            ("LIKE", " ESCAPE '\\'", "%", "\\\\")
        };
        if let Some(n) = name {
            let p = arg(&mut binds, t(&format!("{any}{}{any}", n.to_uppercase())));
            sql.push_str(&format!(" AND (st.patient_name_search {op} {p}{esc})"));
        }
        let (since, until) = (arg(&mut binds, t(from)), arg(&mut binds, t(to)));
        let ct = arg(&mut binds, t(&format!("{any}{sep}CT{sep}{any}")));
        let mr = arg(&mut binds, t(&format!("{any}{sep}MR{sep}{any}")));
        sql.push_str(&format!(
            " AND st.study_date IS NOT NULL AND st.study_date >= {since} AND st.study_date <= {until} \
             AND (('\\' || st.modalities || '\\') {op} {ct}{esc} OR ('\\' || st.modalities || '\\') {op} {mr}{esc})"
        ));
        if let (Some(n), true) = (name, name_years) {
            let trigrams: Vec<String> = (0..n.len().saturating_sub(2))
                .map(|at| n[at..at + 3].to_ascii_lowercase())
                .take(6)
                .collect();
            let (first, last): (i32, i32) =
                (from[..4].parse().unwrap_or(0), to[..4].parse().unwrap_or(0));
            let mut arms = Vec::new();
            for year in (first..=last)
                .map(|y| format!("{y:04}"))
                .chain(["*".to_owned()])
            {
                let keys: Vec<String> = trigrams
                    .iter()
                    .map(|t| arg(&mut binds, Bind::Text(format!("{year}{t}"))))
                    .collect();
                arms.push(format!(
                    "dicom_name_year_trigrams(st.patient_name_search, st.study_date) @> ARRAY[{}]::text[]",
                    keys.join(", ")
                ));
            }
            sql.push_str(&format!(" AND ({})", arms.join(" OR ")));
        }
        let limit = arg(&mut binds, Bind::Int(102));
        (format!("{sql}{}", order(&limit)), binds)
    };
    let (uid, patient) = d.samples.first().cloned().unwrap_or_default();
    let (big_st, big_se) = d.big_series.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (name, needle) in [
        ("raw: OHIF list, rare name", Some(RARE_NAME)),
        ("raw: OHIF list, common name", Some(COMMON_NAME)),
        ("raw: OHIF list, date + modality", None),
    ] {
        let (sql, binds) = list(needle);
        out.push((name.to_owned(), sql, binds));
    }
    out.push((
        "raw: StudyInstanceUID".into(),
        format!("SELECT {cols} FROM dicom_studies st WHERE st.org_id = $1 AND st.study_instance_uid = $2{}", order("$3")),
        vec![t(org), t(&uid), Bind::Int(102)],
    ));
    out.push((
        "raw: PatientID priors".into(),
        format!("SELECT {cols} FROM dicom_studies st WHERE st.org_id = $1 AND (st.patient_id IN ($2)){}", order("$3")),
        vec![t(org), t(&patient), Bind::Int(102)],
    ));
    out.push((
        "raw: series of a study".into(),
        "SELECT se.series_instance_uid, se.modality, se.series_number, se.series_description, \
         se.instance_count, se.attributes FROM dicom_series se WHERE se.org_id = $1 \
         AND se.study_instance_uid = $2 ORDER BY (se.series_number IS NULL), se.series_number, \
         se.series_instance_uid LIMIT 1001"
            .into(),
        vec![t(org), t(&big_st)],
    ));
    out.push((
        "raw: series metadata (500)".into(),
        "SELECT metadata FROM dicom_instances WHERE org_id = $1 AND series_instance_uid = $2 \
         ORDER BY instance_number"
            .into(),
        vec![t(org), t(&big_se)],
    ));
    out
}

/// `sql` with its parameters written in as literals (for EXPLAIN, which
/// then plans for these values, as PostgreSQL's custom plans do).
fn inline(sql: &str, binds: &[Bind]) -> String {
    let mut out = sql.to_owned();
    for (n, b) in binds.iter().enumerate().rev() {
        let lit = match b {
            Bind::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Bind::Int(v) => v.to_string(),
        };
        out = out.replace(&format!("${}", n + 1), &lit);
    }
    out
}

fn bound<'q>(
    sql: &'q str,
    binds: &[Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(v) => q.bind(*v),
        };
    }
    q
}

async fn explain(setup: &Setup, sql: &str) -> anyhow::Result<Vec<String>> {
    let (prefix, column) = if setup.backend == "postgresql" {
        ("EXPLAIN (ANALYZE, BUFFERS) ", "QUERY PLAN")
    } else {
        ("EXPLAIN QUERY PLAN ", "detail")
    };
    let rows = sqlx::raw_sql(&format!("{prefix}{sql}"))
        .fetch_all(&setup.pool)
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>(column)?))
        .collect()
}

async fn raw(
    setup: &Setup,
    meter: &Meter,
    d: &DicomSeeded,
    range: &str,
    only: &RunArgs,
) -> anyhow::Result<(Vec<Stats>, Value)> {
    let mut out = Vec::new();
    let mut plans = serde_json::Map::new();
    let sqlite = setup.backend == "sqlite";
    let name_years = !sqlite
        && sqlx::query_scalar::<_, bool>(
            "SELECT to_regproc('dicom_name_year_trigrams') IS NOT NULL",
        )
        .fetch_one(&setup.pool)
        .await?;
    for (name, sql, binds) in raw_queries(sqlite, name_years, &setup.seeded.org_id, range, d) {
        if !only.wants(&name) {
            continue;
        }
        let plan = explain(setup, &inline(&sql, &binds)).await?;
        eprintln!("{name}:\n  {}", plan.join("\n  "));
        plans.insert(name.clone(), json!(plan));
        let mut stats = Stats::empty(&name);
        let mut rows = 0;
        let before = meter.sample();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            let t0 = Instant::now();
            rows = bound(&sql, &binds).fetch_all(&setup.pool).await?.len();
            stats.record_client(t0.elapsed());
            stats.requests += 1;
        }
        stats.elapsed = started.elapsed();
        stats.cpu = meter.since(before, stats.requests);
        eprintln!("{} ({rows} rows)", stats.row());
        out.push(stats);
    }
    Ok((out, Value::Object(plans)))
}

struct Http {
    client: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl Http {
    fn get(&self, path: &str, accept: &str) -> reqwest::RequestBuilder {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", accept);
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }
}

/// One HTTP scenario: `paths(n)` is the n-th request's path and Accept.
async fn scenario(
    name: &str,
    http: &Arc<Http>,
    meter: &Meter,
    concurrency: usize,
    duration: Duration,
    paths: Arc<dyn Fn(u64) -> (String, &'static str) + Send + Sync>,
) -> Stats {
    let http = http.clone();
    let stats = drive(name, meter, concurrency, duration, None, move |n| {
        let (http, paths) = (http.clone(), paths.clone());
        async move {
            let (path, accept) = paths(n);
            let (_, timing) = send(http.get(&path, accept)).await?;
            Ok(timing)
        }
    })
    .await;
    eprintln!("{}", stats.row());
    if let Some(e) = &stats.first_error {
        eprintln!("  first error: {e}");
    }
    stats
}

/// How many studies (or instances) a DICOM JSON answer holds; 204 is none.
async fn count(http: &Http, path: &str, accept: &str) -> anyhow::Result<(u16, usize, usize)> {
    let response = http.get(path, accept).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    let n = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    Ok((status, n, body.len()))
}

/// The DICOMweb scenarios of one server (`prefix` is its DICOMweb root).
struct Plan {
    name: &'static str,
    make: Arc<dyn Fn(u64) -> (String, &'static str) + Send + Sync>,
}

fn plans(
    prefix: &str,
    d: &DicomSeeded,
    range: &str,
    real: &(String, String, Vec<String>),
) -> Vec<Plan> {
    let p = prefix.to_owned();
    let samples = Arc::new(d.samples.clone());
    let big = Arc::new(d.big_series.clone());
    let real = Arc::new(real.clone());
    let range = range.to_owned();
    let mut out: Vec<Plan> = Vec::new();
    for (name, needle) in [
        ("QIDO OHIF list: rare name + date + CT,MR", Some(RARE_NAME)),
        (
            "QIDO OHIF list: common name + date + CT,MR",
            Some(COMMON_NAME),
        ),
        ("QIDO OHIF list: date + CT,MR", None),
    ] {
        let (p, range) = (p.clone(), range.clone());
        out.push(Plan {
            name,
            make: Arc::new(move |_| (format!("{p}{}", ohif_list(needle, &range)), ACCEPT_JSON)),
        });
    }
    {
        let (p, samples) = (p.clone(), samples.clone());
        out.push(Plan {
            name: "QIDO StudyInstanceUID",
            make: Arc::new(move |n| {
                let (uid, _) = &samples[n as usize % samples.len().max(1)];
                (
                    format!("{p}/studies?StudyInstanceUID={uid}&includefield=00081030,00080060"),
                    ACCEPT_JSON,
                )
            }),
        });
    }
    {
        let (p, samples) = (p.clone(), samples.clone());
        out.push(Plan {
            name: "QIDO PatientID priors",
            make: Arc::new(move |n| {
                let (_, patient) = &samples[n as usize % samples.len().max(1)];
                (
                    format!("{p}/studies?00100020={patient}&includefield=00081030,00080060"),
                    ACCEPT_JSON,
                )
            }),
        });
    }
    {
        let (p, samples) = (p.clone(), samples.clone());
        out.push(Plan {
            name: "QIDO /studies/{st}/series",
            make: Arc::new(move |n| {
                let (uid, _) = &samples[n as usize % samples.len().max(1)];
                (
                    format!(
                        "{p}/studies/{uid}/series?includefield=00080021,00080031,0008103E,00200011"
                    ),
                    ACCEPT_JSON,
                )
            }),
        });
    }
    {
        let (p, big) = (p.clone(), big.clone());
        out.push(Plan {
            name: "series metadata, 500 instances (seeded rows)",
            make: Arc::new(move |n| {
                let (st, se) = &big[n as usize % big.len().max(1)];
                (
                    format!("{p}/studies/{st}/series/{se}/metadata"),
                    ACCEPT_JSON,
                )
            }),
        });
    }
    {
        let (p, real) = (p.clone(), real.clone());
        out.push(Plan {
            name: "series metadata, 500 instances (real files)",
            make: Arc::new(move |_| {
                (
                    format!("{p}/studies/{}/series/{}/metadata", real.0, real.1),
                    ACCEPT_JSON,
                )
            }),
        });
    }
    {
        let (p, real) = (p.clone(), real.clone());
        out.push(Plan {
            name: "frame 1 of a real 512×512 CT instance",
            make: Arc::new(move |n| {
                let sop = &real.2[n as usize % real.2.len().max(1)];
                (
                    format!(
                        "{p}/studies/{}/series/{}/instances/{sop}/frames/1",
                        real.0, real.1
                    ),
                    ACCEPT_FRAMES,
                )
            }),
        });
    }
    {
        let (p, real) = (p.clone(), real.clone());
        out.push(Plan {
            name: "rendered frame (image/jpeg)",
            make: Arc::new(move |n| {
                let sop = &real.2[n as usize % real.2.len().max(1)];
                (
                    format!(
                        "{p}/studies/{}/series/{}/instances/{sop}/frames/1/rendered",
                        real.0, real.1
                    ),
                    "image/jpeg",
                )
            }),
        });
    }
    out
}

/// Frames: every real instance's frame once, one client, against plain reads
/// of the same bytes from the same files; cold (pages dropped before each) and warm.
async fn frames_vs_disk(
    http: &Http,
    files: &[(PathBuf, u64, u64)],
    real: &(String, String, Vec<String>),
) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    let bytes: u64 = files.iter().map(|f| f.2).sum();
    for cache in ["cold", "warm"] {
        if cache == "cold" {
            drop_cache(files)?;
        } else {
            plain_reads(files)?;
        }
        let disk = plain_reads(files)?;
        if cache == "cold" {
            drop_cache(files)?;
        }
        let started = Instant::now();
        let mut got = 0;
        for sop in &real.2 {
            let (body, _) = send(http.get(
                &format!(
                    "/dicomweb/studies/{}/series/{}/instances/{sop}/frames/1",
                    real.0, real.1
                ),
                ACCEPT_FRAMES,
            ))
            .await?;
            got += body.len() as u64;
        }
        let http_mb_s = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
        anyhow::ensure!(
            got >= bytes,
            "frames returned {got} bytes, pixels are {bytes}"
        );
        eprintln!(
            "frames ({cache}): {http_mb_s:.0} MB/s over HTTP, plain reads {disk:.0} MB/s: {:.2}×",
            http_mb_s / disk
        );
        out.insert(
            cache.into(),
            json!({ "http_mb_s": http_mb_s, "plain_read_mb_s": disk, "ratio": http_mb_s / disk, "bytes": bytes }),
        );
    }
    Ok(Value::Object(out))
}

/// Series metadata as a viewer's first read after the series changed sees
/// it: the server's kept copy of the series' answer (`cache/series-metadata`
/// in the local blob store) is removed before each request, so every answer
/// is built from the index. One client, the seeded 500-instance series in
/// turn, and a pause after each answer: at least 0.4 s (longer than the
/// server waits before it writes its copy), and until the copy is there, so
/// no write runs during a request. A build that keeps no copy (none appears
/// within a second of the first answer) gets the same pauses.
async fn first_reads(
    http: &Http,
    kept_dir: &Path,
    big: &[(String, String)],
    duration: Duration,
) -> anyhow::Result<Value> {
    let mut times = Vec::new();
    // Whether this build writes copies at all (one that never does is not waited for).
    let mut keeps_copies = None;
    let started = Instant::now();
    for (st, se) in big.iter().cycle() {
        if started.elapsed() >= duration {
            break;
        }
        let kept = kept_dir.join(format!("{se}.json"));
        match std::fs::remove_file(&kept) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let sent = Instant::now();
        send(http.get(
            &format!("/dicomweb/studies/{st}/series/{se}/metadata"),
            ACCEPT_JSON,
        ))
        .await?;
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        let waited = Instant::now();
        tokio::time::sleep(Duration::from_millis(400)).await;
        while keeps_copies != Some(false) && !kept.exists() {
            if waited.elapsed() > Duration::from_secs(1) {
                keeps_copies = Some(false);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        keeps_copies.get_or_insert(true);
    }
    anyhow::ensure!(!times.is_empty(), "no first read measured");
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    eprintln!(
        "series metadata, first read: {} requests, client p50 {p50:.2} ms, p99 {p99:.2} ms",
        times.len()
    );
    Ok(json!({"requests": times.len(), "client_p50_ms": p50, "client_p99_ms": p99}))
}

/// An Orthanc file for one series of a study: the study's patient and study
/// attributes, the series' modality; one small Secondary Capture instance.
fn orthanc_file(st: &dicom_data::DicomStudy, se: &dicom_data::Series) -> Vec<u8> {
    let sop = format!("{}.1", se.uid);
    let mut out = secondary_capture_header(&sop);
    let e = |out: &mut Vec<u8>, g, el, vr: &[u8; 2], v: &str| element(out, g, el, vr, v.as_bytes());
    e(&mut out, 0x0008, 0x0005, b"CS", "ISO_IR 100");
    e(&mut out, 0x0008, 0x0016, b"UI", "1.2.840.10008.5.1.4.1.1.7");
    e(&mut out, 0x0008, 0x0018, b"UI", &sop);
    e(&mut out, 0x0008, 0x0020, b"DA", &st.study_date);
    e(&mut out, 0x0008, 0x0030, b"TM", &st.study_time);
    e(&mut out, 0x0008, 0x0050, b"SH", &st.accession);
    e(&mut out, 0x0008, 0x0060, b"CS", se.modality);
    e(&mut out, 0x0008, 0x0090, b"PN", &st.referring);
    e(&mut out, 0x0008, 0x1030, b"LO", &st.description);
    e(&mut out, 0x0008, 0x103E, b"LO", &se.description);
    e(&mut out, 0x0010, 0x0010, b"PN", &st.patient.name);
    e(&mut out, 0x0010, 0x0020, b"LO", &st.patient.id);
    e(&mut out, 0x0010, 0x0030, b"DA", &st.patient.birth_date);
    e(&mut out, 0x0010, 0x0040, b"CS", st.patient.sex);
    e(&mut out, 0x0020, 0x000D, b"UI", &st.uid);
    e(&mut out, 0x0020, 0x000E, b"UI", &se.uid);
    e(&mut out, 0x0020, 0x0010, b"SH", &st.study_id);
    e(&mut out, 0x0020, 0x0011, b"IS", &se.number.to_string());
    e(&mut out, 0x0020, 0x0013, b"IS", "1");
    out
}

/// Loads Orthanc with the newest `n` studies (an instance per distinct
/// modality, so its ModalitiesInStudy equals ours) and the real series.
async fn load_orthanc(
    orthanc: &Orthanc,
    client: &reqwest::Client,
    setup: &Setup,
    n: u64,
) -> anyhow::Result<f64> {
    let stats: Value = serde_json::from_slice(
        &send(client.get(format!("{}/statistics", orthanc.base)))
            .await?
            .0,
    )?;
    if stats["CountStudies"].as_u64().unwrap_or(0) > n {
        eprintln!("Orthanc already holds {} studies", stats["CountStudies"]);
        return Ok(0.0);
    }
    let total = setup.seeded.studies;
    let now = setup.seeded.now_ms;
    let url = format!("{}/instances", orthanc.base);
    let bar = crate::seed::bar(n, "loading Orthanc");
    let started = Instant::now();
    let files = Generator::new(SEED, total, setup.seeded.users.len(), now)
        .skip(total.saturating_sub(n) as usize)
        .flat_map(move |s| {
            let st = dicom_data::study(&s, total, now);
            let mut seen = Vec::new();
            let mut files = Vec::new();
            for se in &st.series {
                if !seen.contains(&se.modality) {
                    seen.push(se.modality);
                    files.push(orthanc_file(&st, se));
                }
            }
            files
                .into_iter()
                .enumerate()
                .map(|(k, f)| (k == 0, f))
                .collect::<Vec<_>>()
        })
        .map(Ok::<_, anyhow::Error>)
        .chain((0..REAL.instances).map(|i| real_file(i).map(|f| (false, f))));
    futures_util::stream::iter(files)
        .map(|file| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let (first, body) = file?;
                send(
                    client
                        .post(&url)
                        .header("content-type", "application/dicom")
                        .body(body),
                )
                .await?;
                Ok::<_, anyhow::Error>(first)
            }
        })
        .buffer_unordered(4)
        .for_each(|r| {
            match r {
                Ok(true) => bar.inc(1),
                Ok(false) => {}
                Err(e) => bar.println(format!("Orthanc rejected an instance: {e:#}")),
            }
            std::future::ready(())
        })
        .await;
    bar.finish();
    let rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("loaded Orthanc: {n} studies (+ the real series) at {rate:.0} studies/s");
    Ok(rate)
}

pub async fn run(args: DicomwebArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let setup = crate::prepare(run).await?;
    let d = dicom_seed::ensure(&setup.database_url, &run.data_dir, &setup.seeded).await?;
    crate::warm(&setup, run).await?;
    let server = server::Server::start(run, &setup).await?;
    let meter = Meter {
        server_pid: server.pid(),
        postgres: run
            .database_url
            .as_deref()
            .is_some_and(crate::is_local_postgres),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let http = Arc::new(Http {
        client: client.clone(),
        base: server.base.clone(),
        auth: Some(format!("Bearer {}", setup.seeded.api_key)),
    });
    stow_real(&setup, &server.base, &client).await?;
    let real = real_uids()?;
    let range = dicom_data::last_year_range(setup.seeded.now_ms);
    let duration = Duration::from_secs_f64(run.seconds);
    let mut report = json!({
        "backend": setup.backend,
        "studies": d.studies,
        "dicom": {"series": d.series, "instances": d.instances, "seed_seconds": d.seconds},
        "concurrency": run.concurrency,
        "machine": server::machine(),
        "date_range": range,
    });

    // What each query's answer holds, once (a 404/405 is an endpoint not built yet).
    let mut results = Vec::new();
    let mut answers = serde_json::Map::new();
    let lightbox_plans = plans("/dicomweb", &d, &range, &real);
    for plan in &lightbox_plans {
        if !run.wants(plan.name) {
            continue;
        }
        let (path, accept) = (plan.make)(0);
        let (status, n, bytes) = count(&http, &path, accept).await?;
        eprintln!("{}: HTTP {status}, {n} items, {bytes} bytes", plan.name);
        answers.insert(
            plan.name.into(),
            json!({"status": status, "items": n, "bytes": bytes}),
        );
        if !(200..300).contains(&status) {
            eprintln!("  skipped: not served by this build");
            continue;
        }
        results.push(
            scenario(
                plan.name,
                &http,
                &meter,
                run.concurrency,
                duration,
                plan.make.clone(),
            )
            .await,
        );
    }
    report["answers"] = Value::Object(answers);

    if run.wants("frames vs disk") {
        let files = real_pixels(&setup, &run.data_dir).await?;
        let frame_ok = count(
            &http,
            &(lightbox_plans
                .iter()
                .find(|p| p.name.starts_with("frame 1"))
                .expect("planned")
                .make)(0)
            .0,
            ACCEPT_FRAMES,
        )
        .await
        .map(|(s, _, _)| s == 200)
        .unwrap_or(false);
        if frame_ok && !files.is_empty() {
            report["frames_vs_disk"] = frames_vs_disk(&http, &files, &real).await?;
        }
    }

    if run.wants("series metadata, first read") && !d.big_series.is_empty() {
        let kept_dir = run
            .data_dir
            .join("blobs/cache/series-metadata")
            .join(&setup.seeded.org_id);
        report["series_metadata_first_read"] =
            first_reads(&http, &kept_dir, &d.big_series, duration).await?;
    }

    // The same questions as SQL in this process, with their plans.
    let in_process = Meter {
        server_pid: Some(std::process::id()),
        ..meter
    };
    let (raws, plans_json) = raw(&setup, &in_process, &d, &range, run).await?;
    results.extend(raws);
    report["plans"] = plans_json;

    // Orthanc, at the size it loads in reasonable time.
    let mut versus = Vec::new();
    if args.orthanc_studies > 0 {
        let orthanc = Orthanc::start(&OrthancConfig {
            binary: &args.orthanc,
            dir: run.data_dir.join("orthanc-dicomweb"),
            http_port: args.orthanc_port,
            plugins: vec![&args.dicomweb_plugin],
            dicom_port: None,
            env: Vec::new(),
            metadata_mode: None,
        })
        .await?;
        let rate = load_orthanc(&orthanc, &client, &setup, args.orthanc_studies).await?;
        report["orthanc"] = json!({"studies": args.orthanc_studies, "load_studies_per_s": rate});
        let o_http = Arc::new(Http {
            client: client.clone(),
            base: orthanc.base.clone(),
            auth: None,
        });
        let o_meter = Meter {
            server_pid: orthanc.pid(),
            postgres: false,
        };
        for plan in plans("/dicom-web", &d, &range, &real) {
            if !run.wants(plan.name)
                || plan.name.contains("seeded rows")
                || plan.name.contains("rendered")
            {
                continue;
            }
            let Some(ours) = results.iter().find(|s| s.name == plan.name) else {
                continue;
            };
            let (path, accept) = (plan.make)(0);
            let (status, n, bytes) = count(&o_http, &path, accept).await?;
            eprintln!(
                "orthanc {}: HTTP {status}, {n} items, {bytes} bytes",
                plan.name
            );
            let theirs = scenario(
                &format!("orthanc: {}", plan.name),
                &o_http,
                &o_meter,
                run.concurrency,
                duration,
                plan.make.clone(),
            )
            .await;
            let p50 = |s: &Stats| s.client.value_at_quantile(0.5) as f64 / 1000.0;
            let row = format!(
                "| {} | {:.2} | {:.0} | {} | {:.2} | {:.0} | {} | {:.1}× | {:.1}× |",
                plan.name,
                p50(&theirs),
                theirs.throughput(),
                crate::cpu::Usage::cells(theirs.cpu.as_ref())
                    .split(" | ")
                    .next()
                    .unwrap_or("—"),
                p50(ours),
                ours.throughput(),
                crate::cpu::Usage::cells(ours.cpu.as_ref())
                    .split(" | ")
                    .next()
                    .unwrap_or("—"),
                p50(&theirs) / p50(ours).max(1e-9),
                ours.throughput() / theirs.throughput().max(1e-9),
            );
            eprintln!("{row}");
            versus.push(row);
            results.push(theirs);
        }
    }

    println!(
        "\n## DICOMweb — {} — {} studies ({} series, {} instance rows), {} clients, StudyDate {range}\n",
        setup.backend, d.studies, d.series, d.instances, run.concurrency
    );
    println!("{}", crate::load::TABLE_HEADER);
    for s in &results {
        println!("{}", s.row());
    }
    if let Some(f) = report.get("series_metadata_first_read") {
        println!(
            "\nseries metadata, first read (one client): {}",
            serde_json::to_string(f)?
        );
    }
    if let Some(f) = report.get("frames_vs_disk") {
        println!(
            "\nframes vs plain reads of the same bytes: {}",
            serde_json::to_string(f)?
        );
    }
    if !versus.is_empty() {
        println!(
            "\n### Orthanc ({} newest studies) vs Lightbox ({} studies), client p50\n",
            args.orthanc_studies, d.studies
        );
        println!("| request | Orthanc p50 ms | Orthanc req/s | Orthanc CPU ms/req | Lightbox p50 ms | Lightbox req/s | Lightbox CPU ms/req | p50 ratio | throughput ratio |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &versus {
            println!("{row}");
        }
    }
    report["results"] = json!(results.iter().map(Stats::json).collect::<Vec<_>>());
    if let Some(path) = &run.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    drop(server);
    Ok(())
}
