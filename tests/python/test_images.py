"""Pre-encounter Images through the official candidhealth 1.37.0 SDK, on SQLite
and PostgreSQL (local blob backend), and on a real S3-compatible server that
verifies SigV4 signatures and presigned-URL expiry (SeaweedFS, started here;
see s3server.py) for the S3 backend's presigned URLs."""

from __future__ import annotations

import re
import secrets
import socket
import time
import uuid
from typing import Iterator, Optional
from urllib.parse import urlsplit

import avara
import httpx
import pytest
from candid import CandidApiClient
from candid.core.api_error import ApiError
from candid.resources.pre_encounter.resources.common import (
    NotFoundError,
    SortDirection,
    VersionConflictError,
)
from candid.resources.pre_encounter.resources.images.resources.v_1 import (
    CoverageAssociation,
    CoverageImageSide,
    Image,
    ImageSortField,
    ImageStatus,
    MutableImage,
    PatientAssociation,
)

from conftest import Backend, LightboxServer, Org
from s3server import S3_BUCKET, SeaweedS3

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def png_of(size: int, tag: int = 0) -> bytes:
    return PNG + bytes([tag]) * max(0, size - len(PNG))


def mutable(
    file_name: str = "card.png",
    *,
    display_name: str | None = None,
    file_type: str = "image/png",
    status: ImageStatus = ImageStatus.PENDING,
    coverage: CoverageAssociation | None = None,
    patient: PatientAssociation | None = None,
) -> MutableImage:
    fields = dict(
        file_name=file_name,
        display_name=display_name or f"Display {file_name}",
        file_type=file_type,
        status=status,
    )
    # Optional fields the caller leaves out stay unset, as the SDK sends them.
    if coverage is not None:
        fields["coverage"] = coverage
    if patient is not None:
        fields["patient"] = patient
    return MutableImage(**fields)


def as_fields(image: Image, **changes) -> MutableImage:
    """The mutable fields of `image`, with `changes`: updates are full replaces."""
    fields = dict(
        file_name=image.file_name,
        display_name=image.display_name,
        file_type=image.file_type,
        status=image.status,
        coverage=image.coverage,
        patient=image.patient,
    )
    fields.update(changes)
    return MutableImage(**fields)


def put(url: str, data: bytes) -> httpx.Response:
    return httpx.put(url, content=data, headers={"content-type": "application/octet-stream"}, timeout=60)


def read(url: str) -> httpx.Response:
    return httpx.get(url, timeout=60)


@pytest.fixture
def images(org: Org) -> CandidApiClient:
    return org.images_client()


@pytest.fixture
def other_images(other_org: Org) -> CandidApiClient:
    return other_org.images_client()


# --------------------------------------------------------------------------- auth


def test_the_sdk_fetches_one_token_and_uses_it(server: LightboxServer, org: Org) -> None:
    requests: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [requests.append]})
    client = org.images_client(httpx_client=http)
    # The token is fetched lazily and cached: it lives hours, not seconds.
    for _ in range(3):
        assert client.pre_encounter.images.v_1.get_multi() == []
    assert [r.url.path for r in requests] == ["/images/v1"] * 3

    token = client.auth.default.get_token(client_id=org.client_id, client_secret=org.client_secret)
    assert token.token_type == "Bearer"
    assert token.expires_in == 5 * 3600

    # The token endpoint also takes a form body (Candid's docs), and nothing else.
    form = httpx.post(
        f"{server.base_url}/api/auth/v2/token",
        data={"client_id": org.client_id, "client_secret": org.client_secret},
    )
    assert form.status_code == 200
    assert form.json()["token_type"] == "Bearer"
    text = httpx.post(f"{server.base_url}/api/auth/v2/token", content=b"x", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    assert text.json()["errorName"] == "InvalidContentTypeError"


def test_wrong_credentials_and_foreign_keys_are_refused(server: LightboxServer, org: Org) -> None:
    wrong = server.candid_client(org.client_id, "not-the-secret")
    with pytest.raises(ApiError) as e:
        wrong.pre_encounter.images.v_1.get_multi()
    assert e.value.status_code == 401
    assert e.value.body["errorName"] == "UnauthorizedError"

    # A Viewer API key is no Images token …
    keyed = CandidApiClient(environment=server.candid_environment(), token=lambda: org.api_key)
    with pytest.raises(ApiError) as e:
        keyed.pre_encounter.images.v_1.get_multi()
    assert e.value.status_code == 401
    # … and an Images token is no Viewer API key.
    token = org.images_client().auth.default.get_token(
        client_id=org.client_id, client_secret=org.client_secret
    )
    viewer = server.client(token.access_token)
    with pytest.raises(avara.AuthenticationError):
        viewer.viewer.studies.list()
    viewer.close()


# --------------------------------------------------------------------------- records and bytes


def test_create_upload_update_get_and_read_back(images: CandidApiClient, org: Org) -> None:
    api = images.pre_encounter.images.v_1
    coverage = uuid.uuid4()
    created = api.create(
        request=mutable(
            "front.png",
            coverage=CoverageAssociation(id=coverage, side=CoverageImageSide.FRONT),
            patient=PatientAssociation(id="pat-1", notes="scanned at the desk"),
        )
    )
    assert created.version == 1
    assert created.status == ImageStatus.PENDING
    assert created.deactivated is False
    assert created.organization_id == org.org_id
    assert created.updating_user_id == org.client_id
    assert created.coverage == CoverageAssociation(id=coverage, side=CoverageImageSide.FRONT)
    assert created.patient.notes == "scanned at the desk"
    assert created.updated_at.tzinfo is not None

    data = png_of(200_000, 7)
    assert put(created.signed_url, data).status_code == 200
    # One upload per link.
    again = put(created.signed_url, png_of(100))
    assert again.status_code == 409

    done = api.update(id=created.id, version="1", request=as_fields(created, status=ImageStatus.UPLOADED))
    assert done.version == 2
    assert done.status == ImageStatus.UPLOADED
    assert done.updated_at >= created.updated_at

    got = api.get(id=created.id)
    assert got.version == 2
    assert got.model_dump(exclude={"signed_url"}) == done.model_dump(exclude={"signed_url"})
    back = read(got.signed_url)
    assert back.status_code == 200
    assert back.headers["content-type"] == "image/png"
    assert back.content == data


def test_uploads_are_checked_for_type_and_must_precede_uploaded(images: CandidApiClient) -> None:
    api = images.pre_encounter.images.v_1
    image = api.create(request=mutable("x.png"))
    # Marking it UPLOADED without bytes is refused (not a declared SDK error: ApiError).
    with pytest.raises(ApiError) as e:
        api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
    assert e.value.status_code == 422
    # Bytes that are not what file_type says are refused, and the link stays usable.
    wrong = put(image.signed_url, JPEG)
    assert wrong.status_code == 415
    assert wrong.json()["errorName"] == "InvalidContentTypeError"
    assert put(image.signed_url, PNG).status_code == 200
    assert read(api.get(id=image.id).signed_url).content == PNG


def test_oversize_uploads_get_413_in_the_envelope(start_server) -> None:
    srv = start_server("--max-upload-bytes", "4096")
    org = srv.new_org()
    api = org.images_client().pre_encounter.images.v_1
    image = api.create(request=mutable("big.png"))
    # Several MiB: the answer must arrive even though the client sends it all first.
    too_big = put(image.signed_url, png_of(5 * 1024 * 1024))
    assert too_big.status_code == 413
    assert too_big.json()["errorName"] == "PayloadTooLargeError"
    assert put(image.signed_url, png_of(4096)).status_code == 200
    org.close()


def test_get_multi_filters_and_sorts(images: CandidApiClient) -> None:
    api = images.pre_encounter.images.v_1
    coverage = uuid.uuid4()
    specs = [
        ("c.png", "image/png", "pat-1", "left"),
        ("a.jpg", "image/jpeg", "pat-1", None),
        ("b.png", "image/png", "pat-2", "left"),
    ]
    for name, file_type, patient, notes in specs:
        api.create(request=mutable(name, file_type=file_type, patient=PatientAssociation(id=patient, notes=notes)))
        time.sleep(0.005)
    api.create(request=mutable("card.png", coverage=CoverageAssociation(id=coverage, side=CoverageImageSide.BACK)))
    hidden = api.create(request=mutable("hidden.png"))
    api.deactivate(id=hidden.id, version="1")

    def names(images: list[Image]) -> list[str]:
        return [i.file_name for i in images]

    assert names(api.get_multi()) == ["card.png", "b.png", "a.jpg", "c.png"]
    assert names(api.get_multi(sort_direction=SortDirection.ASC)) == ["c.png", "a.jpg", "b.png", "card.png"]
    assert names(api.get_multi(sort_field=ImageSortField.FILE_NAME, sort_direction=SortDirection.ASC)) == [
        "a.jpg", "b.png", "c.png", "card.png",
    ]
    assert names(api.get_multi(sort_field=ImageSortField.FILE_NAME, sort_direction=SortDirection.DESC)) == [
        "card.png", "c.png", "b.png", "a.jpg",
    ]
    assert names(api.get_multi(patient_id="pat-1")) == ["a.jpg", "c.png"]
    assert names(api.get_multi(file_type="image/png", patient_notes="left")) == ["b.png", "c.png"]
    assert names(api.get_multi(coverage_id=str(coverage))) == ["card.png"]
    assert api.get_multi(patient_id="nobody") == []


def test_versions_and_conflicts(images: CandidApiClient) -> None:
    api = images.pre_encounter.images.v_1
    coverage = uuid.uuid4()
    front = CoverageAssociation(id=coverage, side=CoverageImageSide.FRONT)
    image = api.create(request=mutable("front.png", coverage=front))
    v2 = api.update(id=image.id, version="1", request=as_fields(image, display_name="renamed"))
    assert v2.version == 2 and v2.display_name == "renamed"

    with pytest.raises(VersionConflictError) as e:
        api.update(id=image.id, version="1", request=as_fields(image, display_name="stale"))
    assert e.value.body.latest_version == 2
    with pytest.raises(VersionConflictError) as e:
        api.deactivate(id=image.id, version="1")
    assert e.value.body.latest_version == 2
    # A second active FRONT for the coverage.
    with pytest.raises(VersionConflictError):
        api.create(request=mutable("front-2.png", coverage=front))
    # Unknown ids.
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        api.get(id=missing)
    with pytest.raises(NotFoundError):
        api.update(id=missing, version="1", request=mutable())
    with pytest.raises(NotFoundError):
        api.deactivate(id=missing, version="1")
    assert api.get(id=image.id).display_name == "renamed"


def test_deactivate_hides_from_search_but_not_get(images: CandidApiClient) -> None:
    api = images.pre_encounter.images.v_1
    coverage = uuid.uuid4()
    front = CoverageAssociation(id=coverage, side=CoverageImageSide.FRONT)
    image = api.create(request=mutable("front.png", coverage=front))
    assert put(image.signed_url, PNG).status_code == 200
    assert api.deactivate(id=image.id, version="1") is None

    gone = api.get(id=image.id)
    assert gone.deactivated is True
    assert gone.version == 2
    assert read(gone.signed_url).content == PNG
    assert api.get_multi(coverage_id=str(coverage)) == []
    # The side is free again.
    replacement = api.create(request=mutable("front-new.png", coverage=front))
    assert [i.id for i in api.get_multi(coverage_id=str(coverage))] == [replacement.id]


def test_organizations_are_isolated(images: CandidApiClient, other_images: CandidApiClient) -> None:
    mine, theirs = images.pre_encounter.images.v_1, other_images.pre_encounter.images.v_1
    image = mine.create(request=mutable("private.png", patient=PatientAssociation(id="pat-x")))
    assert put(image.signed_url, png_of(64, 1)).status_code == 200

    with pytest.raises(NotFoundError):
        theirs.get(id=image.id)
    with pytest.raises(NotFoundError):
        theirs.update(id=image.id, version="1", request=mutable("stolen.png"))
    with pytest.raises(NotFoundError):
        theirs.deactivate(id=image.id, version="1")
    assert theirs.get_multi(patient_id="pat-x") == []
    assert theirs.get_multi() == []

    # Their links never open our object.
    own = theirs.create(request=mutable("own.png"))
    their_token = own.signed_url.split("?token=", 1)[1]
    ours = mine.get(id=image.id).signed_url.split("?token=", 1)[0]
    assert read(f"{ours}?token={their_token}").status_code == 403
    assert put(f"{ours}?token={their_token}", PNG).status_code == 403

    after = mine.get(id=image.id)
    assert after.version == 1 and after.deactivated is False
    assert read(after.signed_url).content == png_of(64, 1)


# --------------------------------------------------------------------------- S3 backend

S3_PREFIX = "tenant-a/images"


def s3_env(s3: SeaweedS3, prefix: str = S3_PREFIX) -> dict[str, str]:
    return s3.lightbox_env(S3_BUCKET, prefix)


@pytest.fixture(scope="session")
def s3_server(backend: Backend, s3: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    """Lightbox with its image bytes in the S3 bucket (standard AWS_* settings)."""
    srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-s3-{backend.name}"), extra_env=s3_env(s3))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_s3_presigned_upload_and_read(s3_server: LightboxServer, s3: SeaweedS3) -> None:
    org = s3_server.new_org()
    api = org.images_client().pre_encounter.images.v_1
    image = api.create(request=mutable("s3.png"))
    # A real S3 presigned PUT on the bucket's endpoint, not a Lightbox link.
    assert image.signed_url.startswith(f"{s3.endpoint}/{S3_BUCKET}/{S3_PREFIX}/{org.org_id}/{image.id}/")
    assert "X-Amz-Signature=" in image.signed_url
    # Without uploaded bytes, UPLOADED is refused.
    with pytest.raises(ApiError) as e:
        api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
    assert e.value.status_code == 422

    data = png_of(300_000, 3)
    uploaded = put(image.signed_url, data)
    assert uploaded.status_code == 200, uploaded.text
    done = api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
    assert done.version == 2
    assert "X-Amz-Signature=" in done.signed_url
    assert done.signed_url != image.signed_url
    back = read(api.get(id=image.id).signed_url)
    assert back.status_code == 200
    assert back.content == data
    # The verified object is the only one left: the upload object was moved.
    keys = s3.keys(S3_BUCKET, f"{S3_PREFIX}/{org.org_id}/{image.id}/")
    assert len(keys) == 1 and "upload-" not in keys[0], keys
    org.close()


def test_s3_uploads_are_verified_before_they_become_readable(s3_server: LightboxServer, s3: SeaweedS3) -> None:
    org = s3_server.new_org()
    api = org.images_client().pre_encounter.images.v_1
    image = api.create(request=mutable("claims-png.png"))
    assert put(image.signed_url, JPEG).status_code == 200  # S3 takes anything …
    with pytest.raises(ApiError) as e:  # … Lightbox checks it before anyone can read it.
        api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
    assert e.value.status_code == 415
    assert e.value.body["errorName"] == "InvalidContentTypeError"
    assert s3.keys(S3_BUCKET, f"{S3_PREFIX}/{org.org_id}/{image.id}/") == []
    still = api.get(id=image.id)
    assert still.version == 1 and still.status == ImageStatus.PENDING
    # The client can upload again, correctly this time.
    assert put(still.signed_url, PNG).status_code == 200
    done = api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
    assert read(done.signed_url).content == PNG

    # Another organization cannot reach it through Lightbox.
    other = s3_server.new_org()
    with pytest.raises(NotFoundError):
        other.images_client().pre_encounter.images.v_1.get(id=image.id)
    org.close()
    other.close()


def test_s3_oversize_uploads_are_refused(backend: Backend, s3: SeaweedS3, tmp_path_factory) -> None:
    env = s3_env(s3, f"small-{secrets.token_hex(4)}")
    srv = LightboxServer(backend, tmp_path_factory.mktemp("lightbox-s3-small"), ("--max-upload-bytes", "1024"), env)
    srv.start()
    try:
        org = srv.new_org()
        api = org.images_client().pre_encounter.images.v_1
        image = api.create(request=mutable("big.png"))
        assert put(image.signed_url, png_of(4096)).status_code == 200
        with pytest.raises(ApiError) as e:
            api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
        assert e.value.status_code == 413
        assert e.value.body["errorName"] == "PayloadTooLargeError"
        assert api.get(id=image.id).version == 1
    finally:
        srv.stop()


def _signature(url: str) -> str:
    return re.search(r"X-Amz-Signature=([0-9a-f]{64})", url).group(1)


def _flipped(url: str) -> str:
    """`url` with the last digit of its signature changed."""
    sig = _signature(url)
    return url.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1"))


def test_s3_refuses_tampered_retargeted_and_expired_presigned_urls(
    s3_server: LightboxServer, s3: SeaweedS3, backend: Backend, tmp_path_factory
) -> None:
    """What the local backend refuses with 403 (crates/lightbox/tests/images.rs,
    `signed_urls_are_bound_to_their_object_and_expire`), S3 refuses too: the
    bucket checks the signature Lightbox made, so no URL can be bent to another
    object, another method or a longer life."""
    org = s3_server.new_org()
    api = org.images_client().pre_encounter.images.v_1
    a = api.create(request=mutable("a.png"))
    b = api.create(request=mutable("b.png"))
    mine = f"{S3_PREFIX}/{org.org_id}/"
    a_path, a_query = a.signed_url.split("?", 1)
    b_path = b.signed_url.split("?", 1)[0]
    for label, url in [
        ("signature changed", _flipped(a.signed_url)),
        ("expiry lengthened", re.sub(r"X-Amz-Expires=\d+", "X-Amz-Expires=604800", a.signed_url)),
        ("no signature", a_path),
        ("another object's path", f"{b_path}?{a_query}"),
        ("another key's signature", f"{a_path}?{a_query.replace(_signature(a.signed_url), _signature(b.signed_url))}"),
    ]:
        r = put(url, PNG)
        assert r.status_code == 403, f"{label}: {r.status_code} {r.text}"
    assert s3.keys(S3_BUCKET, mine) == [], "nothing refused was stored"
    # An upload link does not read.
    assert read(a.signed_url).status_code == 403

    # Each link still takes its own upload; the read link then reads and only reads.
    assert put(a.signed_url, PNG).status_code == 200
    done = api.update(id=a.id, version="1", request=as_fields(a, status=ImageStatus.UPLOADED))
    assert read(_flipped(done.signed_url)).status_code == 403
    assert put(done.signed_url, JPEG).status_code == 403
    assert read(done.signed_url).content == PNG
    assert put(b.signed_url, PNG).status_code == 200

    # Expired: a server whose links live two seconds (S3 signs to the second).
    srv = LightboxServer(
        backend, tmp_path_factory.mktemp("lightbox-s3-short"), ("--signed-url-ttl-secs", "2"),
        s3_env(s3, f"short-{secrets.token_hex(4)}"),
    )
    srv.start()
    try:
        org = srv.new_org()
        api = org.images_client().pre_encounter.images.v_1
        late = api.create(request=mutable("late.png"))
        time.sleep(3.5)
        r = put(late.signed_url, PNG)
        assert r.status_code == 403 and "expired" in r.text, r.text
        # A fresh link works. On a loaded machine getting and using it can
        # outlast its two seconds; one of three fresh links must get through.
        fresh = [put(api.get(id=late.id).signed_url, PNG).status_code for _ in range(3)]
        assert 200 in fresh, fresh
        org.close()
    finally:
        srv.stop()


def _cut_upload(url: str, data: bytes, sent: int) -> None:
    """Starts a PUT of `data` to `url` and drops the connection after `sent` bytes."""
    parts = urlsplit(url)
    head = (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + data[:sent])
        time.sleep(0.3)


def test_s3_unreachable_mid_upload_leaves_nothing_indexed(backend: Backend, tmp_path_factory) -> None:
    """A client whose upload is cut off, then a bucket that goes away: the image
    stays PENDING with no bytes, each step answers a clear error in time, and
    the same link works once the bucket is back."""
    s3 = SeaweedS3(tmp_path_factory.mktemp("s3-flaky"))
    s3.start()
    srv: Optional[LightboxServer] = None
    try:
        s3.create_bucket(S3_BUCKET)
        srv = LightboxServer(backend, tmp_path_factory.mktemp("lightbox-s3-flaky"), extra_env=s3_env(s3, "flaky"))
        srv.start()
        org = srv.new_org()
        api = org.images_client().pre_encounter.images.v_1
        image = api.create(request=mutable("cut.png"))
        uploaded = as_fields(image, status=ImageStatus.UPLOADED)

        # The connection drops halfway through the body: S3 keeps nothing,
        # and Lightbox will not call the image UPLOADED.
        _cut_upload(image.signed_url, png_of(200_000, 5), sent=100_000)
        assert s3.keys(S3_BUCKET, "flaky/") == []
        with pytest.raises(ApiError) as e:
            api.update(id=image.id, version="1", request=uploaded)
        assert e.value.status_code == 422

        # The bucket goes away: a clear 503 in the Images envelope, soon.
        s3.stop()
        started = time.monotonic()
        with pytest.raises(ApiError) as e:
            api.update(id=image.id, version="1", request=uploaded)
        assert time.monotonic() - started < 20
        assert e.value.status_code == 503
        assert e.value.body["errorName"] == "InternalError"
        assert "storage is unavailable" in e.value.body["content"]["message"]
        ready = httpx.get(f"{srv.base_url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["blobStore"] == "failed"
        # Nothing was indexed: still version 1, PENDING, in get and search alike.
        still = api.get(id=image.id)
        assert still.version == 1 and still.status == ImageStatus.PENDING
        assert [(i.id, i.status) for i in api.get_multi()] == [(image.id, ImageStatus.PENDING)]

        # The bucket is back: the same upload link works, and so does UPLOADED.
        s3.start()
        assert put(image.signed_url, PNG).status_code == 200
        done = api.update(id=image.id, version="1", request=uploaded)
        assert done.version == 2 and done.status == ImageStatus.UPLOADED
        assert read(done.signed_url).content == PNG
        org.close()
    finally:
        if srv is not None:
            srv.stop()
        s3.stop()
