"""Partner access when a link opens, on SQLite and PostgreSQL: a study link
for a study with no images asks the partner (`study.access_requested`), an
ephemeral-session link always does (`ephemeral.access_requested`), and the
files the partner's answer points to are fetched into the archive.

The partner is test_webhooks' receiver: it verifies every call with the
avara SDK's `webhooks.unwrap(body, headers=..., key=secret)` and validates
it with the event's own pydantic model (`model_validate`), then answers what
each scenario scripts. The partner's files are served by a second loopback
server standing in for presigned S3 URLs."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import pydicom
import pytest
from avara.types.ephemeral_access_requested_event import EphemeralAccessRequestedEvent
from pydicom.uid import generate_uid

import test_webhooks
from conftest import LIGHTBOX_BIN, Backend, LightboxServer, Org, new_uid
from dicom_data import dicomweb, read
from test_webhooks import WEBHOOK_KEY, Receiver, create_study, create_webhook, receiver  # noqa: F401 - the fixture

# The receiver validates each request with its event's SDK model.
test_webhooks.EVENT_MODELS["ephemeral.access_requested"] = EphemeralAccessRequestedEvent

MAX_INSTANCE_BYTES = 2_000_000


@pytest.fixture(scope="module")
def partnered(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    """A server whose partners are on loopback and have 1 s to answer; an
    instance may be at most 2 MB."""
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-{backend.name}-partner-access"),
        ("--webhook-allow-private", "--webhook-sync-timeout-secs", "1",
         "--dicom-max-instance-bytes", str(MAX_INSTANCE_BYTES)),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Files:
    """The partner's file store: `/f/<name>` serves bytes, `/r/<name>`
    redirects there, `/slow/<name>` waits 5 s first, anything else is 404."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.hits: list[str] = []
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                files.hits.append(self.path)
                kind, _, name = self.path.strip("/").partition("/")
                if kind == "r":
                    self.send_response(302)
                    self.send_header("location", f"/f/{name}")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if kind == "slow":
                    time.sleep(5)
                body = files.blobs.get(name)
                if body is None:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/dicom")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def add(self, name: str, body: bytes) -> str:
        self.blobs[name] = body
        return f"{self.base}/f/{name}"


@pytest.fixture
def files() -> Iterator[Files]:
    f = Files()
    yield f
    f.http.shutdown()


def part10(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def instances_of(study_uid: str) -> list[pydicom.Dataset]:
    """Two real instances (CT and MR, one series each) under `study_uid`."""
    datasets = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ds = read(name)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        datasets.append(ds)
    return datasets


def grants(urls: list[str]):
    return lambda request, attempt: (200, {"authorized": True, "urls": urls})


def open_link(url: str, timeout: float = 30) -> httpx.Response:
    return httpx.get(url, follow_redirects=False, timeout=timeout)


def retrievable(srv: LightboxServer, org: Org, ds: pydicom.Dataset) -> bool:
    """Whether the org's archive serves the instance (WADO-RS, its API key)."""
    url = (f"{srv.base_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    r = httpx.get(url, headers={"Authorization": f"Bearer {org.api_key}"}, timeout=30)
    if r.status_code == 404:
        return False
    assert r.status_code == 200, r.text
    got = dicomweb(srv, org).retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert got.SOPInstanceUID == ds.SOPInstanceUID and got.Modality == ds.Modality
    return True


def audit(srv: LightboxServer, org: Org, action: str) -> list[dict]:
    cmd = [str(LIGHTBOX_BIN), "admin", "audit", "--org", org.org_id, "--action", action, "--json",
           "--data-dir", str(srv.data_dir)]
    done = subprocess.run(cmd, env=srv.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wait_for_audit(srv: LightboxServer, org: Org, action: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if events := audit(srv, org, action):
            return events
        time.sleep(0.2)
    pytest.fail(f"no {action} audit event")


# --------------------------------------------------------------------------- scenarios


def test_a_study_link_with_no_images_shows_the_images_the_partners_urls_point_to(
    partnered: LightboxServer, receiver: Receiver, files: Files
) -> None:
    """Acme orders a study through the API; its images live at the partner.
    Opening the study's link asks the partner once, stores the DICOM files
    its URLs point to (a non-DICOM file among them is refused on its own),
    and opens the study. The images are then Acme's, and only Acme's."""
    acme, other = partnered.new_org(), partnered.new_org()
    create_webhook(partnered, acme, receiver, "--events", "study.access_requested")
    client = acme.client()
    uid = new_uid()
    study = create_study(client, study_instance_uid=uid)
    datasets = instances_of(uid)
    urls = [files.add(f"{ds.SOPInstanceUID}.dcm", part10(ds)) for ds in datasets]
    urls.append(files.add("report.pdf", b"%PDF-1.4 not an image"))
    receiver.script = grants(urls)

    link = client.viewer.studies.reroute_url(study_id=study.study_id).url
    page = open_link(link)
    assert page.status_code in (200, 302, 303, 307), page.text

    [call] = receiver.requests
    assert call.type == "study.access_requested" and call.status == 200
    assert json.loads(call.body)["data"] == {"studyId": study.study_id, "studyInstanceUid": uid}
    for ds in datasets:
        assert retrievable(partnered, acme, ds)
        assert not retrievable(partnered, other, ds)
    [event] = wait_for_audit(partnered, acme, "study.access_request")
    assert (event["outcome"], event["resource_id"], event["actor_type"]) == ("success", study.study_id, "signed_link")

    # The images are local now: opening the link again asks nobody.
    assert open_link(link).status_code in (200, 302, 303, 307)
    assert len(receiver.requests) == 1
    assert len(files.hits) == 3
    # The presigned URLs never reach the log.
    assert files.base not in partnered.log_path.read_text(errors="replace")


def test_an_ephemeral_session_echoes_its_retrieval_id_and_options_and_stores_the_images(
    partnered: LightboxServer, receiver: Receiver, files: Files
) -> None:
    """The session link's load asks the minting key's partner with the
    session's `retrievalId` and `options` exactly as given; the files it
    names are stored (a study the worklist did not have is seeded)."""
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "ephemeral.access_requested")
    uid = new_uid()
    datasets = instances_of(uid)
    receiver.script = grants([files.add(f"{ds.SOPInstanceUID}.dcm", part10(ds)) for ds in datasets])
    options = {"studyInstanceUids": [uid], "z": {"b": 1, "a": [1, 2.5, "x", None, True]}, "emoji": "é✓"}
    session = org.client().viewer.ephemeral_sessions.create(retrieval_id="ret-42/α", options=options)

    page = open_link(session.url)
    assert page.status_code in (200, 302, 303, 307), page.text
    [call] = receiver.requests
    assert call.type == "ephemeral.access_requested"
    data = json.loads(call.body)["data"]
    assert data == {"retrievalId": "ret-42/α", "options": options}
    assert list(data["options"]) == list(options)  # key order too
    for ds in datasets:
        assert retrievable(partnered, org, ds)
    assert org.client().viewer.studies.retrieve_by_uid(uid).study_instance_uid == uid
    [event] = wait_for_audit(partnered, org, "ephemeral_session.access_request")
    assert event["outcome"] == "success"


def test_a_session_whose_options_name_no_study_views_what_its_partner_sent(
    partnered: LightboxServer, receiver: Receiver, files: Files
) -> None:
    """The partner alone knows which study a retrieval id means: the link's
    viewer cookie then reads the study its files brought, and no other."""
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "ephemeral.access_requested")
    uid, elsewhere = new_uid(), new_uid()
    dicomweb(partnered, org).store_instances(instances_of(elsewhere))
    datasets = instances_of(uid)
    receiver.script = grants([files.add(f"{ds.SOPInstanceUID}.dcm", part10(ds)) for ds in datasets])
    session = org.client().viewer.ephemeral_sessions.create(retrieval_id="mrn-7781", options={"site": "north"})

    page = open_link(session.url)
    assert page.status_code in (200, 302, 303, 307), page.text
    cookie = page.cookies.get("lightbox_viewer")
    assert cookie, page.headers
    with httpx.Client(base_url=partnered.base_url, cookies={"lightbox_viewer": cookie}, timeout=30) as viewer:
        found = viewer.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})
        assert found.status_code == 200, found.text
        assert [s["0020000D"]["Value"][0] for s in found.json()] == [uid]
        other = viewer.get(f"/dicomweb/studies/{elsewhere}/metadata")
        assert other.status_code == 404, other.text


def test_a_refusal_shows_the_partners_error_as_images_unavailable_and_is_audited(
    partnered: LightboxServer, receiver: Receiver, files: Files
) -> None:
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "study.access_requested")
    client = org.client()
    study = create_study(client)
    receiver.script = lambda request, attempt: (
        200, {"authorized": False, "urls": [], "error": "Patient consent <missing>"})
    page = open_link(client.viewer.studies.reroute_url(study_id=study.study_id).url)
    assert page.status_code == 403
    assert "Images unavailable" in page.text
    assert "Patient consent &lt;missing&gt;" in page.text  # the partner's words, escaped
    [event] = wait_for_audit(partnered, org, "study.access_request")
    assert (event["outcome"], event["status"]) == ("denied", 403)
    assert files.hits == []


HUGE = {"authorized": True, "urls": ["http://127.0.0.1:9/x"], "padding": "x" * (2 * 1024 * 1024)}


@pytest.mark.parametrize("answer,why", [
    ((200, {"authorized": "maybe", "urls": "all of them"}), "not an access answer"),
    ((200, ["not", "an", "object"]), "not an access answer"),
    ((200, HUGE), "larger than"),
    ((302, {}, {"location": "https://example.com/elsewhere"}), "redirects are not followed"),
    ((500, {"error": "down"}), "HTTP 500"),
    ((200, {"authorized": True, "urls": []}), "named no image files"),
], ids=["wrong-types", "not-an-object", "huge", "redirect", "error", "no-urls"])
def test_a_broken_partner_answer_is_a_clear_failure(
    partnered: LightboxServer, receiver: Receiver, answer: tuple, why: str
) -> None:
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "study.access_requested")
    client = org.client()
    study = create_study(client)
    receiver.script = lambda request, attempt: answer
    started = time.monotonic()
    page = open_link(client.viewer.studies.reroute_url(study_id=study.study_id).url)
    assert time.monotonic() - started < 10
    assert page.status_code == 502, page.text
    assert "Images unavailable" in page.text and why in page.text, page.text
    [event] = wait_for_audit(partnered, org, "study.access_request")
    assert event["outcome"] == "error"


@pytest.mark.parametrize("kind", ["not-dicom", "redirect", "too-large", "missing", "other-study", "not-a-url"])
def test_files_that_are_not_this_studys_dicom_are_refused_with_a_clear_message(
    partnered: LightboxServer, receiver: Receiver, files: Files, kind: str
) -> None:
    """Every URL of the answer fails: the page says why (naming the file by
    position, never its URL), nothing is stored, nothing hangs."""
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "study.access_requested")
    client = org.client()
    uid = new_uid()
    study = create_study(client, study_instance_uid=uid)
    [ds, _] = instances_of(uid)
    if kind == "not-dicom":
        url, why = files.add("card.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 400), "not a DICOM file"
    elif kind == "redirect":
        files.add("a.dcm", part10(ds))
        url, why = f"{files.base}/r/a.dcm", "redirects are not followed"
    elif kind == "too-large":
        ds.add_new(0x00091010, "OB", b"\x00" * (MAX_INSTANCE_BYTES + 10))  # a private element
        url, why = files.add("big.dcm", part10(ds)), "larger than"
    elif kind == "missing":
        url, why = f"{files.base}/f/gone.dcm", "HTTP 404"
    elif kind == "other-study":
        [stranger, _] = instances_of(new_uid())
        url, why = files.add("stranger.dcm", part10(stranger)), "belongs to study"
        ds = stranger
    else:
        url, why = "ftp://files.example/a.dcm", "not an HTTP(S) URL"
    receiver.script = grants([url])
    started = time.monotonic()
    page = open_link(client.viewer.studies.reroute_url(study_id=study.study_id).url)
    assert time.monotonic() - started < 15
    assert page.status_code == 502, page.text
    assert "Images unavailable" in page.text and why in page.text and "File 1 of 1" in page.text, page.text
    assert files.base not in page.text
    assert not retrievable(partnered, org, ds)


def test_a_slow_partner_times_out_without_blocking_other_requests(
    partnered: LightboxServer, receiver: Receiver
) -> None:
    """The partner takes 4 s (the server waits 1 s): the person waiting gets
    "images unavailable" soon, and everyone else is served meanwhile."""
    org = partnered.new_org()
    create_webhook(partnered, org, receiver, "--events", "study.access_requested")
    client = org.client()
    study = create_study(client)
    calm = partnered.new_org()  # no partner: its links open at once
    calm_study = create_study(calm.client())
    calm_link = calm.client().viewer.studies.reroute_url(study_id=calm_study.study_id).url

    def slow(request, attempt):
        time.sleep(4)
        return (200, {"authorized": True, "urls": []})

    receiver.script = slow
    link = client.viewer.studies.reroute_url(study_id=study.study_id).url
    result: dict = {}

    def waiting() -> None:
        started = time.monotonic()
        result["page"] = open_link(link)
        result["took"] = time.monotonic() - started

    person = threading.Thread(target=waiting)
    person.start()
    time.sleep(0.5)  # the call is under way (the receiver records it once answered)
    assert person.is_alive()
    for _ in range(3):
        started = time.monotonic()
        assert open_link(calm_link).status_code == 200
        assert httpx.get(f"{partnered.base_url}/healthz").status_code == 200
        assert time.monotonic() - started < 1.0
    person.join(timeout=20)
    assert not person.is_alive()
    assert result["page"].status_code == 502
    text = result["page"].text
    assert "Images unavailable" in text and ("timed out" in text or "no answer" in text), text
    assert result["took"] < 4


@pytest.fixture(scope="module")
def impatient(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    """Requests time out after 3 s, so a page waits 2 s for a partner's files."""
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-{backend.name}-partner-impatient"),
        ("--webhook-allow-private", "--webhook-sync-timeout-secs", "1", "--request-timeout-secs", "3"),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_slow_files_keep_arriving_after_the_page_stops_waiting(
    impatient: LightboxServer, receiver: Receiver, files: Files
) -> None:
    """The file server takes 5 s: the page says the images are on their way
    (and reloads itself) instead of timing out; opening the link again
    meanwhile joins the same work (the partner is asked once), and once the
    file is in, the link opens the study."""
    org = impatient.new_org()
    create_webhook(impatient, org, receiver, "--events", "study.access_requested")
    client = org.client()
    uid = new_uid()
    study = create_study(client, study_instance_uid=uid)
    [ds, _] = instances_of(uid)
    files.add("slow.dcm", part10(ds))
    receiver.script = grants([f"{files.base}/slow/slow.dcm"])
    link = client.viewer.studies.reroute_url(study_id=study.study_id).url

    first = open_link(link)
    assert first.status_code == 202, first.text
    assert "Retrieving images" in first.text and first.headers["refresh"] == "5"
    again = open_link(link)
    assert again.status_code in (200, 202), again.text
    assert len(receiver.requests) == 1 and files.hits == ["/slow/slow.dcm"]
    deadline = time.monotonic() + 20
    while not retrievable(impatient, org, ds):
        assert time.monotonic() < deadline, "the slow file never arrived"
        time.sleep(0.5)
    assert open_link(link).status_code == 200
    assert len(receiver.requests) == 1
