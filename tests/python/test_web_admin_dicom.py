"""The web app's admin page and worklist, DICOM and webhook parts, on SQLite
and PostgreSQL: an org admin sees and changes the organization's called AE
title and allowed senders (and modalities feel it), sees its webhook
endpoints and recent deliveries (never a secret), and the worklist and study
page show the archive's columns. Another organization's data never shows.

Plain HTTP with a signed-in session (httpx keeps the cookie): these pages
are forms and tables, where a browser adds nothing."""

from __future__ import annotations

import html
import json
import subprocess
import threading
import time
from typing import Iterator

import httpx
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE

from conftest import LIGHTBOX_BIN, Backend, LightboxServer, Org, new_uid, unique_email
from dicom_data import read, store
from test_webhooks import WEBHOOK_KEY

PASSWORD = "plum kettle orbit 1994 sandal"
VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def site(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-{backend.name}-web-admin-dicom"),
        ("--dicom-listen", "127.0.0.1:0", "--webhook-allow-private", "--webhook-retry-delays", "3600"),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def signed_in(srv: LightboxServer, org: Org, email: str, link_kind: str = "reset-password") -> httpx.Client:
    """A browser-like client signed in as `email` (a one-time link sets the
    password, as an operator would hand out)."""
    web = httpx.Client(base_url=srv.base_url, headers={"Origin": srv.base_url}, timeout=30)
    link = srv.admin(link_kind, "--org", org.org_id, "--email", email)["link"]
    done = web.post(link, data={"password": PASSWORD, "confirm": PASSWORD})
    assert done.status_code in (200, 303), done.text
    done = web.post("/ui/login", data={"email": email, "password": PASSWORD, "next": ""})
    assert done.status_code == 303, done.text
    return web


class LiveStream:
    """A signed-in worklist's event stream (`/ui/worklist/events`), read on a
    thread into `lines`, open once the constructor returns (the handler
    subscribes before it answers). `close()` closes the client too."""

    def __init__(self, web: httpx.Client):
        self.web, self.lines = web, []
        self._open, self._closing = threading.Event(), threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._open.wait(15), "the worklist's event stream did not open"

    def _read(self) -> None:
        try:
            with self.web.stream("GET", "/ui/worklist/events", timeout=httpx.Timeout(10, read=60)) as events:
                assert events.status_code == 200
                self._open.set()
                for line in events.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError:
            if not self._closing.is_set():  # closing the client ends the stream
                raise

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + 15
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"{text!r} not in the stream within 15 s: {self.lines}"
            time.sleep(0.1)

    def close(self) -> None:
        self._closing.set()
        self.web.close()
        self._reader.join(10)


def admin_page(web: httpx.Client) -> str:
    page = web.get("/ui/admin")
    assert page.status_code == 200, page.text
    return page.text


def cli(srv: LightboxServer, *args: str) -> str:
    cmd = [str(LIGHTBOX_BIN), "admin", *args, "--json", "--data-dir", str(srv.data_dir)]
    done = subprocess.run(cmd, env=srv.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def audit_actions(srv: LightboxServer, org: Org) -> list[tuple[str, str, int]]:
    lines = cli(srv, "audit", "--org", org.org_id).splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [(e["action"], e["actor_type"], e["status"]) for e in events]


def echo(srv: LightboxServer, called: str, calling: str) -> bool:
    """Whether a C-ECHO from `calling` to `called` is accepted."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = 10
    host, port = srv.dicom_addr
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        return assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def until(predicate, what: str, timeout: float = 5) -> None:
    """Titles and allow-lists are reread at most a second later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def test_an_admin_sets_the_ae_title_and_allowed_senders_and_modalities_feel_it(site: LightboxServer) -> None:
    acme, other = site.new_org(), site.new_org()
    web = signed_in(site, acme, acme.owner_email)
    page = admin_page(web)
    assert f'value="{acme.dicom_ae_title}"' in page
    assert "Any sender may send" in page
    assert other.dicom_ae_title not in page

    # The CLI's rules: A-Z 0-9 _ -, 1 to 16 characters, unique on the server.
    bad = web.post("/ui/admin/dicom/ae-title", data={"ae_title": "lower case"})
    assert bad.status_code == 422 and "may contain only" in bad.text
    taken = web.post("/ui/admin/dicom/ae-title", data={"ae_title": other.dicom_ae_title})
    assert taken.status_code == 409 and "belongs to another organization" in html.unescape(taken.text)
    title = f"ACME_{new_uid()[-8:].replace('.', '')}"[:16]
    assert web.post("/ui/admin/dicom/ae-title", data={"ae_title": title}).status_code == 303
    assert f'value="{title}"' in admin_page(web)
    assert json.loads(cli(site, "list-dicom-peers", "--org", acme.org_id))["dicom_ae_title"] == title
    until(lambda: echo(site, title, "ANYONE"), "the new title to be served")
    assert not echo(site, acme.dicom_ae_title, "ANYONE"), "the old title still answers"

    # Allow one sender: from then on only it may send.
    assert web.post("/ui/admin/dicom/peers", data={"calling_ae_title": "", "address": ""}).status_code == 422
    bad_ip = web.post("/ui/admin/dicom/peers", data={"calling_ae_title": "", "address": "not-an-ip"})
    assert bad_ip.status_code == 422 and "not an IP address" in html.unescape(bad_ip.text)
    assert web.post("/ui/admin/dicom/peers", data={"calling_ae_title": "CT_ROOM_1", "address": ""}).status_code == 303
    page = admin_page(web)
    assert "<code>CT_ROOM_1</code>" in page and "Any sender may send" not in page
    [peer] = json.loads(cli(site, "list-dicom-peers", "--org", acme.org_id))["peers"]
    assert peer["calling_ae_title"] == "CT_ROOM_1" and f'id="peer-{peer["id"]}"' in page
    until(lambda: not echo(site, title, "INTRUDER"), "the allow-list to apply")
    assert echo(site, title, "CT_ROOM_1")

    # Another organization cannot see or remove Acme's entry.
    other_web = signed_in(site, other, other.owner_email)
    assert "CT_ROOM_1" not in admin_page(other_web) and title not in admin_page(other_web)
    assert other_web.post(f"/ui/admin/dicom/peers/{peer['id']}/remove").status_code == 404
    assert json.loads(cli(site, "list-dicom-peers", "--org", acme.org_id))["peers"] == [peer]

    assert web.post(f"/ui/admin/dicom/peers/{peer['id']}/remove").status_code == 303
    assert "CT_ROOM_1" not in admin_page(web)
    assert web.post(f"/ui/admin/dicom/peers/{peer['id']}/remove").status_code == 404
    until(lambda: echo(site, title, "INTRUDER"), "any sender again")

    actions = audit_actions(site, acme)
    for action, status in [("dicom_ae_title.set", 303), ("dicom_ae_title.set", 409), ("dicom_peer.allow", 303),
                           ("dicom_peer.allow", 422), ("dicom_peer.remove", 303)]:
        assert (action, "user", status) in actions, actions


def test_members_may_not_see_or_change_dicom_settings(site: LightboxServer) -> None:
    org = site.new_org()
    email = unique_email("member")
    invited = httpx.post(
        f"{site.base_url}/v1/viewer/users", headers={"Authorization": f"Bearer {org.api_key}"},
        json={"email": email, "firstName": "Mem", "lastName": "Ber", "clinicRole": "Radiologist",
              "level": "member", "canManageStudies": True, "hasDashboardAccess": True})
    assert invited.status_code == 201, invited.text
    web = signed_in(site, org, email, "invitation-link")
    assert web.get("/ui/admin").status_code == 403
    assert web.post("/ui/admin/dicom/ae-title", data={"ae_title": "MINE"}).status_code == 403
    assert web.post("/ui/admin/dicom/peers", data={"calling_ae_title": "X", "address": ""}).status_code == 403
    assert json.loads(cli(site, "list-dicom-peers", "--org", org.org_id)) == {
        "dicom_ae_title": org.dicom_ae_title, "peers": []}


def test_webhook_endpoints_and_deliveries_are_listed_without_secrets(site: LightboxServer) -> None:
    """An endpoint nobody listens on: the study's event is pending with the
    connection failure as its last result."""
    acme, other = site.new_org(), site.new_org()
    hook = json.loads(cli(site, "create-webhook", "--org", acme.org_id, "--url", "http://127.0.0.1:9/acme-hooks",
                          "--events", "study.created"))
    other_hook = json.loads(cli(site, "create-webhook", "--org", other.org_id, "--url",
                                "http://127.0.0.1:9/other-hooks"))
    study = acme.client().viewer.studies.create(severity="normal", study_description="CT Head",
                                                study_instance_uid=new_uid())
    web = signed_in(site, acme, acme.owner_email)

    until(lambda: "connect" in admin_page(web).lower(), "the first attempt's failure", timeout=15)
    page = html.unescape(admin_page(web))
    assert hook["webhook_id"] in page and "http://127.0.0.1:9/acme-hooks" in page
    assert "study.created" in page and "Enabled" in page
    deliveries = [json.loads(line) for line in cli(site, "webhook-deliveries", "--org", acme.org_id).splitlines()]
    [delivery] = deliveries
    assert f'id="delivery-{delivery["delivery_id"]}"' in page and "pending" in page
    # Never a secret, in any form.
    secret = hook["secret"]
    assert secret not in page and secret.removeprefix("whsec_") not in page
    assert other_hook["webhook_id"] not in page and "other-hooks" not in page
    other_page = admin_page(signed_in(site, other, other.owner_email))
    assert hook["webhook_id"] not in other_page and delivery["delivery_id"] not in other_page and study.study_id not in other_page


def test_the_worklist_and_study_page_show_the_archives_columns(site: LightboxServer) -> None:
    acme, other = site.new_org(), site.new_org()
    ct, mr, dose = read("CT_small.dcm"), read("MR_small.dcm"), read("CT_small.dcm")
    del dose.PixelData  # a series without pixels, as a dose report is
    dose.SeriesDescription, dose.SeriesNumber = "Dose report", 99
    ct.SeriesNumber, ct.SeriesDescription = 2, "Axial 5mm"
    mr.SeriesNumber = 1
    uid = generate_uid()
    for ds in (ct, mr, dose):  # one new study of one patient, three series
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientName, ds.PatientID = "Doe^Jane^Q", "MRN-4412"
    store(site, acme, [ct, mr, dose], fresh=False)
    dicom_study = acme.client().viewer.studies.retrieve_by_uid(uid)
    ordered = acme.client().viewer.studies.create(severity="high", study_description="Ordered, no images yet",
                                                  study_instance_uid=new_uid())
    web = signed_in(site, acme, acme.owner_email)
    worklist = web.get("/ui/worklist")
    assert worklist.status_code == 200
    assert '<th scope="col">Patient</th>' in worklist.text
    row = worklist.text.split(f'id="study-{dicom_study.study_id}"')[1].split("</tr>")[0]
    date = ct.StudyDate
    assert "Doe, Jane Q" in row and "ID MRN-4412" in row, row
    assert '<td class="modalities">CT, MR</td>' in row, row
    assert "3 series, 3 instances" in row, row
    assert f"{date[:4]}-{date[4:6]}-{date[6:]}" in row, row
    plain = worklist.text.split(f'id="study-{ordered.study_id}"')[1].split("</tr>")[0]
    assert "No images" in plain and "MRN" not in plain, plain

    study_page = web.get(f"/ui/studies/{dicom_study.study_id}").text
    assert 'id="study-patient">Doe, Jane Q<' in study_page
    assert 'id="study-patient-id">MRN-4412<' in study_page
    assert 'id="study-modalities">CT, MR<' in study_page
    assert "3 series, 3 instances" in study_page
    # The series in SeriesNumber order, each with its thumbnail, the one without pixels without.
    series = study_page.split('id="study-series"')[1].split("</ul>")[0]
    cards = series.split('class="series-card"')[1:]
    assert [c.split('class="series-label">')[1].split("<")[0] for c in cards] == [
        "Series 1 · MR", "Series 2 · CT · Axial 5mm", "Series 99 · CT · Dose report",
    ]
    thumbnails = [html.unescape(c.split('<img src="')[1].split('"')[0]) for c in cards[:2]]
    assert thumbnails == [
        f"/dicomweb/studies/{uid}/series/{mr.SeriesInstanceUID}/thumbnail",
        f"/dicomweb/studies/{uid}/series/{ct.SeriesInstanceUID}/thumbnail",
    ]
    assert "<img" not in cards[2] and "No image" in cards[2]
    for src in thumbnails:  # what the browser loads with the page's session
        image = web.get(src)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg", image.text
        assert image.content[:2] == b"\xff\xd8"
    assert "None in the archive" in web.get(f"/ui/studies/{ordered.study_id}").text
    assert 'id="study-series"' not in web.get(f"/ui/studies/{ordered.study_id}").text

    other_web = signed_in(site, other, other.owner_email)
    other_list = other_web.get("/ui/worklist").text
    assert dicom_study.study_id not in other_list and "CT, MR" not in other_list and "MRN-4412" not in other_list
    assert other_web.get(f"/ui/studies/{dicom_study.study_id}").status_code == 404
    assert other_web.get(thumbnails[0]).status_code == 404


def test_an_open_worklist_sees_a_study_arrive_and_each_new_series(site: LightboxServer) -> None:
    """Images arriving change the row live: the study's first image shows it,
    and each new series updates its counts (not every instance of a series)."""
    acme = site.new_org()
    stream = LiveStream(signed_in(site, acme, acme.owner_email))
    ct, mr = read("CT_small.dcm"), read("MR_small.dcm")
    uid = generate_uid()
    for ds in (ct, mr):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    store(site, acme, [ct], fresh=False)
    stream.wait_for("1 series, 1 instance")
    store(site, acme, [mr], fresh=False)
    stream.wait_for("2 series, 2 instances")
    stream.close()
