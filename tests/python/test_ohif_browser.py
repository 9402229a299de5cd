"""A study link opens the OHIF viewer in a real browser (Debian's chromium +
chromium-driver, driven by Selenium) against the real `lightbox serve
--ohif-dir`: OHIF loads the study through /dicomweb with the link's cookie and
draws its image; no /dicomweb request fails; the same browser cannot read
another study of the organization.

Needs the OHIF bundle (scripts/fetch-ohif; scripts/test fetches it into
target/ohif, or set LIGHTBOX_TEST_OHIF_DIR). Without it the test is skipped,
except under CI=true, where it fails. Runs once, on SQLite. With
LIGHTBOX_SCREENSHOTS_DIR set (scripts/web-screenshots) the viewer's
screenshot is saved there as ohif-viewer.png; a failing run leaves one in
target/browser-artifacts/.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import REPO
from dicom_data import read, store

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OHIF_DIR = Path(os.environ.get("LIGHTBOX_TEST_OHIF_DIR", REPO / "target" / "ohif"))
ARTIFACTS = REPO / "target" / "browser-artifacts"
# OHIF's first load parses a 17 MB bundle; on a busy 2-core machine that takes a while.
LOAD_S = 90


@pytest.fixture(autouse=True)
def sqlite_only(backend) -> None:
    if backend.name != "sqlite":
        pytest.skip("browser flows run once, on SQLite")


def needed(what: str, present: bool, how: str) -> None:
    if present:
        return
    message = f"{what} is missing: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    needed("chromium/chromium-driver", Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(),
           "apt-get install chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for browsers online
    profile = tempfile.mkdtemp(prefix="lightbox-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    # Every request and response, to find failed /dicomweb requests.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    failed_before = request.session.testsfailed
    try:
        yield driver
    finally:
        if request.session.testsfailed > failed_before:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
            (ARTIFACTS / f"{request.node.name}.html").write_text(driver.page_source)
            try:
                logs = driver.get_log("browser")
                (ARTIFACTS / f"{request.node.name}.console.json").write_text(json.dumps(logs, indent=1))
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Network:
    """The /dicomweb requests the page made, from Chromium's performance log."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.status: dict[str, int] = {}
        self.failed: dict[str, str] = {}

    def read(self, driver) -> None:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            method = message.get("method")
            if method == "Network.requestWillBeSent":
                self.urls[params["requestId"]] = params["request"]["url"]
            elif method == "Network.responseReceived":
                self.urls.setdefault(params["requestId"], params["response"]["url"])
                self.status[params["requestId"]] = params["response"]["status"]
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                self.failed[params["requestId"]] = params.get("errorText", "failed")

    def dicomweb(self) -> list[tuple[str, int | str]]:
        out = []
        for rid, url in self.urls.items():
            if "/dicomweb/" not in url:
                continue
            out.append((url, self.failed.get(rid) or self.status.get(rid, "no answer")))
        return out

    def failures(self) -> list[tuple[str, int | str]]:
        return [(u, s) for u, s in self.dicomweb() if not isinstance(s, int) or s >= 400]


def viewport_png(driver) -> bytes | None:
    """A screenshot of OHIF's first image viewport, once it has one."""
    elements = driver.find_elements(By.CSS_SELECTOR, "canvas.cornerstone-canvas")
    if not elements:
        return None
    return elements[0].screenshot_as_png


def drawn(png: bytes) -> tuple[bool, str]:
    """Whether a viewport screenshot shows an image: enough non-black pixels, and many grey levels."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    total = sum(histogram)
    lit = total - sum(histogram[:16])
    levels = sum(1 for n in histogram if n)
    return lit / total > 0.05 and levels > 32, f"{lit}/{total} pixels lit, {levels} grey levels"


def test_a_study_link_opens_ohif_and_shows_the_image(start_server, browser):
    needed("the OHIF viewer", (OHIF_DIR / "index.html").exists(), f"run scripts/fetch-ohif {OHIF_DIR}")
    server = start_server("--ohif-dir", str(OHIF_DIR))
    org = server.new_org()
    ct = store(server, org, [read("CT_small.dcm")])[0]
    other = store(server, org, [read("MR_small.dcm")])[0]
    reply = httpx.post(f"{server.base_url}/v1/viewer/studies/reroute-url",
                       headers={"Authorization": f"Bearer {org.api_key}"},
                       json={"studyInstanceUid": ct.StudyInstanceUID}, timeout=10)
    assert reply.status_code == 200, reply.text
    network = Network()

    browser.get(reply.json()["url"])
    assert "/ohif/viewer?StudyInstanceUIDs=" + ct.StudyInstanceUID in browser.current_url

    deadline = time.monotonic() + LOAD_S
    verdict = "no viewport canvas yet"
    png = None
    while time.monotonic() < deadline:
        network.read(browser)
        png = viewport_png(browser)
        if png:
            ok, verdict = drawn(png)
            if ok:
                break
        time.sleep(1)
    else:
        raise AssertionError(f"OHIF did not draw the study within {LOAD_S} s ({verdict}); "
                             f"/dicomweb requests: {network.dicomweb()}")
    time.sleep(2)  # let the viewer finish what it started (prefetch, thumbnails)
    for skip in browser.find_elements(By.XPATH, "//*[normalize-space(text())='Skip all']"):
        skip.click()  # OHIF's first-visit tour would cover the screenshot
    network.read(browser)
    requested = [u for u, _ in network.dicomweb()]
    assert any(f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/" in u for u in requested), requested
    assert network.failures() == [], network.failures()
    shots = os.environ.get("LIGHTBOX_SCREENSHOTS_DIR")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(shots) / "ohif-viewer.png"))

    # The same browser, the same cookie: the organization's other study is not there.
    from_page = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.prototype.slice.call(arguments, 0, -1).map(u => fetch(u, {headers: {Accept: 'application/dicom+json'}})"
        "  .then(r => r.status))).then(done);",
        f"/dicomweb/studies/{other.StudyInstanceUID}/series/{other.SeriesInstanceUID}/metadata",
        f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata",
    )
    assert from_page == [404, 200], from_page
    network = Network()
    browser.get(f"{server.base_url}/ohif/viewer?StudyInstanceUIDs={other.StudyInstanceUID}")
    time.sleep(8)
    network.read(browser)
    about_other = [(u, s) for u, s in network.dicomweb() if other.StudyInstanceUID in u]
    assert about_other, network.dicomweb()
    # OHIF asks for the study and is told there is none (empty search, 404s); nothing of it is drawn.
    assert all(s in (200, 204, 404) for _, s in about_other), about_other
    assert not any("/metadata" in u and s == 200 for u, s in about_other), about_other
    png = viewport_png(browser)
    assert png is None or not drawn(png)[0]
    org.close()
