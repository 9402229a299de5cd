//! DICOM in: modalities send over DIMSE (dcmtk's storescu and echoscu, a
//! dicom-rs SCU for what dcmtk will not send), the archive keeps the bytes,
//! and the worklist fills. Real files from the pydicom wheel; both backends.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::dicom::{self as dcm, test_files};
use support::{unique_uid, Backend, Org, TestServer};

on_both_backends!(
    a_modality_sends_two_patients_studies_and_they_appear_on_the_worklist,
    called_ae_titles_and_allowed_senders_decide_who_may_send,
    images_never_overwrite_what_people_set_on_an_ordered_study,
    many_modalities_send_at_once,
);

const DICOMDIR_PATIENTS: [&str; 3] = ["77654033", "98892001", "98892003"];

fn dicomdir_folders() -> Vec<PathBuf> {
    DICOMDIR_PATIENTS
        .iter()
        .map(|p| test_files().join("dicomdirtests").join(p))
        .collect()
}

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, &["--dicom-listen", "127.0.0.1:0"]).await
}

async fn worklist(server: &TestServer, org: &Org) -> Vec<Value> {
    let page = server
        .api(&org.api_key)
        .get("/v1/viewer/studies?limit=100")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["studies"].as_array().unwrap().clone()
}

/// Acme's modality sends the six studies of two patients (31 instances, 13
/// series); Acme's worklist shows six new studies with their descriptions,
/// Other's none; each instance comes back byte for byte; sending it all
/// again changes nothing.
async fn a_modality_sends_two_patients_studies_and_they_appear_on_the_worklist(backend: Backend) {
    let server = start(backend).await;
    let acme = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let echo = server.echoscu(&acme.dicom_ae_title, "CT1");
    assert!(echo.ok, "{}", echo.log);

    let sent = server.storescu(&acme.dicom_ae_title, &["+sd", "+r"], &dicomdir_folders());
    assert!(sent.ok, "{}", sent.log);
    let studies = worklist(&server, &acme).await;
    let descriptions: BTreeSet<&str> = studies
        .iter()
        .map(|s| s["studyDescription"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        BTreeSet::from([
            "Brain",
            "Brain-MRA",
            "CT, HEAD/BRAIN WO CONTRAST",
            "Carotids",
            "XR C Spine Comp Min 4 Views",
            // The one study without a StudyDescription: modality and study date.
            "CT 20010101",
        ])
    );
    for study in &studies {
        assert_eq!(study["severity"], "normal");
        assert_eq!(study["studyViewerStatus"], "incomplete");
        assert_eq!(study["createdByApiKey"], Value::Null);
    }
    assert_eq!(worklist(&server, &other).await, Vec::<Value>::new());

    // Every instance is kept as sent, byte for byte. dcmtk re-encodes what
    // it sends (item lengths), so "what was sent" is what dcmtk's own
    // receiver keeps when told to preserve bits: the same folders are sent
    // to `storescp --bit-preserving` for reference.
    let reference = dcm::ReferenceScp::start();
    let copy = reference.storescu(&["+sd", "+r"], &dicomdir_folders());
    assert!(copy.ok, "{}", copy.log);
    let files: Vec<PathBuf> = dicomdir_folders()
        .iter()
        .flat_map(|f| dcm::files_under(f))
        .collect();
    assert_eq!(files.len(), 31);
    for file in &files {
        let (study, series, sop) = dcm::instance_uids(file);
        let (status, stored) = server
            .retrieve_instance(&acme, &study, &series, &sop, dcm::ACCEPT_DICOM)
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&stored));
        let sent = reference.received(&sop);
        assert!(
            dcm::data_set_of(&stored) == dcm::data_set_of(&sent),
            "{} differs from what was sent",
            file.display()
        );
        let stored_meta = dicom_object::meta::FileMetaTable::from_reader(&stored[128..]).unwrap();
        assert_eq!(
            stored_meta
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            sop
        );
        // Never another organization's.
        let (theirs, _) = server
            .retrieve_instance(&other, &study, &series, &sop, dcm::ACCEPT_DICOM)
            .await;
        assert_eq!(theirs, 404);
    }

    let again = server.storescu(&acme.dicom_ae_title, &["+sd", "+r"], &dicomdir_folders());
    assert!(again.ok, "{}", again.log);
    assert_eq!(
        worklist(&server, &acme).await,
        studies,
        "sending again changed the worklist"
    );
    let stored_files = dcm::files_under(&server.data_dir.path().join("blobs/dicom"));
    assert_eq!(stored_files.len(), 31, "sending again stored copies");

    let stores = dcm::audit_events(&server, &acme, "dicom_instance.store", 62);
    assert_eq!(
        stores.len(),
        62,
        "each of 31 instances sent twice is audited"
    );
    assert!(stores
        .iter()
        .all(|e| e["outcome"] == "success" && e["actor_type"] == "dicom_peer"));
}

/// An association to a title nobody has is rejected before any data; an
/// organization that lists its senders takes only those; a changed title
/// takes effect for the next association.
async fn called_ae_titles_and_allowed_senders_decide_who_may_send(backend: Backend) {
    let server = start(backend).await;
    let acme = server.create_org("Acme");
    let unknown = server.echoscu("NOBODY_HERE", "CT1");
    assert!(!unknown.ok);
    assert!(
        unknown.log.contains("Called AE Title Not Recognized"),
        "{}",
        unknown.log
    );

    server.admin(&[
        "allow-dicom-peer",
        "--org",
        &acme.org_id,
        "--calling-ae-title",
        "CT_ROOM_1",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stranger = server.echoscu(&acme.dicom_ae_title, "MR_ROOM_9");
    assert!(!stranger.ok);
    assert!(
        stranger.log.contains("Calling AE Title Not Recognized"),
        "{}",
        stranger.log
    );
    let known = server.echoscu(&acme.dicom_ae_title, "CT_ROOM_1");
    assert!(known.ok, "{}", known.log);
    let listed = server.admin(&["list-dicom-peers", "--org", &acme.org_id]);
    assert_eq!(listed["dicom_ae_title"], acme.dicom_ae_title.as_str());
    assert_eq!(listed["peers"].as_array().unwrap().len(), 1);
    assert_eq!(listed["peers"][0]["calling_ae_title"], "CT_ROOM_1");
    // A second entry, by address: MR_ROOM_9 from loopback gets in; then only CT_ROOM_1 again.
    let by_address = server.admin(&[
        "allow-dicom-peer",
        "--org",
        &acme.org_id,
        "--address",
        "127.0.0.1",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(server.echoscu(&acme.dicom_ae_title, "MR_ROOM_9").ok);
    server.admin(&[
        "remove-dicom-peer",
        "--org",
        &acme.org_id,
        "--id",
        by_address["id"].as_str().unwrap(),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        !server.echoscu(&acme.dicom_ae_title, "MR_ROOM_9").ok,
        "a removed entry still admits"
    );

    let taken = server.admin_output(&[
        "set-ae-title",
        "--org",
        &acme.org_id,
        "--ae-title",
        "bad title",
    ]);
    assert!(!taken.status.success());
    let other = server.create_org("Other");
    let clash = server.admin_output(&[
        "set-ae-title",
        "--org",
        &other.org_id,
        "--ae-title",
        &acme.dicom_ae_title,
    ]);
    assert!(
        !clash.status.success(),
        "two organizations got one AE title"
    );
    server.admin(&[
        "set-ae-title",
        "--org",
        &acme.org_id,
        "--ae-title",
        "ACME_NEW",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        !server.echoscu(&acme.dicom_ae_title, "CT_ROOM_1").ok,
        "the old title still works"
    );
    let renamed = server.echoscu("ACME_NEW", "CT_ROOM_1");
    assert!(renamed.ok, "{}", renamed.log);

    let opened = dcm::audit_events(&server, &acme, "dicom_association.open", 3);
    let outcomes: Vec<(&str, &str)> = opened
        .iter()
        .map(|e| {
            (
                e["actor_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(outcomes.contains(&("MR_ROOM_9", "denied")), "{outcomes:?}");
    assert!(outcomes.contains(&("CT_ROOM_1", "success")), "{outcomes:?}");
}

/// A study ordered through the API (with severity, description, then
/// cancelled) is the one its images join: one study, nothing people set
/// is overwritten, and it stays cancelled.
async fn images_never_overwrite_what_people_set_on_an_ordered_study(backend: Backend) {
    let server = start(backend).await;
    let acme = server.create_org("Acme");
    let api = server.api(&acme.api_key);
    let study_uid = unique_uid();
    let ordered = api
        .create_study(json!({
            "studyInstanceUid": study_uid,
            "studyDescription": "Ordered: chest CT",
            "severity": "stat",
        }))
        .await;
    let id = ordered["studyId"].as_str().unwrap().to_owned();
    let cancelled = api
        .post("/v1/viewer/studies/cancel", json!({ "studyId": id }))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);

    let mut assoc = server.associate(
        &acme.dicom_ae_title,
        &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
    );
    for i in 0..3u16 {
        let sop = unique_uid();
        let data = dcm::encode(&dcm::ct_data_set(
            Some(&study_uid),
            Some(&format!("{study_uid}.1")),
            Some(&sop),
            64,
        ));
        assert_eq!(
            dcm::c_store(&mut assoc, 10 + i, &sop, &data, 1000),
            (10 + i, 0x0000)
        );
    }
    assoc.release().unwrap();

    let studies = worklist(&server, &acme).await;
    assert_eq!(studies.len(), 1, "{studies:?}");
    assert_eq!(studies[0]["studyId"], id.as_str());
    assert_eq!(studies[0]["studyDescription"], "Ordered: chest CT");
    assert_eq!(studies[0]["severity"], "stat");
    assert_eq!(studies[0]["isCancelled"], true);
}

/// Six modalities send at once, three of them the same studies to one
/// organization (racing to create the same worklist studies and series):
/// every association succeeds and each organization ends with its six studies.
async fn many_modalities_send_at_once(backend: Backend) {
    let server = std::sync::Arc::new(start(backend).await);
    let orgs: Vec<Org> = (0..4)
        .map(|i| server.create_org(&format!("Clinic {i}")))
        .collect();
    let senders: Vec<_> = (0..6)
        .map(|i| {
            let (server, title) = (
                server.clone(),
                orgs[i % 3 + usize::from(i >= 3)].dicom_ae_title.clone(),
            );
            std::thread::spawn(move || server.storescu(&title, &["+sd", "+r"], &dicomdir_folders()))
        })
        .collect();
    for sender in senders {
        let sent = sender.join().unwrap();
        assert!(sent.ok, "{}", sent.log);
    }
    for org in &orgs {
        let studies = worklist(&server, org).await;
        assert_eq!(studies.len(), 6, "{}: {studies:?}", org.dicom_ae_title);
    }
}
