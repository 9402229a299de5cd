//! SQLite description searches read the trigram index's matches newest first
//! and stop after a page (0007). The index's keys follow study ids only to
//! their first 48 bits (a UUIDv7's millisecond), so these tests give several
//! studies the same 48 bits, insert them out of id order, and check every
//! page size lists exactly the matches in id order: on a fresh database, and
//! on one whose keys were made before 0007.

mod support;

use lightbox_domain::study::{Severity, StudyFilter};
use lightbox_domain::OrgId;
use lightbox_store::{Store, StoreOptions};
use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use support::{listed_ids, migrations_before};

/// First 48 bits (12 hex digits) shared by the studies of one millisecond.
const OLDER: &str = "0190a1b2c3d3";
const SHARED: &str = "0190a1b2c3d4";
const NEWER: &str = "0190a1b2c3d5";

struct Row {
    org: OrgId,
    id: String,
    description: &'static str,
    severity: Severity,
}

/// Two organizations' studies, in insertion order: the shared millisecond's
/// ids out of order, one of them not matching, two of them in the other
/// organization.
fn rows(org: OrgId, other: OrgId) -> Vec<Row> {
    let row = |org, prefix: &str, n: u32, description, severity| Row {
        org,
        id: format!("stu_{prefix}{n:020x}"),
        description,
        severity,
    };
    let mut rows = Vec::new();
    for n in [3, 1, 2] {
        rows.push(row(org, OLDER, n, "MR Knee Arthrogram", Severity::Normal));
    }
    for n in [7, 2, 9, 4, 1, 8, 3, 6, 5] {
        let description = if n == 4 {
            "CT Head"
        } else {
            "MR Shoulder ARTHROGRAM Left"
        };
        let severity = if n % 2 == 1 {
            Severity::Stat
        } else {
            Severity::Normal
        };
        rows.push(row(org, SHARED, n, description, severity));
    }
    rows.push(row(other, SHARED, 10, "MR Knee Arthrogram", Severity::Stat));
    rows.push(row(other, SHARED, 11, "MR Knee Arthrogram", Severity::Stat));
    for n in [2, 1] {
        rows.push(row(org, NEWER, n, "MR Hip Arthrogram", Severity::Stat));
    }
    rows
}

async fn insert(conn: &mut SqliteConnection, orgs: &[OrgId], rows: &[Row]) {
    for org in orgs {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'Org', 0)")
            .bind(org.to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    for (n, row) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, \
             severity, viewer_status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'incomplete', 0, 0)",
        )
        .bind(row.org.to_string())
        .bind(&row.id)
        .bind(format!("1.2.3.{n}"))
        .bind(row.description)
        .bind(row.description.to_lowercase())
        .bind(row.severity.as_str())
        .execute(&mut *conn)
        .await
        .unwrap();
    }
}

/// Checks every page size against the rows, and that the index served them.
async fn lists_in_id_order(store: &Store, org: OrgId, rows: &[Row]) {
    let needle = |severity| StudyFilter {
        description_contains: Some("Arthrogram".into()),
        severity,
        ..StudyFilter::default()
    };
    for severity in [None, Some(Severity::Stat)] {
        let filter = needle(severity);
        let mut expected: Vec<String> = rows
            .iter()
            .filter(|r| r.org == org && r.description.to_lowercase().contains("arthrogram"))
            .filter(|r| severity.is_none_or(|s| r.severity == s))
            .map(|r| r.id.clone())
            .collect();
        expected.sort_by(|a, b| b.cmp(a));
        for limit in [1, 2, 3, 4, 5, 100] {
            assert_eq!(
                listed_ids(store, org, &filter, limit).await,
                expected,
                "limit {limit}, severity {severity:?}"
            );
        }
        let plan = store
            .explain_list_studies(org, &filter, 2, None)
            .await
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("VIRTUAL TABLE"),
            "not through the index:\n{plan}"
        );
    }
}

async fn open(path: &Path) -> Store {
    Store::open_sqlite(path, &StoreOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn studies_sharing_a_millisecond_list_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    let store = open(&path).await;
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let rows = rows(org, other);
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    insert(&mut conn, &[org, other], &rows).await;
    lists_in_id_order(&store, org, &rows).await;
}

#[tokio::test]
async fn search_keys_made_before_0007_are_remade_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    // The migrations before 0007, run as an older Lightbox ran them: its
    // triggers numbered search keys in insertion order.
    let older = migrations_before("sqlite", "0007");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    Migrator::new(older.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let rows = rows(org, other);
    insert(&mut conn, &[org, other], &rows).await;
    conn.close().await.unwrap();

    let store = open(&path).await;
    lists_in_id_order(&store, org, &rows).await;
}
