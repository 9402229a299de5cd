//! WADO-RS reads at the store across migration 0016, on SQLite and
//! PostgreSQL: an archive written at 0015 serves, once upgraded, exactly the
//! metadata and instances it held, in WADO's order (instance number, then
//! SOP Instance UID); and 0016 changed how the rows are stored (SQLite: a
//! rowid table, no longer WITHOUT ROWID; PostgreSQL: DICOM JSON that fits a
//! page is no longer compressed).

use lightbox_domain::OrgId;
use lightbox_store::{Store, StoreOptions, WadoScope};
use sqlx::{Connection, Executor};

mod support;
use support::ThrowawayPostgres;

const STUDY: &str = "1.2.3";
const SERIES: &str = "1.2.3.1";
const OTHER_SERIES: &str = "1.2.3.2";

/// One stored instance: (series, SOP Instance UID, instance number, metadata).
type Row = (&'static str, String, Option<i64>, String);

/// A series of 40 instances stored out of order, with repeated and missing
/// instance numbers, one instance whose JSON is larger than a page (25 KB:
/// still compressed and out of line on PostgreSQL), and a second series.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for i in (0..40i64).rev() {
        let number = match i {
            0..=2 => None,
            3..=5 => Some(7),
            n => Some(n),
        };
        let filler = "A".repeat(if i == 9 {
            25_000
        } else {
            3_000 + 37 * i as usize
        });
        let metadata = format!(
            r#"{{"00080018":{{"vr":"UI","Value":["{STUDY}.1.{i}"]}},"00091010":{{"vr":"OB","BulkDataURI":"bulk/00091010"}},"00104000":{{"vr":"LT","Value":["{filler}"]}}}}"#
        );
        rows.push((SERIES, format!("{STUDY}.1.{i}"), number, metadata));
    }
    rows.push((
        OTHER_SERIES,
        format!("{STUDY}.2.1"),
        Some(1),
        r#"{"00080060":{"vr":"CS","Value":["SR"]}}"#.to_owned(),
    ));
    rows
}

/// WADO's order: instance number, then SOP Instance UID. Instances without
/// a number come first on SQLite and last on PostgreSQL (each database's
/// own order of NULLs, as before 0016).
fn in_wado_order(series: &str, nulls_first: bool) -> Vec<(String, String)> {
    let mut rows: Vec<Row> = rows().into_iter().filter(|r| r.0 == series).collect();
    let key = |r: &Row| (r.2.is_none() != nulls_first, r.2, r.1.clone());
    rows.sort_by_key(key);
    rows.into_iter().map(|r| (r.1, r.3)).collect()
}

/// The organization, study and series rows the instances belong to (the
/// upgrade copies instances with foreign keys checked, as in an archive).
fn parents(org: OrgId) -> Vec<String> {
    let mut sql = vec![
        format!("INSERT INTO organizations (id, name, created_at) VALUES ('{org}', 'Acme', 1)"),
        format!(
            "INSERT INTO dicom_studies (org_id, study_instance_uid, created_at, updated_at) \
             VALUES ('{org}', '{STUDY}', 1, 1)"
        ),
    ];
    for series in [SERIES, OTHER_SERIES] {
        sql.push(format!(
            "INSERT INTO dicom_series (org_id, series_instance_uid, study_instance_uid, \
             created_at) VALUES ('{org}', '{series}', '{STUDY}', 1)"
        ));
    }
    sql
}

fn inserts(org: OrgId) -> Vec<String> {
    let instances = rows().into_iter().map(|(series, sop, number, metadata)| {
        let number = number.map_or("NULL".to_owned(), |n| n.to_string());
        format!(
            "INSERT INTO dicom_instances (org_id, sop_instance_uid, series_instance_uid, \
             study_instance_uid, sop_class_uid, instance_number, pixel_rows, pixel_columns, \
             bits_allocated, number_of_frames, transfer_syntax_uid, size_bytes, sha256, \
             blob_key, pixel_data_offset, pixel_data_length, frames, metadata, created_at) \
             VALUES ('{org}', '{sop}', '{series}', '{STUDY}', '1.2.840.10008.5.1.4.1.1.2', \
             {number}, 512, 512, 16, NULL, '1.2.840.10008.1.2.1', 525000, 'ab', \
             'dicom/{sop}.dcm', 1000, 524288, NULL, '{metadata}', 1)"
        )
    });
    parents(org).into_iter().chain(instances).collect()
}

/// What the upgraded store serves: every instance, in order, as stored.
async fn serves_what_was_stored(store: &Store, org: OrgId, nulls_first: bool) {
    let series = store
        .wado_metadata(
            org,
            WadoScope {
                study: STUDY,
                series: Some(SERIES),
                instance: None,
            },
            1000,
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = series
        .iter()
        .map(|r| (r.sop_instance_uid.clone(), r.metadata.clone()))
        .collect();
    assert_eq!(got, in_wado_order(SERIES, nulls_first));
    assert!(series.iter().all(|r| r.has_pixel_data));

    let study = store
        .wado_metadata(
            org,
            WadoScope {
                study: STUDY,
                series: None,
                instance: None,
            },
            1000,
        )
        .await
        .unwrap();
    let uids: Vec<String> = study.iter().map(|r| r.sop_instance_uid.clone()).collect();
    let mut expected: Vec<String> = in_wado_order(SERIES, nulls_first)
        .into_iter()
        .map(|r| r.0)
        .collect();
    expected.extend(
        in_wado_order(OTHER_SERIES, nulls_first)
            .into_iter()
            .map(|r| r.0),
    );
    assert_eq!(uids, expected);

    // A limit bounds the listing; a series under the wrong study is not found.
    let first = store
        .wado_instances(
            org,
            WadoScope {
                study: STUDY,
                series: Some(SERIES),
                instance: None,
            },
            3,
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].sop_instance_uid, expected[0]);
    assert_eq!(first[0].pixel_data_offset, Some(1000));
    let wrong = WadoScope {
        study: "9.9",
        series: Some(SERIES),
        instance: None,
    };
    assert!(store
        .wado_metadata(org, wrong, 10)
        .await
        .unwrap()
        .is_empty());
    let one = WadoScope {
        study: STUDY,
        series: Some(SERIES),
        instance: Some("1.2.3.1.9"),
    };
    let big = store.wado_metadata(org, one, 2).await.unwrap();
    assert_eq!(big.len(), 1);
    assert!(big[0].metadata.len() > 25_000);
    // Another organization sees none of it.
    assert!(store
        .wado_metadata(OrgId::generate(), one, 2)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sqlite_archive_at_0015_reads_the_same_after_0016() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    let before = support::migrations_before("sqlite", "0016", dir.path());
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let org = OrgId::generate();
    for insert in inserts(org) {
        conn.execute(insert.as_str()).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::open_sqlite(&path, &StoreOptions::default())
        .await
        .unwrap();
    serves_what_was_stored(&store, org, true).await;
    store.close().await;

    // A rowid table now (WITHOUT ROWID tables have no rowid), with the
    // series index in WADO's order.
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let rowids: i64 = sqlx::query_scalar("SELECT count(rowid) FROM dicom_instances")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rowids, rows().len() as i64);
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT metadata FROM dicom_instances \
         WHERE org_id = 'o' AND series_instance_uid = 's' AND study_instance_uid = 't' \
         ORDER BY instance_number, sop_instance_uid",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
    .collect();
    assert!(
        plan.iter().any(|d| d.contains("dicom_instances_series"))
            && !plan.iter().any(|d| d.contains("TEMP B-TREE")),
        "{plan:?}"
    );
    conn.close().await.unwrap();
}

#[tokio::test]
async fn postgres_archive_at_0015_reads_the_same_after_0016() {
    let db = ThrowawayPostgres::create("wado_0016").await;
    let dir = tempfile::tempdir().unwrap();
    let before = support::migrations_before("postgres", "0016", dir.path());
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let org = OrgId::generate();
    for insert in inserts(org) {
        conn.execute(insert.as_str()).await.unwrap();
    }
    // At 0015, DICOM JSON over ~2 KB is stored compressed.
    let compressed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dicom_instances WHERE pg_column_compression(metadata) IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(compressed, 40);
    conn.close().await.unwrap();

    let store = db.store().await;
    serves_what_was_stored(&store, org, false).await;
    store.close().await;

    // Rows that fit a page were written again, uncompressed; the 25 KB one
    // is still compressed.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let still: Vec<String> = sqlx::query_scalar(
        "SELECT sop_instance_uid FROM dicom_instances \
         WHERE pg_column_compression(metadata) IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(still, ["1.2.3.1.9"]);
    // A new row that fits is stored as it is.
    let fresh = inserts(org)[parents(org).len() + 5].replace("1.2.3.1.34", "1.2.3.1.99");
    conn.execute(fresh.as_str()).await.unwrap();
    let method: Option<String> = sqlx::query_scalar(
        "SELECT pg_column_compression(metadata) FROM dicom_instances \
         WHERE sop_instance_uid = '1.2.3.1.99'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(method, None);
    conn.close().await.unwrap();
    db.drop_database().await;
}
