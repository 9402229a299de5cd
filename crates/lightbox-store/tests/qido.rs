//! QIDO-RS searches at the store, on SQLite and PostgreSQL, for what the HTTP
//! tests cannot reach yet: a caller scoped to some studies (a study link's
//! capability) finds only those, at every level and whatever it asks, and
//! never another organization's; and values that look like SQL or LIKE
//! patterns are matched as text.

use lightbox_domain::dicom::{IndexedInstance, InstanceRecord, SeriesAttributes, StudyAttributes};
use lightbox_domain::qido::{Attribute, Condition, Filter, Include, Level, Pattern, Query};
use lightbox_domain::OrgId;
use lightbox_store::{NewOrg, Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};
use std::time::Duration;

mod support;
use support::ThrowawayPostgres;

fn instance(study: &str, series: &str, sop: &str, patient: &str) -> IndexedInstance {
    IndexedInstance {
        study: StudyAttributes {
            study_instance_uid: study.into(),
            patient_name: Some(patient.into()),
            patient_id: Some(format!("id-{patient}")),
            study_date: Some("20240102".into()),
            json: "{}".into(),
            ..Default::default()
        },
        series: SeriesAttributes {
            series_instance_uid: series.into(),
            modality: Some("CT".into()),
            series_number: Some(1),
            json: "{}".into(),
            ..Default::default()
        },
        instance: InstanceRecord {
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            instance_number: Some(1),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            size_bytes: 1,
            sha256: "00".into(),
            blob_key: format!("dicom/{sop}.dcm"),
            metadata: "{}".into(),
            ..Default::default()
        },
    }
}

fn query(level: Level, filters: Vec<Filter>) -> Query {
    Query {
        level,
        study: None,
        series: None,
        filters,
        include: Include::Defaults,
        limit: 100,
        offset: 0,
    }
}

async fn found(store: &Store, org: OrgId, scope: Option<&[String]>, q: &Query) -> Vec<String> {
    let page = store.qido_search(org, scope, q).await.unwrap();
    let mut uids: Vec<String> = page
        .rows
        .into_iter()
        .map(|r| match q.level {
            Level::Study => r.study.attributes.study_instance_uid,
            Level::Series => r.series.unwrap().attributes.series_instance_uid,
            Level::Instance => r.instance.unwrap().sop_instance_uid,
        })
        .collect();
    uids.sort();
    uids
}

async fn a_scoped_caller_finds_only_its_studies(store: &Store) {
    let org = |name: &str| NewOrg {
        name: name.into(),
        owner_email: "owner@example.org".into(),
    };
    let acme = store.create_org(&org("Acme")).await.unwrap().org_id;
    let other = store.create_org(&org("Other")).await.unwrap().org_id;
    for (study, series, sop, patient) in [
        ("1.1", "1.1.1", "1.1.1.1", "DOE^JANE"),
        ("1.1", "1.1.1", "1.1.1.2", "DOE^JANE"),
        ("1.2", "1.2.1", "1.2.1.1", "DOE^JOHN"),
        ("1.3", "1.3.1", "1.3.1.1", "50%_OFF^X"),
    ] {
        let new = instance(study, series, sop, patient);
        store
            .index_dicom_instance(acme, &new, None, None, Duration::from_secs(10))
            .await
            .unwrap();
    }
    // The other organization holds a study the scope names too.
    store
        .index_dicom_instance(
            other,
            &instance("1.2", "9.2.1", "9.2.1.1", "DOE^JOHN"),
            None,
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let scope = vec!["1.2".to_owned(), "1.3".to_owned()];
    let studies = query(Level::Study, vec![]);
    assert_eq!(
        found(store, acme, None, &studies).await,
        ["1.1", "1.2", "1.3"]
    );
    assert_eq!(
        found(store, acme, Some(&scope), &studies).await,
        ["1.2", "1.3"]
    );
    assert_eq!(found(store, other, Some(&scope), &studies).await, ["1.2"]);
    assert!(found(store, acme, Some(&[]), &studies).await.is_empty());

    // Asking for a study outside the scope by UID finds nothing.
    let by_uid = query(
        Level::Study,
        vec![Filter {
            attribute: Attribute::StudyInstanceUid,
            condition: Condition::OneOf(vec![
                Pattern::Literal("1.1".into()),
                Pattern::Literal("1.2".into()),
            ]),
        }],
    );
    assert_eq!(found(store, acme, Some(&scope), &by_uid).await, ["1.2"]);
    let series = query(Level::Series, vec![]);
    assert_eq!(
        found(store, acme, Some(&scope), &series).await,
        ["1.2.1", "1.3.1"]
    );
    let instances = query(Level::Instance, vec![]);
    assert_eq!(
        found(store, acme, Some(&scope), &instances).await,
        ["1.2.1.1", "1.3.1.1"]
    );
    let mut within = query(Level::Instance, vec![]);
    within.study = Some("1.1".into());
    assert!(found(store, acme, Some(&scope), &within).await.is_empty());
    assert_eq!(
        found(store, acme, None, &within).await,
        ["1.1.1.1", "1.1.1.2"]
    );
    assert!(!store
        .qido_path_exists(acme, Some(&scope), "1.1", None)
        .await
        .unwrap());
    assert!(store
        .qido_path_exists(acme, None, "1.1", Some("1.1.1"))
        .await
        .unwrap());
    assert!(!store
        .qido_path_exists(other, None, "1.1", None)
        .await
        .unwrap());

    // `%` and `_` in a value are text, not LIKE's wildcards; names ignore case.
    let name = |p: Pattern| {
        query(
            Level::Study,
            vec![Filter {
                attribute: Attribute::PatientName,
                condition: Condition::OneOf(vec![p]),
            }],
        )
    };
    let wild = |s: &str| Pattern::Wildcard(s.into());
    assert_eq!(found(store, acme, None, &name(wild("50%*"))).await, ["1.3"]);
    assert!(found(store, acme, None, &name(wild("5_%*")))
        .await
        .is_empty());
    assert_eq!(
        found(store, acme, None, &name(wild("doe^j?n*"))).await,
        ["1.1"]
    );
    assert_eq!(
        found(
            store,
            acme,
            None,
            &name(Pattern::Literal("doe^john".into()))
        )
        .await,
        ["1.2"]
    );
    let injection = name(Pattern::Literal("x' OR '1'='1".into()));
    assert!(found(store, acme, None, &injection).await.is_empty());

    // A page one short says there is more.
    let mut page = query(Level::Study, vec![]);
    page.limit = 2;
    let first = store.qido_search(acme, None, &page).await.unwrap();
    assert_eq!((first.rows.len(), first.more), (2, true));
    page.offset = 2;
    let last = store.qido_search(acme, None, &page).await.unwrap();
    assert_eq!((last.rows.len(), last.more), (1, false));
}

#[tokio::test]
async fn sqlite_qido_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("lightbox.db"), &StoreOptions::default())
        .await
        .unwrap();
    a_scoped_caller_finds_only_its_studies(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_qido_scope() {
    let db = ThrowawayPostgres::create("qido").await;
    let store = db.store().await;
    a_scoped_caller_finds_only_its_studies(&store).await;
    store.close().await;
    db.drop_database().await;
}

/// A seeded study, as the reference search below sees it.
struct Seeded {
    org: OrgId,
    uid: String,
    name: String,
    date: String,
    modalities: String,
    created_at: i64,
}

/// Studies written straight into the index (as ingest would leave them, in
/// one statement per thousand): more than SQLite's walk budget, so its
/// fallback is reached too, with three studies per millisecond so pages end
/// inside a millisecond, and a second organization holding the same names.
/// Returns them and the INSERTs that write them.
fn seed_many(acme: OrgId, other: OrgId) -> (Vec<Seeded>, Vec<String>) {
    const NAMES: [&str; 8] = [
        "ZWIEBEL^ANNA",
        "Smith^John",
        "SMITHERS^WAYLON",
        "DOE^JANE",
        "O'BRIEN^PAT",
        "50%_OFF^X",
        "GOLDSMITH^ZOE",
        "Müller^Jürgen",
    ];
    const MODALITIES: [&str; 5] = ["CT", "CT\\SR", "MR", "CR\\DX", "US"];
    let mut all = Vec::new();
    for n in 0..12_500u32 {
        let org = if n % 50 == 7 { other } else { acme };
        // Names cycle with a stride prime to the others so every combination occurs;
        // ZWIEBEL is rare (one study in 800).
        let name = if n % 800 == 3 {
            NAMES[0]
        } else {
            NAMES[1 + (n as usize * 3) % 7]
        };
        all.push(Seeded {
            org,
            // Insertion order within a millisecond is not UID order.
            uid: format!("2.25.{}.{n}", (n * 7919) % 1000),
            name: name.to_owned(),
            // Newer studies have newer dates, with every ninth an old prior
            // and a few malformed (in a 2019–2021 range as text, no year).
            date: if n % 1000 == 500 {
                "201:0101".to_owned()
            } else if n % 9 == 4 {
                format!("2001{:02}{:02}", 1 + n % 12, 1 + n % 28)
            } else {
                format!(
                    "{}{:02}{:02}",
                    2010 + n / 1000,
                    1 + (n / 100) % 10,
                    1 + n % 28
                )
            },
            modalities: MODALITIES[(n as usize * 3) % 5].to_owned(),
            created_at: 1_700_000_000_000 + i64::from(n / 3),
        });
    }
    let mut inserts = Vec::new();
    for chunk in all.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|s| {
                let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {})",
                    q(&s.org.to_string()),
                    q(&s.uid),
                    q(&s.name),
                    q(&s.name.to_uppercase()),
                    q(&s.date),
                    q(&s.modalities),
                    s.created_at,
                    s.created_at
                )
            })
            .collect();
        inserts.push(format!(
            "INSERT INTO dicom_studies (org_id, study_instance_uid, patient_name, \
             patient_name_search, study_date, modalities, created_at, updated_at) VALUES {}",
            values.join(", ")
        ));
    }
    (all, inserts)
}

/// DICOM wildcard matching (`*` any run, `?` any one character), as the
/// reference for what the store's GLOB/LIKE must find.
fn wildcard(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| wildcard(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && wildcard(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && wildcard(rest, &text[1..]),
    }
}

/// Every plan the store may choose for a study search (on SQLite: the
/// trigram index, the newest-first walk and its fallback, the plain query)
/// returns exactly the page the definition gives: matches newest first, ties
/// by Study Instance UID descending, the offset skipped, `more` when another
/// follows, and never another organization's study.
async fn every_study_plan_gives_the_defined_page(store: &Store, seeded: &[Seeded], acme: OrgId) {
    let name = |p: &str| Filter {
        attribute: Attribute::PatientName,
        condition: Condition::OneOf(vec![if p.contains(['*', '?']) {
            Pattern::Wildcard(p.into())
        } else {
            Pattern::Literal(p.into())
        }]),
    };
    let dates = |from: &str, to: &str| Filter {
        attribute: Attribute::StudyDate,
        condition: Condition::Range {
            from: Some(from.into()),
            to: Some(to.into()),
        },
    };
    let modalities = |list: &[&str]| Filter {
        attribute: Attribute::ModalitiesInStudy,
        condition: Condition::OneOf(list.iter().map(|m| Pattern::Literal((*m).into())).collect()),
    };
    let searches: Vec<Vec<Filter>> = vec![
        vec![],
        vec![name("*zwieb*")],
        vec![
            name("*zwieb*"),
            dates("20200101", "20231231"),
            modalities(&["CT", "MR"]),
        ],
        vec![name("*smith*")],
        vec![
            name("*SMITH*"),
            dates("20150101", "20221231"),
            modalities(&["CT", "MR"]),
        ],
        // PostgreSQL: names the statistics call uncommon, within three
        // years, are searched with the name-year keys (migration 0018).
        vec![name("*smith*"), dates("20190101", "20211231")],
        vec![
            name("*SMITH*"),
            dates("20200301", "20220615"),
            modalities(&["CT", "MR"]),
        ],
        vec![name("*zwieb*"), dates("20210101", "20211231")],
        vec![name("*o'b*"), dates("20200101", "20201231")],
        vec![name("*smi?h^*")],
        vec![name("*ith*jo*")],
        vec![name("*müll*")],
        vec![name("*50%_*")],
        vec![name("*o'b*")],
        vec![name("smith*")],
        vec![name("doe^jane")],
        vec![dates("20200101", "20231231"), modalities(&["CT", "MR"])],
        vec![modalities(&["US"])],
        // Old priors only: the walk finds no page within its budget.
        vec![dates("20010101", "20011231")],
        vec![dates("20010101", "20011231"), name("*doe*")],
        vec![dates("19990101", "19991231")],
        // The oldest studies only: the plain plan answers after the walk.
        vec![dates("20100101", "20101231"), modalities(&["CT"])],
    ];
    for filters in searches {
        let expected: Vec<&Seeded> = {
            let mut m: Vec<&Seeded> = seeded
                .iter()
                .filter(|s| s.org == acme)
                .filter(|s| {
                    filters.iter().all(|f| match (&f.attribute, &f.condition) {
                        (Attribute::PatientName, Condition::OneOf(p)) => {
                            let (Pattern::Literal(p) | Pattern::Wildcard(p)) = &p[0];
                            let p: Vec<char> = p.to_uppercase().chars().collect();
                            let t: Vec<char> = s.name.to_uppercase().chars().collect();
                            wildcard(&p, &t)
                        }
                        (Attribute::StudyDate, Condition::Range { from, to }) => {
                            from.as_deref().is_none_or(|f| s.date.as_str() >= f)
                                && to.as_deref().is_none_or(|t| s.date.as_str() <= t)
                        }
                        (Attribute::ModalitiesInStudy, Condition::OneOf(p)) => p.iter().any(|p| {
                            let (Pattern::Literal(p) | Pattern::Wildcard(p)) = p;
                            s.modalities.split('\\').any(|m| m == p)
                        }),
                        _ => unreachable!(),
                    })
                })
                .collect();
            m.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.uid.cmp(&a.uid)));
            m
        };
        for (limit, offset) in [(101, 0), (10, 0), (10, 25), (50, 200)] {
            let mut q = query(Level::Study, filters.clone());
            q.limit = limit;
            q.offset = offset;
            let page = store.qido_search(acme, None, &q).await.unwrap();
            let got: Vec<&str> = page
                .rows
                .iter()
                .map(|r| r.study.attributes.study_instance_uid.as_str())
                .collect();
            let want: Vec<&str> = expected
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|s| s.uid.as_str())
                .collect();
            assert_eq!(got, want, "{filters:?} limit {limit} offset {offset}");
            assert_eq!(
                page.more,
                expected.len() > (offset + limit) as usize,
                "{filters:?} limit {limit} offset {offset}"
            );
        }
    }
}

#[tokio::test]
async fn sqlite_study_plans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    let store = Store::open_sqlite(&path, &StoreOptions::default())
        .await
        .unwrap();
    let org = |name: &str| NewOrg {
        name: name.into(),
        owner_email: "owner@example.org".into(),
    };
    let acme = store.create_org(&org("Acme")).await.unwrap().org_id;
    let other = store.create_org(&org("Other")).await.unwrap().org_id;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (seeded, inserts) = seed_many(acme, other);
    for insert in inserts {
        conn.execute(insert.as_str()).await.unwrap();
    }
    every_study_plan_gives_the_defined_page(&store, &seeded, acme).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_study_plans() {
    let db = ThrowawayPostgres::create("qido_plans").await;
    let store = db.store().await;
    let org = |name: &str| NewOrg {
        name: name.into(),
        owner_email: "owner@example.org".into(),
    };
    let acme = store.create_org(&org("Acme")).await.unwrap().org_id;
    let other = store.create_org(&org("Other")).await.unwrap().org_id;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (seeded, inserts) = seed_many(acme, other);
    for insert in inserts {
        conn.execute(insert.as_str()).await.unwrap();
    }
    // Statistics as autovacuum would leave them, so the store's estimate of
    // how common a name is does not depend on when it last ran.
    conn.execute("ANALYZE dicom_studies").await.unwrap();
    let scans = || async {
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar::<_, i64>(
            "SELECT idx_scan FROM pg_stat_user_indexes \
             WHERE indexrelname = 'dicom_studies_name_year_trigrams'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let before = scans().await;
    every_study_plan_gives_the_defined_page(&store, &seeded, acme).await;
    // The keys were used: the store's connections, closed, have reported
    // their index scans.
    store.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while scans().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no search used the name-year index"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.drop_database().await;
}

/// Migration 0015 indexes the studies an archive already holds: a database
/// at 0014 with studies in it, opened by this build, finds them on every plan.
#[tokio::test]
async fn sqlite_name_index_covers_an_existing_archive() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    let before = support::migrations_before("sqlite", "0015", dir.path());
    // Organizations are not needed to hold studies here (the store reads by id).
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(false);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let (acme, other) = (OrgId::generate(), OrgId::generate());
    let (seeded, inserts) = seed_many(acme, other);
    for insert in inserts {
        conn.execute(insert.as_str()).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::open_sqlite(&path, &StoreOptions::default())
        .await
        .unwrap();
    every_study_plan_gives_the_defined_page(&store, &seeded, acme).await;
    store.close().await;
}
