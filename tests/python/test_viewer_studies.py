"""The Viewer studies API (/v1/viewer/studies...), driven through the official
avara SDK exactly as a customer would use it. httpx is used only to open the
reroute landing page."""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import avara
import httpx
import pytest

from conftest import Org, new_uid, unique_email

STUDY_ID = re.compile(r"^stu_[0-9a-f]{32}$")
USER_ID = re.compile(r"^usr_[0-9a-f]{32}$")
CLOCK_SLACK = timedelta(seconds=5)


def now() -> datetime:
    return datetime.now(timezone.utc)


def random_study_id() -> str:
    return "stu_" + secrets.token_hex(16)


def random_customer_id() -> str:
    return "cus_" + secrets.token_hex(16)


def list_ids(client: avara.Avara, **params) -> list[str]:
    """Every study id the listing yields, following all pages."""
    return [s.study_id for s in client.viewer.studies.list(**params)]


def assert_recent(ts: datetime | None, since: datetime) -> None:
    assert ts is not None
    assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0), ts
    assert since - CLOCK_SLACK <= ts <= now() + CLOCK_SLACK, ts


def create(client: avara.Avara, **fields):
    fields.setdefault("severity", "normal")
    fields.setdefault("study_description", "Chest CT")
    fields.setdefault("study_instance_uid", new_uid())
    return client.viewer.studies.create(**fields)


# =========================================================================== create / retrieve


def test_create_with_every_field_returns_the_full_study(server, org: Org, client):
    email = unique_email("ada")
    ada = server.create_user(org.org_id, email, first_name="Ada", last_name="Lovelace")
    uid = new_uid()
    customer = random_customer_id()
    metadata = {"accession": "ACC-0042", "site": "North Wing", "note": "héllo, wörld"}
    before = now()

    study = client.viewer.studies.create(
        severity="stat",
        study_description="Brain MRI with Contrast",
        study_instance_uid=uid,
        assigned_to=ada,
        express_customer_id=customer,
        metadata=metadata,
    )

    assert STUDY_ID.match(study.study_id), study.study_id
    assert study.study_instance_uid == uid
    assert study.study_description == "Brain MRI with Contrast"
    assert study.severity == "stat"
    assert study.study_viewer_status == "incomplete"
    assert study.is_cancelled is False
    assert study.cancelled_at is None
    assert_recent(study.created_at, before)
    assert study.updated_at == study.created_at
    assert study.metadata == metadata

    assert study.assigned_to is not None
    assert USER_ID.match(ada)
    assert study.assigned_to.user_id == ada
    assert study.assigned_to.email == email
    assert study.assigned_to.first_name == "Ada"
    assert study.assigned_to.last_name == "Lovelace"

    assert study.created_by_api_key is not None
    assert study.created_by_api_key.api_key_id == org.api_key_id
    assert uuid.UUID(study.created_by_api_key.api_key_id).version == 4
    assert study.created_by_api_key.description
    assert study.created_by_user is None

    assert study.express_customer is not None
    assert study.express_customer.express_customer_id == customer


def test_create_with_only_required_fields(client):
    uid = new_uid()
    study = client.viewer.studies.create(
        severity="normal", study_description="Knee X-Ray", study_instance_uid=uid
    )
    assert STUDY_ID.match(study.study_id)
    assert (study.severity, study.study_viewer_status, study.is_cancelled) == ("normal", "incomplete", False)
    assert study.assigned_to is None
    assert study.express_customer is None
    assert study.metadata == {}


def test_retrieve_and_retrieve_by_uid_return_the_created_study(server, org, client):
    assignee = server.create_user(org.org_id, unique_email())
    created = create(client, assigned_to=assignee, metadata={"k": "v"}, express_customer_id="cus_Abc123")

    by_id = client.viewer.studies.retrieve(created.study_id)
    by_uid = client.viewer.studies.retrieve_by_uid(created.study_instance_uid)

    assert by_id.to_dict() == created.to_dict()
    assert by_uid.to_dict() == created.to_dict()


def test_ids_are_accepted_in_upper_case_hex(client):
    created = create(client)
    upper = "stu_" + created.study_id[4:].upper()
    assert client.viewer.studies.retrieve(upper).study_id == created.study_id


def test_a_second_api_key_of_the_org_sees_and_is_credited_with_its_studies(server, org, client):
    key = server.create_api_key(org.org_id, description="second key")
    second = server.client(key["api_key"])
    try:
        mine = create(client)
        theirs = create(second)
        assert theirs.created_by_api_key.api_key_id == key["api_key_id"]
        assert theirs.created_by_api_key.description == "second key"
        assert second.viewer.studies.retrieve(mine.study_id).study_id == mine.study_id
        assert list_ids(second) == [theirs.study_id, mine.study_id]
    finally:
        second.close()


# =========================================================================== list and filters


@pytest.fixture(scope="module")
def catalog(server):
    """One org with a known set of studies, shared by the read-only list tests.

    Created in the order listed, so the API must return them in reverse."""
    org = server.new_org()
    client = org.client()
    alice = server.create_user(org.org_id, unique_email("alice"), first_name="Alice")
    bob = server.create_user(org.org_id, unique_email("bob"), first_name="Bob")
    alpha, beta = "cus_alpha", "cus_beta"
    rows = {
        "a": dict(study_description="Chest CT", severity="normal", assigned_to=alice, express_customer_id=alpha),
        "b": dict(study_description="Brain MRI", severity="high"),
        "c": dict(study_description="CHEST X-RAY", severity="stat", assigned_to=bob, express_customer_id=beta),
        "d": dict(study_description="Knee MRI", severity="normal", assigned_to=alice),
        "e": dict(study_description="Progress 100% done", severity="high", express_customer_id=alpha),
        "f": dict(study_description="Progress 1000 done", severity="normal"),
        "g": dict(study_description="snake_case study", severity="stat", assigned_to=bob),
        "h": dict(study_description="snakeXcase study", severity="normal"),
        "i": dict(study_description="Hip + Knee & Spine", severity="normal"),
    }
    ids = {name: create(client, **fields).study_id for name, fields in rows.items()}
    for name in ("c", "g"):
        client.viewer.studies.cancel(study_id=ids[name])
    for name in ("d", "g"):
        client.viewer.studies.update(ids[name], study_viewer_status="complete")

    names = {v: k for k, v in ids.items()}

    def listed(**params) -> str:
        """The listing as a string of study names, e.g. "gc" (newest first)."""
        return "".join(names[i] for i in list_ids(client, **params))

    yield SimpleNamespace(client=client, ids=ids, alice=alice, bob=bob, alpha=alpha, beta=beta, listed=listed)
    org.close()


def test_list_returns_all_studies_newest_first(catalog):
    assert catalog.listed() == "ihgfedcba"


def test_list_items_are_full_studies(catalog):
    first = next(iter(catalog.client.viewer.studies.list(assigned_to=catalog.bob, is_cancelled=True,
                                                          study_viewer_status="complete")))
    assert first.study_id == catalog.ids["g"]
    assert first.study_description == "snake_case study"
    assert first.is_cancelled is True and first.cancelled_at is not None
    assert first.assigned_to.user_id == catalog.bob
    assert first.assigned_to.first_name == "Bob"


def test_list_by_assignee(catalog):
    assert catalog.listed(assigned_to=catalog.alice) == "da"
    assert catalog.listed(assigned_to=catalog.bob) == "gc"


def test_list_unassigned_with_literal_null(catalog):
    """The SDK drops assigned_to=None, so "unassigned" is sent as assignedTo=null."""
    assert catalog.listed(extra_query={"assignedTo": "null"}) == "ihfeb"


def test_list_assignee_without_studies_is_empty(catalog):
    nobody = "usr_" + secrets.token_hex(16)
    assert catalog.listed(assigned_to=nobody) == ""


def test_list_by_cancellation(catalog):
    assert catalog.listed(is_cancelled=True) == "gc"
    assert catalog.listed(is_cancelled=False) == "ihfedba"


def test_list_by_severity(catalog):
    assert catalog.listed(severity="stat") == "gc"
    assert catalog.listed(severity="high") == "eb"
    assert catalog.listed(severity="normal") == "ihfda"


def test_list_by_viewer_status(catalog):
    assert catalog.listed(study_viewer_status="complete") == "gd"
    assert catalog.listed(study_viewer_status="incomplete") == "ihfecba"


def test_list_by_express_customer(catalog):
    assert catalog.listed(express_customer_id=catalog.alpha) == "ea"
    assert catalog.listed(express_customer_id=catalog.beta) == "c"
    assert catalog.listed(express_customer_id="cus_nobody") == ""
    assert catalog.listed(extra_query={"expressCustomerId": "null"}) == "ihgfdb"


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("chest", "ca"),  # case-insensitive both ways
        ("CHEST", "ca"),
        ("Chest CT", "a"),
        ("mri", "db"),
        ("ri", "db"),
        ("ogress 10", "fe"),  # substring in the middle
        ("100%", "e"),  # % is a literal, not a wildcard
        ("%", "e"),
        ("snake_case", "g"),  # _ is a literal, not a one-character wildcard
        ("_", "g"),
        ("+ knee &", "i"),  # + and & survive query-string encoding
        ("\\", ""),
        ("no such study", ""),
    ],
)
def test_list_by_description(catalog, needle, expected):
    assert catalog.listed(study_description=needle) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (dict(assigned_to="alice", severity="normal", study_viewer_status="incomplete"), "a"),
        (dict(study_description="chest", is_cancelled=False), "a"),
        (dict(study_description="chest", is_cancelled=True, severity="stat"), "c"),
        (dict(assigned_to="bob", is_cancelled=True, study_viewer_status="complete", severity="stat"), "g"),
        (dict(assigned_to="null", severity="high"), "eb"),
        (dict(assigned_to="null", express_customer_id="null", study_description="progress"), "f"),
        (dict(express_customer_id="alpha", study_description="mri"), ""),
        (dict(severity="normal", is_cancelled=False, study_viewer_status="incomplete"), "ihfa"),
    ],
)
def test_list_with_combined_filters(catalog, params, expected):
    params = dict(params)
    extra = {}
    who = params.pop("assigned_to", None)
    if who == "null":
        extra["assignedTo"] = "null"
    elif who:
        params["assigned_to"] = getattr(catalog, who)
    customer = params.pop("express_customer_id", None)
    if customer == "null":
        extra["expressCustomerId"] = "null"
    elif customer:
        params["express_customer_id"] = getattr(catalog, customer)
    assert catalog.listed(extra_query=extra, **params) == expected


def test_description_filter_folds_non_ascii_case(client):
    echo = create(client, study_description="Écho Cardiaque").study_id
    create(client, study_description="Echo abdominal")
    assert list_ids(client, study_description="écho") == [echo]
    assert list_ids(client, study_description="CARDIAQUE") == [echo]


def test_list_limit_accepts_a_float(catalog):
    """The SDK types limit as float; limit=4.0 goes on the wire as `limit=4.0`."""
    page = catalog.client.viewer.studies.list(limit=4.0)
    assert [s.study_id for s in page.studies] == [catalog.ids[n] for n in "ihgf"]
    assert page.has_more is True and page.cursor

    whole = catalog.client.viewer.studies.list(limit=10.0)
    assert len(whole.studies) == 9
    assert whole.has_more is False and whole.cursor is None


def test_list_default_page_size_is_25(org, client):
    for _ in range(26):
        create(client)
    page = client.viewer.studies.list()
    assert len(page.studies) == 25 and page.has_more is True


def test_list_of_a_new_org_is_empty(client):
    page = client.viewer.studies.list()
    assert page.studies == []
    assert page.has_more is False
    assert list(client.viewer.studies.list()) == []


# =========================================================================== pagination


def test_auto_pagination_yields_every_study_once_newest_first(org, client):
    created = [create(client, severity="high" if n % 3 == 0 else "normal",
                      study_description=f"Series {n:02d}").study_id for n in range(57)]
    newest_first = created[::-1]

    ids = list_ids(client, limit=10)
    assert len(ids) == 57
    assert len(set(ids)) == 57
    assert ids == newest_first

    first = client.viewer.studies.list(limit=10.0)
    pages = list(first.iter_pages())
    assert [len(p.studies) for p in pages] == [10, 10, 10, 10, 10, 7]
    assert all(p.has_more is True and p.cursor for p in pages[:-1])
    assert pages[-1].has_more is False and pages[-1].cursor is None


def test_auto_pagination_keeps_filters_on_every_page(org, client):
    created = []
    for n in range(57):
        severity = "high" if n % 3 == 0 else "normal"
        created.append((create(client, severity=severity, study_description=f"Series {n:02d}").study_id, severity))
    high = [sid for sid, sev in reversed(created) if sev == "high"]
    assert len(high) == 19

    first = client.viewer.studies.list(severity="high", limit=4)
    pages = list(first.iter_pages())
    assert [len(p.studies) for p in pages] == [4, 4, 4, 4, 3]
    assert all(s.severity == "high" for p in pages for s in p.studies)
    assert [s.study_id for p in pages for s in p.studies] == high

    # A page that ends exactly at the last match reports no further page.
    exact = client.viewer.studies.list(severity="high", limit=19)
    assert [s.study_id for s in exact.studies] == high
    assert exact.has_more is False and exact.cursor is None

    series_1x = [sid for sid, _ in reversed(created[10:20])]
    assert list_ids(client, study_description="series 1", limit=3) == series_1x


def test_a_cursor_survives_new_studies_being_created(org, client):
    """Keyset pagination: studies created after page 1 do not shift later pages."""
    created = [create(client).study_id for _ in range(6)]
    page1 = client.viewer.studies.list(limit=3)
    create(client)
    page2 = client.viewer.studies.list(limit=3, cursor=page1.cursor)
    assert [s.study_id for s in page2.studies] == created[2::-1]
    assert page2.has_more is False


# =========================================================================== update


def test_update_each_field(client):
    study = create(client, severity="normal", study_description="Chest CT")
    api = client.viewer.studies

    updated = api.update(study.study_id, study_description="Chest CT (repeat)")
    assert updated.study_description == "Chest CT (repeat)"
    assert updated.severity == "normal"
    assert updated.created_at == study.created_at
    assert updated.updated_at >= study.updated_at

    assert api.update(study.study_id, severity="stat").severity == "stat"

    completed = api.update(study.study_id, study_viewer_status="complete")
    assert completed.study_viewer_status == "complete"
    assert api.update(study.study_id, study_viewer_status="incomplete").study_viewer_status == "incomplete"

    # Every change is persisted, and unrelated fields are untouched.
    final = api.retrieve(study.study_id)
    assert (final.study_description, final.severity, final.study_viewer_status) == (
        "Chest CT (repeat)", "stat", "incomplete")
    assert final.study_instance_uid == study.study_instance_uid
    assert final.is_cancelled is False


def test_update_with_no_fields_changes_nothing(client):
    study = create(client, metadata={"a": "1"})
    assert client.viewer.studies.update(study.study_id).to_dict() == study.to_dict()


def test_update_assigns_reassigns_and_unassigns(server, org, client):
    first = server.create_user(org.org_id, unique_email("first"))
    email = unique_email("second")
    second = server.create_user(org.org_id, email)
    study = create(client)
    api = client.viewer.studies

    assert api.update(study.study_id, assigned_to=first).assigned_to.user_id == first
    moved = api.update(study.study_id, assigned_to=second)
    assert (moved.assigned_to.user_id, moved.assigned_to.email) == (second, email)
    assert list_ids(client, assigned_to=second) == [study.study_id]
    assert list_ids(client, assigned_to=first) == []

    unassigned = api.update(study.study_id, assigned_to=None)
    assert unassigned.assigned_to is None
    assert api.retrieve(study.study_id).assigned_to is None
    assert list_ids(client, extra_query={"assignedTo": "null"}) == [study.study_id]


def test_update_metadata_replaces_and_null_clears(client):
    study = create(client, metadata={"a": "1", "b": "2"})
    api = client.viewer.studies

    replaced = api.update(study.study_id, metadata={"c": "3"})
    assert replaced.metadata == {"c": "3"}
    assert api.update(study.study_id, severity="high").metadata == {"c": "3"}

    cleared = api.update(study.study_id, metadata=None)
    assert cleared.metadata == {}
    assert api.retrieve(study.study_id).metadata == {}


def test_update_cannot_change_the_express_customer(client):
    customer = random_customer_id()
    study = create(client, express_customer_id=customer)
    updated = client.viewer.studies.update(
        study.study_id, study_description="renamed", extra_body={"expressCustomerId": random_customer_id()}
    )
    assert updated.study_description == "renamed"
    assert updated.express_customer.express_customer_id == customer
    assert client.viewer.studies.retrieve(study.study_id).express_customer.express_customer_id == customer


@pytest.mark.parametrize("field", ["severity", "study_description", "study_viewer_status"])
def test_update_rejects_null_for_non_nullable_fields(client, field):
    study = create(client)
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.studies.update(study.study_id, **{field: None})
    assert e.value.status_code == 400
    assert client.viewer.studies.retrieve(study.study_id).to_dict() == study.to_dict()


def test_update_rejects_invalid_values(client):
    study = create(client)
    api = client.viewer.studies
    for kwargs in [
        dict(severity="urgent"),
        dict(study_viewer_status="done"),
        dict(study_description="   "),
        dict(metadata={f"k{i}": "v" for i in range(51)}),
        dict(assigned_to="usr_123"),
    ]:
        with pytest.raises(avara.BadRequestError):
            api.update(study.study_id, **kwargs)
    assert api.retrieve(study.study_id).to_dict() == study.to_dict()


def test_update_unknown_study_is_404(client):
    with pytest.raises(avara.NotFoundError):
        client.viewer.studies.update(random_study_id(), severity="high")


# =========================================================================== cancel / uncancel


def test_cancel_by_id_and_uncancel_by_uid(client):
    study = create(client)
    api = client.viewer.studies
    before = now()

    result = api.cancel(study_id=study.study_id)
    assert result.success is True
    cancelled = api.retrieve(study.study_id)
    assert cancelled.is_cancelled is True
    assert_recent(cancelled.cancelled_at, before)
    assert list_ids(client, is_cancelled=True) == [study.study_id]

    assert api.uncancel(study_instance_uid=study.study_instance_uid).success is True
    restored = api.retrieve(study.study_id)
    assert restored.is_cancelled is False
    assert restored.cancelled_at is None
    assert list_ids(client, is_cancelled=True) == []


def test_cancel_by_uid_and_uncancel_by_id(client):
    study = create(client)
    api = client.viewer.studies
    assert api.cancel(study_instance_uid=study.study_instance_uid).success is True
    assert api.retrieve_by_uid(study.study_instance_uid).is_cancelled is True
    assert api.uncancel(study_id=study.study_id).success is True
    assert api.retrieve_by_uid(study.study_instance_uid).is_cancelled is False


def test_cancel_with_both_selectors_naming_the_same_study(client):
    study = create(client)
    api = client.viewer.studies
    assert api.cancel(study_id=study.study_id, study_instance_uid=study.study_instance_uid).success
    assert api.retrieve(study.study_id).is_cancelled is True
    assert api.uncancel(study_id=study.study_id, study_instance_uid=study.study_instance_uid).success
    assert api.retrieve(study.study_id).is_cancelled is False


@pytest.mark.parametrize("action", ["cancel", "uncancel", "reroute_url"])
def test_selectors_naming_different_studies_are_rejected(client, action):
    one, other = create(client), create(client)
    api = client.viewer.studies
    if action == "uncancel":
        api.cancel(study_id=one.study_id)
        api.cancel(study_id=other.study_id)
    with pytest.raises(avara.BadRequestError):
        getattr(api, action)(study_id=one.study_id, study_instance_uid=other.study_instance_uid)
    expected_cancelled = action == "uncancel"
    assert api.retrieve(one.study_id).is_cancelled is expected_cancelled
    assert api.retrieve(other.study_id).is_cancelled is expected_cancelled


@pytest.mark.parametrize("action", ["cancel", "uncancel", "reroute_url"])
def test_selector_is_required(client, action):
    with pytest.raises(avara.BadRequestError):
        getattr(client.viewer.studies, action)()


@pytest.mark.parametrize("action", ["cancel", "uncancel", "reroute_url"])
def test_selector_values_are_validated(client, action):
    api = getattr(client.viewer.studies, action)
    with pytest.raises(avara.BadRequestError):
        api(study_id="stu_nothex")
    with pytest.raises(avara.BadRequestError):
        api(study_instance_uid="1.2.abc")


@pytest.mark.parametrize("action", ["cancel", "uncancel", "reroute_url"])
def test_selector_naming_no_study_is_404(client, action):
    api = getattr(client.viewer.studies, action)
    with pytest.raises(avara.NotFoundError):
        api(study_id=random_study_id())
    with pytest.raises(avara.NotFoundError):
        api(study_instance_uid=new_uid())


def test_double_cancel_is_a_permanent_conflict(org, client, counting_client):
    study = create(client)
    client.viewer.studies.cancel(study_id=study.study_id)
    first_cancelled_at = client.viewer.studies.retrieve(study.study_id).cancelled_at

    retrying, log = counting_client(max_retries=2)
    with pytest.raises(avara.ConflictError) as e:
        retrying.viewer.studies.cancel(study_id=study.study_id)
    assert e.value.status_code == 409
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(log.requests) == 1, "the SDK retried a permanent conflict"
    assert client.viewer.studies.retrieve(study.study_id).cancelled_at == first_cancelled_at


def test_uncancel_of_a_study_that_is_not_cancelled_is_a_conflict(client, counting_client):
    study = create(client)
    retrying, log = counting_client(max_retries=2)
    with pytest.raises(avara.ConflictError) as e:
        retrying.viewer.studies.uncancel(study_instance_uid=study.study_instance_uid)
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(log.requests) == 1
    assert client.viewer.studies.retrieve(study.study_id).is_cancelled is False


def test_raw_response_of_a_cancel(client):
    study = create(client)
    raw = client.viewer.studies.with_raw_response.cancel(study_id=study.study_id)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().success is True


def test_a_cancelled_study_can_still_be_updated_and_stays_cancelled(client):
    study = create(client)
    client.viewer.studies.cancel(study_id=study.study_id)
    updated = client.viewer.studies.update(study.study_id, severity="stat")
    assert (updated.severity, updated.is_cancelled) == ("stat", True)


# =========================================================================== reroute URL


def open_link(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, follow_redirects=True)


def test_reroute_url_opens_the_study(server, client):
    study = create(client, study_description="Shoulder <MRI> & co")
    for selector in (dict(study_id=study.study_id), dict(study_instance_uid=study.study_instance_uid),
                     dict(study_id=study.study_id, study_instance_uid=study.study_instance_uid)):
        url = client.viewer.studies.reroute_url(**selector).url
        assert url.startswith(f"{server.base_url}/viewer/open/"), url
        page = open_link(url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert study.study_instance_uid in page.text
        assert "Shoulder &lt;MRI&gt; &amp; co" in page.text
        assert "no-store" in page.headers.get("cache-control", "")


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_tampered_reroute_url_is_refused(client):
    study, other = create(client), create(client)
    url = client.viewer.studies.reroute_url(study_id=study.study_id).url
    base, token = url.rsplit("/", 1)
    payload, signature = token.split(".", 1)

    # Point the signed claims at another study of the same org, keeping the signature.
    claims = _b64decode(payload).decode()
    assert study.study_id in claims
    forged = _b64encode(claims.replace(study.study_id, other.study_id).encode())
    flipped_sig = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]

    for bad in (f"{forged}.{signature}", f"{payload}.{flipped_sig}", payload, "not-a-token"):
        page = open_link(f"{base}/{bad}")
        assert page.status_code == 403, bad
        assert study.study_instance_uid not in page.text
        assert other.study_instance_uid not in page.text
    assert open_link(url).status_code == 200


def test_expired_reroute_url_is_gone(start_server):
    short = start_server("--reroute-ttl-secs", "1")
    org = short.new_org()
    try:
        client = org.client()
        study = create(client)
        url = client.viewer.studies.reroute_url(study_id=study.study_id).url
        assert open_link(url).status_code == 200
        time.sleep(1.2)
        page = open_link(url)
        assert page.status_code == 410
        assert study.study_instance_uid not in page.text
    finally:
        org.close()


# =========================================================================== input errors


@pytest.mark.parametrize(
    "bad_uid",
    ["1.2.abc", "1..2", "1.2.", ".1.2", "1.02.3", "1.2 3", "1,2", "", "1." + "2" * 63, "1.2.840/3"],
)
def test_create_rejects_invalid_dicom_uids(client, bad_uid):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.studies.create(severity="normal", study_description="x", study_instance_uid=bad_uid)
    assert e.value.body["field"] == "studyInstanceUid"
    assert e.value.body["type"] and e.value.body["message"]


def test_retrieve_by_uid_rejects_invalid_uids(client):
    for bad in ["1.2.abc", "1.2 3", "1.2.840/3"]:
        with pytest.raises(avara.BadRequestError):
            client.viewer.studies.retrieve_by_uid(bad)


def test_longest_valid_uid_is_accepted(client):
    uid = "1." + "2" * 62
    assert create(client, study_instance_uid=uid).study_instance_uid == uid
    assert client.viewer.studies.retrieve_by_uid(uid).study_instance_uid == uid


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(severity="urgent"), None),  # rejected while decoding the body
        (dict(severity="STAT"), None),
        (dict(study_description=""), "studyDescription"),
        (dict(study_description="   "), "studyDescription"),
        (dict(study_description="x" * 1025), "studyDescription"),
        (dict(assigned_to="usr_123"), "assignedTo"),
        (dict(assigned_to="stu_" + "0" * 32), "assignedTo"),
        (dict(express_customer_id="cus_"), "expressCustomerId"),
        (dict(express_customer_id="cus_a-b"), "expressCustomerId"),
        (dict(express_customer_id="customer1"), "expressCustomerId"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]!r:.20}" for k in v) if isinstance(v, dict) else None,
)
def test_create_rejects_invalid_fields(client, fields, field):
    with pytest.raises(avara.BadRequestError) as e:
        create(client, **fields)
    if field is not None:
        assert e.value.body["field"] == field
    assert list_ids(client) == []


@pytest.mark.parametrize(
    "metadata",
    [
        {f"key{i}": "v" for i in range(51)},
        {"k" * 101: "v"},
        {"k": "v" * 1001},
        {"": "v"},
    ],
    ids=["51-pairs", "101-char-key", "1001-char-value", "empty-key"],
)
def test_create_rejects_oversized_metadata(client, metadata):
    with pytest.raises(avara.BadRequestError) as e:
        create(client, metadata=metadata)
    assert e.value.body["field"] == "metadata"
    assert list_ids(client) == []


def test_metadata_at_the_limits_is_accepted(client):
    metadata = {f"key{i:02d}": "v" for i in range(49)}
    metadata["k" * 100] = "é" * 1000
    study = create(client, metadata=metadata)
    assert study.metadata == metadata
    assert client.viewer.studies.retrieve(study.study_id).metadata == metadata


@pytest.mark.parametrize("limit", [0, 101, -1, 10.5])
def test_list_rejects_out_of_range_limits(client, limit):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.studies.list(limit=limit)
    assert e.value.body["field"] == "limit"


def test_list_rejects_bad_cursors(client):
    for _ in range(3):
        create(client)
    good = client.viewer.studies.list(limit=1).cursor
    assert good
    foreign = _b64encode(b"users:usr_" + b"0" * 32)
    for bad in ["garbage!", "Zm9v", foreign, good[:-3]]:
        with pytest.raises(avara.BadRequestError) as e:
            client.viewer.studies.list(cursor=bad)
        assert e.value.body["field"] == "cursor", bad


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (dict(severity="urgent"), "severity"),
        (dict(study_viewer_status="done"), "studyViewerStatus"),
        (dict(assigned_to="usr_123"), "assignedTo"),
        (dict(express_customer_id="cus_a-b"), "expressCustomerId"),
        (dict(extra_query={"isCancelled": "maybe"}), "isCancelled"),
        (dict(study_description="x" * 1025), "studyDescription"),
    ],
    ids=["severity", "viewer-status", "assignee", "customer", "is-cancelled", "long-description"],
)
def test_list_rejects_invalid_filters(client, params, field):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.studies.list(**params)
    assert e.value.body["field"] == field


def test_unknown_study_is_404(client):
    with pytest.raises(avara.NotFoundError) as e:
        client.viewer.studies.retrieve(random_study_id())
    assert e.value.body["type"] == "not_found"
    with pytest.raises(avara.NotFoundError):
        client.viewer.studies.retrieve_by_uid(new_uid())


@pytest.mark.parametrize("bad", ["stu_123", "usr_" + "0" * 32, "stu_" + "g" * 32, "stu_" + "0" * 33])
def test_malformed_study_id_is_400(client, bad):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.studies.retrieve(bad)
    assert e.value.body["field"] == "studyId"
    with pytest.raises(avara.BadRequestError):
        client.viewer.studies.update(bad, severity="high")


@pytest.mark.parametrize("action", ["cancel", "uncancel", "reroute-url"])
def test_retrieve_of_an_action_name_is_rejected_as_a_bad_id(client, action):
    """Spec §0: `GET /v1/viewer/studies/cancel` reaches retrieve, whose id check rejects it."""
    with pytest.raises(avara.BadRequestError):
        client.viewer.studies.retrieve(action)


def test_wrong_api_key_is_401(server, org):
    real = org.api_key
    wrong_secret = real[:-1] + ("A" if real[-1] != "A" else "B")
    other_key_id = real[:4] + secrets.token_hex(16) + real[36:]
    for bad_key in [wrong_secret, other_key_id, real[:36], "not a key", "sk-" + secrets.token_hex(20)]:
        bad = server.client(bad_key)
        try:
            with pytest.raises(avara.AuthenticationError) as e:
                bad.viewer.studies.list()
            assert e.value.status_code == 401
            with pytest.raises(avara.AuthenticationError):
                create(bad)
        finally:
            bad.close()
    good = org.client()
    assert list_ids(good) == []


def test_duplicate_uid_is_a_conflict_sent_once(org, client, counting_client):
    original = create(client, study_description="original")
    retrying, log = counting_client(max_retries=2)

    with pytest.raises(avara.ConflictError) as e:
        retrying.viewer.studies.create(
            severity="stat", study_description="duplicate", study_instance_uid=original.study_instance_uid
        )
    assert e.value.status_code == 409
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(log.requests) == 1

    listed = list(client.viewer.studies.list())
    assert [s.study_id for s in listed] == [original.study_id]
    assert listed[0].study_description == "original"


def test_assignee_from_another_org_is_unprocessable(server, org, other_org, client):
    stranger = server.create_user(other_org.org_id, unique_email("stranger"))
    with pytest.raises(avara.UnprocessableEntityError) as e:
        create(client, assigned_to=stranger)
    assert e.value.status_code == 422
    with pytest.raises(avara.UnprocessableEntityError):
        create(client, assigned_to=other_org.owner_user_id)
    with pytest.raises(avara.UnprocessableEntityError):
        create(client, assigned_to="usr_" + secrets.token_hex(16))
    assert list_ids(client) == []

    study = create(client)
    with pytest.raises(avara.UnprocessableEntityError):
        client.viewer.studies.update(study.study_id, assigned_to=stranger)
    assert client.viewer.studies.retrieve(study.study_id).assigned_to is None


def test_the_org_owner_can_be_assigned(org, client):
    study = create(client, assigned_to=org.owner_user_id)
    assert study.assigned_to.user_id == org.owner_user_id
    assert study.assigned_to.email == org.owner_email


# =========================================================================== cross-org isolation


def test_another_org_cannot_see_or_touch_a_study(org, other_org, client):
    theirs = other_org.client()
    study = create(client, study_description="private", assigned_to=org.owner_user_id,
                   express_customer_id="cus_shared")
    sid, uid = study.study_id, study.study_instance_uid
    api = theirs.viewer.studies

    with pytest.raises(avara.NotFoundError):
        api.retrieve(sid)
    with pytest.raises(avara.NotFoundError):
        api.retrieve_by_uid(uid)
    with pytest.raises(avara.NotFoundError):
        api.update(sid, study_description="hijacked")
    for action in (api.cancel, api.reroute_url):
        with pytest.raises(avara.NotFoundError):
            action(study_id=sid)
        with pytest.raises(avara.NotFoundError):
            action(study_instance_uid=uid)
        with pytest.raises(avara.NotFoundError):
            action(study_id=sid, study_instance_uid=uid)
    assert list_ids(theirs) == []
    assert list_ids(theirs, study_description="private") == []
    assert list_ids(theirs, assigned_to=org.owner_user_id) == []
    assert list_ids(theirs, express_customer_id="cus_shared") == []

    client.viewer.studies.cancel(study_id=sid)
    with pytest.raises(avara.NotFoundError):
        api.uncancel(study_id=sid)
    with pytest.raises(avara.NotFoundError):
        api.uncancel(study_instance_uid=uid)

    after = client.viewer.studies.retrieve(sid)
    assert after.study_description == "private"
    assert after.is_cancelled is True


def test_another_orgs_cursor_does_not_leak_studies(org, other_org, client):
    for _ in range(3):
        create(client)
    cursor = client.viewer.studies.list(limit=1).cursor
    theirs = other_org.client()
    page = theirs.viewer.studies.list(cursor=cursor)
    assert page.studies == []


def test_the_same_uid_can_exist_in_two_orgs(org, other_org, client):
    theirs = other_org.client()
    uid = new_uid()
    mine = create(client, study_instance_uid=uid, study_description="mine")
    other = create(theirs, study_instance_uid=uid, study_description="theirs")

    assert mine.study_id != other.study_id
    assert client.viewer.studies.retrieve_by_uid(uid).study_id == mine.study_id
    assert theirs.viewer.studies.retrieve_by_uid(uid).study_id == other.study_id

    # Cancelling by UID touches only the caller's study.
    theirs.viewer.studies.cancel(study_instance_uid=uid)
    assert theirs.viewer.studies.retrieve(other.study_id).is_cancelled is True
    assert client.viewer.studies.retrieve(mine.study_id).is_cancelled is False
    assert list_ids(client) == [mine.study_id]
    assert list_ids(theirs) == [other.study_id]
