//! The DIMSE receiver under protocol-level stress and bad input: files sent
//! byte for byte in every transfer syntax, commands and data split into
//! small pieces, aborts and dropped connections mid-instance, lying or
//! broken data sets, oversized and bomb instances, garbage on the port.
//! A dicom-rs SCU sends exactly the bytes each case needs; the server must
//! answer each with the right DIMSE status and keep serving.

mod support;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_ul::Pdu;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use support::dicom::{self as dcm, test_files};
use support::{unique_uid, Backend, Org, TestServer};

async fn start(extra: &[&str]) -> TestServer {
    let mut args = vec!["--dicom-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    TestServer::start_with(Backend::Sqlite, &args).await
}

async fn studies(server: &TestServer, org: &Org) -> Vec<Value> {
    let page = server.api(&org.api_key).get("/v1/viewer/studies").await;
    page.body["studies"].as_array().unwrap().clone()
}

fn spool_files(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.data_dir.path().join("blobs/.tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("dicom-spool-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The file meta's transfer syntax and SOP class of a Part 10 file.
fn meta_of(path: &Path) -> (String, String) {
    let bytes = std::fs::read(path).unwrap();
    let meta = dicom_object::meta::FileMetaTable::from_reader(&bytes[128..]).unwrap();
    let clean = |s: &str| s.trim_end_matches('\0').to_owned();
    (
        clean(meta.transfer_syntax()),
        clean(meta.media_storage_sop_class_uid()),
    )
}

/// Files in every kind of encoding pydicom ships, sent as they are on disk
/// (compressed ones Lightbox cannot decode included), come back byte for
/// byte, each under the transfer syntax it was negotiated in.
#[tokio::test]
async fn every_transfer_syntax_is_stored_as_received() {
    let server = start(&[]).await;
    let files = [
        "CT_small.dcm",                  // Explicit VR Little Endian
        "MR_small_implicit.dcm",         // Implicit VR Little Endian
        "MR_small_bigendian.dcm",        // Explicit VR Big Endian
        "MR_small_RLE.dcm",              // RLE Lossless
        "MR_small_jp2klossless.dcm",     // JPEG 2000 (no decoder here)
        "MR_small_jpeg_ls_lossless.dcm", // JPEG-LS (no decoder here)
        "SC_rgb_jpeg_dcmtk.dcm",         // JPEG Baseline
        "JPEG-lossy.dcm",                // JPEG Extended
        "image_dfl.dcm",                 // Deflated Explicit VR Little Endian
        "SC_rgb_rle_2frame.dcm",         // multi-frame RLE
        "examples_ybr_color.dcm",        // 30 JPEG frames
        "liver_1frame.dcm",              // segmentation (non-image)
        "test-SR.dcm",                   // structured report (no pixels)
    ];
    for name in files {
        let path = test_files().join(name);
        if !path.exists() {
            panic!("{name} is not in this pydicom's test files");
        }
        // Some of these files are one image in several encodings, under one
        // SOP Instance UID: each goes to an organization of its own.
        let acme = server.create_org("Acme");
        let (ts, class) = meta_of(&path);
        let sent = std::fs::read(&path).unwrap();
        let (study, series, sop) = dcm::instance_uids(&path);
        let mut assoc = server.associate(&acme.dicom_ae_title, &[(&class, &ts)]);
        let accepted = &assoc.presentation_contexts()[0];
        assert_eq!(
            accepted.reason,
            dicom_ul::pdu::PresentationContextResultReason::Acceptance,
            "{name}: {ts} refused"
        );
        assert_eq!(accepted.transfer_syntax.trim_end_matches('\0'), ts);
        let (_, status) = dcm::c_store_as(
            &mut assoc,
            1,
            &class,
            &sop,
            dcm::data_set_of(&sent),
            16 * 1024,
        );
        assert_eq!(status, 0x0000, "{name}");
        assoc.release().unwrap();

        let (status, part) = server
            .retrieve_instance(
                &acme,
                &study,
                &series,
                &sop,
                "multipart/related; type=application/dicom; transfer-syntax=*",
            )
            .await;
        assert_eq!(status, 200, "{name}");
        let stored_meta = dicom_object::meta::FileMetaTable::from_reader(&part[128..]).unwrap();
        assert_eq!(
            stored_meta.transfer_syntax().trim_end_matches('\0'),
            ts,
            "{name}"
        );
        assert!(
            dcm::data_set_of(&part) == dcm::data_set_of(&sent),
            "{name}: stored bytes differ"
        );
    }
    assert_eq!(spool_files(&server), Vec::<String>::new());
}

/// A command set split over three PDVs, data in 100-byte PDVs through a
/// receiver whose largest PDU is 16 KiB, and dcmtk limited to 4 KiB PDUs: the
/// messages are reassembled and every answer carries its request's id.
#[tokio::test]
async fn split_commands_and_small_pdus_are_reassembled() {
    let server = start(&["--dicom-max-pdu", "16384"]).await;
    let acme = server.create_org("Acme");
    let mut assoc = server.associate(
        &acme.dicom_ae_title,
        &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
    );
    let context = assoc.presentation_contexts()[0].id;
    let study = unique_uid();
    let sop = unique_uid();
    let data = dcm::encode(&dcm::ct_data_set(
        Some(&study),
        Some(&unique_uid()),
        Some(&sop),
        60_000,
    ));
    let command = dcm::c_store_rq(4242, &sop);
    let third = command.len() / 3;
    let pieces = [
        &command[..third],
        &command[third..2 * third],
        &command[2 * third..],
    ];
    assoc
        .send(&Pdu::PData {
            data: vec![
                dcm::pdv(context, true, false, pieces[0]),
                dcm::pdv(context, true, false, pieces[1]),
            ],
        })
        .unwrap();
    assoc
        .send(&Pdu::PData {
            data: vec![dcm::pdv(context, true, true, pieces[2])],
        })
        .unwrap();
    let chunks: Vec<&[u8]> = data.chunks(100).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        assoc
            .send(&Pdu::PData {
                data: vec![dcm::pdv(context, false, i + 1 == chunks.len(), chunk)],
            })
            .unwrap();
    }
    assert_eq!(dcm::response(&mut assoc), (4242, 0x0000));
    // A PDU over the receiver's maximum ends the association: it aborts,
    // from the PDU's header, without waiting for the rest.
    let mut oversized = vec![0x04, 0x00];
    oversized.extend_from_slice(&20_000u32.to_be_bytes());
    oversized.resize(6 + 20_000, 0);
    assoc.inner_stream().write_all(&oversized[..6]).unwrap();
    let answer = assoc.receive();
    assert!(
        matches!(answer, Ok(Pdu::AbortRQ { .. })),
        "a 20 KB PDU announced to a 16 KiB receiver: {answer:?}"
    );

    let folder = test_files().join("dicomdirtests/77654033");
    let sent = server.storescu(
        &acme.dicom_ae_title,
        &["+sd", "+r", "--max-send-pdu", "4096"],
        &[folder],
    );
    assert!(sent.ok, "{}", sent.log);
    assert_eq!(studies(&server, &acme).await.len(), 3);
}

/// An A-ABORT, or a socket simply closed, in the middle of an instance:
/// nothing is indexed, no file is left behind, and the receiver serves on.
#[tokio::test]
async fn an_abort_or_a_dropped_connection_mid_instance_leaves_nothing() {
    let server = start(&[]).await;
    let acme = server.create_org("Acme");
    for abort in [true, false] {
        let mut assoc = server.associate(
            &acme.dicom_ae_title,
            &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
        );
        let context = assoc.presentation_contexts()[0].id;
        let sop = unique_uid();
        let data = dcm::encode(&dcm::ct_data_set(
            Some(&unique_uid()),
            Some(&unique_uid()),
            Some(&sop),
            200_000,
        ));
        assoc
            .send(&Pdu::PData {
                data: vec![dcm::pdv(context, true, true, &dcm::c_store_rq(1, &sop))],
            })
            .unwrap();
        for chunk in data[..data.len() / 2].chunks(16_000) {
            assoc
                .send(&Pdu::PData {
                    data: vec![dcm::pdv(context, false, false, chunk)],
                })
                .unwrap();
        }
        if abort {
            assoc.abort().unwrap();
        } else {
            drop(assoc);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !spool_files(&server).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        spool_files(&server),
        Vec::<String>::new(),
        "a cut-off instance left its spool file"
    );
    assert!(
        !server.data_dir.path().join("blobs/dicom").exists(),
        "a cut-off instance reached the archive"
    );
    assert_eq!(studies(&server, &acme).await, Vec::<Value>::new());
    let echo = server.echoscu(&acme.dicom_ae_title, "CT1");
    assert!(echo.ok, "{}", echo.log);
}

/// Data sets that lie or break get failure statuses (PS3.4 B.2.3) on a
/// living association; a good one after them is stored; the same instance
/// again is a success, a different one under its UID a warning (B006) that
/// leaves the first copy.
#[tokio::test]
async fn bad_data_sets_get_failure_statuses_and_nothing_is_half_stored() {
    let server = start(&[]).await;
    let acme = server.create_org("Acme");
    let mut assoc = server.associate(
        &acme.dicom_ae_title,
        &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
    );
    let (study, series) = (unique_uid(), unique_uid());
    let mut id = 0u16;
    let mut send = |assoc: &mut _, sop: &str, data: &[u8]| {
        id += 1;
        let (answered, status) = dcm::c_store(assoc, id, sop, data, 8_000);
        assert_eq!(answered, id, "the answer names another request");
        status
    };

    let sop = unique_uid();
    let no_study = dcm::encode(&dcm::ct_data_set(None, Some(&series), Some(&sop), 64));
    assert_eq!(
        send(&mut assoc, &sop, &no_study),
        0xC000,
        "no StudyInstanceUID"
    );
    for bad in ["../x", &format!("1.{}", "2".repeat(70)), "1.2.abc"] {
        let data = dcm::encode(&dcm::ct_data_set(Some(bad), Some(&series), Some(&sop), 64));
        assert_eq!(
            send(&mut assoc, &sop, &data),
            0xC000,
            "StudyInstanceUID {bad:?}"
        );
    }
    let good = dcm::encode(&dcm::ct_data_set(
        Some(&study),
        Some(&series),
        Some(&sop),
        4_000,
    ));
    assert_eq!(
        send(&mut assoc, &sop, &good[..good.len() - 1_000]),
        0xC000,
        "a truncated data set"
    );
    let mut lying = dcm::encode(&dcm::ct_data_set(
        Some(&study),
        Some(&series),
        Some(&sop),
        64,
    ));
    // A private OB element declaring 100 MB, followed by 10 bytes.
    lying.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
    lying.extend_from_slice(&100_000_000u32.to_le_bytes());
    lying.extend_from_slice(&[0; 10]);
    assert_eq!(
        send(&mut assoc, &sop, &lying),
        0xC000,
        "a length larger than the body"
    );
    let other_sop = unique_uid();
    assert_eq!(
        send(&mut assoc, &other_sop, &good),
        0xA900,
        "data set of another instance"
    );

    assert_eq!(send(&mut assoc, &sop, &good), 0x0000);
    assert_eq!(
        send(&mut assoc, &sop, &good),
        0x0000,
        "the same instance again"
    );
    let mut different = dcm::ct_data_set(Some(&study), Some(&series), Some(&sop), 4_000);
    different.put(DataElement::new(
        tags::PATIENT_NAME,
        VR::PN,
        PrimitiveValue::from("Other^Name"),
    ));
    assert_eq!(
        send(&mut assoc, &sop, &dcm::encode(&different)),
        0xB006,
        "different bytes, same UID"
    );
    assoc.release().unwrap();

    let listed = studies(&server, &acme).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["studyInstanceUid"], study.as_str());
    let stored: Vec<_> = dcm::files_under(&server.data_dir.path().join("blobs/dicom"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let kept = std::fs::read(&stored[0]).unwrap();
    assert!(
        dcm::data_set_of(&kept) == &good[..],
        "the first copy was replaced"
    );
    assert_eq!(spool_files(&server), Vec::<String>::new());
}

/// Over the configured largest instance, and a deflated data set that
/// inflates past it (a few KB on the wire, megabytes inflated): out of
/// resources (A700), and the next instance is stored as usual.
#[tokio::test]
async fn oversized_and_inflating_instances_are_refused() {
    let server = start(&["--dicom-max-instance-bytes", "200000"]).await;
    let acme = server.create_org("Acme");
    let mut assoc = server.associate(
        &acme.dicom_ae_title,
        &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
    );
    let sop = unique_uid();
    let big = dcm::encode(&dcm::ct_data_set(
        Some(&unique_uid()),
        Some(&unique_uid()),
        Some(&sop),
        300_000,
    ));
    assert_eq!(dcm::c_store(&mut assoc, 1, &sop, &big, 16_000), (1, 0xA700));
    let small = dcm::encode(&dcm::ct_data_set(
        Some(&unique_uid()),
        Some(&unique_uid()),
        Some(&sop),
        1_000,
    ));
    assert_eq!(
        dcm::c_store(&mut assoc, 2, &sop, &small, 16_000),
        (2, 0x0000)
    );
    assoc.release().unwrap();

    let deflated = "1.2.840.10008.1.2.1.99";
    let mut assoc = server.associate(&acme.dicom_ae_title, &[(dcm::CT_IMAGE_STORAGE, deflated)]);
    let bomb_sop = unique_uid();
    let bomb = dcm::encode(&dcm::ct_data_set(
        Some(&unique_uid()),
        Some(&unique_uid()),
        Some(&bomb_sop),
        20_000_000,
    ));
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&bomb).unwrap();
    let compressed = encoder.finish().unwrap();
    assert!(compressed.len() < 200_000, "{} bytes", compressed.len());
    assert_eq!(
        dcm::c_store(&mut assoc, 3, &bomb_sop, &compressed, 16_000),
        (3, 0xA700)
    );
    assoc.release().unwrap();
    assert_eq!(studies(&server, &acme).await.len(), 1);
    assert_eq!(spool_files(&server), Vec::<String>::new());
}

/// Bytes that are no DICOM at all, and a PDU header announcing 4 GB: the
/// connection is dropped and the receiver answers the next association.
#[tokio::test]
async fn garbage_on_the_port_is_dropped_and_the_receiver_keeps_serving() {
    let server = start(&[]).await;
    let acme = server.create_org("Acme");
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1],
        vec![0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 1, 2, 3],
    ] {
        let mut socket = std::net::TcpStream::connect(server.dicom_addr()).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let _ = socket.write_all(&garbage);
        let mut answer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut socket, &mut answer);
    }
    let echo = server.echoscu(&acme.dicom_ae_title, "CT1");
    assert!(echo.ok, "{}", echo.log);
}

/// An association that goes silent is aborted after the idle timeout, and
/// the instance it was sending is not kept.
#[tokio::test]
async fn a_silent_association_is_aborted_after_the_idle_timeout() {
    let server = start(&["--dicom-idle-timeout-secs", "1"]).await;
    let acme = server.create_org("Acme");
    let mut assoc = server.associate(
        &acme.dicom_ae_title,
        &[(dcm::CT_IMAGE_STORAGE, dcm::EXPLICIT_LE)],
    );
    let context = assoc.presentation_contexts()[0].id;
    let sop = unique_uid();
    assoc
        .send(&Pdu::PData {
            data: vec![dcm::pdv(context, true, true, &dcm::c_store_rq(1, &sop))],
        })
        .unwrap();
    assoc
        .send(&Pdu::PData {
            data: vec![dcm::pdv(context, false, false, b"\x08\x00\x16\x00")],
        })
        .unwrap();
    let started = std::time::Instant::now();
    let ended = assoc.receive();
    assert!(
        matches!(ended, Ok(Pdu::AbortRQ { .. }) | Err(_)),
        "expected an abort, got {ended:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(spool_files(&server), Vec::<String>::new());
    assert_eq!(studies(&server, &acme).await, Vec::<Value>::new());
}

/// A file in the archive that no index row names (what a crash between
/// storing a file and indexing it leaves) is removed by the sweep once it
/// is older than the orphan age; indexed files stay.
#[tokio::test]
async fn unindexed_files_are_swept_and_indexed_ones_stay() {
    let server = start(&["--dicom-orphan-age-secs", "1"]).await;
    let acme = server.create_org("Acme");
    let folder = test_files().join("dicomdirtests/77654033");
    let sent = server.storescu(&acme.dicom_ae_title, &["+sd", "+r"], &[folder]);
    assert!(sent.ok, "{}", sent.log);
    let archive = server.data_dir.path().join("blobs/dicom");
    let indexed = dcm::files_under(&archive);
    assert_eq!(indexed.len(), 7);
    let orphan = archive
        .join(&acme.org_id)
        .join("1.2.3/1.2.3.4/1.2.3.4.5.0123456789abcdef.dcm");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"left by a crash").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while orphan.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(!orphan.exists(), "the unindexed file is still there");
    let mut left = dcm::files_under(&archive);
    left.sort();
    let mut expected = indexed.clone();
    expected.sort();
    assert_eq!(left, expected, "the sweep removed indexed files");
}
