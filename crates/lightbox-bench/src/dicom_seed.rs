//! Seeds the DICOM index of an already seeded worklist (`seed.rs`): one
//! `dicom_studies` row per worklist study (same Study Instance UID), every
//! series row, and instance rows for the newest studies plus a few
//! 500-instance series; straight into the database in multi-row INSERTs with
//! the migrations' indexes in place, then ANALYZE. The rows are those ingest
//! would write (`lightbox-store/src/dicom.rs`), minus the files: WADO frame
//! reads are measured on real instances stored through the server instead.

use crate::data::Generator;
use crate::dicom_data::{self, DicomStudy, Series};
use crate::seed::{bar, Seeded, SEED};
use anyhow::Context;
use sqlx::{Connection, QueryBuilder};
use std::path::Path;

/// Instance rows for the newest this many studies (all their series)…
pub const INSTANCE_STUDIES: u64 = 100;
/// …and for this many extra 500-instance CT series (thin slices), in studies
/// spread over the archive.
pub const BIG_SERIES: u64 = 4;
pub const BIG_SERIES_INSTANCES: i64 = 500;
/// Bumped when the rows change, so an older seed is not mistaken for this one.
const VERSION: u32 = 1;
const TX_ROWS: usize = 50_000;

/// What the DICOM seed left, for the scenarios.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DicomSeeded {
    pub version: u32,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    /// (study, series) UIDs of the 500-instance series.
    pub big_series: Vec<(String, String)>,
    /// (study UID, patient ID) of the newest studies, for UID and priors look-ups.
    pub samples: Vec<(String, String)>,
    pub seconds: f64,
}

impl DicomSeeded {
    fn path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("bench-dicom-seed.json")
    }
    pub fn load(data_dir: &Path) -> Option<DicomSeeded> {
        let text = std::fs::read_to_string(Self::path(data_dir)).ok()?;
        serde_json::from_str::<DicomSeeded>(&text)
            .ok()
            .filter(|s| s.version == VERSION)
    }
}

/// A bound value of a seeded row.
#[derive(Clone)]
enum Val {
    Text(Option<String>),
    Int(Option<i64>),
}

fn t(s: impl Into<String>) -> Val {
    Val::Text(Some(s.into()))
}
fn i(v: i64) -> Val {
    Val::Int(Some(v))
}

/// Which studies get a 500-instance series: spread over the archive.
pub fn big_series_studies(total: u64) -> Vec<u64> {
    (0..BIG_SERIES)
        .map(|k| total * (2 * k + 1) / (2 * BIG_SERIES))
        .collect()
}

/// The DICOM study for worklist study `s`, with its 500-instance series when it has one.
fn study_of(s: &crate::data::GenStudy, total: u64, now_ms: i64, big: &[u64]) -> DicomStudy {
    let mut st = dicom_data::study(s, total, now_ms);
    if big.contains(&s.index) {
        st.series.push(Series {
            uid: dicom_data::uid(5, s.index),
            number: 99,
            modality: "CT",
            description: "AXIAL 0.625 THIN".into(),
            instances: BIG_SERIES_INSTANCES,
        });
        st.instances += BIG_SERIES_INSTANCES;
        if !st.modalities.split('\\').any(|m| m == "CT") {
            let mut m: Vec<&str> = st.modalities.split('\\').collect();
            m.push("CT");
            m.sort();
            st.modalities = m.join("\\");
        }
    }
    st
}

const STUDY_COLUMNS: &str = "INSERT INTO dicom_studies (org_id, study_instance_uid, patient_name, \
    patient_name_search, patient_id, patient_birth_date, patient_sex, study_date, study_time, \
    accession_number, referring_physician_name, study_id, study_description, modalities, \
    series_count, instance_count, attributes, created_at, updated_at) ";
const SERIES_COLUMNS: &str = "INSERT INTO dicom_series (org_id, series_instance_uid, \
    study_instance_uid, modality, series_number, series_description, series_date, series_time, \
    instance_count, attributes, created_at) ";
const INSTANCE_COLUMNS: &str = "INSERT INTO dicom_instances (org_id, sop_instance_uid, \
    series_instance_uid, study_instance_uid, sop_class_uid, instance_number, pixel_rows, \
    pixel_columns, bits_allocated, number_of_frames, transfer_syntax_uid, size_bytes, sha256, \
    blob_key, pixel_data_offset, pixel_data_length, frames, metadata, created_at) ";

fn study_row(org: &str, st: &DicomStudy) -> Vec<Val> {
    vec![
        t(org),
        t(&st.uid),
        t(&st.patient.name),
        t(st.patient.name.to_uppercase()),
        t(&st.patient.id),
        t(&st.patient.birth_date),
        t(st.patient.sex),
        t(&st.study_date),
        t(&st.study_time),
        t(&st.accession),
        t(&st.referring),
        t(&st.study_id),
        t(&st.description),
        t(&st.modalities),
        i(st.series.len() as i64),
        i(st.instances),
        t(&st.attributes),
        i(st.created_at),
        i(st.created_at),
    ]
}

fn series_row(org: &str, st: &DicomStudy, se: &Series) -> Vec<Val> {
    vec![
        t(org),
        t(&se.uid),
        t(&st.uid),
        t(se.modality),
        i(se.number),
        t(&se.description),
        t(&st.study_date),
        t(&st.study_time),
        i(se.instances),
        t(dicom_data::series_attributes(st, se)),
        i(st.created_at),
    ]
}

fn instance_rows(org: &str, st: &DicomStudy, se: &Series, out: &mut Vec<Vec<Val>>) {
    for n in 1..=se.instances {
        let sop = format!("{}.{n}", se.uid);
        let hash = format!("{:016x}", dicom_data::splitmix(n as u64 ^ se.number as u64));
        out.push(vec![
            t(org),
            t(&sop),
            t(&se.uid),
            t(&st.uid),
            t("1.2.840.10008.5.1.4.1.1.2"),
            i(n),
            i(512),
            i(512),
            i(16),
            Val::Int(None),
            t("1.2.840.10008.1.2.1"),
            i(525_418),
            t(format!("{hash}{hash}{hash}{hash}")),
            // No file: these rows serve the index scenarios (metadata, QIDO);
            // frames are read from the instances stored through the server.
            t(format!(
                "dicom/{org}/{}/{}/{sop}.{hash}.dcm",
                st.uid, se.uid
            )),
            i(1_130),
            i(524_288),
            Val::Text(None),
            t(dicom_data::instance_metadata(st, se, &sop, n)),
            i(st.created_at),
        ]);
    }
}

/// Multi-row INSERTs of `rows` under `prefix`, `per` rows a statement, on
/// either engine's own connection type.
macro_rules! insert_rows {
    ($db:ty, $conn:expr, $prefix:expr, $rows:expr, $per:expr) => {{
        for chunk in $rows.chunks($per) {
            let mut builder = QueryBuilder::<$db>::new($prefix);
            builder.push_values(chunk, |mut b, row| {
                for v in row {
                    match v {
                        Val::Text(s) => b.push_bind(s.clone()),
                        Val::Int(n) => b.push_bind(*n),
                    };
                }
            });
            builder
                .build()
                .execute(&mut *$conn)
                .await
                .with_context(|| format!("insert: {}", &$prefix[..40]))?;
        }
    }};
}

enum Conn {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

impl Conn {
    async fn begin(&mut self) -> anyhow::Result<()> {
        self.exec("BEGIN").await
    }
    async fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        match self {
            Conn::Pg(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ())?,
            Conn::Lite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ())?,
        }
        Ok(())
    }
    /// Statements are sized to stay under both engines' bound-parameter limits.
    async fn insert(&mut self, prefix: &str, rows: &[Vec<Val>]) -> anyhow::Result<()> {
        let per = 30_000 / rows.first().map_or(1, Vec::len);
        match self {
            Conn::Pg(c) => insert_rows!(sqlx::Postgres, c, prefix, rows, per),
            Conn::Lite(c) => insert_rows!(sqlx::Sqlite, c, prefix, rows, per),
        }
        Ok(())
    }
}

/// Seeds the DICOM rows unless `data_dir` records that they are there.
pub async fn ensure(
    database_url: &str,
    data_dir: &Path,
    seeded: &Seeded,
) -> anyhow::Result<DicomSeeded> {
    if let Some(done) = DicomSeeded::load(data_dir) {
        if done.studies == seeded.studies {
            eprintln!(
                "reusing the DICOM index: {} studies, {} series, {} instances",
                done.studies, done.series, done.instances
            );
            return Ok(done);
        }
    }
    let started = std::time::Instant::now();
    let mut conn = if database_url.starts_with("postgres") {
        Conn::Pg(sqlx::PgConnection::connect(database_url).await?)
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(database_url.trim_start_matches("sqlite://"))
            .foreign_keys(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
        Conn::Lite(sqlx::SqliteConnection::connect_with(&options).await?)
    };
    // A half-finished earlier seed is started over.
    for table in ["dicom_instances", "dicom_series", "dicom_studies"] {
        conn.exec(&format!("DELETE FROM {table}")).await?;
    }
    let total = seeded.studies;
    let org = seeded.org_id.as_str();
    let big = big_series_studies(total);
    let progress = bar(total, "seeding DICOM index");
    let (mut n_series, mut n_instances) = (0u64, 0u64);
    let mut big_series = Vec::new();
    let mut samples = Vec::new();
    let (mut studies, mut series, mut instances) = (Vec::new(), Vec::new(), Vec::new());
    let mut in_tx = 0;
    conn.begin().await?;
    let generator = Generator::new(SEED, total, seeded.users.len(), seeded.now_ms);
    for s in generator {
        let st = study_of(&s, total, seeded.now_ms, &big);
        studies.push(study_row(org, &st));
        let newest = s.index + INSTANCE_STUDIES >= total;
        if s.index + 50 >= total {
            samples.push((st.uid.clone(), st.patient.id.clone()));
        }
        for se in &st.series {
            series.push(series_row(org, &st, se));
            let is_big = se.instances == BIG_SERIES_INSTANCES && se.number == 99;
            if is_big {
                big_series.push((st.uid.clone(), se.uid.clone()));
            }
            if newest || is_big {
                instance_rows(org, &st, se, &mut instances);
            }
        }
        if studies.len() >= 2_000 || instances.len() >= 2_000 {
            in_tx += studies.len() + series.len() + instances.len();
            n_series += series.len() as u64;
            n_instances += instances.len() as u64;
            // Parents first: the foreign keys are checked row by row.
            conn.insert(STUDY_COLUMNS, &std::mem::take(&mut studies))
                .await?;
            conn.insert(SERIES_COLUMNS, &std::mem::take(&mut series))
                .await?;
            conn.insert(INSTANCE_COLUMNS, &std::mem::take(&mut instances))
                .await?;
            if in_tx >= TX_ROWS {
                conn.exec("COMMIT").await?;
                conn.begin().await?;
                in_tx = 0;
            }
        }
        progress.inc(1);
    }
    n_series += series.len() as u64;
    n_instances += instances.len() as u64;
    if !studies.is_empty() {
        conn.insert(STUDY_COLUMNS, &studies).await?;
    }
    if !series.is_empty() {
        conn.insert(SERIES_COLUMNS, &series).await?;
    }
    if !instances.is_empty() {
        conn.insert(INSTANCE_COLUMNS, &instances).await?;
    }
    conn.exec("COMMIT").await?;
    progress.finish();
    match &mut conn {
        Conn::Pg(_) => {
            conn.exec("VACUUM ANALYZE dicom_studies").await?;
            conn.exec("VACUUM ANALYZE dicom_series").await?;
            conn.exec("VACUUM ANALYZE dicom_instances").await?;
        }
        Conn::Lite(_) => {
            conn.exec("ANALYZE").await?;
            conn.exec("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
    }
    let done = DicomSeeded {
        version: VERSION,
        studies: total,
        series: n_series,
        instances: n_instances,
        big_series,
        samples,
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(
        DicomSeeded::path(data_dir),
        serde_json::to_vec_pretty(&done)?,
    )?;
    eprintln!(
        "seeded the DICOM index in {:.1} s: {} studies, {} series, {} instances",
        done.seconds, done.studies, done.series, done.instances
    );
    Ok(done)
}
