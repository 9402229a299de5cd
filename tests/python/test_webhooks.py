"""Webhooks as a partner receives them, on SQLite and PostgreSQL.

A real receiver (stdlib HTTP server) verifies every request with the avara
SDK's own `webhooks.unwrap(body, headers=..., key=secret)` (Standard Webhooks
signatures) and validates the event with a pydantic model of its documented
`data` (docs/webhooks.md): `unwrap` alone accepts missing fields. It answers
what each scenario scripts and records what arrived.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Literal, Optional

import avara
import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from candid.resources.pre_encounter.resources.images.resources.v_1 import ImageStatus, MutableImage
from avara.types.patient_study_enrichment_requested_event import PatientStudyEnrichmentRequestedEvent
from avara.types.study_access_requested_event import StudyAccessRequestedEvent
from standardwebhooks import WebhookVerificationError

from conftest import LIGHTBOX_BIN, Backend, LightboxServer, Org, new_uid, unique_email
# moto's S3 server as the Images tests start it (imported, pytest offers the fixture here too).
from s3server import S3_BUCKET, SeaweedS3
from test_images import S3_PREFIX, as_fields, mutable, put

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"

# --------------------------------------------------------------------------- event models

Severity = Literal["normal", "high", "stat"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyData(Strict):
    studyId: str
    studyInstanceUid: str
    studyDescription: str
    severity: Severity
    studyViewerStatus: Literal["incomplete", "complete"]
    isCancelled: bool
    assignedTo: Optional[str]
    expressCustomerId: Optional[str]
    createdByApiKeyId: Optional[str]
    occurredAt: str


class StudyUpdatedData(StudyData):
    changes: list[str]


class StudyAssignedData(StudyData):
    previousAssignedTo: Optional[str]


class ImageUploadedData(Strict):
    imageId: str
    fileName: str
    displayName: str
    fileType: str
    contentType: str
    sizeBytes: int
    patientId: Optional[str]
    occurredAt: str


class ImagesReceivedData(Strict):
    studyId: str
    studyInstanceUid: str
    seriesCount: int
    instanceCount: int
    modalities: list[str]
    receivedInstanceCount: int
    createdByApiKeyId: Optional[str]
    firstReceivedAt: str
    occurredAt: str


def event_model(data_model: type[BaseModel], type_name: str) -> type[BaseModel]:
    class Event(Strict):
        id: str
        type: Literal[type_name]  # type: ignore[valid-type]
        data: data_model  # type: ignore[valid-type]

    Event.__name__ = f"Event[{type_name}]"
    return Event


EVENT_MODELS: dict[str, type[BaseModel]] = {
    # Avara's own event: its SDK model.
    "study.access_requested": StudyAccessRequestedEvent,
    "patient_study.enrichment_requested": PatientStudyEnrichmentRequestedEvent,
    "study.created": event_model(StudyData, "study.created"),
    "study.updated": event_model(StudyUpdatedData, "study.updated"),
    "study.assigned": event_model(StudyAssignedData, "study.assigned"),
    "study.completed": event_model(StudyData, "study.completed"),
    "study.cancelled": event_model(StudyData, "study.cancelled"),
    "image.uploaded": event_model(ImageUploadedData, "image.uploaded"),
    "study.images_received": event_model(ImagesReceivedData, "study.images_received"),
}

# --------------------------------------------------------------------------- receiver


@dataclass
class Received:
    webhook_id: str
    timestamp: int
    signature: str
    body: str
    type: str
    verified_by: list[str]  # the keys that verified it
    status: int  # what the receiver answered
    at: float = field(default_factory=time.monotonic)  # when it arrived


# (request, n-th attempt of this id) -> status, or (status, JSON answer[, headers])
Script = Callable[["Received", int], "int | tuple"]


@dataclass
class Receiver:
    """A partner's endpoint. `keys` are the secrets it accepts; `script`
    chooses each answer (default 200)."""

    keys: list[str] = field(default_factory=list)
    script: Optional[Script] = None
    requests: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: str) -> tuple[int, dict, dict]:
        sdk = avara.Avara(api_key="unused", base_url="http://127.0.0.1:9")
        verified_by = []
        for key in self.keys:
            try:
                sdk.webhooks.unwrap(body, headers=headers, key=key)
                verified_by.append(key)
            except WebhookVerificationError:
                pass
        event = json.loads(body)
        model = EVENT_MODELS.get(event.get("type"))
        if verified_by:
            if model is None:
                self.errors.append(f"unexpected type {event.get('type')!r}")
            else:
                try:
                    model.model_validate(event)
                except Exception as e:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{event.get('type')}: {e}")
            if event.get("id") != headers.get("webhook-id"):
                self.errors.append("webhook-id is not the event id")
        with self.lock:
            got = Received(
                webhook_id=headers.get("webhook-id", ""),
                timestamp=int(headers.get("webhook-timestamp", "0")),
                signature=headers.get("webhook-signature", ""),
                body=body,
                type=event.get("type", ""),
                verified_by=verified_by,
                status=0,
            )
            attempt = sum(1 for r in self.requests if r.webhook_id == got.webhook_id) + 1
            answer = 401 if not verified_by else (self.script(got, attempt) if self.script else 200)
            status, reply, extra = (*answer, {})[:3] if isinstance(answer, tuple) else (answer, {"received": True}, {})
            got.status = status
            self.requests.append(got)
        return status, reply, extra

    # -- what the tests read

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def of(self, webhook_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.webhook_id == webhook_id]

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; received: "
                    f"{[(r.type, r.webhook_id, r.status) for r in self.requests]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, extra = rec.handle(headers, body)
            reply = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{http.server_address[1]}/hooks"
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield rec
    http.shutdown()
    assert not rec.errors, rec.errors


# --------------------------------------------------------------------------- server

WEBHOOK_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def hooked(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    """A server that delivers webhooks to loopback, retrying after 1.5 s
    twice (three attempts in all)."""
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-{backend.name}-webhooks"),
        ("--webhook-allow-private", "--webhook-retry-delays", "1.5,1.5", "--webhook-timeout-secs", "3"),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()  # SIGTERM: the worker lets in-flight sends finish, then the server exits 0


def create_webhook(srv: LightboxServer, org: Org, receiver: Receiver, *extra: str) -> dict:
    hook = srv.admin("create-webhook", "--org", org.org_id, "--url", receiver.url, *extra)
    assert hook["secret"].startswith("whsec_")
    receiver.keys.append(hook["secret"])
    return hook


def create_study(client: avara.Avara, **fields):
    fields.setdefault("severity", "normal")
    fields.setdefault("study_description", "Chest CT")
    fields.setdefault("study_instance_uid", new_uid())
    return client.viewer.studies.create(**fields)


def deliveries(srv: LightboxServer, org: Org, *args: str) -> list[dict]:
    """`admin webhook-deliveries --json`: one object per line."""
    cmd = [str(LIGHTBOX_BIN), "admin", "webhook-deliveries", "--org", org.org_id, "--json",
           "--data-dir", str(srv.data_dir), *args]
    done = subprocess.run(cmd, env=srv.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- scenarios


def test_every_event_type_arrives_signed_and_valid(hooked: LightboxServer, receiver: Receiver) -> None:
    """Acme's partner receives each kind of change as its own event, each
    verified by the SDK and valid against its documented shape; another
    organization's changes never reach it."""
    acme, other = hooked.new_org(), hooked.new_org()
    create_webhook(hooked, acme, receiver)
    client = acme.client()
    reader = hooked.create_user(acme.org_id, unique_email("reader"))
    study = create_study(client, severity="high")
    client.viewer.studies.update(study.study_id, severity="stat")
    client.viewer.studies.update(study.study_id, assigned_to=reader)
    client.viewer.studies.update(study.study_id, study_viewer_status="complete")
    client.viewer.studies.cancel(study_id=study.study_id)
    create_study(other.client())

    images = acme.images_client().pre_encounter.images.v_1
    image = images.create(request=MutableImage(
        file_name="card.png", display_name="Card", file_type="image/png", status=ImageStatus.PENDING))
    png = PNG + b"\x00" * 64
    assert httpx.put(image.signed_url, content=png).status_code == 200

    wanted = {"study.created", "study.updated", "study.assigned", "study.completed",
              "study.cancelled", "image.uploaded"}
    receiver.wait(lambda: wanted <= {r.type for r in receiver.accepted()}, "every event type")
    receiver.wait(lambda: len(receiver.accepted()) >= 9, "nine events")
    # Sent concurrently: put them back in the order they were made (ids are time-ordered).
    events = sorted((json.loads(r.body) for r in receiver.accepted()), key=lambda e: e["id"])
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"])
    assert {d["studyId"] for t, ds in by_type.items() if t.startswith("study.") for d in ds} == {study.study_id}
    assert by_type["study.created"][0]["severity"] == "high"
    assert by_type["study.created"][0]["createdByApiKeyId"] == acme.api_key_id
    assert [d["changes"] for d in by_type["study.updated"]] == [
        ["severity"], ["assignedTo"], ["studyViewerStatus"], ["isCancelled"]]
    assert by_type["study.assigned"][0]["assignedTo"] == reader
    assert by_type["study.assigned"][0]["previousAssignedTo"] is None
    assert by_type["study.completed"][0]["studyViewerStatus"] == "complete"
    assert by_type["study.cancelled"][0]["isCancelled"] is True
    assert by_type["image.uploaded"] == [{**by_type["image.uploaded"][0], "imageId": str(image.id),
                                          "sizeBytes": len(png), "contentType": "image/png"}]
    assert len({r.webhook_id for r in receiver.accepted()}) == len(receiver.accepted())


def test_a_failing_receiver_gets_the_same_event_again_until_it_answers(
    hooked: LightboxServer, receiver: Receiver
) -> None:
    """500, 500, 200: three attempts, one webhook-id, the same body, each
    signed anew at a later time."""
    org = hooked.new_org()
    create_webhook(hooked, org, receiver, "--events", "study.created")
    receiver.script = lambda request, attempt: 500 if attempt <= 2 else 200
    study = create_study(org.client())
    receiver.wait(lambda: len(receiver.accepted()) == 1, "the third attempt")
    attempts = receiver.requests
    assert [r.status for r in attempts] == [500, 500, 200]
    assert len({r.webhook_id for r in attempts}) == 1
    assert len({r.body for r in attempts}) == 1
    assert json.loads(attempts[0].body)["data"]["studyId"] == study.study_id
    assert attempts[0].timestamp < attempts[1].timestamp < attempts[2].timestamp
    assert len({r.signature for r in attempts}) == 3
    [row] = deliveries(hooked, org)
    assert (row["delivery_id"], row["status"], row["attempts"]) == (attempts[0].webhook_id, "delivered", 3)


def test_retry_after_is_honoured(hooked: LightboxServer, receiver: Receiver) -> None:
    """A busy receiver's `Retry-After: 4` outweighs the 1.5 s the schedule says."""
    org = hooked.new_org()
    create_webhook(hooked, org, receiver, "--events", "study.created")
    receiver.script = lambda request, attempt: (503, {}, {"retry-after": "4"}) if attempt == 1 else 200
    create_study(org.client())
    receiver.wait(lambda: len(receiver.accepted()) == 1, "the retry")
    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id
    assert second.at - first.at >= 3.9, second.at - first.at


def test_after_a_rotation_both_secrets_verify_during_the_overlap(
    hooked: LightboxServer, receiver: Receiver
) -> None:
    org = hooked.new_org()
    hook = create_webhook(hooked, org, receiver)
    rotated = hooked.admin("rotate-webhook-secret", "--org", org.org_id, "--id", hook["webhook_id"])
    assert rotated["secret"] != hook["secret"]
    receiver.keys.append(rotated["secret"])
    create_study(org.client())
    receiver.wait(lambda: len(receiver.accepted()) == 1, "the event")
    [got] = receiver.requests
    assert got.verified_by == [hook["secret"], rotated["secret"]]
    assert len(got.signature.split(" ")) == 2

    # Without an overlap, only the new secret signs.
    again = hooked.admin("rotate-webhook-secret", "--org", org.org_id, "--id", hook["webhook_id"],
                         "--overlap-hours", "0")
    receiver.keys.append(again["secret"])
    create_study(org.client())
    receiver.wait(lambda: len(receiver.accepted()) == 2, "the second event")
    assert receiver.requests[-1].verified_by == [again["secret"]]
    log = hooked.log_path.read_text(errors="replace")
    for secret in (hook["secret"], rotated["secret"], again["secret"], WEBHOOK_KEY):
        assert secret[6:] not in log, "a secret reached the server log"


def test_a_wrong_secret_is_refused_retried_then_dead_audited_counted_and_redeliverable(
    hooked: LightboxServer, receiver: Receiver
) -> None:
    org = hooked.new_org()
    hook = hooked.admin("create-webhook", "--org", org.org_id, "--url", receiver.url)
    receiver.keys.append("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    create_study(org.client())
    receiver.wait(lambda: len(receiver.requests) == 3, "three refused attempts")
    assert [r.status for r in receiver.requests] == [401, 401, 401]

    def dead() -> list[dict]:
        return deliveries(hooked, org, "--status", "dead")

    receiver.wait(lambda: len(dead()) == 1, "the delivery to be dead")
    [row] = dead()
    assert row["last_http_status"] == 401 and row["attempts"] == 3
    audit = hooked.admin("audit", "--org", org.org_id, "--action", "webhook.dead")
    assert audit["resource_id"] == row["delivery_id"]
    metrics = httpx.get(f"{hooked.base_url}/metrics").text
    assert any(line.startswith("lightbox_webhook_dead_total") and not line.endswith(" 0")
               for line in metrics.splitlines()), metrics

    # The partner fixes its secret; the operator sends the event again, same id.
    receiver.keys.append(hook["secret"])
    hooked.admin("redeliver", "--org", org.org_id, "--id", row["delivery_id"])
    receiver.wait(lambda: len(receiver.accepted()) == 1, "the redelivery")
    assert receiver.accepted()[0].webhook_id == row["delivery_id"]
    assert receiver.accepted()[0].body == receiver.requests[0].body


def test_410_disables_the_endpoint(hooked: LightboxServer, receiver: Receiver) -> None:
    org = hooked.new_org()
    hook = create_webhook(hooked, org, receiver)
    receiver.script = lambda request, attempt: 410
    create_study(org.client())
    receiver.wait(lambda: len(receiver.requests) == 1, "the first attempt")

    def listed() -> dict:
        out = hooked.admin("list-webhooks", "--org", org.org_id)
        assert out["webhook_id"] == hook["webhook_id"]
        return out

    receiver.wait(lambda: listed()["enabled"] is False, "the endpoint to be disabled")
    assert "410" in listed()["disabled_reason"]
    time.sleep(2)
    assert len(receiver.requests) == 1, "a disabled endpoint is not called"

    receiver.script = None
    hooked.admin("enable-webhook", "--org", org.org_id, "--id", hook["webhook_id"])
    receiver.wait(lambda: len(receiver.accepted()) == 1, "delivery after enabling")


def test_events_pending_at_a_crash_are_each_delivered_once_after_restart(
    hooked: LightboxServer, receiver: Receiver
) -> None:
    """The receiver is down (503) while five studies are made; the server is
    killed with their events pending; after a restart each arrives once."""
    org = hooked.new_org()
    create_webhook(hooked, org, receiver, "--events", "study.created")
    up = threading.Event()
    receiver.script = lambda request, attempt: 200 if up.is_set() else 503
    client = org.client()
    made = {create_study(client).study_id for _ in range(5)}
    client.close()
    receiver.wait(lambda: len({r.webhook_id for r in receiver.requests}) == 5, "first attempts")
    hooked.proc.kill()
    hooked.proc.wait()
    up.set()
    hooked.start()
    receiver.wait(lambda: len(receiver.accepted()) >= 5, "every event after the restart")
    time.sleep(2)  # anything sent twice would arrive by now
    accepted = receiver.accepted()
    assert sorted(r.webhook_id for r in accepted) == sorted({r.webhook_id for r in accepted})
    assert {json.loads(r.body)["data"]["studyId"] for r in accepted} == made


def test_two_replicas_on_one_database_send_each_event_once(
    hooked: LightboxServer, receiver: Receiver, backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two servers share the outbox (PostgreSQL: claims skip each other's
    locked rows; SQLite: one writer claims at a time). Events made on both,
    first refused then accepted, each arrive accepted exactly once."""
    shared = hooked.data_dir if backend.name == "sqlite" else tmp_path_factory.mktemp("replica")
    replica = LightboxServer(backend, shared, hooked.extra_args, {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY})
    replica.log_path = tmp_path_factory.mktemp("replica-log") / "server.log"
    replica.start()
    try:
        org = hooked.new_org()
        create_webhook(hooked, org, receiver, "--events", "study.created")
        receiver.script = lambda request, attempt: 503 if attempt == 1 else 200
        clients = [org.client(), replica.client(org.api_key)]
        for n in range(12):
            create_study(clients[n % 2])
        receiver.wait(lambda: len(receiver.accepted()) >= 12, "every event accepted")
        time.sleep(2)  # a second send of any of them would arrive by now
        accepted = [r.webhook_id for r in receiver.accepted()]
        assert len(accepted) == 12 and len(set(accepted)) == 12, accepted
        for r in receiver.requests:
            assert len(receiver.of(r.webhook_id)) == 2, "one refused and one accepted attempt each"
    finally:
        replica.stop(check=False)


def test_a_synchronous_call_is_answered_and_its_answer_read_strictly(
    hooked: LightboxServer, receiver: Receiver
) -> None:
    """`admin test-webhook` makes the call the viewer will make: a signed
    `study.access_requested` that avara's own model accepts; the partner's
    answer comes back parsed, and an answer of the wrong shape is refused."""
    org = hooked.new_org()
    hook = create_webhook(hooked, org, receiver, "--events", "study.access_requested")
    study = create_study(org.client())
    urls = ["https://pacs.example/1.dcm", "https://pacs.example/2.dcm"]
    receiver.script = lambda request, attempt: (200, {"authorized": True, "urls": urls})
    call = ["test-webhook", "--org", org.org_id, "--id", hook["webhook_id"], "--study", study.study_id,
            "--webhook-allow-private"]
    answer = hooked.admin(*call)
    assert answer["authorized"] is True and answer["url_count"] == 2
    [got] = receiver.requests
    assert got.type == "study.access_requested" and got.verified_by == [hook["secret"]]
    event = StudyAccessRequestedEvent.model_validate(json.loads(got.body))
    assert event.data.study_id == study.study_id
    assert event.data.study_instance_uid == study.study_instance_uid

    receiver.script = lambda request, attempt: (200, {"authorized": "yes"})
    done = subprocess.run([str(LIGHTBOX_BIN), "admin", *call, "--data-dir", str(hooked.data_dir)],
                          env=hooked.env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "unreadable" in done.stderr, done.stderr
    # Without the allowance, a loopback partner is not called at all.
    strict = subprocess.run([str(LIGHTBOX_BIN), "admin", *call[:-1], "--data-dir", str(hooked.data_dir)],
                            env=hooked.env, capture_output=True, text=True, timeout=30)
    assert strict.returncode != 0 and "--webhook-allow-private" in strict.stderr, strict.stderr
    assert len(receiver.requests) == 2


def test_an_s3_upload_is_reported_once_verified(
    backend: Backend, s3: SeaweedS3, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With image files in S3, `image.uploaded` is sent when the update that
    marks the image UPLOADED has verified the bytes, not before."""
    env = {**s3.lightbox_env(S3_BUCKET, S3_PREFIX), "LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY}
    srv = LightboxServer(backend, tmp_path_factory.mktemp(f"lightbox-s3-webhooks-{backend.name}"),
                         ("--webhook-allow-private",), env)
    srv.start()
    try:
        org = srv.new_org()
        create_webhook(srv, org, receiver, "--events", "image.uploaded")
        api = org.images_client().pre_encounter.images.v_1
        image = api.create(request=mutable("s3.png"))
        assert put(image.signed_url, PNG).status_code == 200
        time.sleep(1)
        assert receiver.requests == [], "sent before the bytes were verified"
        api.update(id=image.id, version="1", request=as_fields(image, status=ImageStatus.UPLOADED))
        receiver.wait(lambda: len(receiver.accepted()) == 1, "image.uploaded")
        data = json.loads(receiver.accepted()[0].body)["data"]
        assert (data["imageId"], data["sizeBytes"], data["contentType"]) == (str(image.id), len(PNG), "image/png")
    finally:
        srv.stop()
