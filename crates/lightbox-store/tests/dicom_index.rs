//! Indexing instances at the store, on SQLite and PostgreSQL: the study and
//! series counts and modalities QIDO-RS reports follow every instance, a
//! repeated instance changes nothing, and an instance refused halfway (its
//! series belongs to another study) leaves no count behind.

use lightbox_domain::dicom::{IndexedInstance, InstanceRecord, SeriesAttributes, StudyAttributes};
use lightbox_domain::qido::{Include, Level, Query};
use lightbox_domain::{Error, OrgId};
use lightbox_store::{Indexed, NewOrg, Store, StoreOptions};
use std::time::Duration;

mod support;
use support::ThrowawayPostgres;

fn instance(study: &str, series: &str, modality: &str, sop: &str) -> IndexedInstance {
    IndexedInstance {
        study: StudyAttributes {
            study_instance_uid: study.into(),
            patient_name: Some("DOE^JANE".into()),
            json: "{}".into(),
            ..Default::default()
        },
        series: SeriesAttributes {
            series_instance_uid: series.into(),
            modality: Some(modality.into()),
            json: "{}".into(),
            ..Default::default()
        },
        instance: InstanceRecord {
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            size_bytes: 1,
            sha256: format!("{sop}-sha"),
            blob_key: format!("dicom/{sop}.dcm"),
            metadata: "{}".into(),
            ..Default::default()
        },
    }
}

async fn index(store: &Store, org: OrgId, new: &IndexedInstance) -> Result<Indexed, Error> {
    store
        .index_dicom_instance(org, new, None, None, Duration::from_secs(10))
        .await
}

/// Each study as QIDO-RS reports it: (uid, series, instances, modalities),
/// and each series: (uid, instances).
type Counts = (Vec<(String, i64, i64, String)>, Vec<(String, i64)>);

async fn counts(store: &Store, org: OrgId) -> Counts {
    let query = |level| Query {
        level,
        study: None,
        series: None,
        filters: vec![],
        include: Include::Defaults,
        limit: 100,
        offset: 0,
    };
    let studies = store
        .qido_search(org, None, &query(Level::Study))
        .await
        .unwrap();
    let mut studies: Vec<_> = studies
        .rows
        .into_iter()
        .map(|r| {
            let s = r.study;
            (
                s.attributes.study_instance_uid,
                s.series_count,
                s.instance_count,
                s.modalities.join("\\"),
            )
        })
        .collect();
    studies.sort();
    let series = store
        .qido_search(org, None, &query(Level::Series))
        .await
        .unwrap();
    let mut series: Vec<_> = series
        .rows
        .into_iter()
        .map(|r| {
            let s = r.series.unwrap();
            (s.attributes.series_instance_uid, s.instance_count)
        })
        .collect();
    series.sort();
    (studies, series)
}

fn owned(studies: &[(&str, i64, i64, &str)], series: &[(&str, i64)]) -> Counts {
    (
        studies
            .iter()
            .map(|(u, s, i, m)| (u.to_string(), *s, *i, m.to_string()))
            .collect(),
        series.iter().map(|(u, i)| (u.to_string(), *i)).collect(),
    )
}

async fn counts_follow_every_instance(store: &Store) {
    let org = |name: &str| NewOrg {
        name: name.into(),
        owner_email: "owner@example.org".into(),
    };
    let acme = store.create_org(&org("Acme")).await.unwrap().org_id;
    let other = store.create_org(&org("Other")).await.unwrap().org_id;

    let first = index(store, acme, &instance("1.5", "1.5.1", "CT", "1.5.1.1"))
        .await
        .unwrap();
    assert!(
        matches!(first, Indexed::Stored { new_study: Some(_) }),
        "the study's first instance seeds its worklist study: {first:?}"
    );
    for new in [
        instance("1.5", "1.5.1", "CT", "1.5.1.2"),
        instance("1.5", "1.5.2", "SR", "1.5.2.1"),
        instance("1.5", "1.5.1", "CT", "1.5.1.3"),
    ] {
        let indexed = index(store, acme, &new).await.unwrap();
        assert!(
            matches!(indexed, Indexed::Stored { new_study: None }),
            "{indexed:?}"
        );
    }
    let expected = owned(&[("1.5", 2, 4, "CT\\SR")], &[("1.5.1", 3), ("1.5.2", 1)]);
    assert_eq!(counts(store, acme).await, expected);

    // The same instance again: nothing counted twice.
    let again = index(store, acme, &instance("1.5", "1.5.1", "CT", "1.5.1.2"))
        .await
        .unwrap();
    assert!(matches!(again, Indexed::AlreadyStored(_)), "{again:?}");
    assert_eq!(counts(store, acme).await, expected);

    // A series of study 1.5 named by an instance of study 1.6: refused after
    // the series was counted, so the count must roll back with it.
    let refused = index(store, acme, &instance("1.6", "1.5.1", "CT", "1.6.1.1")).await;
    assert!(
        matches!(&refused, Err(Error::Invalid { message, .. }) if message.contains("belongs to study 1.5")),
        "{refused:?}"
    );
    assert_eq!(counts(store, acme).await, expected);

    // Another organization's same UIDs are its own.
    index(store, other, &instance("1.5", "1.5.1", "MR", "1.5.1.1"))
        .await
        .unwrap();
    assert_eq!(
        counts(store, other).await,
        owned(&[("1.5", 1, 1, "MR")], &[("1.5.1", 1)])
    );
    assert_eq!(counts(store, acme).await, expected);
}

#[tokio::test]
async fn sqlite_counts_follow_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("lightbox.db"), &StoreOptions::default())
        .await
        .unwrap();
    counts_follow_every_instance(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_counts_follow_every_instance() {
    let db = ThrowawayPostgres::create("dicom_index").await;
    let store = db.store().await;
    counts_follow_every_instance(&store).await;
    store.close().await;
    db.drop_database().await;
}
