"""The web app in a real browser: Debian's chromium + chromium-driver, driven by
Selenium, against the real `lightbox serve`.

Flows: accept an invitation and set a password; sign in; a study created through
the API appears live; filter and search the
worklist (the URL keeps the filters); assign to me; see a claim refused when
someone else took the study meanwhile; mark complete; sign out; an expired
session goes back to sign-in; upload a card image and see its preview and thumbnail.

These run once, on SQLite (the HTML-level tests in crates/lightbox/tests cover
both databases). Without chromium/chromedriver they are skipped, except under
CI=true, where they fail. A failing test leaves a screenshot in
target/browser-artifacts/. With LIGHTBOX_SCREENSHOTS_DIR set (scripts/web-screenshots)
the flow also saves reference screenshots there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import REPO, LightboxServer, Org, new_uid, unique_email

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PASSWORD = "plum kettle orbit 1994 sandal"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = REPO / "target" / "browser-artifacts"
WAIT_S = 10


@pytest.fixture(autouse=True)
def sqlite_only(backend) -> None:
    if backend.name != "sqlite":
        pytest.skip("browser flows run once, on SQLite")


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # Selenium Manager must not look for browsers online: this network is closed.
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="lightbox-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,800", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    failed_before = request.session.testsfailed
    try:
        yield driver
    finally:
        # The call's report is counted before fixtures are torn down.
        if request.session.testsfailed > failed_before:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
            (ARTIFACTS / f"{request.node.name}.html").write_text(driver.page_source)
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def reference_shot(driver, name: str) -> None:
    target = os.environ.get("LIGHTBOX_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / f"{name}.png"))


def wait_for(driver, condition, message: str):
    try:
        # Rows are swapped while we look: a stale or missing row means "not yet".
        return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {message}; page: {driver.current_url}")


def row_text(driver, study_id: str) -> str:
    return driver.find_element(By.ID, f"study-{study_id}").text


def invite(server: LightboxServer, org: Org, first_name: str) -> str:
    email = unique_email(first_name.lower())
    reply = httpx.post(
        f"{server.base_url}/v1/viewer/users",
        headers={"Authorization": f"Bearer {org.api_key}"},
        json={"email": email, "firstName": first_name, "lastName": "Reader", "clinicRole": "Radiologist",
              "level": "member", "canManageStudies": False, "hasDashboardAccess": True},
    )
    assert reply.status_code == 201, reply.text
    return email


def create_study(server: LightboxServer, org: Org, description: str, severity: str = "normal") -> str:
    reply = httpx.post(
        f"{server.base_url}/v1/viewer/studies",
        headers={"Authorization": f"Bearer {org.api_key}"},
        json={"studyInstanceUid": new_uid(), "studyDescription": description, "severity": severity},
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["studyId"]


def accept_invitation(driver, server: LightboxServer, org: Org, email: str) -> None:
    link = server.admin("invitation-link", "--org", org.org_id, "--email", email)["link"]
    driver.get(server.base_url + link)
    wait_for(driver, EC.presence_of_element_located((By.ID, "set-password")), "the set-password form")
    reference_shot(driver, "set-password")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "confirm").send_keys(PASSWORD)
    driver.find_element(By.ID, "set-password").click()
    wait_for(driver, EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "Your password is set"),
             "the sign-in page after setting a password")


def sign_in(driver, server: LightboxServer, email: str) -> None:
    driver.get(server.base_url + "/")
    wait_for(driver, EC.presence_of_element_located((By.ID, "sign-in")), "the sign-in page")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, EC.url_contains("/ui/worklist"), "the worklist after sign-in")


def sign_out(driver) -> None:
    driver.find_element(By.ID, "sign-out").click()
    wait_for(driver, EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "You have signed out"),
             "the signed-out page")


def test_invite_sign_in_filter_claim_complete_and_sign_out(server: LightboxServer, org: Org, browser) -> None:
    head = create_study(server, org, "CT head trauma", "stat")
    knee = create_study(server, org, "MR knee left", "high")
    chest = create_study(server, org, "XR chest PA")
    ann = invite(server, org, "Ann")
    ben = invite(server, org, "Ben")

    accept_invitation(browser, server, org, ann)
    sign_in(browser, server, ann)
    assert "STAT" in row_text(browser, head) and "HIGH" in row_text(browser, knee)

    # A study created through the API appears without a reload.
    live = create_study(server, org, "US abdomen (arrived live)", "high")
    wait_for(browser, EC.presence_of_element_located((By.ID, f"study-{live}")), "the live row")
    reference_shot(browser, "worklist")

    # Search as you type: the rows narrow and the URL keeps the search.
    search = browser.find_element(By.ID, "q")
    search.send_keys("knee")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-row]")) == 1, "one row for 'knee'")
    wait_for(browser, EC.url_contains("q=knee"), "the search in the URL")
    browser.refresh()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-row]")) == 1, "the search after reload")
    assert browser.find_element(By.ID, "q").get_attribute("value") == "knee"

    # A filter from the menu; the keyboard moves between rows and `/` finds the search box.
    browser.get(server.base_url + "/ui/worklist")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-row]")) == 4, "all four rows")
    ActionChains(browser).send_keys("j").perform()
    assert browser.switch_to.active_element.get_attribute("id") == f"study-{live}"
    ActionChains(browser).send_keys("j").perform()
    assert browser.switch_to.active_element.get_attribute("id") == f"study-{chest}"
    ActionChains(browser).send_keys("k").perform()
    assert browser.switch_to.active_element.get_attribute("id") == f"study-{live}"
    ActionChains(browser).send_keys("/").perform()
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    Select(browser.find_element(By.ID, "severity")).select_by_value("stat")
    wait_for(browser, EC.url_contains("severity=stat"), "the severity filter in the URL")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-row]")) == 1, "one STAT row")

    # Assign to me, then mark complete, each swapping the row in place.
    browser.find_element(By.CSS_SELECTOR, f"#study-{head} button.claim").click()
    wait_for(browser, lambda d: "(you)" in row_text(d, head), "the claimed row")
    browser.find_element(By.CSS_SELECTOR, f"#study-{head} button.complete").click()
    wait_for(browser, lambda d: "Complete" in row_text(d, head), "the completed row")
    sign_out(browser)

    # Ben opens his list; meanwhile Ann takes the knee study (through the API).
    accept_invitation(browser, server, org, ben)
    sign_in(browser, server, ben)
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, f"#study-{knee} button.claim")),
             "Ben's claim button")
    ann_id = httpx.get(f"{server.base_url}/v1/viewer/users", params={"email": ann},
                       headers={"Authorization": f"Bearer {org.api_key}"}).json()["users"][0]["userId"]

    def assign_to_ann(study: str) -> None:
        reply = httpx.patch(f"{server.base_url}/v1/viewer/studies/{study}", json={"assignedTo": ann_id},
                            headers={"Authorization": f"Bearer {org.api_key}"})
        assert reply.status_code == 200, reply.text

    # Live: Ben's row changes as soon as Ann takes a study.
    assign_to_ann(chest)
    wait_for(browser, lambda d: "Ann Reader" in row_text(d, chest), "the live update of the chest row")
    # With the live connection gone (a network hiccup), Ben's page goes stale;
    # Ann takes the knee study meanwhile, and Ben's claim is refused, naming her.
    browser.execute_script("window.lightboxLive.close()")
    assign_to_ann(knee)
    browser.find_element(By.CSS_SELECTOR, f"#study-{knee} button.claim").click()
    wait_for(browser, lambda d: "Already assigned to Ann Reader" in row_text(d, knee), "the refused claim")
    reference_shot(browser, "claim-refused")
    sign_out(browser)

    # Signed out, the worklist sends people to sign in.
    browser.get(server.base_url + "/ui/worklist")
    wait_for(browser, EC.presence_of_element_located((By.ID, "sign-in")), "the sign-in page")


def test_an_expired_session_goes_back_to_sign_in(start_server, browser) -> None:
    server = start_server("--web-idle-timeout-secs", "2")
    org = server.new_org()
    email = invite(server, org, "Idle")
    accept_invitation(browser, server, org, email)
    sign_in(browser, server, email)
    time.sleep(2.5)
    browser.find_element(By.ID, "q").send_keys("anything")
    # The htmx request is answered with HX-Redirect to the sign-in page.
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "Your session has ended"),
             "the sign-in page after the session expired")
    org.close()


def card_png(path: Path) -> None:
    """A real 120x76 PNG that looks a little like a card (the browser decodes it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def pixel(x: int, y: int) -> bytes:
        if y < 14:
            return b"\x0b\x57\xd0"  # the insurer's band
        if 20 <= y <= 24 and 8 <= x <= 80 or 32 <= y <= 35 and 8 <= x <= 60:
            return b"\x40\x40\x40"  # two lines of "text"
        return bytes((240 - y, 244 - y // 2, 250))

    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(120)) for y in range(76))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 120, 76, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_front_desk_uploads_a_card_and_sees_its_preview(server: LightboxServer, org: Org, browser, tmp_path) -> None:
    email = invite(server, org, "Desk")
    accept_invitation(browser, server, org, email)
    sign_in(browser, server, email)
    coverage = "6f1c2a8e-5b1d-4c7e-9a2f-3d4b5c6d7e8f"
    browser.get(f"{server.base_url}/ui/intake?coverage={coverage}")
    card = tmp_path / "card-front.png"
    card_png(card)
    browser.find_element(By.ID, "upload-file").send_keys(str(card))
    wait_for(browser, lambda d: d.find_element(By.ID, "upload-preview").get_attribute("src").startswith("blob:"),
             "the preview of the chosen file")
    reference_shot(browser, "intake-preview")
    browser.find_element(By.ID, "upload-submit").click()
    wait_for(browser, EC.url_contains("uploaded=1"), "the list after the upload")
    wait_for(browser, lambda d: d.execute_script(
        "const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth === 120;"),
        "the uploaded card's thumbnail")
    assert "UPLOADED" in browser.find_element(By.CSS_SELECTOR, "table.plain tbody").text


def test_the_study_page_shows_the_series_with_their_thumbnails(server: LightboxServer, org: Org, browser) -> None:
    from pydicom.uid import generate_uid

    from dicom_data import read, store

    uid = generate_uid()
    series = [read("CT_small.dcm"), read("MR_small.dcm")]
    for number, ds in enumerate(series, start=1):
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = uid, generate_uid(), number
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientName, ds.PatientID = "Rivera^Ana", "MRN-2207"
    store(server, org, series, fresh=False)
    study_id = org.client().viewer.studies.retrieve_by_uid(uid).study_id
    email = invite(server, org, "Reader")
    accept_invitation(browser, server, org, email)
    sign_in(browser, server, email)
    wait_for(browser, lambda d: "Rivera, Ana" in row_text(d, study_id), "the patient on the worklist row")
    browser.find_element(By.CSS_SELECTOR, f"#study-{study_id} a[data-open]").click()
    wait_for(browser, EC.presence_of_element_located((By.ID, "study-series")), "the study's series")
    # Both thumbnails load (the page's CSP allows them; the session cookie reads DICOMweb).
    wait_for(browser, lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#study-series img')];"
        "return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0);"),
        "both series thumbnails drawn")
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#study-series .series-label")]
    assert labels == ["Series 1 · CT", "Series 2 · MR"], labels
    assert browser.find_element(By.ID, "study-patient-id").text == "MRN-2207"
    browser.execute_script("document.getElementById('study-patient').scrollIntoView()")
    reference_shot(browser, "study-series")
