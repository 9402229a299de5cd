"""Study links and ephemeral-session links open the images: the link leaves a
capability cookie that reads its studies through DICOMweb, and nothing else.

Real server on both backends, real DICOM files from pydicom's wheel stored
with STOW-RS, plain httpx as the browser (no OHIF here: the link opens the
built-in page of rendered frames). test_ohif_browser.py opens OHIF."""

from __future__ import annotations

import base64
from contextlib import closing
import json
import re
import time

import httpx
import pytest

from conftest import LightboxServer, Org, new_uid
from dicom_data import read, store

COOKIE = "lightbox_viewer"


def api(srv: LightboxServer, org: Org) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {org.api_key}"}, timeout=30)


def study_link(srv: LightboxServer, org: Org, study_uid: str) -> str:
    with api(srv, org) as c:
        r = c.post("/v1/viewer/studies/reroute-url", json={"studyInstanceUid": study_uid})
    assert r.status_code == 200, r.text
    return r.json()["url"]


def session_link(srv: LightboxServer, org: Org, retrieval_id: str, **options) -> str:
    with api(srv, org) as c:
        r = c.post("/v1/viewer/ephemeral-sessions", json={"retrievalId": retrieval_id, "options": options})
    assert r.status_code == 200, r.text
    return r.json()["url"]


def open_link(url: str) -> tuple[httpx.Response, str]:
    """Opens a link as a browser would; returns the page and the capability token."""
    page = httpx.get(url, timeout=30)
    token = page.cookies.get(COOKIE)
    return page, token


def with_cookie(srv: LightboxServer, token: str) -> httpx.Client:
    """A browser holding only the capability cookie (sent by hand: no jar logic in between)."""
    return httpx.Client(base_url=srv.base_url, headers={"Cookie": f"{COOKIE}={token}"}, timeout=30)


def instance_path(ds) -> str:
    return f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def stored_bytes_of(response: httpx.Response) -> bytes:
    """The one part of a multipart/related retrieve."""
    boundary = re.search(r"boundary=([^;]+)", response.headers["content-type"]).group(1).strip('"')
    part = response.content.split(f"--{boundary}".encode())[1]
    return part.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]


@pytest.fixture
def two_studies(server: LightboxServer, org: Org):
    """Two studies of the org: a CT (one frame) and a two-frame RLE colour image."""
    ct = store(server, org, [read("CT_small.dcm")])[0]
    mr = store(server, org, [read("SC_rgb_rle_2frame.dcm")])[0]
    return ct, mr


def test_a_study_link_sets_a_cookie_for_its_study_for_the_links_lifetime(server, org, two_studies):
    ct, _ = two_studies
    page, token = open_link(study_link(server, org, ct.StudyInstanceUID))
    assert page.status_code == 200, page.text
    assert token, page.headers
    cookie = page.headers["set-cookie"]
    attributes = {a.strip().split("=", 1)[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert attributes.keys() >= {"path", "httponly", "samesite", "max-age"}, cookie
    assert attributes["path"] == "Path=/dicomweb"
    assert attributes["samesite"] == "SameSite=Lax"
    max_age = int(attributes["max-age"].split("=")[1])
    assert 290 <= max_age <= 300, cookie  # the link's 300 s, less the time it took
    assert "secure" not in attributes  # plain HTTP here; Secure with an https:// public URL
    assert "no-store" in page.headers["cache-control"]


def test_the_cookie_reads_its_study_and_no_other(server, org, two_studies):
    ct, mr = two_studies
    _, token = open_link(study_link(server, org, ct.StudyInstanceUID))
    with with_cookie(server, token) as browser:
        mine = browser.get(instance_path(ct))
        assert mine.status_code == 200, mine.text
        stored = stored_bytes_of(mine)
        assert stored[128:132] == b"DICM" and ct.PixelData[:256] in stored
        other = browser.get(instance_path(mr))
        assert other.status_code == 404, other.text
        assert other.json()["type"] == "not_found"
        # Asking for the other study's file under the granted study's UID is no way around it.
        sneaky = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{mr.SeriesInstanceUID}/instances/{mr.SOPInstanceUID}"
        assert browser.get(sneaky).status_code == 404


def test_the_built_in_page_scrolls_through_every_frame(server, org, two_studies):
    ct, mr = two_studies
    page, token = open_link(study_link(server, org, mr.StudyInstanceUID))
    assert page.status_code == 200
    series = re.findall(r'data-series="([^"]+)" data-frames="([^"]+)"', page.text)
    assert [uid for uid, _ in series] == [mr.SeriesInstanceUID]
    frames = json.loads(series[0][1].replace("&#34;", '"').replace("&quot;", '"'))
    assert frames == [f"{instance_path(mr)}/frames/{n}/rendered" for n in range(1, 3)]
    assert f'src="{frames[0]}"' in page.text
    assert 'max="2"' in page.text
    # The page's images load with the link's cookie, as the browser fetches them; the other study's do not.
    with with_cookie(server, token) as browser:
        for frame in frames:
            image = browser.get(frame, headers={"Accept": "image/avif,image/webp,image/png,image/*,*/*;q=0.8"})
            assert image.status_code == 200, image.text
            assert image.headers["content-type"].startswith("image/")
        assert browser.get(f"{instance_path(ct)}/frames/1/rendered").status_code == 404
    script = httpx.get(f"{server.base_url}/viewer/assets/builtin-viewer.js", timeout=10)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    # The page allows scripts from this origin only (the script above), no inline ones.
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_an_expired_or_tampered_cookie_is_401(start_server, backend):
    short = start_server("--reroute-ttl-secs", "2")
    org = short.new_org()
    try:
        ct = store(short, org, [read("CT_small.dcm")])[0]
        mr = store(short, org, [read("MR_small.dcm")])[0]
        page, token = open_link(study_link(short, org, ct.StudyInstanceUID))
        assert page.status_code == 200
        payload, signature = token.split(".")
        claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        assert ct.StudyInstanceUID in claims
        # The same signature over claims naming another study of the org.
        forged = base64.urlsafe_b64encode(claims.replace(ct.StudyInstanceUID, mr.StudyInstanceUID).encode())
        flipped = signature[:4] + ("A" if signature[4] != "A" else "B") + signature[5:]
        for bad in (f"{forged.decode().rstrip('=')}.{signature}", f"{payload}.{flipped}", payload, "garbage"):
            with with_cookie(short, bad) as browser:
                for path in (instance_path(ct), instance_path(mr)):
                    r = browser.get(path)
                    assert r.status_code == 401, (bad, path, r.text)
                    assert r.json()["type"] == "unauthorized"
        with with_cookie(short, token) as browser:
            assert browser.get(instance_path(ct)).status_code == 200
            time.sleep(2.2)
            expired = browser.get(instance_path(ct))
            assert expired.status_code == 401, expired.text
    finally:
        org.close()


def test_storing_needs_the_api_key_not_the_cookie(server, org, two_studies):
    ct, _ = two_studies
    _, token = open_link(study_link(server, org, ct.StudyInstanceUID))
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 132 + b"\r\n--b--\r\n"
    with with_cookie(server, token) as browser:
        r = browser.post(f"/dicomweb/studies/{ct.StudyInstanceUID}", content=body,
                         headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert r.status_code == 403, r.text
    assert r.json()["type"] == "forbidden"


def test_another_organizations_link_or_key_reads_nothing(server, org, other_org, two_studies):
    ct, mr = two_studies
    theirs = store(server, other_org, [read("MR_small.dcm")])[0]
    _, their_token = open_link(study_link(server, other_org, theirs.StudyInstanceUID))
    with with_cookie(server, their_token) as browser:
        assert browser.get(instance_path(theirs)).status_code == 200
        for ds in (ct, mr):
            r = browser.get(instance_path(ds))
            assert r.status_code == 404, r.text
    with api(server, other_org) as their_key:
        for ds in (ct, mr):
            assert their_key.get(instance_path(ds)).status_code == 404
    # A session of the other organization naming our study grants nothing.
    page, token = open_link(session_link(server, other_org, ct.StudyInstanceUID, studyInstanceUids=[mr.StudyInstanceUID]))
    assert page.status_code == 200
    assert ct.StudyInstanceUID not in re.sub(r"<dt>Retrieval id</dt><dd>[^<]*</dd>", "", page.text)
    assert 'id="no-images"' in page.text
    with with_cookie(server, token) as browser:
        for ds in (ct, mr):
            assert browser.get(instance_path(ds)).status_code == 404


def test_a_session_link_grants_the_studies_it_names(server, org, two_studies):
    ct, mr = two_studies
    third = store(server, org, [read("MR_small.dcm")])[0]
    # The retrieval id is one study's UID; the options name another, and one the archive lacks.
    url = session_link(server, org, ct.StudyInstanceUID,
                       studyInstanceUids=[mr.StudyInstanceUID, "1.2.3.4.5.6.7.8.9"], note="kept")
    page, token = open_link(url)
    assert page.status_code == 200, page.text
    assert re.findall(r'data-study="([^"]+)"', page.text) == [ct.StudyInstanceUID, mr.StudyInstanceUID]
    max_age = int(re.search(r"Max-Age=(\d+)", page.headers["set-cookie"]).group(1))
    assert 1 <= max_age <= 30  # ephemeral sessions live 30 s
    with with_cookie(server, token) as browser:
        assert browser.get(instance_path(ct)).status_code == 200
        assert browser.get(instance_path(mr)).status_code == 200
        assert browser.get(instance_path(third)).status_code == 404


def sign_in(srv: LightboxServer, org: Org) -> httpx.Client:
    """The org's owner signed in to the web app (a reset link sets the password)."""
    password = "plum kettle orbit 1994 sandal"
    link = srv.admin("reset-password", "--org", org.org_id, "--email", org.owner_email)["link"]
    path = "/" + link.split("/", 3)[3] if link.startswith("http") else link
    web = httpx.Client(base_url=srv.base_url, timeout=30)
    r = web.post(path, data={"password": password, "confirm": password})
    assert r.status_code in (200, 303), r.text
    r = web.post("/ui/login", data={"email": org.owner_email, "password": password, "next": "/ui"})
    assert r.status_code == 303, r.text
    assert web.cookies.get("lightbox_session")
    return web


def test_a_signed_in_user_reads_their_organizations_archive(server, org, other_org, two_studies):
    ct, mr = two_studies
    theirs = store(server, other_org, [read("MR_small.dcm")])[0]
    with closing(sign_in(server, org)) as web:
        for ds in (ct, mr):
            assert web.get(instance_path(ds)).status_code == 200
        assert web.get(instance_path(theirs)).status_code == 404
        # The study page offers the images, which open on the built-in page.
        with api(server, org) as c:
            study = c.get(f"/v1/viewer/studies/by-uid/{mr.StudyInstanceUID}").json()
        page = web.get(f"/ui/studies/{study['studyId']}")
        assert page.status_code == 200
        assert f'href="/viewer/images/{mr.StudyInstanceUID}"' in page.text
        images = web.get(f"/viewer/images/{mr.StudyInstanceUID}")
        assert images.status_code == 200
        assert f'data-series="{mr.SeriesInstanceUID}"' in images.text
        assert web.get(f"/viewer/images/{theirs.StudyInstanceUID}").status_code == 404
        web.post("/ui/logout")
        assert web.get(instance_path(ct)).status_code == 401
    # Without any credential, the images page asks to sign in.
    assert httpx.get(f"{server.base_url}/viewer/images/{ct.StudyInstanceUID}", timeout=10).status_code == 401


def test_a_study_without_images_offers_none(server, org):
    UID = new_uid()
    with api(server, org) as c:
        r = c.post("/v1/viewer/studies", json={"severity": "normal", "studyDescription": "Order only",
                                                "studyInstanceUid": UID})
        assert r.status_code == 201, r.text
    with closing(sign_in(server, org)) as web:
        page = web.get(f"/ui/studies/{r.json()['studyId']}")
        assert page.status_code == 200
        assert 'id="view-images"' not in page.text


def found(r: httpx.Response) -> list[str]:
    """StudyInstanceUIDs in a QIDO answer (204 is none)."""
    assert r.status_code in (200, 204), r.text
    return [] if r.status_code == 204 else [m["0020000D"]["Value"][0] for m in r.json()]


def test_the_cookie_searches_and_reads_only_its_study(server, org, two_studies):
    ct, mr = two_studies
    _, token = open_link(study_link(server, org, ct.StudyInstanceUID))
    json_accept = {"Accept": "application/dicom+json"}
    with with_cookie(server, token) as browser, api(server, org) as key:
        # The key sees both studies; the link's cookie only its own, whatever the search.
        assert set(found(key.get("/dicomweb/studies", headers=json_accept))) == {ct.StudyInstanceUID, mr.StudyInstanceUID}
        assert found(browser.get("/dicomweb/studies", headers=json_accept)) == [ct.StudyInstanceUID]
        assert found(browser.get("/dicomweb/studies", params={"StudyInstanceUID": mr.StudyInstanceUID},
                                 headers=json_accept)) == []
        assert found(browser.get("/dicomweb/studies", params={"PatientID": mr.PatientID},
                                 headers=json_accept)) in ([], [ct.StudyInstanceUID])
        mine = browser.get(f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata",
                           headers=json_accept)
        assert mine.status_code == 200, mine.text
        assert mine.json()[0]["00080018"]["Value"] == [ct.SOPInstanceUID]
        frame = browser.get(f"{instance_path(ct)}/frames/1",
                            headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"})
        assert frame.status_code == 200, frame.text
        for path in (f"/dicomweb/studies/{mr.StudyInstanceUID}/series/{mr.SeriesInstanceUID}/metadata",
                     f"/dicomweb/studies/{mr.StudyInstanceUID}/metadata",
                     f"{instance_path(mr)}/frames/1"):
            r = browser.get(path, headers=json_accept if "metadata" in path else {})
            assert r.status_code == 404, (path, r.status_code, r.text)
        series = browser.get(f"/dicomweb/studies/{mr.StudyInstanceUID}/series", headers=json_accept)
        assert series.status_code in (204, 404) or series.json() == [], series.text
