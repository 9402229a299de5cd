"""Fuzzing: schemathesis against the server's own /openapi.json, every
operation, with real credentials for both products (a Viewer API key; an
Images OAuth token fetched from the token endpoint). It fails on any 5xx and
on any response whose status, content type, headers or body the document
does not describe. The example count is bounded so the run stays short.

SCHEMATHESIS_MAX_EXAMPLES raises the count for a deeper local run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")
TIMEOUT_S = 600
# Operations authorized by a signed link or by the client credentials themselves.
SIGNED_OR_TOKEN = ("/api/auth/v2/token", "/blobs/v1/images/", "/viewer/open/", "/viewer/session/")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_schemathesis_finds_no_server_errors_or_schema_violations(start_server, tmp_path: Path) -> None:
    # Rate limiting off: the fuzzer sends far more than one credential's budget.
    srv = start_server("--rate-limit-per-second", "0")
    org = srv.create_org()
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
[auth.openapi.apiKey]
bearer = {_toml_string(org["api_key"])}

[auth.dynamic.openapi.oauth2]
path = "/api/auth/v2/token"
payload = {{ client_id = {_toml_string(org["client_id"])}, client_secret = {_toml_string(org["client_secret"])} }}
extract_selector = "/access_token"
"""
    )
    cli = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(cli),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{srv.base_url}/openapi.json",
        "--url",
        srv.base_url,
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        MAX_EXAMPLES,
        "--workers",
        "2",
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "20250130"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    report = done.stdout[-20000:] + done.stderr[-5000:]
    assert done.returncode == 0, f"schemathesis found problems:\n{report}\n\nserver log:\n{srv.log_tail(60)}"
    # It really exercised every operation, with working credentials for both
    # products: only the signed-link and token operations may answer 401/403 only.
    document = httpx.get(f"{srv.base_url}/openapi.json").json()
    operations = sum(len(item) for item in document["paths"].values())
    assert f"Tested: {operations}" in done.stdout, report
    if "Authentication failed" in done.stdout:
        section = done.stdout.split("Authentication failed", 1)[1].split("💡", 1)[0]
        for line in section.splitlines():
            if line.strip().startswith("- "):
                path = line.split()[-1]
                assert path.startswith(SIGNED_OR_TOKEN), f"{path} got only 401/403:\n{report}"
