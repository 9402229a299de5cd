//! QIDO-RS searches at the store, on SQLite and PostgreSQL, for what the HTTP
//! tests cannot reach yet: a caller scoped to some studies (a study link's
//! capability) finds only those, at every level and whatever it asks, and
//! never another organization's; and values that look like SQL or LIKE
//! patterns are matched as text.

use lightbox_domain::dicom::{IndexedInstance, InstanceRecord, SeriesAttributes, StudyAttributes};
use lightbox_domain::qido::{Attribute, Condition, Filter, Include, Level, Pattern, Query};
use lightbox_domain::{OrgId, Timestamp};
use lightbox_store::{NewOrg, Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};
use std::time::Duration;

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
    let admin_url = std::env::var("LIGHTBOX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!(
        "lightbox_qido_{}_{:x}",
        std::process::id(),
        Timestamp::now().millis()
    );
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL at LIGHTBOX_TEST_DATABASE_URL is required");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
    let store = Store::open_postgres(&format!("{base}/{name}"), &StoreOptions::default())
        .await
        .unwrap();
    a_scoped_caller_finds_only_its_studies(&store).await;
    store.close().await;
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
