"""The DICOM half of webhooks, as a partner receives it (verified and
validated by the receiver of test_webhooks.py), on SQLite and PostgreSQL: a
modality's burst of instances is one `study.images_received` per study, and
a study DICOM seeds on the worklist first asks the partner for enrichment
(`patient_study.enrichment_requested`), softly."""

from __future__ import annotations

import copy
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid
from dicomweb_client.api import DICOMwebClient
from pynetdicom import AE

from conftest import Backend, LightboxServer, Org
from test_webhooks import WEBHOOK_KEY, Receiver, create_webhook, deliveries, receiver  # noqa: F401 - the fixture

DICOMDIR_TESTS = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
QUIET_SECS = 1.5


@pytest.fixture(scope="module")
def hooked_dicom(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxServer]:
    """A DICOM receiver whose bursts end after 1.5 quiet seconds, delivering
    webhooks to loopback; a partner has 1 s to answer an enrichment call."""
    srv = LightboxServer(
        backend,
        tmp_path_factory.mktemp(f"lightbox-{backend.name}-dicom-webhooks"),
        ("--dicom-listen", "127.0.0.1:0", "--dicom-burst-quiet-secs", str(QUIET_SECS),
         "--webhook-allow-private", "--webhook-retry-delays", "1.5,1.5", "--webhook-sync-timeout-secs", "1"),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def patient_files(patient: str) -> list[pydicom.Dataset]:
    """One patient's studies from pydicom's dicomdirtests folders."""
    return [pydicom.dcmread(p) for p in sorted((DICOMDIR_TESTS / patient).rglob("*")) if p.is_file()]


def c_store(srv: LightboxServer, org: Org, datasets: list[pydicom.Dataset], pause: float = 0) -> None:
    """Sends the data sets in one association, as a modality would (`pause`
    seconds between them)."""
    ae = AE(ae_title="MODALITY")
    for sop_class, ts in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [ts])
    host, port = srv.dicom_addr
    assoc = ae.associate(host, port, ae_title=org.dicom_ae_title)
    assert assoc.is_established
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            assert status.Status == 0x0000, status
            time.sleep(pause)
    finally:
        assoc.release()


def received(receiver: Receiver) -> list[dict]:
    return [json.loads(r.body)["data"] for r in receiver.accepted() if r.type == "study.images_received"]


def test_a_burst_is_one_images_received_per_study_and_a_later_burst_another(
    hooked_dicom: LightboxServer, receiver: Receiver
) -> None:
    """A modality sends a patient's studies (several series and instances
    each): the partner hears once per study, with the counts of the whole
    burst. More images of one study later are a second event."""
    org = hooked_dicom.new_org()
    create_webhook(hooked_dicom, org, receiver, "--events", "study.images_received")
    datasets = patient_files("77654033")
    studies: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in datasets:
        studies[ds.StudyInstanceUID].append(ds)
    assert len(studies) >= 2 and all(len(v) >= 2 for v in studies.values())

    c_store(hooked_dicom, org, datasets)
    receiver.wait(lambda: len(received(receiver)) >= len(studies), "one event per study")
    time.sleep(QUIET_SECS + 1.5)  # a second event for the burst would be due by now
    events = {d["studyInstanceUid"]: d for d in received(receiver)}
    assert len(received(receiver)) == len(studies) == len(events)
    for uid, sent in studies.items():
        got = events[uid]
        assert got["instanceCount"] == got["receivedInstanceCount"] == len(sent), got
        assert got["seriesCount"] == len({ds.SeriesInstanceUID for ds in sent}), got
        assert got["modalities"] == sorted({ds.Modality for ds in sent}), got
        assert got["studyId"].startswith("stu_") and got["createdByApiKeyId"] is None
        assert got["firstReceivedAt"] <= got["occurredAt"]

    # Later, two more images of one study (new instances in a new series).
    uid, sent = next(iter(studies.items()))
    series = generate_uid()
    more = []
    for ds in sent[:2]:
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        more.append(ds)
    c_store(hooked_dicom, org, more)
    receiver.wait(lambda: len(received(receiver)) == len(studies) + 1, "the second burst's event")
    later = received(receiver)[-1]
    assert later["studyInstanceUid"] == uid
    assert later["studyId"] == events[uid]["studyId"]
    assert later["receivedInstanceCount"] == 2
    assert later["instanceCount"] == len(sent) + 2
    assert later["seriesCount"] == events[uid]["seriesCount"] + 1


ENRICHMENT = {
    "severity": "stat", "studyDescription": "Chest CT (enriched)", "patientName": "DOE^JANE",
    "dateOfBirth": "1970-01-31", "sex": "female", "mrn": "MRN-1", "expressCustomerId": "cus_abc123",
    "weight": {"value": 70.5, "unit": "kg"}, "someFieldAvaraAddsLater": True,
}


def one_study(patient: str) -> list[pydicom.Dataset]:
    """The instances of one study of a patient's, under a new Study Instance
    UID (so the organization's worklist does not have it yet)."""
    datasets = patient_files(patient)
    first = datasets[0].StudyInstanceUID
    uid = generate_uid()
    study = [ds for ds in datasets if ds.StudyInstanceUID == first]
    for ds in study:
        ds.StudyInstanceUID = uid
    return study


def test_a_new_study_is_seeded_with_the_partners_enrichment(
    hooked_dicom: LightboxServer, receiver: Receiver
) -> None:
    """The partner is asked once about the new study, before it reaches the
    worklist, and the worklist shows what it answered."""
    org = hooked_dicom.new_org()
    create_webhook(hooked_dicom, org, receiver, "--events", "patient_study.enrichment_requested")
    receiver.script = lambda request, attempt: (200, ENRICHMENT)
    study = one_study("98892001")
    assert len(study) > 2
    c_store(hooked_dicom, org, study)

    [call] = receiver.requests  # the later instances find the study on the worklist
    assert call.type == "patient_study.enrichment_requested" and call.status == 200
    data = json.loads(call.body)["data"]
    assert data["clinicId"] == org.org_id
    assert data["studyInstanceUid"] == study[0].StudyInstanceUID
    assert data.get("patientId") == (study[0].PatientID or None)
    got = org.client().viewer.studies.retrieve_by_uid(study[0].StudyInstanceUID)
    assert (got.severity, got.study_description) == ("stat", "Chest CT (enriched)")
    assert got.express_customer is not None and got.express_customer.express_customer_id == "cus_abc123"
    assert got.metadata == {"patientName": "DOE^JANE", "dateOfBirth": "1970-01-31", "sex": "female",
                            "mrn": "MRN-1", "weight": "70.5 kg"}


@pytest.mark.parametrize("partner", ["slow", "garbage", "error"])
def test_a_slow_or_broken_partner_leaves_the_study_unenriched_and_the_images_stored(
    hooked_dicom: LightboxServer, receiver: Receiver, partner: str
) -> None:
    """Answering after the 1 s timeout, answering something that is not an
    enrichment, or failing: the C-STORE still succeeds (c_store checks every
    status) and the study is what the images say."""
    org = hooked_dicom.new_org()
    create_webhook(hooked_dicom, org, receiver, "--events", "patient_study.enrichment_requested")

    def script(request, attempt):
        if partner == "slow":
            time.sleep(2)
            return (200, ENRICHMENT)
        if partner == "garbage":
            return (200, {"severity": "extremely", "studyDescription": ["not", "text"]})
        return (500, {"error": "down"})

    receiver.script = script
    study = one_study("77654033")
    started = time.monotonic()
    c_store(hooked_dicom, org, study)
    assert time.monotonic() - started < 10
    got = org.client().viewer.studies.retrieve_by_uid(study[0].StudyInstanceUID)
    assert got.severity == "normal"
    assert got.study_description != ENRICHMENT["studyDescription"]
    assert got.express_customer is None and not got.metadata
    receiver.wait(lambda: len(receiver.requests) == 1, "the one call")
    assert "extremely" not in hooked_dicom.log_path.read_text(errors="replace"), "the answer reached the log"
    metrics = httpx.get(f"{hooked_dicom.base_url}/metrics").text
    assert 'lightbox_webhook_attempts_total{type="patient_study.enrichment_requested",outcome="failed"}' in metrics


def test_a_stow_study_goes_to_the_keys_endpoint_enriched_and_reported_once(
    hooked_dicom: LightboxServer, receiver: Receiver
) -> None:
    """STOW-RS with the organization's API key: the key's own endpoint (not
    the organization's) is asked to enrich the new study and hears of the
    images once, with the key named."""
    org = hooked_dicom.new_org()
    create_webhook(hooked_dicom, org, receiver, "--api-key", org.api_key_id)
    organization_wide = hooked_dicom.admin("create-webhook", "--org", org.org_id, "--url", "http://127.0.0.1:9/")
    receiver.script = lambda request, attempt: (
        (200, ENRICHMENT) if request.type == "patient_study.enrichment_requested" else 200)
    study = one_study("98892001")
    client = DICOMwebClient(url=f"{hooked_dicom.base_url}/dicomweb",
                            headers={"Authorization": f"Bearer {org.api_key}"})
    response = client.store_instances(study)
    assert "FailedSOPSequence" not in response
    receiver.wait(lambda: len(received(receiver)) == 1, "study.images_received")
    assert [r.type for r in receiver.requests] == [
        "patient_study.enrichment_requested", "study.created", "study.images_received"]
    # The study the images created is reported like one the API created, enriched.
    created = json.loads(receiver.requests[1].body)["data"]
    assert (created["studyInstanceUid"], created["severity"]) == (study[0].StudyInstanceUID, "stat")
    [event] = received(receiver)
    assert event["receivedInstanceCount"] == event["instanceCount"] == len(study)
    assert event["createdByApiKeyId"] == org.api_key_id
    got = org.client().viewer.studies.retrieve_by_uid(study[0].StudyInstanceUID)
    assert (got.severity, got.study_id) == ("stat", event["studyId"])
    assert deliveries(hooked_dicom, org, "--webhook", organization_wide["webhook_id"]) == []


def test_a_modality_that_never_pauses_is_reported_every_ten_quiet_periods_counting_each_instance_once(
    backend: Backend, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With a 0.3 s quiet period, instances 0.15 s apart for about 4 s: the
    burst never pauses, yet it is reported while it lasts (an event is held
    at most 3 s), and the events together count every instance exactly once."""
    srv = LightboxServer(
        backend, tmp_path_factory.mktemp(f"lightbox-{backend.name}-dicom-stream"),
        ("--dicom-listen", "127.0.0.1:0", "--dicom-burst-quiet-secs", "0.3", "--webhook-allow-private"),
        {"LIGHTBOX_WEBHOOK_SECRET_KEY": WEBHOOK_KEY},
    )
    srv.start()
    try:
        org = srv.new_org()
        create_webhook(srv, org, receiver, "--events", "study.images_received")
        [template] = one_study("77654033")[:1]
        stream = []
        for _ in range(25):
            ds = copy.deepcopy(template)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            stream.append(ds)
        c_store(srv, org, stream, pause=0.15)
        receiver.wait(lambda: sum(d["receivedInstanceCount"] for d in received(receiver)) >= 25, "every instance")
        events = sorted(received(receiver), key=lambda d: d["occurredAt"])
        assert len(events) >= 2, events
        assert sum(d["receivedInstanceCount"] for d in events) == 25
        assert events[-1]["instanceCount"] == 25
    finally:
        srv.stop()
