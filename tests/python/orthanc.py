"""Orthanc 1.10 with its DICOMweb plugin (Debian's `orthanc` and `orthanc-dicomweb`),
as a reference DICOMweb server: the QIDO-RS tests STOW the same files into it and
into Lightbox and compare the answers.

It runs on a free loopback port with its own storage folder, no DIMSE listener
and no authentication, and is stopped (SIGTERM, then kill) when the fixture ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient

ORTHANC_BIN = Path(os.environ.get("LIGHTBOX_TEST_ORTHANC", "/usr/sbin/Orthanc"))
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = ORTHANC_PLUGINS / "libOrthancDicomWeb.so"
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process; `dicomweb` is its QIDO/STOW root."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.dicomweb_url = f"{self.base_url}/dicom-web"
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = folder / "orthanc.log"

    def start(self) -> None:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "lightbox-qido-reference",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            # Only the DICOMweb plugin: the others want configuration of their own.
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "MainDicomTags"},
        }
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(config))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(ORTHANC_BIN), str(config_path)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {self.proc.returncode}:\n{self.log_tail()}", pytrace=False)
            try:
                if httpx.get(f"{self.base_url}/system", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Orthanc did not answer within {STARTUP_TIMEOUT_S}s:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.1)
        plugins = httpx.get(f"{self.base_url}/plugins", timeout=5).json()
        if "dicom-web" not in plugins:
            self.stop()
            pytest.fail(f"Orthanc started without its DICOMweb plugin (plugins: {plugins})", pytrace=False)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def client(self) -> DICOMwebClient:
        return DICOMwebClient(url=self.dicomweb_url)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc for the module's tests (`scripts/test` installs it)."""
    if not ORTHANC_BIN.exists() or not DICOMWEB_PLUGIN.exists():
        pytest.fail(f"Orthanc or its DICOMweb plugin is not installed ({ORTHANC_BIN}, {DICOMWEB_PLUGIN}): "
                    "apt-get install orthanc orthanc-dicomweb", pytrace=False)
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
