"""Sign-in to the web app through an OpenID Provider: a real one, panva's certified
`oidc-provider` (pinned with its dependencies' integrity in oidc_provider/package-lock.json,
installed with `npm ci` into target/oidc-provider on first use), run by Node with its
development login and consent pages, against the real `lightbox serve` on both databases.

The flow is driven over HTTP like a browser would (following redirects, submitting the
provider's forms), and once in Chromium. Without npm (or the registry) these tests are
skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from conftest import LIGHTBOX_BIN, REPO, Backend, LightboxServer, Org, unique_email
from test_web_browser import browser, wait_for  # noqa: F401  (the same Chromium setup)

PROVIDER_SRC = Path(__file__).resolve().parent / "oidc_provider"
PROVIDER_DIR = REPO / "target" / "oidc-provider"
CLIENT_ID = "lightbox-test"
CLIENT_SECRET = "test-client-secret-4b1d"
DISPLAY_NAME = "Test IdP"
PASSWORD = "plum kettle orbit 1994 sandal"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def provider_install() -> Path:
    """oidc-provider and its dependencies, exactly as the lockfile pins them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        unavailable("node and npm are needed for the OIDC tests (apt-get install nodejs npm)")
    PROVIDER_DIR.mkdir(parents=True, exist_ok=True)
    lock = (PROVIDER_SRC / "package-lock.json").read_bytes()
    stamp = PROVIDER_DIR / ".installed-lock"
    if not (stamp.exists() and stamp.read_bytes() == lock):
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PROVIDER_SRC / name, PROVIDER_DIR / name)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=PROVIDER_DIR, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            unavailable(f"npm ci of oidc-provider failed (registry unreachable?):\n{done.stderr[-2000:]}")
        stamp.write_bytes(lock)
    shutil.copy(PROVIDER_SRC / "provider.mjs", PROVIDER_DIR / "provider.mjs")
    return PROVIDER_DIR


class IdP:
    """One oidc-provider process; `add` makes a person it can sign in."""

    def __init__(self, install: Path, workdir: Path, redirect_uri: str):
        self.port = free_port()
        # Another site than Lightbox's 127.0.0.1 (see provider.mjs).
        self.issuer = f"http://localhost:{self.port}"
        self.accounts_file = workdir / "accounts.json"
        self.accounts: dict[str, dict] = {}
        self._save()
        config = {
            "port": self.port,
            "client": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": redirect_uri},
            "accounts_file": str(self.accounts_file),
        }
        self.log_path = workdir / "provider.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [shutil.which("node"), "provider.mjs", json.dumps(config)],
            cwd=install, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
        )
        line = self._first_line()
        if "listening" not in line:
            self.stop()
            pytest.fail(f"oidc-provider did not start: {line!r}\n{self.log_path.read_text()}", pytrace=False)

    def _first_line(self) -> str:
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(self.proc.stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(30)
        return out[0] if out else "<nothing within 30 s>"

    def _save(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts))

    def add(self, login: str, email: str, verified: bool = True) -> None:
        self.accounts[login] = {"email": email, "email_verified": verified}
        self._save()

    def add_entra(self, login: str, email: str, domain_verified: bool | None) -> None:
        """An account as Entra ID signs it: no `email_verified`, and `xms_edov` when released."""
        self.accounts[login] = {"email": email}
        if domain_verified is not None:
            self.accounts[login]["xms_edov"] = domain_verified
        self._save()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._log.close()


class Site:
    def __init__(self, server: LightboxServer, idp: IdP):
        self.server = server
        self.idp = idp


@pytest.fixture(scope="module")
def site(backend: Backend, provider_install: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Lightbox with OIDC sign-in at a provider that runs."""
    work = tmp_path_factory.mktemp(f"oidc-{backend.name}")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    idp = IdP(provider_install, work, f"{public_url}/ui/oidc/callback")
    server = LightboxServer(
        backend, work / "lightbox",
        ("--public-url", public_url, "--oidc-issuer", idp.issuer, "--oidc-client-id", CLIENT_ID,
         "--oidc-display-name", DISPLAY_NAME),
        {"LIGHTBOX_OIDC_CLIENT_SECRET": CLIENT_SECRET},
        listen=f"127.0.0.1:{port}",
    )
    (work / "lightbox").mkdir()
    server.start()
    try:
        yield Site(server, idp)
    finally:
        server.stop()
        idp.stop()
        assert CLIENT_SECRET not in server.log_path.read_text(errors="replace"), \
            "the client secret reached the server log"


class Forms(HTMLParser):
    """The forms of a page (action, the inputs' names and values) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action", ""), "fields": {}})
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def browser_client(server: LightboxServer) -> httpx.Client:
    return httpx.Client(timeout=30, follow_redirects=False)


def sign_in_at_idp(web: httpx.Client, server: LightboxServer, login: str, *,
                   tamper_state: bool = False, abort: bool = False,
                   callback_on: LightboxServer | None = None) -> httpx.Response:
    """Presses the button, signs in as `login` at the provider (any password) and
    consents, and returns Lightbox's answer to the callback (not followed further),
    from `callback_on` when given (another replica behind the same public URL)."""
    reply = web.get(f"{server.base_url}/ui/oidc/start", params={"next": "/ui/worklist"})
    assert reply.status_code == 303, reply.text
    url = reply.headers["location"]
    for _ in range(30):
        if url.startswith(server.base_url + "/ui/oidc/callback"):
            if tamper_state:
                parts = urlsplit(url)
                query = [(k, v[::-1] if k == "state" else v) for k, v in parse_qsl(parts.query)]
                url = urlunsplit(parts._replace(query=urlencode(query)))
            if callback_on is not None:
                url = callback_on.base_url + url[len(server.base_url):]
            return web.get(url)
        reply = web.get(url)
        if reply.status_code not in (302, 303):
            # One of the provider's pages: its login form, then its consent form.
            assert reply.status_code == 200, f"{url}: {reply.status_code} {reply.text[:500]}"
            parser = Forms()
            parser.feed(reply.text)
            assert parser.forms, f"no form at the provider: {reply.text[:500]}"
            form = parser.forms[0]
            if abort:
                cancel = next(link for link in parser.links if link.endswith("/abort"))
                reply = web.get(urljoin(url, cancel))
            else:
                fields = dict(form["fields"])
                if "login" in fields:
                    fields.update(login=login, password="any password")
                reply = web.post(urljoin(url, form["action"]), data=fields)
            assert reply.status_code in (302, 303), f"{reply.status_code} {reply.text[:500]}"
        url = urljoin(url, reply.headers["location"])
    raise AssertionError("the provider never sent the browser back")


def worklist(web: httpx.Client, server: LightboxServer) -> httpx.Response:
    return web.get(f"{server.base_url}/ui/worklist")


def sign_in_events(server: LightboxServer, org: Org, user_id: str) -> list[dict]:
    reply = httpx.get(
        f"{server.base_url}/v1/audit/events",
        params={"action": "user.sign_in", "actorId": user_id},
        headers={"Authorization": f"Bearer {org.api_key}"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["events"]


def new_person(site: Site, org: Org, label: str, *, verified: bool = True) -> tuple[str, str, str]:
    """An active user of `org` with web access, and their account at the provider."""
    email = unique_email(label)
    user_id = site.server.create_user(org.org_id, email, first_name=label.title(), last_name="Reader",
                                      level="admin")
    login = f"{label}-{email.split('@')[0]}"
    # The provider's address differs in case: matching is case-insensitive.
    site.idp.add(login, email.upper() if label == "casey" else email, verified)
    return login, email, user_id


def test_a_verified_email_signs_in_to_the_worklist(site: Site) -> None:
    server = site.server
    org = server.new_org()
    login, email, user_id = new_person(site, org, "casey")
    web = browser_client(server)
    done = sign_in_at_idp(web, server, login)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/worklist"
    cookies = done.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("lightbox_session="))
    assert "HttpOnly" in session and "SameSite=Lax" in session
    # The attempt's cookie is spent.
    assert any(c.startswith("lightbox_oidc=;") and "Max-Age=0" in c for c in cookies), cookies
    page = worklist(web, server)
    assert page.status_code == 200
    assert email in page.text and "Casey Reader" in page.text
    events = sign_in_events(server, org, user_id)
    assert events[0]["outcome"] == "success" and events[0]["resourceId"] == "oidc", events
    # Signing out ends it like any session.
    assert web.post(f"{server.base_url}/ui/logout", headers={"Origin": server.base_url}).status_code == 303
    assert worklist(web, server).status_code == 303


def test_an_invited_user_signs_in_and_the_invitation_is_accepted(site: Site) -> None:
    server = site.server
    org = server.new_org()
    email = unique_email("ivy")
    reply = httpx.post(
        f"{server.base_url}/v1/viewer/users",
        headers={"Authorization": f"Bearer {org.api_key}"},
        json={"email": email, "firstName": "Ivy", "lastName": "Reader", "clinicRole": "Radiologist",
              "level": "member", "canManageStudies": False, "hasDashboardAccess": True},
    )
    assert reply.status_code == 201, reply.text
    link = server.admin("invitation-link", "--org", org.org_id, "--email", email)["link"]
    site.idp.add("ivy-" + email, email)
    web = browser_client(server)
    assert sign_in_at_idp(web, server, "ivy-" + email).status_code == 303
    assert "Ivy Reader" in worklist(web, server).text
    invitations = httpx.get(
        f"{server.base_url}/v1/viewer/users/invitations",
        params={"userId": reply.json()["userId"]},
        headers={"Authorization": f"Bearer {org.api_key}"},
    ).json()
    assert [i["status"] for i in invitations["invitations"]] == ["accepted"], invitations
    # The link that would have set a password is used up.
    assert httpx.get(server.base_url + link).status_code == 410


def refused(done: httpx.Response, status: int, words: str) -> str:
    assert done.status_code == status, f"{done.status_code}: {done.text[:800]}"
    assert 'id="sign-in-error"' in done.text, done.text
    assert words in done.text.replace("&#39;", "'"), done.text
    assert 'id="sign-in-oidc"' in done.text  # the page offers another try
    return done.text


def test_an_unverified_email_is_refused(site: Site) -> None:
    server = site.server
    org = server.new_org()
    login, _, user_id = new_person(site, org, "una", verified=False)
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, login), 401, "has not verified your e-mail address")
    assert worklist(web, server).status_code == 303
    assert sign_in_events(server, org, user_id)[0]["outcome"] == "denied"


def test_entra_ids_domain_verified_claim_counts_as_verified(site: Site) -> None:
    """Entra ID never sends `email_verified` for work accounts; its optional
    `xms_edov` claim (the tenant owns the address's domain) is what says so."""
    server = site.server
    org = server.new_org()
    outcomes = []
    for label, edov in (("erin", True), ("emil", False), ("ezra", None)):
        email = unique_email(label)
        server.create_user(org.org_id, email, first_name=label.title(), last_name="Reader", level="admin")
        login = f"{label}-{email.split('@')[0]}"
        site.idp.add_entra(login, email, edov)
        web = browser_client(server)
        page = sign_in_at_idp(web, server, login)
        outcomes.append((label, page.status_code, worklist(web, server).status_code))
        if edov is not True:
            refused(page, 401, "has not verified your e-mail address")
    assert outcomes == [("erin", 303, 200), ("emil", 401, 303), ("ezra", 401, 303)], outcomes


def test_refusals_count_toward_the_sign_in_throttle(site: Site) -> None:
    """Five refused sign-ins of one address (the default limit) lock it, as wrong passwords do."""
    server = site.server
    org = server.new_org()
    login, _, user_id = new_person(site, org, "tess", verified=False)
    web = browser_client(server)
    for _ in range(5):
        refused(sign_in_at_idp(web, server, login), 401, "has not verified your e-mail address")
    refused(sign_in_at_idp(web, server, login), 429, "Too many failed sign-ins")
    assert sign_in_events(server, org, user_id)[0]["outcome"] == "rate_limited"


def test_an_unknown_email_is_refused(site: Site) -> None:
    server = site.server
    email = unique_email("stranger")
    site.idp.add("stranger", email)
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, "stranger"), 401, "no Lightbox account that may sign in")
    assert worklist(web, server).status_code == 303


def test_a_deactivated_user_is_refused(site: Site) -> None:
    server = site.server
    org = server.new_org()
    login, _, user_id = new_person(site, org, "dee")
    reply = httpx.post(
        f"{server.base_url}/v1/viewer/users/revoke-access",
        headers={"Authorization": f"Bearer {org.api_key}"},
        json={"userId": user_id},
    )
    assert reply.status_code == 200, reply.text
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, login), 401, "no Lightbox account that may sign in")
    assert worklist(web, server).status_code == 303
    assert sign_in_events(server, org, user_id)[0]["outcome"] == "denied"


def test_an_address_in_two_organizations_is_refused_with_the_reason(site: Site) -> None:
    server = site.server
    first, second = server.new_org(), server.new_org()
    email = unique_email("twin")
    for org in (first, second):
        server.create_user(org.org_id, email, first_name="Twin", last_name="Reader", level="admin")
    site.idp.add("twin", email)
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, "twin"), 409, "accounts in several organizations")


def test_a_tampered_or_foreign_answer_is_refused(site: Site) -> None:
    server = site.server
    org = server.new_org()
    login, _, _ = new_person(site, org, "tam")
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, login, tamper_state=True), 400,
            "does not belong to the sign-in this browser started")
    assert worklist(web, server).status_code == 303
    # A callback URL carried to another browser (no attempt cookie) opens nothing.
    other = browser_client(server)
    done = other.get(f"{server.base_url}/ui/oidc/callback", params={"code": "x", "state": "y"})
    refused(done, 400, "was not started in this browser")
    # Nor does a callback that makes no sense (a parameter twice): the page, not a bare error.
    done = other.get(f"{server.base_url}/ui/oidc/callback?state=a&state=b&code=c")
    refused(done, 400, "was not started in this browser")


def test_the_provider_refusing_is_shown(site: Site) -> None:
    server = site.server
    org = server.new_org()
    login, _, _ = new_person(site, org, "abe")
    web = browser_client(server)
    refused(sign_in_at_idp(web, server, login, abort=True), 401, "did not sign you in (access_denied)")


def test_the_button_shows_only_when_configured(site: Site, server: LightboxServer) -> None:
    page = httpx.get(f"{site.server.base_url}/ui/login").text
    assert 'id="sign-in-oidc"' in page and f"Sign in with {DISPLAY_NAME}" in page
    plain = httpx.get(f"{server.base_url}/ui/login")
    assert plain.status_code == 200 and "sign-in-oidc" not in plain.text
    assert httpx.get(f"{server.base_url}/ui/oidc/start").status_code == 404
    assert httpx.get(f"{server.base_url}/ui/oidc/callback?code=a&state=b").status_code == 404


def test_config_show_masks_the_client_secret(site: Site) -> None:
    env = dict(site.server.env, LIGHTBOX_OIDC_ISSUER=site.idp.issuer, LIGHTBOX_OIDC_CLIENT_ID=CLIENT_ID)
    done = subprocess.run([str(LIGHTBOX_BIN), "config", "show", "--json"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)["settings"]
    assert settings["oidc_client_secret"] == {"value": "<redacted>", "source": "env"}
    assert settings["oidc_issuer"]["value"] == site.idp.issuer
    assert CLIENT_SECRET not in done.stdout


def test_oidc_without_a_public_url_does_not_start(backend: Backend, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(LIGHTBOX_BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path),
         "--oidc-issuer", "http://127.0.0.1:9", "--oidc-client-id", CLIENT_ID,
         "--oidc-client-secret", CLIENT_SECRET],
        env={k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_") and k != "DATABASE_URL"},
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    assert "--public-url" in done.stderr and "/ui/oidc/callback" in done.stderr, done.stderr


def test_a_provider_that_is_down_leaves_password_sign_in_working(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    public_url = f"http://127.0.0.1:{port}"
    work = tmp_path_factory.mktemp(f"oidc-down-{backend.name}")
    server = LightboxServer(
        backend, work,
        ("--public-url", public_url, "--oidc-issuer", f"http://127.0.0.1:{dead}",
         "--oidc-client-id", CLIENT_ID, "--oidc-display-name", DISPLAY_NAME),
        {"LIGHTBOX_OIDC_CLIENT_SECRET": CLIENT_SECRET},
        listen=f"127.0.0.1:{port}",
    )
    server.start()  # discovery fails in the background; the server serves anyway
    try:
        org = server.new_org()
        assert f"Sign in with {DISPLAY_NAME}" in httpx.get(f"{public_url}/ui/login").text
        web = httpx.Client(base_url=public_url, headers={"Origin": public_url}, timeout=30)
        pressed = web.get("/ui/oidc/start")
        assert pressed.status_code == 503
        assert "identity provider cannot be reached" in pressed.text
        assert "Sign in with your password" in pressed.text
        link = server.admin("reset-password", "--org", org.org_id, "--email", org.owner_email)["link"]
        assert web.post(link, data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 303
        done = web.post("/ui/login", data={"email": org.owner_email, "password": PASSWORD, "next": ""})
        assert done.status_code == 303, done.text
        assert web.get("/ui/worklist").status_code == 200
    finally:
        server.stop()


# --------------------------------------------------------------------------- Chromium


def test_in_a_browser_the_button_signs_in_to_the_worklist(backend: Backend, site: Site, browser) -> None:
    if backend.name != "sqlite":
        pytest.skip("the browser pass runs once, on SQLite")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    server = site.server
    org = server.new_org()
    login, email, _ = new_person(site, org, "bree")
    browser.get(f"{server.base_url}/ui/login")
    button = browser.find_element(By.ID, "sign-in-oidc")
    assert button.text == f"Sign in with {DISPLAY_NAME}"
    button.click()
    wait_for(browser, EC.presence_of_element_located((By.NAME, "login")), "the provider's login form")
    assert browser.current_url.startswith(site.idp.issuer)
    browser.find_element(By.NAME, "login").send_keys(login)
    browser.find_element(By.NAME, "password").send_keys("any password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "input[name=prompt][value=consent]")),
             "the provider's consent form")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, EC.url_contains("/ui/worklist"), "the worklist")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "Bree Reader"), "the user's name")
    assert email in browser.page_source


def test_another_replica_finishes_the_sign_in(backend: Backend, site: Site,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """Behind a load balancer the provider's answer may reach another replica: the
    attempt is in the browser's signed cookie, not in the first replica's memory."""
    if backend.name != "postgres":
        pytest.skip("replicas share a PostgreSQL database")
    server = site.server
    replica = LightboxServer(
        backend, tmp_path_factory.mktemp("oidc-replica"),
        ("--public-url", server.base_url, "--oidc-issuer", site.idp.issuer,
         "--oidc-client-id", CLIENT_ID),
        {"LIGHTBOX_OIDC_CLIENT_SECRET": CLIENT_SECRET},
    )
    replica.start()
    try:
        org = server.new_org()
        login, email, _ = new_person(site, org, "rhea")
        web = browser_client(server)
        done = sign_in_at_idp(web, server, login, callback_on=replica)
        assert done.status_code == 303, done.text
        # The session works on both (cookies are per host, not per port).
        assert email in worklist(web, replica).text
        assert email in worklist(web, server).text
    finally:
        replica.stop()
