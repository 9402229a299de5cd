//! PostgreSQL description searches through rare trigrams (0019): a study is
//! listed under each trigram of its organization that is not common, and a
//! search walks its needle's rarest listed trigram newest first. Whatever the
//! trigrams' state (all listed; some found common and their postings dropped;
//! studies written after that), every needle, filter and page size must list
//! exactly the studies a plain "lowercased description contains" would, in id
//! order, and only the organization's own, walking a rare needle's postings
//! through their index whatever the statistics (0021); a study written after
//! the count is listed under exactly its trigrams not marked common (writers
//! read the marks from a bitmap, 0020, that must equal them); descriptions
//! edited later move with them; a database made before 0019 is listed when it
//! and 0020 run.

mod support;

use lightbox_domain::study::{Severity, StudyFilter, StudyPatch};
use lightbox_domain::{OrgId, StudyId};
use lightbox_store::{Store, StoreOptions};
use sqlx::{Connection, PgConnection};
use support::{insert_orgs, insert_study, listed_ids, postgres_before, ThrowawayDb};

/// Above the 2,000 studies at which a trigram counts as common.
const CHEST_STUDIES: u32 = 2_050;

struct Row {
    org: OrgId,
    id: String,
    description: String,
    severity: Severity,
}

/// One organization's many chest CTs (their trigrams become common) and a
/// few rarer descriptions, and another organization's arthrograms.
fn rows(org: OrgId, other: OrgId) -> Vec<Row> {
    let rare = [
        "MR Knee Arthrogram",
        "MR Shoulder ARTHROGRAM Left",
        "Épaule droite arthrographie",
        "XR Hand 100% view",
        "CT Chest and knee arthrogram",
    ];
    let mut rows = Vec::new();
    for n in 0..CHEST_STUDIES + 40 {
        let description = if n % 53 == 7 && n / 53 < 40 {
            rare[(n / 53) as usize % rare.len()].to_owned()
        } else {
            format!("CT Chest W/O Contrast {}", n % 3)
        };
        rows.push(Row {
            org,
            // Ids in creation order, as UUIDv7s are; inserted shuffled below.
            id: format!("stu_{:032x}", 0x0190_0000_0000u64 + u64::from(n)),
            description,
            severity: if n % 4 == 0 {
                Severity::Stat
            } else {
                Severity::Normal
            },
        });
    }
    for n in 0..12u64 {
        rows.push(Row {
            org: other,
            id: format!("stu_{:032x}", 0x0190_0000_0100u64 + n * 7),
            description: "MR Knee Arthrogram".to_owned(),
            severity: Severity::Stat,
        });
    }
    // Not in id order, so the listing must order them.
    rows.sort_by_key(|r| r.id.bytes().rev().collect::<Vec<_>>());
    rows
}

async fn insert(conn: &mut PgConnection, orgs: &[OrgId], rows: &[Row]) {
    insert_orgs(conn, orgs).await;
    insert_studies(conn, rows).await;
}

async fn insert_studies(conn: &mut PgConnection, rows: &[Row]) {
    let mut tx = conn.begin().await.unwrap();
    for row in rows {
        let uid = format!("1.2.3.{}", &row.id[4..]);
        insert_study(
            &mut tx,
            row.org,
            &row.id,
            &uid,
            &row.description,
            row.severity,
        )
        .await;
    }
    tx.commit().await.unwrap();
}

const NEEDLES: &[&str] = &[
    "arthrogram",
    "ARTHRO",
    "knee arth",
    "gram left",
    "paule",
    "épaule",
    "100%",
    "hand 100",
    "chest",
    "ct chest w/o",
    "contrast 2",
    "chest and knee",
    "zzq",
    "ct",
];

/// Every needle, with and without a severity, at several page sizes, lists
/// exactly the organization's matches newest first.
async fn lists_what_like_would(store: &Store, org: OrgId, rows: &[Row]) {
    for needle in NEEDLES {
        for severity in [None, Some(Severity::Stat)] {
            let filter = StudyFilter {
                description_contains: Some((*needle).to_owned()),
                severity,
                ..StudyFilter::default()
            };
            let mut expected: Vec<String> = rows
                .iter()
                .filter(|r| r.org == org)
                .filter(|r| {
                    r.description
                        .to_lowercase()
                        .contains(&needle.to_lowercase())
                })
                .filter(|r| severity.is_none_or(|s| r.severity == s))
                .map(|r| r.id.clone())
                .collect();
            expected.sort_by(|a, b| b.cmp(a));
            let limits: &[u32] = if expected.len() > 100 {
                &[100]
            } else {
                &[1, 3, 100]
            };
            for &limit in limits {
                let listed = listed_ids(store, org, &filter, limit).await;
                assert!(
                    listed == expected,
                    "needle {needle:?}, severity {severity:?}, limit {limit}: listed {} \
                     studies, expected {}, first difference at {:?}",
                    listed.len(),
                    expected.len(),
                    listed.iter().zip(&expected).position(|(l, e)| l != e)
                );
            }
        }
    }
}

async fn open(db: &ThrowawayDb) -> Store {
    Store::open_postgres(&db.url, &StoreOptions::default())
        .await
        .unwrap()
}

/// Whether the listing walks the needle's postings through their primary
/// key, newest first (so it stops after a page), rather than reading them
/// all and sorting.
async fn walks_postings(store: &Store, org: OrgId, needle: &str) -> bool {
    let filter = StudyFilter {
        description_contains: Some(needle.to_owned()),
        ..StudyFilter::default()
    };
    let plan = store
        .explain_list_studies(org, &filter, 100, None)
        .await
        .unwrap();
    plan.join("\n")
        .contains("Backward using study_search_postings_pkey")
}

/// What autovacuum does to statistics in time, done now.
async fn analyze(conn: &mut PgConnection) {
    sqlx::query("ANALYZE").execute(conn).await.unwrap();
}

async fn postings(conn: &mut PgConnection, org: OrgId, trigram: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM study_search_postings WHERE org_id = $1 AND trigram = $2",
    )
    .bind(org.to_string())
    .bind(trigram)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

/// Writers skip the trigrams whose bits are set in their organization's
/// bitmap (0020): it must hold exactly the trigrams marked common.
async fn common_bits_are_the_marks(conn: &mut PgConnection) {
    let (marked, set, disagreeing): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM study_search_trigrams WHERE common_since IS NOT NULL), \
                (SELECT coalesce(sum(bit_count(trigrams)), 0)::bigint FROM study_search_common), \
                (SELECT count(*) FROM study_search_trigrams c \
                 LEFT JOIN study_search_common b ON b.org_id = c.org_id \
                 WHERE (c.common_since IS NOT NULL) <> \
                       (coalesce(get_bit(b.trigrams, study_search_trigram_bit(c.trigram)), 0) = 1))",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!((set, disagreeing), (marked, 0), "{marked} trigrams marked");
}

/// A study written now is listed under each of its trigrams of `a-z0-9`
/// that is not marked common in its organization (perhaps none), and under
/// no other.
async fn listed_under_its_rare_trigrams(conn: &mut PgConnection, row: &Row) {
    let (listed, rare): (Vec<String>, Vec<String>) = sqlx::query_as(
        "SELECT ARRAY(SELECT trigram FROM study_search_postings \
                      WHERE org_id = $1 AND study_id = $2 ORDER BY trigram), \
                ARRAY(SELECT DISTINCT t FROM unnest(show_trgm(lower($3))) t \
                      WHERE t ~ '^[a-z0-9]{3}$' AND NOT EXISTS \
                        (SELECT 1 FROM study_search_trigrams c WHERE c.org_id = $1 \
                         AND c.trigram = t AND c.common_since IS NOT NULL) \
                      ORDER BY t)",
    )
    .bind(row.org.to_string())
    .bind(&row.id)
    .bind(&row.description)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(listed, rare, "{}", row.description);
}

#[tokio::test]
async fn searches_list_what_like_would_as_trigrams_become_common() {
    let db = ThrowawayDb::create().await;
    let store = open(&db).await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let mut rows = rows(org, other);
    insert(&mut conn, &[org, other], &rows).await;

    // Nothing counted yet: every trigram is listed, the chest ones too.
    assert_eq!(
        postings(&mut conn, org, "che").await,
        i64::from(CHEST_STUDIES) + 8
    );
    lists_what_like_would(&store, org, &rows).await;
    lists_what_like_would(&store, other, &rows).await;
    analyze(&mut conn).await;
    assert!(walks_postings(&store, org, "arthrogram").await);
    assert!(
        !walks_postings(&store, org, "ct").await,
        "no trigram in `ct`"
    );

    // Counted: the chest trigrams are common and their postings dropped, in
    // this organization only (the other one's knee studies keep theirs).
    let count = store.count_search_trigrams().await.unwrap();
    assert!(count.ran);
    assert!(count.marked_common >= 5, "{count:?}");
    assert!(count.postings_dropped > 5 * 2_000, "{count:?}");
    assert_eq!(postings(&mut conn, org, "che").await, 0);
    assert_eq!(postings(&mut conn, other, "kne").await, 12);
    common_bits_are_the_marks(&mut conn).await;
    lists_what_like_would(&store, org, &rows).await;
    lists_what_like_would(&store, other, &rows).await;
    // Once a search found every trigram of `chest` common, it is searched
    // the plain way.
    assert!(!walks_postings(&store, org, "chest").await);
    assert!(walks_postings(&store, org, "arthrogram").await);
    // However few trigrams stay rare, and however many postings each holds,
    // the walk stays on the index: statistics that say each trigram has a
    // thousand postings once made reading and sorting the whole table look
    // cheaper (1.2 ms for an absent needle, against 0.25 ms; 0021).
    analyze(&mut conn).await;
    assert!(walks_postings(&store, org, "arthrogram").await);
    assert!(walks_postings(&store, org, "zzzq").await);

    // Written after the count: a common trigram gets no posting, a rare one does.
    let later = vec![
        Row {
            org,
            id: format!("stu_{:032x}", 0x0190_0001_0000u64),
            description: "CT Chest Knee Arthrogram late".to_owned(),
            severity: Severity::Stat,
        },
        Row {
            org,
            id: format!("stu_{:032x}", 0x0190_0001_0001u64),
            description: "CT Chest W/O Contrast 1".to_owned(),
            severity: Severity::Normal,
        },
    ];
    insert_studies(&mut conn, &later).await;
    for row in &later {
        listed_under_its_rare_trigrams(&mut conn, row).await;
    }
    rows.extend(later);
    assert_eq!(postings(&mut conn, org, "che").await, 0);
    assert_eq!(postings(&mut conn, org, "lat").await, 1);
    lists_what_like_would(&store, org, &rows).await;

    // A second count finds nothing new to mark.
    let count = store.count_search_trigrams().await.unwrap();
    assert_eq!(
        (count.marked_common, count.postings_dropped),
        (0, 0),
        "{count:?}"
    );

    // Edited descriptions move between trigrams.
    for (from, to) in [
        ("arthrogram", "CT Chest W/O Contrast 2"),
        ("contrast", "MR Wrist Arthrogram"),
    ] {
        let row = rows
            .iter_mut()
            .find(|r| r.org == org && r.description.to_lowercase().contains(from))
            .unwrap();
        let id = StudyId::parse(&row.id).unwrap();
        let patch = StudyPatch {
            description: Some(to.to_owned()),
            ..StudyPatch::default()
        };
        store.update_study(org, &id, &patch).await.unwrap();
        row.description = to.to_owned();
        listed_under_its_rare_trigrams(&mut conn, row).await;
    }
    lists_what_like_would(&store, org, &rows).await;
    assert_eq!(postings(&mut conn, org, "wri").await, 1);
    common_bits_are_the_marks(&mut conn).await;

    // While another replica counts (holds the lock), this one skips.
    sqlx::query("SELECT pg_advisory_lock(hashtext('lightbox.study_search_trigrams'))")
        .execute(&mut conn)
        .await
        .unwrap();
    let skipped = store.count_search_trigrams().await.unwrap();
    assert!(!skipped.ran, "{skipped:?}");
    conn.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn studies_stored_before_0019_are_listed_when_it_runs() {
    let db = ThrowawayDb::create().await;
    let mut conn = postgres_before(&db.url, "0019").await;
    let (org, other) = (OrgId::generate(), OrgId::generate());
    let mut rows = rows(org, other);
    insert(&mut conn, &[org, other], &rows).await;

    let store = open(&db).await;
    // Counted by the migration: the chest trigrams are common from the start,
    // and 0020 copied the marks into the bitmap writers read.
    assert_eq!(postings(&mut conn, org, "che").await, 0);
    assert_eq!(postings(&mut conn, other, "kne").await, 12);
    assert!(postings(&mut conn, org, "thr").await > 0);
    common_bits_are_the_marks(&mut conn).await;
    lists_what_like_would(&store, org, &rows).await;
    lists_what_like_would(&store, other, &rows).await;
    assert!(walks_postings(&store, org, "arthrogram").await);
    assert!(!walks_postings(&store, org, "chest").await);

    // Written after the upgrade: listed under the rare trigrams only.
    let later = Row {
        org,
        id: format!("stu_{:032x}", 0x0190_0001_0000u64),
        description: "CT Chest W/O Contrast 1 Zygoma".to_owned(),
        severity: Severity::Normal,
    };
    insert_studies(&mut conn, std::slice::from_ref(&later)).await;
    listed_under_its_rare_trigrams(&mut conn, &later).await;
    assert_eq!(postings(&mut conn, org, "che").await, 0);
    rows.push(later);
    lists_what_like_would(&store, org, &rows).await;
    conn.close().await.unwrap();
    store.close().await;
}
