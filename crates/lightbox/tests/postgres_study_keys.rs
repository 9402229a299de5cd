//! PostgreSQL migration 0008 makes study ids and Study Instance UIDs compare
//! byte by byte (COLLATE "C"). A database made by the migrations before it,
//! with studies in it, is upgraded when the store opens it; afterwards its
//! listings page newest first exactly as before (with and without a
//! description needle, at several page sizes, by cursor), lookups by UID find
//! the same studies, and a UID is still unique within its organization.

mod support;

use lightbox_domain::study::{Actor, NewStudy, Severity, StudyFilter};
use lightbox_domain::{ApiKeyId, Error, OrgId};
use lightbox_store::{Store, StoreOptions};
use sqlx::PgConnection;
use support::{insert_orgs, insert_study, listed_ids, postgres_before, ThrowawayDb};

struct Row {
    org: OrgId,
    id: String,
    uid: String,
    description: &'static str,
}

/// Studies of two organizations with ids in no particular order: random
/// 128-bit values, so every hex digit position varies.
fn rows(org: OrgId, other: OrgId) -> Vec<Row> {
    (0..60u32)
        .map(|n| Row {
            org: if n % 5 == 4 { other } else { org },
            id: format!("stu_{:032x}", uuid::Uuid::new_v4().as_u128()),
            uid: format!("1.2.840.10008.{n}"),
            description: if n % 3 == 0 {
                "MR Knee ARTHROGRAM Right"
            } else {
                "CT Head W/O Contrast"
            },
        })
        .collect()
}

async fn insert(conn: &mut PgConnection, orgs: &[OrgId], key: ApiKeyId, rows: &[Row]) {
    insert_orgs(conn, orgs).await;
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, description, secret_hash, created_at) \
         VALUES ($1, $2, 'key', 'not a real hash', 0)",
    )
    .bind(key.to_string())
    .bind(orgs[0].to_string())
    .execute(&mut *conn)
    .await
    .unwrap();
    for row in rows {
        insert_study(
            conn,
            row.org,
            &row.id,
            &row.uid,
            row.description,
            Severity::Normal,
        )
        .await;
    }
}

#[tokio::test]
async fn an_upgraded_database_pages_and_finds_studies_as_before() {
    let db = ThrowawayDb::create().await;
    let (org, other, key) = (OrgId::generate(), OrgId::generate(), ApiKeyId::generate());
    let rows = rows(org, other);
    // The migrations before 0008, run as an older Lightbox ran them.
    let mut conn = postgres_before(&db.url, "0008").await;
    insert(&mut conn, &[org, other], key, &rows).await;

    let store = Store::open_postgres(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let collations: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT column_name::text, collation_name::text FROM information_schema.columns \
         WHERE table_name = 'studies' AND column_name IN ('id', 'study_instance_uid') \
         ORDER BY column_name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        collations,
        [
            ("id".to_owned(), Some("C".to_owned())),
            ("study_instance_uid".to_owned(), Some("C".to_owned()))
        ]
    );
    // ALTER ... TYPE drops a column's statistics; the planner needs them back.
    let analyzed: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE tablename = 'studies' \
         AND attname IN ('id', 'study_instance_uid') ORDER BY attname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(analyzed, ["id", "study_instance_uid"]);

    for needle in [None, Some("Arthrogram")] {
        let filter = StudyFilter {
            description_contains: needle.map(str::to_owned),
            ..StudyFilter::default()
        };
        let mut expected: Vec<String> = rows
            .iter()
            .filter(|r| r.org == org)
            .filter(|r| {
                needle.is_none_or(|n| r.description.to_lowercase().contains(&n.to_lowercase()))
            })
            .map(|r| r.id.clone())
            .collect();
        // Newest first is descending byte order of the ids.
        expected.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        for limit in [1, 7, 100] {
            assert_eq!(
                listed_ids(&store, org, &filter, limit).await,
                expected,
                "needle {needle:?}, limit {limit}"
            );
        }
    }

    for row in &rows {
        let found = store.study_by_uid(row.org, &row.uid).await.unwrap();
        assert_eq!(
            found.map(|s| s.id.as_str().to_owned()),
            Some(row.id.clone())
        );
        let elsewhere = if row.org == org { other } else { org };
        assert!(store
            .study_by_uid(elsewhere, &row.uid)
            .await
            .unwrap()
            .is_none());
    }
    let taken = NewStudy {
        study_instance_uid: rows[0].uid.clone(),
        description: "CT Head".into(),
        severity: Severity::Stat,
        assigned_to: None,
        express_customer_id: None,
        metadata: Default::default(),
    };
    let err = store
        .create_study(org, &Actor::ApiKey(key), &taken)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}
