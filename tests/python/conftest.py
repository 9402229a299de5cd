"""End-to-end fixtures: a real `lightbox serve` per storage backend, driven
through the official avara (Viewer) and candidhealth (Images) SDKs.

Environment:
  LIGHTBOX_BIN                  server binary (default: <repo>/target/debug/lightbox)
  LIGHTBOX_TEST_DATABASE_URL    PostgreSQL admin URL used to create a throw-away
                                database (default: postgres://postgres@127.0.0.1:5432/postgres)
  LIGHTBOX_TEST_SKIP_POSTGRES=1 skip the postgres backend instead of failing when
                                PostgreSQL cannot be reached
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import avara
import httpx
from candid import CandidApiClient, CandidApiClientEnvironment
import psycopg
import pytest
from psycopg import sql

from s3server import S3_BUCKET, SeaweedS3

REPO = Path(__file__).resolve().parents[2]
LIGHTBOX_BIN = Path(os.environ.get("LIGHTBOX_BIN", REPO / "target" / "debug" / "lightbox"))
DEFAULT_PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"

STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 10
ADMIN_TIMEOUT_S = 30


def new_uid() -> str:
    """A fresh DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2)."""
    return f"2.25.{secrets.randbits(100)}"


def unique_email(label: str = "user") -> str:
    return f"{label}-{secrets.token_hex(6)}@example.org"


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: Optional[str] = None  # None: the SQLite file in the data dir


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="session", params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite")
        return

    admin_url = os.environ.get("LIGHTBOX_TEST_DATABASE_URL", DEFAULT_PG_ADMIN_URL)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        admin, message = None, f"PostgreSQL at {_redacted(admin_url)} is unreachable: {e}"
    if admin is None:
        if os.environ.get("LIGHTBOX_TEST_SKIP_POSTGRES") == "1":
            pytest.skip(message)
        pytest.fail(
            f"{message}\nStart PostgreSQL, point LIGHTBOX_TEST_DATABASE_URL at one, "
            "or set LIGHTBOX_TEST_SKIP_POSTGRES=1 to skip the postgres backend.",
            pytrace=False,
        )

    database = f"lightbox_pytest_{secrets.token_hex(8)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield Backend("postgres", _with_database(admin_url, database))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


# --------------------------------------------------------------------------- server


@dataclass
class Org:
    """An organization made with `lightbox admin create-org`, plus SDK clients for it."""

    server: "LightboxServer"
    org_id: str
    owner_user_id: str
    owner_email: str
    api_key: str
    api_key_id: str
    client_id: str = ""  # OAuth client credentials for the Images API
    client_secret: str = ""
    dicom_ae_title: str = ""  # the called AE title DIMSE senders use
    _clients: list = field(default_factory=list, repr=False)

    def client(self, **kwargs) -> avara.Avara:
        """An SDK client for this org's API key (max_retries=0 unless given)."""
        client = self.server.client(self.api_key, **kwargs)
        self._clients.append(client)
        return client

    def images_client(self, **kwargs) -> CandidApiClient:
        """A candidhealth SDK client that gets its token with this org's client credentials."""
        return self.server.candid_client(self.client_id, self.client_secret, **kwargs)

    def close(self) -> None:
        for client in self._clients:
            client.close()


class LightboxServer:
    """One `lightbox serve` process and the admin CLI against the same store."""

    def __init__(
        self,
        backend: Backend,
        data_dir: Path,
        extra_args: tuple[str, ...] = (),
        extra_env: Optional[dict[str, str]] = None,
        listen: str = "127.0.0.1:0",
    ):
        self.backend = backend
        self.listen = listen
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AVARA_", "LIGHTBOX_"))}
        self.env.pop("DATABASE_URL", None)
        if backend.database_url:
            self.env["DATABASE_URL"] = backend.database_url
        self.env.setdefault("LIGHTBOX_LOG", "info,sqlx=warn")
        self.env.update(extra_env or {})
        self.log_path = data_dir / "server.log"
        self.base_url = ""
        self.dicom_addr: Optional[tuple[str, int]] = None  # with --dicom-listen
        self.proc: Optional[subprocess.Popen] = None

    # -- process lifecycle

    def start(self) -> None:
        if not LIGHTBOX_BIN.exists():
            pytest.fail(
                f"{LIGHTBOX_BIN} not found: run `cargo build --bin lightbox` or set LIGHTBOX_BIN",
                pytrace=False,
            )
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(LIGHTBOX_BIN), "serve", "--listen", self.listen,
             "--data-dir", str(self.data_dir), *self.extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self.env,
        )
        lines: queue.Queue = queue.Queue()

        def pump() -> None:  # keeps stdout drained for the life of the process
            for raw in self.proc.stdout:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        def next_line() -> Optional[str]:
            try:
                return lines.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                return "<nothing within the timeout>"

        line = next_line()
        dicom_prefix = "dicom listening on "
        if line is not None and line.startswith(dicom_prefix):
            host, port = line[len(dicom_prefix):].strip().rsplit(":", 1)
            self.dicom_addr = (host, int(port))
            line = next_line()
        prefix = "listening on "
        if line is None or not line.startswith(prefix):
            self.stop(check=False)
            pytest.fail(
                f"lightbox serve ({self.backend.name}) did not start: first stdout line {line!r}\n"
                f"--- server log ---\n{self.log_tail()}",
                pytrace=False,
            )
        self.base_url = line[len(prefix):].strip()

    def stop(self, check: bool = True) -> None:
        proc = self.proc
        if proc is None:
            return
        exited_on_sigterm = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                exited_on_sigterm = False
                proc.kill()
                proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        self._log.close()
        self.proc = None
        if check:
            assert proc.returncode is not None, "lightbox serve is still running"
            assert exited_on_sigterm, (
                f"lightbox serve did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM; killed it"
            )
            assert proc.returncode == 0, (
                f"lightbox serve exited with {proc.returncode} after SIGTERM\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    # -- admin CLI

    def admin(self, *args: str) -> dict:
        cmd = [str(LIGHTBOX_BIN), "admin", *args, "--json", "--data-dir", str(self.data_dir)]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=ADMIN_TIMEOUT_S)
        assert done.returncode == 0, f"{' '.join(args[:1])} failed ({done.returncode}):\n{done.stderr}"
        return json.loads(done.stdout)

    def create_org(self, name: Optional[str] = None, owner_email: Optional[str] = None) -> dict:
        return self.admin(
            "create-org",
            "--name", name or f"Org {secrets.token_hex(4)}",
            "--owner-email", owner_email or unique_email("owner"),
        )

    def create_user(
        self,
        org_id: str,
        email: str,
        *,
        first_name: Optional[str] = None,
        last_name: Optional[str] = None,
        clinic_role: Optional[str] = None,
        level: Optional[str] = None,
    ) -> str:
        args = ["create-user", "--org", org_id, "--email", email]
        for flag, value in [("--first-name", first_name), ("--last-name", last_name),
                            ("--clinic-role", clinic_role), ("--level", level)]:
            if value is not None:
                args += [flag, value]
        out = self.admin(*args)
        assert out["email"] == email
        return out["user_id"]

    def create_api_key(self, org_id: str, description: str = "pytest key") -> dict:
        return self.admin("create-api-key", "--org", org_id, "--description", description)

    def new_org(self) -> Org:
        owner_email = unique_email("owner")
        out = self.create_org(owner_email=owner_email)
        return Org(
            server=self,
            org_id=out["org_id"],
            owner_user_id=out["user_id"],
            owner_email=owner_email,
            api_key=out["api_key"],
            api_key_id=out["api_key_id"],
            client_id=out["client_id"],
            client_secret=out["client_secret"],
            dicom_ae_title=out["dicom_ae_title"],
        )

    # -- SDK

    def candid_environment(self) -> CandidApiClientEnvironment:
        """One server plays both Candid roles: token endpoint and pre-encounter API."""
        return CandidApiClientEnvironment(candid_api=self.base_url, pre_encounter=self.base_url)

    def candid_client(self, client_id: str, client_secret: str, **kwargs) -> CandidApiClient:
        return CandidApiClient(
            environment=self.candid_environment(),
            client_id=client_id,
            client_secret=client_secret,
            **kwargs,
        )

    def client(self, api_key: str, *, max_retries: int = 0, **kwargs) -> avara.Avara:
        """An SDK client pointed at this server. Strict response validation makes
        the SDK's own models check every response against the documented types."""
        kwargs.setdefault("_strict_response_validation", True)
        return avara.Avara(api_key=api_key, base_url=self.base_url, max_retries=max_retries, **kwargs)


@pytest.fixture(scope="session")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-{backend.name}"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SigV4-verifying S3 server (SeaweedFS, see s3server.py) on loopback, with one bucket."""
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        server.create_bucket(S3_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory):
    """Starts an extra server on the same backend with its own flags."""
    started: list[LightboxServer] = []

    def start(*extra_args: str) -> LightboxServer:
        srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-{backend.name}-extra"), extra_args)
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def org(server: LightboxServer) -> Iterator[Org]:
    """A fresh organization, so a test's listings contain only its own studies."""
    o = server.new_org()
    yield o
    o.close()


@pytest.fixture
def other_org(server: LightboxServer) -> Iterator[Org]:
    o = server.new_org()
    yield o
    o.close()


@pytest.fixture
def client(org: Org) -> avara.Avara:
    return org.client()


class RequestLog:
    """Counts the HTTP requests an SDK client actually sends (retries included)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)


@pytest.fixture
def counting_client(org: Org) -> Callable[..., tuple[avara.Avara, RequestLog]]:
    def make(**kwargs) -> tuple[avara.Avara, RequestLog]:
        log = RequestLog()
        http = avara.DefaultHttpxClient(event_hooks={"request": [log.hook]})
        return org.client(http_client=http, **kwargs), log

    return make
