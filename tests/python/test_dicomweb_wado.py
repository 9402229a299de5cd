"""WADO-RS through the clients people use: Python's dicomweb-client for
retrieve, metadata, frames and bulk data, and raw HTTP for what OHIF's
cornerstone sends and parses. Frames are compared byte for byte with what
pydicom decodes or finds encapsulated in the same files; tenancy and bad input
are answered 404 and 4xx in the JSON error envelope, never 5xx."""

from __future__ import annotations

import time
from io import BytesIO
from urllib.parse import urlparse

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames

from conftest import Backend, LightboxServer, Org
from dicom_data import dicomweb, read, renamed
from s3server import S3_BUCKET, SeaweedS3

EXPLICIT_LE = "1.2.840.10008.1.2.1"
OHIF_FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def store(srv: LightboxServer, org: Org, datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """STOWs the datasets under fresh UIDs. (dicom_data.store leaves the file
    meta's MediaStorageSOPInstanceUID behind, which Lightbox rightly refuses.)"""
    datasets = renamed(datasets)
    for ds in datasets:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    dicomweb(srv, org).store_instances(datasets)
    return datasets


def get(srv: LightboxServer, org: Org, path: str, accept: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {org.api_key}"}
    if accept is not None:
        headers["Accept"] = accept
    return httpx.get(f"{srv.base_url}/dicomweb{path}", headers=headers, timeout=60)


def instance_path(ds: pydicom.Dataset) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def on_server(srv: LightboxServer, uri: str) -> str:
    """`uri` on the server's own address (see the metadata test)."""
    return srv.base_url + urlparse(uri).path


def cornerstone_first_part(response: httpx.Response) -> tuple[str, bytes]:
    """The first part as cornerstone's dicom-image-loader extracts it: the body
    starts with `--boundary`, the headers end at the first CRLFCRLF, the data
    ends 2 bytes before the next `--boundary`."""
    body = response.content
    assert body.startswith(b"--"), body[:40]
    boundary = body[: body.index(b"\r\n")]
    header_end = body.index(b"\r\n\r\n")
    headers = body[:header_end].decode()
    assert "\r\nContent-Type: " in headers, headers
    content_type = headers.split("\r\nContent-Type: ", 1)[1].split("\r\n")[0]
    data_start = header_end + 4
    data_end = body.index(boundary, data_start) - 2
    return content_type, body[data_start:data_end]


def native_le_frames(ds: pydicom.Dataset) -> list[bytes]:
    """Each frame's samples as little-endian bytes, from pydicom's decoding."""
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    array = ds.pixel_array
    if frames == 1:
        array = array[np.newaxis, ...]
    dtype = array.dtype.newbyteorder("<")
    return [array[i].astype(dtype).tobytes() for i in range(frames)]


def encapsulated_frames(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(getattr(ds, "NumberOfFrames", 1) or 1)))


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) >= {"type", "message"}, body
    return body


# --- metadata and bulk data -------------------------------------------------


def test_series_metadata_names_pixel_data_by_a_bulk_data_uri_that_resolves(server: LightboxServer) -> None:
    org = server.new_org()
    ct = read("CT_small.dcm")
    # A private binary value larger than what is kept inline (1 KiB).
    ct.add_new(0x00090010, "LO", "LIGHTBOX TEST")
    blob = bytes(range(256)) * 12
    ct.add_new(0x00091010, "OB", blob)
    mr = read("MR_small.dcm")
    mr.StudyInstanceUID = ct.StudyInstanceUID
    [ct, mr] = store(server, org, [ct, mr])
    client = dicomweb(server, org)

    # BulkDataURIs are absolute, on the host the client named (httpx sends
    # host:port; dicomweb-client drops the port from Host, so behind it they
    # are resolved against the server's own address).
    response = get(server, org, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata", "application/dicom+json")
    assert response.headers["content-type"] == "application/dicom+json"
    [meta] = response.json()
    pixel_uri = meta["7FE00010"]["BulkDataURI"]
    assert pixel_uri == f"{server.base_url}/dicomweb{instance_path(ct)}/bulk/7FE00010"
    assert client.retrieve_bulkdata(pixel_uri) == [ct.PixelData]

    [meta] = client.retrieve_series_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert meta["00080018"]["Value"] == [ct.SOPInstanceUID]
    assert meta["00100010"]["Value"][0]["Alphabetic"] == str(ct.PatientName)
    assert "InlineBinary" not in meta["7FE00010"]
    private = meta["00091010"]
    assert "InlineBinary" not in private
    assert client.retrieve_bulkdata(on_server(server, private["BulkDataURI"])) == [blob]
    # Only small binary values stay inline (base64 of at most 1 KiB).
    assert all(len(element.get("InlineBinary", "")) <= 1024 for element in meta.values())

    study = client.retrieve_study_metadata(ct.StudyInstanceUID)
    assert sorted(m["00080018"]["Value"][0] for m in study) == sorted([ct.SOPInstanceUID, mr.SOPInstanceUID])
    assert all("BulkDataURI" in m["7FE00010"] for m in study)
    one = client.retrieve_instance_metadata(mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID)
    assert one["00080018"]["Value"] == [mr.SOPInstanceUID]
    assert client.retrieve_bulkdata(on_server(server, one["7FE00010"]["BulkDataURI"])) == [mr.PixelData]

    # pydicom reads the metadata back as a data set.
    ds = pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda tag, vr, uri: b"")
    assert ds.SOPInstanceUID == ct.SOPInstanceUID


def series_metadata(srv: LightboxServer, org: Org, ds: pydicom.Dataset, host: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {org.api_key}", "Accept": "application/dicom+json"}
    if host is not None:
        headers["Host"] = host
    path = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata"
    response = httpx.get(srv.base_url + path, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response


def kept_series_documents(srv: LightboxServer) -> list:
    return sorted((srv.data_dir / "blobs" / "cache" / "series-metadata").rglob("*.json"))


def sop_uids(metadata: list[dict]) -> list[str]:
    return sorted(m["00080018"]["Value"][0] for m in metadata)


def test_series_metadata_read_again_is_the_same_and_follows_new_instances(server: LightboxServer) -> None:
    """A series' metadata is kept whole after it is first read; reading it
    again gives the same answer, on whatever host name the server is reached
    by, and an instance that joins the series is in the next answer."""
    org = server.new_org()
    [first] = store(server, org, [read("CT_small.dcm")])
    built = series_metadata(server, org, first)
    [meta] = built.json()
    assert meta["00080018"]["Value"] == [first.SOPInstanceUID]

    for _ in range(100):  # the copy is written after the answer
        if any(first.SeriesInstanceUID in p.name for p in kept_series_documents(server)):
            break
        time.sleep(0.05)
    [kept] = [p for p in kept_series_documents(server) if first.SeriesInstanceUID in p.name]
    assert series_metadata(server, org, first).content == built.content
    elsewhere = series_metadata(server, org, first, host="viewer.example:8443").json()
    assert elsewhere[0]["7FE00010"]["BulkDataURI"] == (
        f"http://viewer.example:8443/dicomweb{instance_path(first)}/bulk/7FE00010"
    )

    second = read("CT_small.dcm")
    second.StudyInstanceUID, second.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    second.InstanceNumber = 2
    dicomweb(server, org).store_instances([second])
    assert sop_uids(series_metadata(server, org, first).json()) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])

    # A kept copy cut short (a disk that lost its tail) is never served.
    for _ in range(100):
        if b" 2 " in kept.read_bytes()[:80]:
            break
        time.sleep(0.05)
    kept.write_bytes(kept.read_bytes()[:-10])
    assert sop_uids(series_metadata(server, org, first).json()) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])

    # Another organization's key finds nothing, kept copy or not.
    other = server.new_org()
    assert get(server, other, f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/metadata",
               "application/dicom+json").status_code == 404


# --- frames -----------------------------------------------------------------


def test_frames_equal_what_pydicom_decodes_or_finds_encapsulated(server: LightboxServer) -> None:
    org = server.new_org()
    ct, mr_be, rle, jpeg = store(
        server,
        org,
        [read("CT_small.dcm"), read("MR_small_bigendian.dcm"), read("SC_rgb_rle_2frame.dcm"), read("examples_ybr_color.dcm")],
    )
    client = dicomweb(server, org)

    def frames(ds: pydicom.Dataset, numbers: list[int], ts: str) -> list[bytes]:
        return client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, numbers, media_types=(("application/octet-stream", ts),)
        )

    # Native little endian: the stored bytes.
    assert frames(ct, [1], "*") == native_le_frames(ct)
    assert frames(ct, [1], EXPLICIT_LE) == native_le_frames(ct)
    # Big endian is served little endian.
    assert mr_be.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    assert frames(mr_be, [1], "*") == native_le_frames(mr_be)
    # Multi-frame RLE: as stored, the encapsulated frames; uncompressed, pydicom's decoding.
    assert frames(rle, [2, 1], "*") == list(reversed(encapsulated_frames(rle)))
    assert frames(rle, [1, 2], EXPLICIT_LE) == native_le_frames(rle)
    # Multi-frame JPEG: the stored fragments, any subset, in the order asked.
    stored = encapsulated_frames(jpeg)
    assert len(stored) == 30
    assert frames(jpeg, [1, 30, 7], "*") == [stored[0], stored[29], stored[6]]
    # Decoded JPEG is lossy-decoder dependent: check its size only.
    [decoded] = frames(jpeg, [3], EXPLICIT_LE)
    assert len(decoded) == jpeg.Rows * jpeg.Columns * 3


def test_multi_frame_native_frames_are_offset_by_their_size_in_either_byte_order(server: LightboxServer) -> None:
    org = server.new_org()
    client = dicomweb(server, org)
    # rtdose: 15 frames of 32-bit samples; its _expb twin is big endian (stored apart: they share UIDs).
    for name in ("rtdose.dcm", "rtdose_expb.dcm"):
        [ds] = store(server, org, [read(name)])
        expected = native_le_frames(ds)
        assert len(expected) == 15
        got = client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [15, 1, 8], media_types=(("application/octet-stream", "*"),)
        )
        assert got == [expected[14], expected[0], expected[7]], name
        # All of Pixel Data as bulk data: the frames one after another, little endian.
        [value] = client.retrieve_bulkdata(f"{server.base_url}/dicomweb{instance_path(ds)}/bulk/7FE00010")
        assert value == b"".join(expected), name


def test_ohif_frame_requests_pass_cornerstones_multipart_parser(server: LightboxServer) -> None:
    org = server.new_org()
    ct, jpeg = store(server, org, [read("CT_small.dcm"), read("examples_ybr_color.dcm")])
    response = get(server, org, instance_path(ct) + "/frames/1", OHIF_FRAMES_ACCEPT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/related")
    content_type, data = cornerstone_first_part(response)
    assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert data == native_le_frames(ct)[0]

    response = get(server, org, instance_path(jpeg) + "/frames/5", OHIF_FRAMES_ACCEPT)
    content_type, data = cornerstone_first_part(response)
    assert content_type == f"application/octet-stream; transfer-syntax={jpeg.file_meta.TransferSyntaxUID}"
    assert data == encapsulated_frames(jpeg)[4]
    # The compressed frame's own media type works too, bare for one frame.
    response = get(server, org, instance_path(jpeg) + "/frames/5", "image/jpeg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/jpeg")
    assert response.content == encapsulated_frames(jpeg)[4]


# --- retrieve ---------------------------------------------------------------


def test_study_series_and_instance_retrieve_return_the_stored_files(server: LightboxServer) -> None:
    org = server.new_org()
    ct, mr = read("CT_small.dcm"), read("MR_small.dcm")
    mr.StudyInstanceUID = ct.StudyInstanceUID
    ct, mr = store(server, org, [ct, mr])
    client = dicomweb(server, org)
    study = client.retrieve_study(ct.StudyInstanceUID)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted([ct.SOPInstanceUID, mr.SOPInstanceUID])
    by_uid = {ds.SOPInstanceUID: ds for ds in study}
    assert by_uid[ct.SOPInstanceUID].PixelData == ct.PixelData
    assert by_uid[mr.SOPInstanceUID].PixelData == mr.PixelData
    [series] = client.retrieve_series(mr.StudyInstanceUID, mr.SeriesInstanceUID)
    assert series.SOPInstanceUID == mr.SOPInstanceUID
    # Quoted, unquoted, `*/*` and no Accept all get the stored file.
    for accept in (None, "*/*", 'multipart/related; type="application/dicom"', "multipart/related;type=application/dicom;transfer-syntax=*"):
        response = get(server, org, instance_path(ct), accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith("multipart/related")


def test_retrieve_transcodes_what_it_can_decode_and_refuses_the_rest(server: LightboxServer) -> None:
    org = server.new_org()
    rle, big, ct = store(server, org, [read("SC_rgb_rle_2frame.dcm"), read("MR_small_bigendian.dcm"), read("CT_small.dcm")])
    # A JPEG 2000 instance in the CT's study (MR_small's variants share their
    # UIDs, so each is stored under fresh ones of its own).
    [j2k] = renamed([read("MR_small_jp2klossless.dcm")])
    j2k.StudyInstanceUID = ct.StudyInstanceUID
    j2k.file_meta.MediaStorageSOPInstanceUID = j2k.SOPInstanceUID
    client = dicomweb(server, org)
    client.store_instances([j2k])

    def retrieve(ds: pydicom.Dataset, ts: str) -> pydicom.Dataset:
        return client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=(("application/dicom", ts),))

    for ds in (rle, big):
        back = retrieve(ds, EXPLICIT_LE)
        assert back.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert np.array_equal(back.pixel_array, ds.pixel_array)
        assert back.SOPInstanceUID == ds.SOPInstanceUID
    # dicomweb-client will not ask for Deflated: ask over plain HTTP.
    response = get(server, org, instance_path(ct), "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1.99")
    assert response.status_code == 200, response.text
    part_type, part = cornerstone_first_part(response)
    assert part_type == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1.99"
    deflated = pydicom.dcmread(BytesIO(part))
    assert deflated.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    assert deflated.PixelData == ct.PixelData
    # Asking for the stored syntax by name is the stored file.
    assert retrieve(j2k, j2k.file_meta.TransferSyntaxUID).PixelData == j2k.PixelData
    # JPEG 2000 cannot be decoded here, and nothing is re-encoded lossy: 406.
    for ts in (EXPLICIT_LE,):
        response = get(server, org, instance_path(j2k), f'multipart/related; type="application/dicom"; transfer-syntax={ts}')
        assert response.status_code == 406, response.text
        assert error_of(response)["type"] == "not_acceptable"
    response = get(server, org, instance_path(ct), "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50")
    assert response.status_code == 406
    # A study with one undecodable instance cannot be served uncompressed as a whole,
    # but as stored it can.
    response = get(server, org, f"/studies/{ct.StudyInstanceUID}", f"multipart/related; type=application/dicom; transfer-syntax={EXPLICIT_LE}")
    assert response.status_code == 406
    assert len(client.retrieve_study(ct.StudyInstanceUID)) == 2
    # The client's fallback range is taken when the first cannot be met.
    response = get(
        server,
        org,
        instance_path(j2k),
        f"multipart/related; type=application/dicom; transfer-syntax={EXPLICIT_LE}, multipart/related; type=application/dicom; q=0.5",
    )
    assert response.status_code == 200


# --- tenancy and bad input --------------------------------------------------


def test_another_organizations_key_gets_404_everywhere(server: LightboxServer) -> None:
    org, other = server.new_org(), server.new_org()
    [ct] = store(server, org, [read("CT_small.dcm")])
    inst = instance_path(ct)
    paths = [
        f"/studies/{ct.StudyInstanceUID}",
        f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}",
        inst,
        f"/studies/{ct.StudyInstanceUID}/metadata",
        f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata",
        inst + "/metadata",
        inst + "/frames/1",
        inst + "/bulk/7FE00010",
    ]
    for path in paths:
        assert get(server, org, path).status_code == 200, path
        response = get(server, other, path)
        assert response.status_code == 404, (path, response.status_code)
        assert error_of(response)["type"] == "not_found"
        assert ct.SOPInstanceUID.encode() not in response.content or "no " in response.text
    # The right instance under the wrong series or study is not found either.
    assert get(server, org, f"/studies/{ct.StudyInstanceUID}/series/1.2.3/instances/{ct.SOPInstanceUID}").status_code == 404
    assert get(server, org, f"/studies/1.2.3/series/{ct.SeriesInstanceUID}/metadata").status_code == 404


@pytest.mark.parametrize(
    ("suffix", "accept", "status"),
    [
        ("/frames/0", None, 400),
        ("/frames/2", None, 400),  # CT_small has one frame
        ("/frames/1,x", None, 400),
        ("/frames/" + ",".join(["1"] * 10001), None, 400),
        ("/bulk/7FE0001", None, 400),
        ("/bulk/zzzzzzzz", None, 400),
        ("/bulk/00991010", None, 404),
        ("/frames/1", "image/png", 406),
        ("/frames/1", "multipart/related; type=image/jpeg", 406),
        ("/metadata", "application/dicom+xml", 406),
        ("", "application/json", 406),
    ],
)
def test_bad_requests_get_clear_4xx(server: LightboxServer, suffix: str, accept: str | None, status: int) -> None:
    org = server.new_org()
    [ct] = store(server, org, [read("CT_small.dcm")])
    response = get(server, org, instance_path(ct) + suffix, accept)
    assert response.status_code == status, (suffix, accept, response.status_code, response.text[:200])
    assert error_of(response)["message"]


@pytest.mark.parametrize("path", ["/studies/abc/metadata", "/studies/1..2", "/studies/1.2/series/x/instances/1.2/frames/1", "/studies/" + "1" * 65])
def test_malformed_uids_are_400(server: LightboxServer, path: str) -> None:
    org = server.new_org()
    response = get(server, org, path)
    assert response.status_code == 400, (path, response.text)
    assert error_of(response)["type"] == "invalid_request"


def test_a_deflated_instance_serves_frames_and_pixel_data_inflated(server: LightboxServer) -> None:
    org = server.new_org()
    [dfl] = store(server, org, [read("image_dfl.dcm")])
    assert dfl.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    client = dicomweb(server, org)
    got = client.retrieve_instance_frames(
        dfl.StudyInstanceUID, dfl.SeriesInstanceUID, dfl.SOPInstanceUID, [1], media_types=(("application/octet-stream", "*"),)
    )
    assert got == native_le_frames(dfl)
    back = client.retrieve_instance(dfl.StudyInstanceUID, dfl.SeriesInstanceUID, dfl.SOPInstanceUID)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    assert back.PixelData == dfl.PixelData


@pytest.fixture(scope="module")
def s3_server(backend: Backend, s3: SeaweedS3, tmp_path_factory: pytest.TempPathFactory):
    srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-wado-s3-{backend.name}"), (), s3.lightbox_env(S3_BUCKET, "wado"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_frames_and_bulk_data_are_ranged_reads_on_s3_too(s3_server: LightboxServer, s3: SeaweedS3) -> None:
    org = s3_server.new_org()
    ct, jpeg = store(s3_server, org, [read("CT_small.dcm"), read("examples_ybr_color.dcm")])
    client = dicomweb(s3_server, org)
    assert client.retrieve_instance_frames(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, [1], media_types=(("application/octet-stream", "*"),)
    ) == native_le_frames(ct)
    stored = encapsulated_frames(jpeg)
    assert client.retrieve_instance_frames(
        jpeg.StudyInstanceUID, jpeg.SeriesInstanceUID, jpeg.SOPInstanceUID, [2, 29], media_types=(("application/octet-stream", "*"),)
    ) == [stored[1], stored[28]]
    [meta] = client.retrieve_series_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert client.retrieve_bulkdata(on_server(s3_server, meta["7FE00010"]["BulkDataURI"])) == [ct.PixelData]
    # Read again: the series' metadata kept in the bucket after the first read.
    kept = f"wado/cache/series-metadata/{org.org_id}/{ct.SeriesInstanceUID}.json"
    for _ in range(100):
        if kept in s3.keys(S3_BUCKET, kept):
            break
        time.sleep(0.05)
    assert kept in s3.keys(S3_BUCKET, kept)
    assert client.retrieve_series_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID) == [meta]
    [back] = client.retrieve_series(jpeg.StudyInstanceUID, jpeg.SeriesInstanceUID)
    assert back.PixelData == jpeg.PixelData
