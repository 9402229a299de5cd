"""DICOM in through the clients people use: STOW-RS from Python's
dicomweb-client (which quotes its multipart parameters), hand-made multipart
bodies for the failure statuses, pynetdicom proposing compressed transfer
syntaxes over DIMSE, Specific Character Sets, and the archive on S3.
Files are the ones the pydicom wheel ships."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import psycopg
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts

from conftest import Backend, LightboxServer, Org
from s3server import S3_BUCKET, SeaweedS3

S3_PREFIX = "tenant-b/archive"

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
CHARSET_FILES = Path(pydicom.data.__file__).parent / "charset_files"


@pytest.fixture(scope="module")
def dicom_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-dicom-{backend.name}"),
        ("--dicom-listen", "127.0.0.1:0", "--stow-max-bytes", str(3 * 1024 * 1024)),
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def dicomweb(srv: LightboxServer, org: Org) -> DICOMwebClient:
    return DICOMwebClient(url=f"{srv.base_url}/dicomweb", headers={"Authorization": f"Bearer {org.api_key}"})


def fresh(name: str) -> pydicom.Dataset:
    """A pydicom test file with new Study/Series/SOP Instance UIDs."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def part10(ds: pydicom.Dataset) -> bytes:
    from io import BytesIO

    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0und4ry") -> bytes:
    body = b""
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stow(srv: LightboxServer, org: Org, body: bytes, content_type: str, path: str = "/dicomweb/studies") -> httpx.Response:
    return httpx.post(
        f"{srv.base_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {org.api_key}", "Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=30,
    )


def seq(body: dict, tag: str) -> list[dict]:
    return body.get(tag, {}).get("Value", [])


def worklist_uids(org: Org) -> dict[str, object]:
    return {s.study_instance_uid: s for s in org.client().viewer.studies.list(limit=100).studies}


def test_dicomweb_client_stores_a_study_that_seeds_the_worklist_and_reads_back(dicom_server: LightboxServer) -> None:
    org, other = dicom_server.new_org(), dicom_server.new_org()
    ct, mr = fresh("CT_small.dcm"), fresh("MR_small.dcm")
    mr.StudyInstanceUID = ct.StudyInstanceUID
    client = dicomweb(dicom_server, org)
    response = client.store_instances([ct, mr])
    referenced = response.ReferencedSOPSequence
    assert sorted(i.ReferencedSOPInstanceUID for i in referenced) == sorted([ct.SOPInstanceUID, mr.SOPInstanceUID])
    assert "FailedSOPSequence" not in response

    studies = worklist_uids(org)
    assert list(studies) == [ct.StudyInstanceUID]
    study = studies[ct.StudyInstanceUID]
    assert study.study_description == ct.StudyDescription or study.study_description.startswith("CT")
    assert study.created_by_api_key is not None and study.created_by_api_key.api_key_id == org.api_key_id
    assert worklist_uids(other) == {}

    back = client.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert back.PixelData == ct.PixelData
    assert back.PatientName == ct.PatientName
    with pytest.raises(Exception) as refused:
        dicomweb(dicom_server, other).retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert "404" in str(refused.value)


def test_a_body_with_garbage_among_good_parts_is_202_and_names_the_failure(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    good = fresh("CT_small.dcm")
    no_uid = fresh("MR_small.dcm")
    del no_uid.StudyInstanceUID
    body = multipart([
        ("application/dicom", part10(good)),
        ("application/dicom", b"this is not DICOM at all" * 10),
        ("application/dicom", part10(no_uid)),
    ])
    # Unquoted parameters this time (dicomweb-client quotes them).
    reply = stow(dicom_server, org, body, "multipart/related; type=application/dicom; boundary=b0und4ry")
    assert reply.status_code == 202, reply.text
    assert reply.headers["content-type"].startswith("application/dicom+json")
    result = reply.json()
    assert [i["00081155"]["Value"][0] for i in seq(result, "00081199")] == [good.SOPInstanceUID]
    failures = seq(result, "00081198")
    assert len(failures) == 2
    assert all(f["00081197"]["Value"][0] == 0xC000 for f in failures)
    assert failures[1]["00081155"]["Value"][0] == no_uid.SOPInstanceUID
    assert list(worklist_uids(org)) == [good.StudyInstanceUID]


def test_an_instance_of_another_study_than_the_url_names_is_409(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    ds = fresh("CT_small.dcm")
    other_study = generate_uid()
    reply = stow(
        dicom_server, org, multipart([("application/dicom", part10(ds))]),
        'multipart/related; type="application/dicom"; boundary="b0und4ry"', f"/dicomweb/studies/{other_study}",
    )
    assert reply.status_code == 409, reply.text
    assert seq(reply.json(), "00081198")[0]["00081197"]["Value"][0] == 0xA900
    assert worklist_uids(org) == {}


def test_the_same_instance_again_is_stored_once_and_a_different_copy_is_a_warning(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    ds = fresh("CT_small.dcm")
    ct = 'multipart/related; type="application/dicom"; boundary=b0und4ry'
    assert stow(dicom_server, org, multipart([("application/dicom", part10(ds))]), ct).status_code == 200
    assert stow(dicom_server, org, multipart([("application/dicom", part10(ds))]), ct).status_code == 200
    ds.PatientName = "Someone^Else"
    reply = stow(dicom_server, org, multipart([("application/dicom", part10(ds))]), ct)
    assert reply.status_code == 202, reply.text
    assert seq(reply.json(), "00081199")[0]["00081196"]["Value"][0] == 0xB006
    kept = dicomweb(dicom_server, org).retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert kept.PatientName != "Someone^Else"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415),
        ("multipart/related; type=application/dicom", 400),
    ],
)
def test_bodies_that_are_not_dicom_multipart_are_refused(dicom_server: LightboxServer, content_type: str, status: int) -> None:
    org = dicom_server.new_org()
    reply = stow(dicom_server, org, b"{}", content_type)
    assert reply.status_code == status, reply.text
    assert reply.json()["message"]


def test_a_body_over_the_limit_is_413_and_a_broken_one_400(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    big = fresh("CT_small.dcm")
    parts = [("application/dicom", part10(big))] * 100  # ~4 MB, over the 3 MiB limit
    ct = "multipart/related; type=application/dicom; boundary=b0und4ry"
    assert stow(dicom_server, org, multipart(parts), ct).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        body = multipart(parts)
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    reply = httpx.post(
        f"{dicom_server.base_url}/dicomweb/studies", content=chunked(),
        headers={"Authorization": f"Bearer {org.api_key}", "Content-Type": ct}, timeout=30,
    )
    assert reply.status_code == 413, reply.text
    broken = multipart([("application/dicom", part10(fresh("CT_small.dcm")))])[:-40]
    assert stow(dicom_server, org, broken, ct).status_code == 400
    assert httpx.get(f"{dicom_server.base_url}/healthz").status_code == 200


def test_stow_needs_the_organizations_api_key(dicom_server: LightboxServer) -> None:
    reply = httpx.post(
        f"{dicom_server.base_url}/dicomweb/studies", content=b"",
        headers={"Content-Type": "multipart/related; type=application/dicom; boundary=x", "Authorization": "Bearer lbk_nope"},
    )
    assert reply.status_code == 401


COMPRESSED = [
    "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
    "MR_small_RLE.dcm",  # RLE Lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG Baseline
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
]


def test_pynetdicom_sends_compressed_transfer_syntaxes_and_they_are_kept(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    host, port = dicom_server.dicom_addr
    for name in COMPRESSED:
        ds = fresh(name)
        ts = ds.file_meta.TransferSyntaxUID
        ae = AE(ae_title="PYNETDICOM")
        ae.add_requested_context(ds.SOPClassUID, [ts])
        assoc = ae.associate(host, port, ae_title=org.dicom_ae_title)
        assert assoc.is_established, name
        assert assoc.accepted_contexts[0].transfer_syntax[0] == ts, name
        status = assoc.send_c_store(ds)
        assoc.release()
        assert status.Status == 0x0000, f"{name}: {status}"
        back = dicomweb(dicom_server, org).retrieve_instance(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=(("application/dicom", "*"),)
        )
        assert back.file_meta.TransferSyntaxUID == ts, name
        assert back.PixelData == ds.PixelData, name
    assert len(worklist_uids(org)) == len(COMPRESSED)


def test_pynetdicom_echo_and_an_unknown_title(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    host, port = dicom_server.dicom_addr
    ae = AE()
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(host, port, ae_title=org.dicom_ae_title)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    rejected = ae.associate(host, port, ae_title="NOT_A_TITLE")
    assert rejected.is_rejected
    assert rejected.acceptor.primitive.diagnostic == 7  # called AE title not recognized


def stored_patient_names(srv: LightboxServer, org: Org) -> dict[str, str]:
    query = "SELECT study_instance_uid, patient_name FROM dicom_studies WHERE org_id = %s"
    if srv.backend.database_url:
        with psycopg.connect(srv.backend.database_url) as db:
            return dict(db.execute(query, (org.org_id,)).fetchall())
    with sqlite3.connect(srv.data_dir / "lightbox.db") as db:
        return dict(db.execute(query.replace("%s", "?"), (org.org_id,)).fetchall())


def test_specific_character_sets_are_decoded_into_the_index(dicom_server: LightboxServer) -> None:
    org = dicom_server.new_org()
    files = sorted(f for f in CHARSET_FILES.glob("chr*.dcm") if "StudyInstanceUID" in pydicom.dcmread(f))
    assert len(files) >= 12
    expected: dict[str, str] = {}
    stored: set[str] = set()
    for f in files:
        ds = pydicom.dcmread(f)
        ct = 'multipart/related; type="application/dicom"; boundary=b0und4ry'
        reply = stow(dicom_server, org, multipart([("application/dicom", f.read_bytes())]), ct)
        if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
            # A file whose meta names another instance than its data set is refused.
            assert reply.status_code == 409, f"{f.name}: {reply.text}"
            assert seq(reply.json(), "00081198")[0]["00081197"]["Value"][0] == 0xA900
            continue
        if ds.SOPInstanceUID in stored:
            # The same instance in another encoding: the first copy is kept, with a warning.
            assert reply.status_code == 202, f"{f.name}: {reply.text}"
            continue
        assert reply.status_code == 200, f"{f.name}: {reply.text}"
        stored.add(ds.SOPInstanceUID)
        # The index keeps a study's attributes as its first instance had them;
        # pydicom's decoding of that file is the reference.
        expected.setdefault(ds.StudyInstanceUID, str(ds.PatientName))
    names = stored_patient_names(dicom_server, org)
    assert names == expected


@pytest.fixture(scope="module")
def s3_dicom_server(backend: Backend, s3: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    env = s3.lightbox_env(S3_BUCKET, S3_PREFIX)
    srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-dicom-s3-{backend.name}"), ("--dicom-listen", "127.0.0.1:0"), env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_the_archive_on_s3_keeps_dimse_and_stow_instances(s3_dicom_server: LightboxServer, s3: SeaweedS3) -> None:
    org = s3_dicom_server.new_org()
    over_stow = fresh("CT_small.dcm")
    dicomweb(s3_dicom_server, org).store_instances([over_stow])
    over_dimse = fresh("MR_small.dcm")
    host, port = s3_dicom_server.dicom_addr
    ae = AE()
    ae.requested_contexts = StoragePresentationContexts
    assoc = ae.associate(host, port, ae_title=org.dicom_ae_title)
    assert assoc.send_c_store(over_dimse).Status == 0x0000
    assoc.release()
    keys = s3.keys(S3_BUCKET, f"{S3_PREFIX}/dicom/{org.org_id}/")
    assert len(keys) == 2, keys
    for ds in (over_stow, over_dimse):
        back = dicomweb(s3_dicom_server, org).retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert back.PixelData == ds.PixelData
    assert set(worklist_uids(org)) == {over_stow.StudyInstanceUID, over_dimse.StudyInstanceUID}
    # Nothing is left in the local spool folder.
    assert not list((s3_dicom_server.data_dir / "spool").glob("dicom-spool-*"))
