"""Two `lightbox serve` replicas on one PostgreSQL database and one S3 bucket,
as behind a load balancer: requests alternate between them, and what one
writes, signs or revokes holds on the other. PostgreSQL only: SQLite is one
server's embedded database.

What stays per process is the rate limiter (docs/operations.md, "Replicas").
"""

from __future__ import annotations

import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import avara
import httpx
import pytest
from candid import CandidApiClient, CandidApiClientEnvironment
from candid.resources.pre_encounter.resources.common import VersionConflictError
from candid.resources.pre_encounter.resources.images.resources.v_1 import ImageStatus, MutableImage

from conftest import Backend, LightboxServer, Org, new_uid
from s3server import S3_BUCKET, SeaweedS3
from test_web_admin_dicom import LiveStream, signed_in

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


class Pair:
    """Replica A and replica B of one deployment."""

    def __init__(self, a: LightboxServer, b: LightboxServer):
        self.a, self.b = a, b
        self.both = (a, b)

    def on(self, i: int) -> LightboxServer:
        """The replica a load balancer alternating between them picks for request `i`."""
        return self.both[i % 2]


@pytest.fixture(scope="module")
def pair(backend: Backend, s3: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if backend.name != "postgres":
        pytest.skip("replicas share a PostgreSQL database")
    env = s3.lightbox_env(S3_BUCKET, f"replicas-{secrets.token_hex(4)}")
    servers = [
        LightboxServer(backend, tmp_path_factory.mktemp(f"replica-{name}"), extra_env=env)
        for name in "ab"
    ]
    # Both start at once, as a fresh deployment's replicas do: the migrations
    # and the shared URL-signing key are made once between them.
    starters = [threading.Thread(target=s.start) for s in servers]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        for s in servers:
            assert s.base_url, f"replica did not start:\n{s.log_tail()}"
        assert servers[0].base_url != servers[1].base_url
        yield Pair(*servers)
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def acme(pair: Pair) -> Iterator[Org]:
    o = pair.a.new_org()
    yield o
    o.close()


def viewer(server: LightboxServer, org: Org) -> avara.Avara:
    """A Viewer SDK client for `org`'s API key whose requests go to `server`."""
    client = server.client(org.api_key)
    org._clients.append(client)  # closed with the org
    return client


def images_on(server: LightboxServer, org: Org, token_from: LightboxServer | None = None) -> CandidApiClient:
    """A candidhealth client whose requests go to `server`, with its token from `token_from`."""
    environment = CandidApiClientEnvironment(
        candid_api=(token_from or server).base_url, pre_encounter=server.base_url,
    )
    return CandidApiClient(environment=environment, client_id=org.client_id, client_secret=org.client_secret)


def png_image(name: str) -> MutableImage:
    return MutableImage(file_name=name, display_name=name, file_type="image/png", status=ImageStatus.PENDING)


def uploaded(image) -> MutableImage:
    return MutableImage(
        file_name=image.file_name, display_name=image.display_name, file_type=image.file_type,
        status=ImageStatus.UPLOADED, coverage=image.coverage, patient=image.patient,
    )


# --------------------------------------------------------------------------- the stories


def test_studies_written_through_one_are_read_listed_and_searched_through_the_other(pair: Pair, acme: Org) -> None:
    needle = f"tracer{secrets.token_hex(3)}"
    made = []
    for i in range(6):
        study = viewer(pair.on(i), acme).viewer.studies.create(
            severity="stat" if i % 3 == 0 else "normal",
            study_description=f"CT {needle} {i}" if i % 2 else f"MR {i}",
            study_instance_uid=new_uid(),
        )
        made.append(study)
    newest_first = [s.study_id for s in reversed(made)]
    for server in pair.both:
        client = viewer(server, acme)
        assert [s.study_id for s in client.viewer.studies.list()] == newest_first
        found = client.viewer.studies.list(study_description=needle)
        assert [s.study_id for s in found] == [s.study_id for s in reversed(made) if needle in s.study_description]
        assert [s.study_id for s in client.viewer.studies.list(severity="stat")] == [
            s.study_id for s in reversed(made) if s.severity == "stat"
        ]
    # Written by A, read by id and by UID through B; changed through B, read through A.
    first = made[0]
    on_b = viewer(pair.b, acme)
    assert on_b.viewer.studies.retrieve(first.study_id).model_dump() == first.model_dump()
    assert on_b.viewer.studies.retrieve_by_uid(first.study_instance_uid).study_id == first.study_id
    on_b.viewer.studies.update(first.study_id, study_description=f"updated {needle}")
    again = viewer(pair.a, acme).viewer.studies.retrieve(first.study_id)
    assert again.study_description == f"updated {needle}"


def test_a_worklist_open_on_one_sees_studies_written_through_the_other(pair: Pair, acme: Org) -> None:
    """A radiologist's worklist is served by replica B; studies arrive and change
    through replica A (the API behind the load balancer): B's live stream carries
    them (PostgreSQL LISTEN/NOTIFY), and nothing of another organization."""
    stream = LiveStream(signed_in(pair.b, acme, acme.owner_email))
    other = pair.a.new_org()
    viewer(pair.a, other).viewer.studies.create(
        severity="normal", study_description="Other clinic's secret", study_instance_uid=new_uid(),
    )
    study = viewer(pair.a, acme).viewer.studies.create(
        severity="stat", study_description="Arrived through A", study_instance_uid=new_uid(),
    )
    stream.wait_for(study.study_id)
    assert any("Arrived through A" in line for line in stream.lines)
    viewer(pair.a, acme).viewer.studies.update(study.study_id, study_description="Changed through A")
    stream.wait_for("Changed through A")
    stream.close()
    other.close()
    assert not any("secret" in line for line in stream.lines), stream.lines
    assert "event: study" in stream.lines


def test_images_written_through_one_are_read_through_the_other(pair: Pair, acme: Org, s3: SeaweedS3) -> None:
    on_a = images_on(pair.a, acme).pre_encounter.images.v_1
    on_b = images_on(pair.b, acme).pre_encounter.images.v_1
    image = on_a.create(request=png_image("scan.png"))
    assert httpx.put(image.signed_url, content=PNG, timeout=30).status_code == 200
    # B verifies the bytes A's link put in the shared bucket.
    done = on_b.update(id=image.id, version="1", request=uploaded(image))
    assert done.version == 2 and done.status == ImageStatus.UPLOADED
    assert on_a.get(id=image.id) == on_b.get(id=image.id)
    assert [i.id for i in on_a.get_multi()] == [image.id]
    assert httpx.get(on_a.get(id=image.id).signed_url, timeout=30).content == PNG


def test_links_and_tokens_minted_by_one_are_accepted_by_the_other(pair: Pair, acme: Org) -> None:
    study = viewer(pair.a, acme).viewer.studies.create(
        severity="normal", study_description="Knee MR", study_instance_uid=new_uid(),
    )
    # A reroute link signed by A opens on B.
    link = viewer(pair.a, acme).viewer.studies.reroute_url(study_id=study.study_id).url
    token = link.rsplit("/", 1)[1]
    page = httpx.get(f"{pair.b.base_url}/viewer/open/{token}", timeout=10)
    assert page.status_code == 200 and study.study_instance_uid in page.text
    # An Images access token from A's token endpoint works on B: through the
    # SDK (its token URL on A, its API calls on B) and by hand on both.
    assert images_on(pair.b, acme, token_from=pair.a).pre_encounter.images.v_1.get_multi() == []
    minted = httpx.post(
        f"{pair.a.base_url}/api/auth/v2/token",
        json={"client_id": acme.client_id, "client_secret": acme.client_secret}, timeout=10,
    ).json()["access_token"]
    for server in pair.both:
        r = httpx.get(f"{server.base_url}/images/v1", headers={"authorization": f"Bearer {minted}"}, timeout=10)
        assert r.status_code == 200, r.text


def test_revoking_a_key_on_one_locks_it_out_of_both(pair: Pair, acme: Org) -> None:
    key = pair.a.create_api_key(acme.org_id, "to be revoked")
    token = httpx.post(
        f"{pair.b.base_url}/api/auth/v2/token",
        json={"client_id": acme.client_id, "client_secret": acme.client_secret}, timeout=10,
    ).json()["access_token"]

    def status(server: LightboxServer, path: str, credential: str) -> int:
        return httpx.get(
            f"{server.base_url}{path}", headers={"authorization": f"Bearer {credential}"}, timeout=10,
        ).status_code

    for server in pair.both:
        assert status(server, "/v1/viewer/studies", key["api_key"]) == 200
        assert status(server, "/images/v1", token) == 200
    # Revoked through replica A's admin CLI: neither replica accepts it from the next request on.
    pair.a.admin("revoke-api-key", "--org", acme.org_id, "--id", key["api_key_id"])
    pair.a.admin("revoke-client", "--org", acme.org_id, "--id", acme.client_id)
    for server in pair.both:
        assert status(server, "/v1/viewer/studies", key["api_key"]) == 401
        assert status(server, "/images/v1", token) == 401
        assert status(server, "/v1/viewer/studies", acme.api_key) == 200  # the other key still works


def test_concurrent_conflicts_across_replicas_have_exactly_one_winner(pair: Pair, acme: Org) -> None:
    on = [images_on(server, acme).pre_encounter.images.v_1 for server in pair.both]
    image = on[0].create(request=png_image("contested.png"))

    def rename(i: int) -> str:
        try:
            on[i % 2].update(id=image.id, version="1", request=MutableImage(
                file_name=image.file_name, display_name=f"writer {i}", file_type=image.file_type,
                status=image.status,
            ))
            return "won"
        except VersionConflictError:
            return "conflict"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(rename, range(12)))
    assert sorted(outcomes) == ["conflict"] * 11 + ["won"], outcomes
    assert on[1].get(id=image.id).version == 2

    # One Study Instance UID created through both at once: one study.
    uid = new_uid()
    clients = [viewer(server, acme) for server in pair.both]

    def create(i: int) -> str:
        try:
            clients[i % 2].viewer.studies.create(severity="normal", study_description="race", study_instance_uid=uid)
            return "created"
        except avara.ConflictError:
            return "conflict"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"], outcomes


def test_each_request_is_audited_once_whichever_replica_served_it(pair: Pair, acme: Org) -> None:
    """The audit writer is the only background work today: each replica
    commits its own requests' events, and no event is written twice."""
    ids = [f"replica-{i}-{uuid.uuid4()}" for i in range(8)]
    for i, request_id in enumerate(ids):
        r = httpx.get(
            f"{pair.on(i).base_url}/v1/viewer/studies",
            headers={"authorization": f"Bearer {acme.api_key}", "x-request-id": request_id}, timeout=10,
        )
        assert r.status_code == 200
    for server in pair.both:
        seen: dict[str, int] = {}
        events = httpx.get(
            f"{server.base_url}/v1/audit/events?limit=100",
            headers={"authorization": f"Bearer {acme.api_key}"}, timeout=10,
        ).json()
        for event in events["events"]:
            if event.get("requestId") in ids:
                seen[event["requestId"]] = seen.get(event["requestId"], 0) + 1
        assert seen == {request_id: 1 for request_id in ids}, seen


def test_the_rate_limit_is_counted_per_replica(backend: Backend, tmp_path_factory) -> None:
    """The one thing replicas do not share (docs/operations.md): each counts a
    credential's requests itself, so spread over two a client gets twice the
    burst before both answer 429."""
    if backend.name != "postgres":
        pytest.skip("replicas share a PostgreSQL database")
    limited = [
        LightboxServer(
            backend, tmp_path_factory.mktemp(f"limited-{name}"),
            ("--rate-limit-per-second", "1", "--rate-limit-burst", "3"),
        )
        for name in "ab"
    ]
    try:
        for server in limited:
            server.start()
        org = limited[0].new_org()

        def status(server: LightboxServer) -> int:
            return httpx.get(
                f"{server.base_url}/v1/viewer/studies",
                headers={"authorization": f"Bearer {org.api_key}"}, timeout=10,
            ).status_code

        def burst(server: LightboxServer) -> list[int]:
            """Statuses until the first 429 (one token comes back per second, so
            a slow machine may see a 200 or two past the burst)."""
            seen = [status(server) for _ in range(3)]
            while seen[-1] != 429 and len(seen) < 10:
                seen.append(status(server))
            return seen

        first = burst(limited[0])
        assert first[:3] == [200] * 3 and first[-1] == 429, first
        # The other replica has not seen this key: a full burst of its own.
        second = burst(limited[1])
        assert second[:3] == [200] * 3 and second[-1] == 429, second
    finally:
        for server in limited:
            server.stop()
