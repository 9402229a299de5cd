"""The Viewer users, invitations and ephemeral-session APIs (/v1/viewer/users...,
/v1/viewer/ephemeral-sessions), driven through the official avara SDK exactly as
a customer would use it. httpx is used only to open ephemeral-session links.

Invitations are read with a client in the SDK's default (lenient) response mode:
the SDK types `Invitation.inviterId` as a non-null string, yet documents it as
"null if invited via API", and Lightbox sends null there (spec §6.5). Every
other invitation field is still checked against the SDK's model, strictly, in
`test_invitation_json_matches_the_sdk_model_but_for_the_null_inviter`."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import avara
import httpx
import psycopg
import pytest
from avara.types.viewer.users.invitation_retrieve_response import InvitationRetrieveResponse

from conftest import LightboxServer, Org, new_uid, unique_email

USER_ID = re.compile(r"^usr_[0-9a-f]{32}$")
INVITATION_ID = re.compile(r"^inv_[0-9a-f]{32}$")
CLOCK_SLACK = timedelta(seconds=5)
INVITATION_TTL = timedelta(days=7)
EPHEMERAL_TTL = timedelta(seconds=30)

# Spec §2: the 61 clinic roles, spelled exactly as on the wire.
CLINIC_ROLES = [
    "Doctor", "Physician", "Surgeon", "Radiologist", "Cardiologist", "Neurologist", "Urologist",
    "Gynecologist", "Endocrinologist", "Oncologist", "Radiation Oncologist", "Hematologist",
    "Gastroenterologist", "Pulmonologist", "Nephrologist", "Rheumatologist", "Dermatologist",
    "Ophthalmologist", "Otolaryngologist", "Pediatrician", "Obstetrician", "Psychiatrist",
    "Anesthesiologist", "Emergency Medicine Physician", "Family Medicine Physician",
    "Internal Medicine Physician", "Pathologist", "Nuclear Medicine Physician",
    "Pain Management Specialist", "Infectious Disease Specialist", "Immunologist",
    "Physician Assistant", "Nurse Practitioner", "Certified Registered Nurse Anesthetist",
    "Psychologist", "Medical Assistant", "Scribe", "Registered Nurse", "Nurse Manager",
    "Patient Care Coordinator", "Imaging Technologist", "Laboratory Technician",
    "Medical Laboratory Scientist", "Pathologists' Assistant", "Phlebotomist", "Pharmacist",
    "Pharmacy Technician", "Physical Therapist", "Occupational Therapist",
    "Speech-Language Pathologist", "Respiratory Therapist", "Nutritionist", "Front Desk Operator",
    "Revenue Cycle Manager", "Administrative Director", "Administrative Assistant",
    "Legal Administrator", "IT Administrator", "IT Support", "Software Engineer", "Other",
]
LAYOUTS = [f"{rows}x{cols}" for rows in range(1, 5) for cols in range(1, 5)]


def now() -> datetime:
    return datetime.now(timezone.utc)


def assert_recent(ts: datetime | None, since: datetime) -> None:
    assert ts is not None
    assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0), ts
    assert since - CLOCK_SLACK <= ts <= now() + CLOCK_SLACK, ts


def random_user_id() -> str:
    return "usr_" + secrets.token_hex(16)


def random_invitation_id() -> str:
    return "inv_" + secrets.token_hex(16)


def invite(client: avara.Avara, **fields):
    fields.setdefault("email", unique_email("invitee"))
    fields.setdefault("first_name", "Grace")
    fields.setdefault("last_name", "Hopper")
    fields.setdefault("clinic_role", "Radiologist")
    fields.setdefault("level", "member")
    fields.setdefault("can_manage_studies", False)
    fields.setdefault("has_dashboard_access", False)
    return client.viewer.users.invite(**fields)


def is_active(user) -> bool:
    """The Lightbox extension field `isActive` (not in the SDK's User model)."""
    return user.model_extra["isActive"]


def user_ids(client: avara.Avara, **params) -> list[str]:
    return [u.user_id for u in client.viewer.users.list(**params)]


def invitation_ids(client: avara.Avara, **params) -> list[str]:
    return [i.invitation_id for i in client.viewer.users.invitations.list(**params)]


def invitation_of(client: avara.Avara, user_id: str):
    """The one invitation of a user."""
    (invitation,) = client.viewer.users.invitations.list(user_id=user_id)
    return invitation


def user_fields(user) -> dict:
    """What the SDK parsed, keyed by wire name, for comparing two reads of a user."""
    return user.to_dict(mode="json")


@pytest.fixture
def lenient(org: Org) -> avara.Avara:
    """A client in the SDK's default response mode, for the invitation endpoints."""
    return org.client(_strict_response_validation=False)


# =========================================================================== invite


def test_invite_creates_the_user_and_answers_201(org, client, lenient):
    email = unique_email("ada")
    before = now()

    raw = client.viewer.users.with_raw_response.invite(
        email=email,
        first_name="Ada",
        middle_name="King",
        last_name="Lovelace",
        suffix1="MD",
        suffix2="PhD",
        phone_number="5551234567",
        clinic_role="Pathologists' Assistant",
        level="member",
        can_manage_studies=True,
        has_dashboard_access=False,
    )
    assert raw.status_code == 201
    assert raw.headers["content-type"].startswith("application/json")
    user = raw.parse()

    assert USER_ID.match(user.user_id), user.user_id
    assert (user.email, user.first_name, user.middle_name, user.last_name) == (email, "Ada", "King", "Lovelace")
    assert (user.suffix1, user.suffix2, user.phone_number) == ("MD", "PhD", "5551234567")
    assert user.clinic_role == "Pathologists' Assistant"
    assert user.level == "member"
    assert user.can_manage_studies is True
    assert user.has_dashboard_access is False
    assert user.invited_source == "api"
    assert_recent(user.created_at, before)
    assert user.last_login_at is None
    assert is_active(user) is True

    fetched = client.viewer.users.retrieve(user.user_id)
    assert user_fields(fetched) == user_fields(user)
    assert user_ids(client, email=email) == [user.user_id]


def test_invite_also_sends_an_invitation(org, client, lenient):
    email = unique_email("grace")
    user = invite(client, email=email, first_name="Grace", last_name="Hopper", middle_name="Brewster",
                  clinic_role="Software Engineer", level="admin", has_dashboard_access=True)

    inv = invitation_of(lenient, user.user_id)
    assert INVITATION_ID.match(inv.invitation_id), inv.invitation_id
    assert inv.user_id == user.user_id
    assert inv.status == "sent"
    assert inv.clinic_id == org.org_id
    assert uuid.UUID(inv.clinic_id)
    assert inv.invited_by_api_key_id == org.api_key_id
    assert inv.inviter_id is None
    assert inv.invited_source == "api"
    assert (inv.email, inv.first_name, inv.middle_name, inv.last_name) == (email, "Grace", "Brewster", "Hopper")
    assert (inv.clinic_role, inv.level) == ("Software Engineer", "admin")
    assert (inv.can_manage_studies, inv.has_dashboard_access) == (False, True)
    assert (inv.phone_number, inv.suffix1, inv.suffix2) == (None, None, None)
    assert inv.created_at == user.created_at
    assert inv.updated_at == inv.created_at
    assert inv.expiry == inv.created_at + INVITATION_TTL

    again = lenient.viewer.users.invitations.retrieve(inv.invitation_id)
    assert again.to_dict(mode="json") == inv.to_dict(mode="json")


def test_invite_with_only_required_fields(client):
    user = client.viewer.users.invite(
        email=unique_email(), first_name="Lin", last_name="Wu", clinic_role="Scribe",
        level="member", can_manage_studies=False, has_dashboard_access=False,
    )
    assert (user.middle_name, user.phone_number, user.suffix1, user.suffix2) == (None, None, None, None)
    assert (user.level, user.clinic_role, user.invited_source) == ("member", "Scribe", "api")


def test_a_second_api_key_is_credited_with_its_invitations(server, org, lenient):
    key = server.create_api_key(org.org_id, description="hr system")
    second = server.client(key["api_key"], _strict_response_validation=False)
    try:
        user = invite(second)
        assert invitation_of(lenient, user.user_id).invited_by_api_key_id == key["api_key_id"]
    finally:
        second.close()


def test_every_clinic_role_is_accepted(client):
    assert len(CLINIC_ROLES) == 61 and len(set(CLINIC_ROLES)) == 61
    by_role = {}
    for role in CLINIC_ROLES:
        user = invite(client, clinic_role=role)
        assert user.clinic_role == role
        by_role[role] = user.user_id
    listed = {u.user_id: u.clinic_role for u in client.viewer.users.list(limit=100)}
    assert {listed[uid] for uid in by_role.values()} == set(CLINIC_ROLES)

    # And each one can be set by an update.
    target = by_role["Other"]
    for role in ("Radiation Oncologist", "Speech-Language Pathologist", "IT Support", "Pathologists' Assistant"):
        assert client.viewer.users.update(target, clinic_role=role).clinic_role == role


@pytest.mark.parametrize(
    "role",
    ["radiologist", "RADIOLOGIST", "Radiologist ", " Radiologist", "Pathologists Assistant",
     "Pathologists\u2019 Assistant", "Speech Language Pathologist", "Nurse", "Admin", ""],
)
def test_invite_rejects_clinic_roles_not_in_the_list(client, role):
    email = unique_email()
    with pytest.raises(avara.BadRequestError) as e:
        invite(client, email=email, clinic_role=role)
    assert e.value.body["field"] == "clinicRole"
    assert user_ids(client, email=email) == []


def test_invite_cannot_make_an_owner(client, lenient):
    email = unique_email()
    with pytest.raises(avara.BadRequestError) as e:
        invite(client, email=email, level="owner", has_dashboard_access=True)
    assert e.value.body["field"] == "level"
    assert user_ids(client, email=email) == []
    assert invitation_ids(lenient) == []


def test_an_invited_admin_needs_dashboard_access(client, lenient):
    email = unique_email("admin")
    with pytest.raises(avara.BadRequestError) as e:
        invite(client, email=email, level="admin", has_dashboard_access=False)
    assert e.value.body["field"] == "hasDashboardAccess"
    assert user_ids(client, email=email) == []
    assert invitation_ids(lenient) == []

    admin = invite(client, email=email, level="admin", has_dashboard_access=True)
    assert (admin.level, admin.has_dashboard_access) == ("admin", True)


def test_duplicate_email_is_a_permanent_conflict_within_the_org(server, org, other_org, client, lenient,
                                                                 counting_client):
    email = unique_email("dup")
    first = invite(client, email=email, first_name="First")
    retrying, log = counting_client(max_retries=2)

    for taken in (email, email.upper(), email.capitalize()):
        log.requests.clear()
        with pytest.raises(avara.ConflictError) as e:
            invite(retrying, email=taken, first_name="Second")
        assert e.value.status_code == 409
        assert e.value.response.headers["x-should-retry"] == "false"
        assert len(log.requests) == 1, "the SDK retried a permanent conflict"

    # The owner's address and one added by `lightbox admin` are taken too.
    with pytest.raises(avara.ConflictError):
        invite(client, email=org.owner_email.upper())
    admin_made = unique_email("cli")
    server.create_user(org.org_id, admin_made)
    with pytest.raises(avara.ConflictError):
        invite(client, email=admin_made)

    listed = list(client.viewer.users.list(email=email))
    assert [(u.user_id, u.first_name) for u in listed] == [(first.user_id, "First")]
    assert invitation_ids(lenient) == [invitation_of(lenient, first.user_id).invitation_id]

    # Another organization may use the same address.
    theirs = invite(other_org.client(), email=email.upper(), first_name="Other")
    assert theirs.user_id != first.user_id
    assert theirs.email == email.upper()
    assert user_ids(client, email=email) == [first.user_id]


@pytest.mark.parametrize("phone", ["5551234567", "123456789012345", "0000000000", "44207946095"])
def test_invite_accepts_phone_numbers_of_10_to_15_digits(client, phone):
    assert invite(client, phone_number=phone).phone_number == phone


@pytest.mark.parametrize(
    "phone",
    ["555123456", "1234567890123456", "555-123-4567", "+15551234567", "(555)1234567", "555 123 4567",
     "\uff15\uff15\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "555123456x", ""],
)
def test_invite_rejects_other_phone_numbers(client, phone):
    email = unique_email()
    with pytest.raises(avara.BadRequestError) as e:
        invite(client, email=email, phone_number=phone)
    assert e.value.body["field"] == "phoneNumber"
    assert user_ids(client, email=email) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(email="plainaddress"), "email"),
        (dict(email="someone@localhost"), "email"),
        (dict(email="@example.org"), "email"),
        (dict(email="a b@example.org"), "email"),
        (dict(email="a@b@example.org"), "email"),
        (dict(email="a@.example.org"), "email"),
        (dict(email=""), "email"),
        (dict(email="x" * 243 + "@example.org"), "email"),
        (dict(first_name=""), "firstName"),
        (dict(first_name="   "), "firstName"),
        (dict(first_name="x" * 201), "firstName"),
        (dict(last_name=""), "lastName"),
        (dict(last_name="y" * 201), "lastName"),
        (dict(middle_name="m" * 201), "middleName"),
        (dict(suffix1="s" * 201), "suffix1"),
        (dict(suffix2="s" * 201), "suffix2"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]!r:.20}" for k in v) if isinstance(v, dict) else None,
)
def test_invite_rejects_invalid_fields(org, client, fields, field):
    with pytest.raises(avara.BadRequestError) as e:
        invite(client, **fields)
    assert e.value.body["field"] == field
    assert user_ids(client) == [org.owner_user_id]


def test_names_at_their_limits_are_accepted(client):
    user = invite(client, first_name="é" * 200, last_name="L" * 200, middle_name="m" * 200,
                  suffix1="s" * 200, suffix2="t" * 200)
    assert user.first_name == "é" * 200
    fetched = client.viewer.users.retrieve(user.user_id)
    assert (fetched.last_name, fetched.middle_name) == ("L" * 200, "m" * 200)
    assert (fetched.suffix1, fetched.suffix2) == ("s" * 200, "t" * 200)


@pytest.mark.parametrize(
    "body",
    [
        {},
        dict(email="a@example.org", firstName="A", lastName="B", clinicRole="Doctor",
             canManageStudies=True, hasDashboardAccess=False),  # no level
        dict(email="a@example.org", firstName="A", lastName="B", clinicRole="Doctor", level="superuser",
             canManageStudies=True, hasDashboardAccess=False),
        dict(email="a@example.org", firstName="A", lastName="B", clinicRole="Doctor", level="member",
             canManageStudies="yes", hasDashboardAccess=False),
        dict(email="a@example.org", firstName=None, lastName="B", clinicRole="Doctor", level="member",
             canManageStudies=True, hasDashboardAccess=False),
    ],
    ids=["empty", "no-level", "bad-level", "string-flag", "null-first-name"],
)
def test_invite_rejects_malformed_bodies(org, client, body):
    with pytest.raises(avara.BadRequestError):
        client.post("/v1/viewer/users", body=body, cast_to=object)
    assert user_ids(client) == [org.owner_user_id]


# =========================================================================== retrieve


def test_retrieve_the_owner(org, client):
    owner = client.viewer.users.retrieve(org.owner_user_id)
    assert owner.user_id == org.owner_user_id
    assert owner.email == org.owner_email
    assert owner.level == "owner"
    assert owner.invited_source == "dashboard"
    assert (owner.can_manage_studies, owner.has_dashboard_access) == (True, True)
    assert owner.clinic_role in CLINIC_ROLES
    assert is_active(owner) is True


def test_retrieve_a_user_made_with_the_admin_cli(server, org, client):
    email = unique_email("cli")
    uid = server.create_user(org.org_id, email, first_name="Cli", last_name="Made",
                             clinic_role="Nurse Practitioner", level="admin")
    user = client.viewer.users.retrieve(uid)
    assert (user.email, user.first_name, user.last_name) == (email, "Cli", "Made")
    assert (user.clinic_role, user.level, user.invited_source) == ("Nurse Practitioner", "admin", "dashboard")
    assert user.has_dashboard_access is True


def test_user_ids_are_accepted_in_upper_case_hex(client):
    user = invite(client)
    upper = "usr_" + user.user_id[4:].upper()
    assert client.viewer.users.retrieve(upper).user_id == user.user_id
    assert client.viewer.users.update(upper, first_name="Upper").first_name == "Upper"


def test_unknown_user_is_404(client):
    with pytest.raises(avara.NotFoundError) as e:
        client.viewer.users.retrieve(random_user_id())
    assert e.value.body["type"] == "not_found"
    with pytest.raises(avara.NotFoundError):
        client.viewer.users.update(random_user_id(), first_name="Nobody")


@pytest.mark.parametrize("bad", ["usr_123", "stu_" + "0" * 32, "usr_" + "g" * 32, "usr_" + "0" * 33, "nobody"])
def test_malformed_user_id_is_400(client, bad):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.retrieve(bad)
    assert e.value.body["field"] == "userId"
    with pytest.raises(avara.BadRequestError):
        client.viewer.users.update(bad, first_name="X")


# =========================================================================== update


def test_update_each_field(client):
    user = invite(client, first_name="Grace", last_name="Hopper", clinic_role="Radiologist",
                  level="member", can_manage_studies=False, has_dashboard_access=False)
    api = client.viewer.users
    uid = user.user_id

    assert api.update(uid, first_name="Amazing").first_name == "Amazing"
    assert api.update(uid, last_name="Grace").last_name == "Grace"
    assert api.update(uid, middle_name="Brewster").middle_name == "Brewster"
    assert api.update(uid, suffix1="RADM").suffix1 == "RADM"
    assert api.update(uid, suffix2="PhD").suffix2 == "PhD"
    assert api.update(uid, phone_number="123456789012345").phone_number == "123456789012345"
    assert api.update(uid, clinic_role="Software Engineer").clinic_role == "Software Engineer"
    assert api.update(uid, can_manage_studies=True).can_manage_studies is True
    assert api.update(uid, has_dashboard_access=True).has_dashboard_access is True
    promoted = api.update(uid, level="admin")
    assert promoted.level == "admin"

    final = api.retrieve(uid)
    assert (final.first_name, final.middle_name, final.last_name) == ("Amazing", "Brewster", "Grace")
    assert (final.suffix1, final.suffix2, final.phone_number) == ("RADM", "PhD", "123456789012345")
    assert (final.clinic_role, final.level) == ("Software Engineer", "admin")
    assert (final.can_manage_studies, final.has_dashboard_access) == (True, True)
    # What an update may not touch.
    assert (final.user_id, final.email, final.invited_source) == (uid, user.email, "api")
    assert final.created_at == user.created_at
    assert is_active(final) is True

    demoted = api.update(uid, level="member", has_dashboard_access=False, can_manage_studies=False)
    assert (demoted.level, demoted.has_dashboard_access, demoted.can_manage_studies) == ("member", False, False)


def test_update_with_no_fields_changes_nothing(client):
    user = invite(client, middle_name="Mid", phone_number="5551234567")
    assert user_fields(client.viewer.users.update(user.user_id)) == user_fields(user)


def test_update_null_clears_the_optional_fields(client):
    user = invite(client, middle_name="Mid", suffix1="Jr.", suffix2="MD", phone_number="5551234567")
    api = client.viewer.users

    cleared = api.update(user.user_id, middle_name=None, phone_number=None)
    assert (cleared.middle_name, cleared.phone_number) == (None, None)
    assert (cleared.suffix1, cleared.suffix2) == ("Jr.", "MD")  # absent: untouched

    cleared = api.update(user.user_id, suffix1=None, suffix2=None)
    assert (cleared.suffix1, cleared.suffix2) == (None, None)

    final = api.retrieve(user.user_id)
    assert (final.middle_name, final.phone_number, final.suffix1, final.suffix2) == (None, None, None, None)
    assert (final.first_name, final.last_name, final.clinic_role) == (user.first_name, user.last_name,
                                                                      user.clinic_role)


@pytest.mark.parametrize(
    ("param", "field"),
    [("clinic_role", "clinicRole"), ("first_name", "firstName"), ("last_name", "lastName"), ("level", "level"),
     ("can_manage_studies", "canManageStudies"), ("has_dashboard_access", "hasDashboardAccess")],
)
def test_update_rejects_null_for_required_fields(client, param, field):
    user = invite(client)
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.update(user.user_id, **{param: None})
    assert e.value.body["field"] == field
    assert user_fields(client.viewer.users.retrieve(user.user_id)) == user_fields(user)


@pytest.mark.parametrize("new_email", ["same", "other", "upper"])
def test_update_cannot_change_the_email(client, new_email):
    user = invite(client)
    value = {"same": user.email, "other": unique_email("new"), "upper": user.email.upper()}[new_email]
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.update(user.user_id, first_name="Changed", extra_body={"email": value})
    assert e.value.body["field"] == "email"
    fetched = client.viewer.users.retrieve(user.user_id)
    assert (fetched.email, fetched.first_name) == (user.email, user.first_name)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(level="owner"), "level"),
        (dict(level="owner", has_dashboard_access=True), "level"),
        (dict(clinic_role="radiologist"), "clinicRole"),
        (dict(phone_number="555-123-4567"), "phoneNumber"),
        (dict(phone_number="123456789"), "phoneNumber"),
        (dict(first_name="  "), "firstName"),
        (dict(last_name=""), "lastName"),
        (dict(middle_name="m" * 201), "middleName"),
        (dict(level="admin"), "hasDashboardAccess"),  # a member without dashboard access
        (dict(level="admin", has_dashboard_access=False), "hasDashboardAccess"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]!r:.12}" for k in v) if isinstance(v, dict) else None,
)
def test_update_rejects_invalid_values(client, fields, field):
    user = invite(client, first_name="Kept", phone_number="5551234567")
    # A valid change rides along: a rejected PATCH must apply none of its fields.
    fields = {"suffix1": "Changed", **fields}
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.update(user.user_id, **fields)
    assert e.value.body["field"] == field
    assert user_fields(client.viewer.users.retrieve(user.user_id)) == user_fields(user)


def test_an_admin_keeps_dashboard_access(client):
    admin = invite(client, level="admin", has_dashboard_access=True)
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.update(admin.user_id, has_dashboard_access=False)
    assert e.value.body["field"] == "hasDashboardAccess"
    assert client.viewer.users.retrieve(admin.user_id).has_dashboard_access is True

    member = client.viewer.users.update(admin.user_id, level="member", has_dashboard_access=False)
    assert (member.level, member.has_dashboard_access) == ("member", False)


def test_the_owners_level_is_fixed_but_the_rest_can_be_edited(org, client):
    api = client.viewer.users
    for level in ("admin", "member"):
        with pytest.raises(avara.UnprocessableEntityError) as e:
            api.update(org.owner_user_id, level=level)
        assert e.value.status_code == 422
    with pytest.raises(avara.BadRequestError):
        api.update(org.owner_user_id, level="owner")
    assert api.retrieve(org.owner_user_id).level == "owner"

    renamed = api.update(org.owner_user_id, first_name="Founder", clinic_role="Administrative Director")
    assert (renamed.first_name, renamed.clinic_role, renamed.level) == ("Founder", "Administrative Director",
                                                                         "owner")


def test_an_update_shows_on_the_pending_invitation(client, lenient):
    user = invite(client, first_name="Old")
    client.viewer.users.update(user.user_id, first_name="New", clinic_role="Surgeon", suffix1="FRCS")
    inv = invitation_of(lenient, user.user_id)
    assert (inv.first_name, inv.clinic_role, inv.suffix1) == ("New", "Surgeon", "FRCS")
    assert inv.status == "sent"


# =========================================================================== list


@pytest.fixture(scope="module")
def directory(server: LightboxServer):
    """One org with a known set of users, shared by the read-only list tests.

    Created in the order listed (the owner first), so the API must return them in reverse."""
    org = server.new_org()
    client = org.client()
    emails = {
        "a": "Ada.Lovelace+viewer@Example.org",
        "b": unique_email("elodie"),
        "c": unique_email("bob"),
        "d": unique_email("zoe"),
        "e": unique_email("anna"),
        "f": unique_email("anna-cli"),
    }
    ids = {"o": org.owner_user_id}
    ids["a"] = invite(client, email=emails["a"], first_name="Élodie", last_name="Durand").user_id
    ids["b"] = invite(client, email=emails["b"], first_name="Elodie", last_name="Martin", level="admin",
                      has_dashboard_access=True).user_id
    ids["c"] = server.create_user(org.org_id, emails["c"], first_name="Bob", last_name="Durand-Smith")
    ids["d"] = invite(client, email=emails["d"], first_name="Zoë", last_name="O'Brien").user_id
    ids["e"] = invite(client, email=emails["e"], first_name="Ann_a", last_name="100% Lee").user_id
    ids["f"] = server.create_user(org.org_id, emails["f"], first_name="ANNA", last_name="Leeds", level="admin")
    names = {v: k for k, v in ids.items()}

    def listed(**params) -> str:
        """The listing as a string of user names, e.g. "fb" (newest first)."""
        return "".join(names[i] for i in user_ids(client, **params))

    yield SimpleNamespace(org=org, client=client, ids=ids, emails=emails, listed=listed)
    org.close()


def test_list_returns_all_users_newest_first(directory):
    assert directory.listed() == "fedcbao"


def test_list_items_are_full_users(directory):
    (zoe,) = directory.client.viewer.users.list(first_name="zoë")
    assert zoe.user_id == directory.ids["d"]
    assert (zoe.first_name, zoe.last_name, zoe.email) == ("Zoë", "O'Brien", directory.emails["d"])
    assert (zoe.level, zoe.invited_source, zoe.clinic_role) == ("member", "api", "Radiologist")
    assert is_active(zoe) is True
    assert user_fields(zoe) == user_fields(directory.client.viewer.users.retrieve(zoe.user_id))


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("Ada.Lovelace+viewer@Example.org", "a"),
        ("ada.lovelace+viewer@example.org", "a"),  # case-insensitive
        ("ADA.LOVELACE+VIEWER@EXAMPLE.ORG", "a"),
        ("ada.lovelace@example.org", ""),  # exact, not a pattern
        ("Lovelace", ""),
        ("%@example.org", ""),
    ],
)
def test_list_by_email(directory, email, expected):
    assert directory.listed(email=email) == expected


def test_list_by_email_of_the_owner_and_a_cli_user(directory):
    assert directory.listed(email=directory.org.owner_email.upper()) == "o"
    assert directory.listed(email=directory.emails["c"]) == "c"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (dict(first_name="elodie"), "b"),  # é is not e
        (dict(first_name="élodie"), "a"),
        (dict(first_name="ÉLODIE"), "a"),  # Unicode case folding
        (dict(first_name="LODIE"), "ba"),  # substring
        (dict(first_name="zoË"), "d"),
        (dict(first_name="ann"), "fe"),
        (dict(first_name="_"), "e"),  # _ is a literal, not a one-character wildcard
        (dict(first_name="n_a"), "e"),
        (dict(first_name="nobody"), ""),
        (dict(last_name="durand"), "ca"),
        (dict(last_name="DURAND-"), "c"),
        (dict(last_name="o'brien"), "d"),
        (dict(last_name="lee"), "fe"),
        (dict(last_name="%"), "e"),  # % is a literal
        (dict(last_name="0% l"), "e"),
        (dict(first_name="elodie", last_name="martin"), "b"),
        (dict(first_name="elodie", last_name="durand"), ""),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_list_by_name(directory, params, expected):
    assert directory.listed(**params) == expected


def test_list_by_level(directory):
    assert directory.listed(level="owner") == "o"
    assert directory.listed(level="admin") == "fb"
    assert directory.listed(level="member") == "edca"


def test_list_by_invited_source(directory):
    assert directory.listed(invited_source="api") == "edba"
    assert directory.listed(invited_source="dashboard") == "fco"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (dict(level="admin", invited_source="dashboard"), "f"),
        (dict(level="admin", invited_source="api"), "b"),
        (dict(level="owner", invited_source="api"), ""),
        (dict(level="member", last_name="durand"), "ca"),
        (dict(invited_source="api", last_name="durand"), "a"),
        (dict(first_name="ann", level="member", invited_source="api"), "e"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_list_with_combined_filters(directory, params, expected):
    assert directory.listed(**params) == expected


def test_list_pages_with_a_float_limit_and_cursor(directory):
    page = directory.client.viewer.users.list(limit=4.0)
    assert [u.user_id for u in page.users] == [directory.ids[n] for n in "fedc"]
    assert page.has_more is True and page.cursor
    pages = list(page.iter_pages())
    assert [len(p.users) for p in pages] == [4, 3]
    assert pages[-1].has_more is False and pages[-1].cursor is None
    assert [u.user_id for p in pages for u in p.users] == [directory.ids[n] for n in "fedcbao"]

    whole = directory.client.viewer.users.list(limit=7)
    assert len(whole.users) == 7 and whole.has_more is False and whole.cursor is None


def test_list_filters_hold_on_every_page(directory):
    pages = list(directory.client.viewer.users.list(invited_source="api", limit=1).iter_pages())
    assert ["".join(u.first_name[0] for u in p.users) for p in pages] == ["A", "Z", "E", "É"]


def test_list_default_page_size_is_25_and_auto_pagination_sees_everyone(org, client):
    invited = [invite(client, first_name=f"User{n:02d}").user_id for n in range(30)]
    page = client.viewer.users.list()
    assert len(page.users) == 25 and page.has_more is True
    everyone = user_ids(client, limit=10)
    assert everyone == invited[::-1] + [org.owner_user_id]
    assert [len(p.users) for p in client.viewer.users.list(limit=10).iter_pages()] == [10, 10, 10, 1]


def test_a_cursor_survives_new_users_being_invited(org, client):
    first = [invite(client).user_id for _ in range(4)]
    page1 = client.viewer.users.list(limit=2)
    invite(client)
    page2 = client.viewer.users.list(limit=2, cursor=page1.cursor)
    assert [u.user_id for u in page2.users] == [first[1], first[0]]


def test_list_of_a_new_org_is_just_its_owner(org, client):
    page = client.viewer.users.list()
    assert [u.user_id for u in page.users] == [org.owner_user_id]
    assert page.has_more is False and page.cursor is None


@pytest.mark.parametrize("limit", [0, 101, -1, 2.5])
def test_list_rejects_out_of_range_limits(client, limit):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.list(limit=limit)
    assert e.value.body["field"] == "limit"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (dict(level="boss"), "level"),
        (dict(level="Owner"), "level"),
        (dict(invited_source="email"), "invitedSource"),
        (dict(first_name="x" * 255), "firstName"),
    ],
    ids=["level", "level-case", "invited-source", "long-first-name"],
)
def test_list_rejects_invalid_filters(client, params, field):
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.list(**params)
    assert e.value.body["field"] == field


def test_list_rejects_bad_cursors(client):
    for _ in range(3):
        invite(client)
    good = client.viewer.users.list(limit=1).cursor
    assert good
    for description in ("x", "y"):
        client.viewer.studies.create(severity="normal", study_description=description, study_instance_uid=new_uid())
    foreign = client.viewer.studies.list(limit=1).cursor
    assert foreign
    for bad in ["garbage!", "Zm9v", foreign, good[:-3]]:
        with pytest.raises(avara.BadRequestError) as e:
            client.viewer.users.list(cursor=bad)
        assert e.value.body["field"] == "cursor", bad


# =========================================================================== revoke access / reactivate


def test_revoke_access_and_reactivate(client, lenient):
    user = invite(client)
    api = client.viewer.users
    inv = invitation_of(lenient, user.user_id)
    assert inv.status == "sent"

    revoked = api.revoke_access(user_id=user.user_id)
    assert revoked.success is True
    after = api.retrieve(user.user_id)
    assert is_active(after) is False
    # Everything else is kept for a later reactivation.
    assert {k: v for k, v in user_fields(after).items() if k != "isActive"} == \
        {k: v for k, v in user_fields(user).items() if k != "isActive"}
    withdrawn = lenient.viewer.users.invitations.retrieve(inv.invitation_id)
    assert withdrawn.status == "revoked"
    assert withdrawn.updated_at >= inv.updated_at

    # Revoked users are still listed (they can be reactivated), marked inactive.
    (listed,) = api.list(email=user.email)
    assert is_active(listed) is False

    assert api.reactivate(user_id=user.user_id).success is True
    back = api.retrieve(user.user_id)
    assert is_active(back) is True
    assert (back.level, back.clinic_role, back.can_manage_studies) == (user.level, user.clinic_role,
                                                                       user.can_manage_studies)
    # Reactivating restores access, not the withdrawn invitation.
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).status == "revoked"


def test_revoke_access_of_a_user_without_an_invitation(server, org, client, lenient):
    uid = server.create_user(org.org_id, unique_email("cli"))
    assert client.viewer.users.revoke_access(user_id=uid).success is True
    assert is_active(client.viewer.users.retrieve(uid)) is False
    assert invitation_ids(lenient) == []


def test_revoking_twice_or_reactivating_an_active_user_is_a_permanent_conflict(client, counting_client):
    user = invite(client)
    retrying, log = counting_client(max_retries=2)

    with pytest.raises(avara.ConflictError) as e:
        retrying.viewer.users.reactivate(user_id=user.user_id)
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(log.requests) == 1
    assert is_active(client.viewer.users.retrieve(user.user_id)) is True

    client.viewer.users.revoke_access(user_id=user.user_id)
    log.requests.clear()
    with pytest.raises(avara.ConflictError) as e:
        retrying.viewer.users.revoke_access(user_id=user.user_id)
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(log.requests) == 1
    assert is_active(client.viewer.users.retrieve(user.user_id)) is False


def test_the_owner_cannot_be_revoked(org, client):
    with pytest.raises(avara.UnprocessableEntityError) as e:
        client.viewer.users.revoke_access(user_id=org.owner_user_id)
    assert e.value.status_code == 422
    assert is_active(client.viewer.users.retrieve(org.owner_user_id)) is True
    # The owner is active, so reactivating is a no-op conflict, not a 422.
    with pytest.raises(avara.ConflictError):
        client.viewer.users.reactivate(user_id=org.owner_user_id)


def test_a_revoked_user_cannot_be_assigned_studies(client):
    user = invite(client, first_name="Revoked", last_name="Reader")
    studies = client.viewer.studies
    assigned = studies.create(severity="high", study_description="Before revocation",
                              study_instance_uid=new_uid(), assigned_to=user.user_id)
    spare = studies.create(severity="normal", study_description="Unassigned", study_instance_uid=new_uid())

    client.viewer.users.revoke_access(user_id=user.user_id)

    uid = new_uid()
    with pytest.raises(avara.UnprocessableEntityError):
        studies.create(severity="normal", study_description="After", study_instance_uid=uid,
                       assigned_to=user.user_id)
    with pytest.raises(avara.NotFoundError):
        studies.retrieve_by_uid(uid)
    with pytest.raises(avara.UnprocessableEntityError):
        studies.update(spare.study_id, assigned_to=user.user_id)
    assert studies.retrieve(spare.study_id).assigned_to is None

    # Existing assignments keep showing the user.
    kept = studies.retrieve(assigned.study_id)
    assert kept.assigned_to is not None
    assert (kept.assigned_to.user_id, kept.assigned_to.first_name) == (user.user_id, "Revoked")
    assert [s.study_id for s in studies.list(assigned_to=user.user_id)] == [assigned.study_id]

    client.viewer.users.reactivate(user_id=user.user_id)
    assert studies.update(spare.study_id, assigned_to=user.user_id).assigned_to.user_id == user.user_id


def test_revoke_and_reactivate_validate_the_user_id(client):
    api = client.viewer.users
    for action in (api.revoke_access, api.reactivate):
        with pytest.raises(avara.NotFoundError):
            action(user_id=random_user_id())
        for bad in ("usr_123", "inv_" + "0" * 32, ""):
            with pytest.raises(avara.BadRequestError) as e:
                action(user_id=bad)
            assert e.value.body["field"] == "userId"
    for path in ("/v1/viewer/users/revoke-access", "/v1/viewer/users/reactivate"):
        with pytest.raises(avara.BadRequestError):
            client.post(path, body={}, cast_to=object)


# =========================================================================== invitations


def test_invitation_json_matches_the_sdk_model_but_for_the_null_inviter(org, client, lenient):
    user = invite(client, middle_name="M", phone_number="5551234567", suffix1="Jr.")
    inv_id = invitation_of(lenient, user.user_id).invitation_id
    bodies = [
        client.get(f"/v1/viewer/users/invitations/{inv_id}", cast_to=httpx.Response).json(),
        client.patch(f"/v1/viewer/users/invitations/{inv_id}", body={"firstName": "Strict"},
                     cast_to=httpx.Response).json(),
        client.get("/v1/viewer/users/invitations", cast_to=httpx.Response).json()["invitations"][0],
    ]
    for body in bodies:
        assert body["inviterId"] is None
        assert body["invitedByApiKeyId"] == org.api_key_id
        model = InvitationRetrieveResponse.model_validate({**body, "inviterId": "usr_" + "0" * 32}, strict=False)
        assert model.invitation_id == inv_id
        assert model.user_id == user.user_id
    assert bodies[1]["firstName"] == "Strict"


def test_the_strict_sdk_client_cannot_read_an_api_invitation(client, lenient):
    """Documents the SDK's own inconsistency (spec §6.5): inviterId is null for an
    API invitation, which the SDK's strict mode refuses. Its default mode reads it."""
    user = invite(client)
    with pytest.raises(avara.APIResponseValidationError):
        client.viewer.users.invitations.list()
    assert invitation_of(lenient, user.user_id).inviter_id is None


def test_unknown_invitation_is_404(lenient):
    api = lenient.viewer.users.invitations
    with pytest.raises(avara.NotFoundError) as e:
        api.retrieve(random_invitation_id())
    assert e.value.body["type"] == "not_found"
    with pytest.raises(avara.NotFoundError):
        api.update(random_invitation_id(), first_name="X")
    with pytest.raises(avara.NotFoundError):
        api.revoke(invitation_id=random_invitation_id())


@pytest.mark.parametrize("bad", ["inv_123", "usr_" + "0" * 32, "inv_" + "z" * 32, "invitation"])
def test_malformed_invitation_id_is_400(lenient, bad):
    api = lenient.viewer.users.invitations
    with pytest.raises(avara.BadRequestError) as e:
        api.retrieve(bad)
    assert e.value.body["field"] == "invitationId"
    with pytest.raises(avara.BadRequestError):
        api.update(bad, first_name="X")
    with pytest.raises(avara.BadRequestError) as e:
        api.revoke(invitation_id=bad)
    assert e.value.body["field"] == "invitationId"


def test_update_a_pending_invitation_edits_the_invited_user(client, lenient):
    user = invite(client, first_name="Kate", last_name="Smith", clinic_role="Radiologist")
    inv = invitation_of(lenient, user.user_id)
    api = lenient.viewer.users.invitations

    updated = api.update(
        inv.invitation_id, first_name="Katherine", middle_name="Coleman", last_name="Johnson",
        suffix1="PhD", suffix2="Jr.", phone_number="5550001111", clinic_role="Physician",
        level="admin", has_dashboard_access=True, can_manage_studies=True,
    )
    assert (updated.invitation_id, updated.user_id, updated.status) == (inv.invitation_id, user.user_id, "sent")
    assert (updated.first_name, updated.middle_name, updated.last_name) == ("Katherine", "Coleman", "Johnson")
    assert (updated.suffix1, updated.suffix2, updated.phone_number) == ("PhD", "Jr.", "5550001111")
    assert (updated.clinic_role, updated.level) == ("Physician", "admin")
    assert (updated.has_dashboard_access, updated.can_manage_studies) == (True, True)
    assert (updated.email, updated.created_at, updated.expiry) == (user.email, inv.created_at, inv.expiry)
    assert updated.updated_at >= inv.updated_at
    assert api.retrieve(inv.invitation_id).to_dict(mode="json") == updated.to_dict(mode="json")

    # The invited user is the same record.
    seen = client.viewer.users.retrieve(user.user_id)
    assert (seen.first_name, seen.middle_name, seen.last_name) == ("Katherine", "Coleman", "Johnson")
    assert (seen.suffix1, seen.suffix2, seen.phone_number) == ("PhD", "Jr.", "5550001111")
    assert (seen.clinic_role, seen.level, seen.has_dashboard_access, seen.can_manage_studies) == (
        "Physician", "admin", True, True)

    cleared = api.update(inv.invitation_id, middle_name=None, phone_number=None, suffix1=None, suffix2=None)
    assert (cleared.middle_name, cleared.phone_number, cleared.suffix1, cleared.suffix2) == (None,) * 4
    seen = client.viewer.users.retrieve(user.user_id)
    assert (seen.middle_name, seen.phone_number, seen.suffix1, seen.suffix2) == (None,) * 4
    assert seen.first_name == "Katherine"


@pytest.mark.parametrize(
    ("fields", "extra", "field"),
    [
        (dict(clinic_role=None), None, "clinicRole"),
        (dict(first_name=None), None, "firstName"),
        (dict(level=None), None, "level"),
        (dict(has_dashboard_access=None), None, "hasDashboardAccess"),
        (dict(level="owner"), None, "level"),
        (dict(level="admin"), None, "hasDashboardAccess"),
        (dict(clinic_role="Nurse"), None, "clinicRole"),
        (dict(phone_number="12345"), None, "phoneNumber"),
        (dict(first_name="Changed"), {"email": "changed@example.org"}, "email"),
    ],
    ids=["null-role", "null-first-name", "null-level", "null-dashboard", "owner", "admin-no-dashboard",
         "bad-role", "bad-phone", "email"],
)
def test_update_invitation_rejects_what_user_update_rejects(client, lenient, fields, extra, field):
    user = invite(client, first_name="Kept")
    inv = invitation_of(lenient, user.user_id)
    with pytest.raises(avara.BadRequestError) as e:
        lenient.viewer.users.invitations.update(inv.invitation_id, extra_body=extra, **fields)
    assert e.value.body["field"] == field
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).to_dict(mode="json") == \
        inv.to_dict(mode="json")
    assert user_fields(client.viewer.users.retrieve(user.user_id)) == user_fields(user)


def test_only_a_pending_invitation_can_be_updated(server, client, lenient, counting_client):
    revoked_user, revoked_access_user, expired_user = invite(client), invite(client), invite(client)
    api = lenient.viewer.users.invitations
    revoked = invitation_of(lenient, revoked_user.user_id)
    withdrawn = invitation_of(lenient, revoked_access_user.user_id)
    expired = invitation_of(lenient, expired_user.user_id)
    api.revoke(invitation_id=revoked.invitation_id)
    client.viewer.users.revoke_access(user_id=revoked_access_user.user_id)
    move_invitation(server, expired.invitation_id, expires_at=now() - timedelta(minutes=1))

    retrying, log = counting_client(max_retries=2, _strict_response_validation=False)
    for inv, user in ((revoked, revoked_user), (withdrawn, revoked_access_user), (expired, expired_user)):
        log.requests.clear()
        with pytest.raises(avara.ConflictError) as e:
            retrying.viewer.users.invitations.update(inv.invitation_id, first_name="Late")
        assert e.value.response.headers["x-should-retry"] == "false"
        assert len(log.requests) == 1
        assert api.retrieve(inv.invitation_id).first_name == user.first_name
        assert client.viewer.users.retrieve(user.user_id).first_name == user.first_name


# --------------------------------------------------------------------------- invitations: revoke


def test_revoke_an_invitation_by_id(client, lenient):
    user = invite(client)
    inv = invitation_of(lenient, user.user_id)
    result = lenient.viewer.users.invitations.revoke(invitation_id=inv.invitation_id)
    assert result.success is True

    after = lenient.viewer.users.invitations.retrieve(inv.invitation_id)
    assert after.status == "revoked"
    assert after.updated_at >= inv.updated_at
    assert (after.expiry, after.created_at) == (inv.expiry, inv.created_at)
    # The invited user never accepted, so their access goes too.
    assert is_active(client.viewer.users.retrieve(user.user_id)) is False
    with pytest.raises(avara.UnprocessableEntityError):
        client.viewer.studies.create(severity="normal", study_description="x", study_instance_uid=new_uid(),
                                     assigned_to=user.user_id)

    # Reactivating the user gives their access back; the invitation stays revoked.
    client.viewer.users.reactivate(user_id=user.user_id)
    assert is_active(client.viewer.users.retrieve(user.user_id)) is True
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).status == "revoked"


def test_revoke_an_invitation_by_user_id(client, lenient):
    user, bystander = invite(client), invite(client)
    assert lenient.viewer.users.invitations.revoke(user_id=user.user_id).success is True
    assert invitation_of(lenient, user.user_id).status == "revoked"
    assert invitation_of(lenient, bystander.user_id).status == "sent"
    assert is_active(client.viewer.users.retrieve(user.user_id)) is False
    assert is_active(client.viewer.users.retrieve(bystander.user_id)) is True


def test_revoke_an_invitation_by_both_ids(client, lenient):
    user = invite(client)
    inv = invitation_of(lenient, user.user_id)
    assert lenient.viewer.users.invitations.revoke(invitation_id=inv.invitation_id, user_id=user.user_id).success
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).status == "revoked"


def test_revoke_with_ids_that_disagree_is_rejected(client, lenient):
    one, other = invite(client), invite(client)
    one_inv = invitation_of(lenient, one.user_id)
    with pytest.raises(avara.BadRequestError):
        lenient.viewer.users.invitations.revoke(invitation_id=one_inv.invitation_id, user_id=other.user_id)
    for user in (one, other):
        assert invitation_of(lenient, user.user_id).status == "sent"
        assert is_active(client.viewer.users.retrieve(user.user_id)) is True


def test_revoke_needs_an_invitation_or_a_user(client, lenient):
    invite(client)
    with pytest.raises(avara.BadRequestError):
        lenient.viewer.users.invitations.revoke()
    assert [i.status for i in lenient.viewer.users.invitations.list()] == ["sent"]


def test_revoking_twice_is_a_permanent_conflict(client, lenient, counting_client):
    user = invite(client)
    inv = invitation_of(lenient, user.user_id)
    lenient.viewer.users.invitations.revoke(invitation_id=inv.invitation_id)
    revoked_at = lenient.viewer.users.invitations.retrieve(inv.invitation_id).updated_at

    retrying, log = counting_client(max_retries=2)
    for selector in (dict(invitation_id=inv.invitation_id), dict(user_id=user.user_id)):
        log.requests.clear()
        with pytest.raises(avara.ConflictError) as e:
            retrying.viewer.users.invitations.revoke(**selector)
        assert e.value.response.headers["x-should-retry"] == "false"
        assert len(log.requests) == 1
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).updated_at == revoked_at


def test_revoking_an_invitation_already_withdrawn_by_revoke_access_is_a_conflict(client, lenient):
    user = invite(client)
    client.viewer.users.revoke_access(user_id=user.user_id)
    with pytest.raises(avara.ConflictError):
        lenient.viewer.users.invitations.revoke(user_id=user.user_id)


def test_an_expired_invitation_cannot_be_revoked(server, client, lenient):
    user = invite(client)
    inv = invitation_of(lenient, user.user_id)
    move_invitation(server, inv.invitation_id, expires_at=now() - timedelta(seconds=1))
    with pytest.raises(avara.ConflictError):
        lenient.viewer.users.invitations.revoke(invitation_id=inv.invitation_id)
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).status == "sent"
    assert is_active(client.viewer.users.retrieve(user.user_id)) is True


def test_revoke_by_a_user_without_invitation_is_404(server, org, lenient):
    uid = server.create_user(org.org_id, unique_email("cli"))
    for user_id in (uid, org.owner_user_id, random_user_id()):
        with pytest.raises(avara.NotFoundError):
            lenient.viewer.users.invitations.revoke(user_id=user_id)
    with pytest.raises(avara.BadRequestError) as e:
        lenient.viewer.users.invitations.revoke(user_id="usr_123")
    assert e.value.body["field"] == "userId"


# --------------------------------------------------------------------------- invitations: list


def move_invitation(server: LightboxServer, invitation_id: str, *, created_at: datetime | None = None,
                    expires_at: datetime | None = None) -> None:
    """Moves an invitation in time by editing its row, as the API has no clock to turn."""
    changes = {column: int(ts.timestamp() * 1000)
               for column, ts in (("created_at", created_at), ("expires_at", expires_at)) if ts is not None}
    assignments = ", ".join(f"{column} = {value}" for column, value in changes.items())
    statement = f"UPDATE invitations SET {assignments} WHERE id = "
    if server.backend.database_url:
        with psycopg.connect(server.backend.database_url, autocommit=True) as db:
            updated = db.execute(statement + "%s", (invitation_id,)).rowcount
    else:
        db = sqlite3.connect(server.data_dir / "lightbox.db", timeout=10)
        try:
            with db:
                updated = db.execute(statement + "?", (invitation_id,)).rowcount
        finally:
            db.close()
    assert updated == 1, invitation_id


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def invitation_history(server, org, client, lenient):
    """Five invitations (newest last), two of them moved into the past:
    1: sent,    created 2024-03-01T23:59:59.999Z, expired
    2: sent,    created 2024-03-02T00:00:00.000Z, expires next year
    3: revoked (invitations.revoke), created today
    4: sent,    created today
    5: revoked (users.revoke_access), created today, expired a minute ago"""
    users = {n: invite(client, first_name=f"Invitee{n}") for n in "12345"}
    invs = {n: invitation_of(lenient, u.user_id) for n, u in users.items()}
    move_invitation(server, invs["1"].invitation_id, created_at=utc(2024, 3, 1, 23, 59, 59, 999000),
                    expires_at=utc(2024, 3, 8, 23, 59, 59, 999000))
    move_invitation(server, invs["2"].invitation_id, created_at=utc(2024, 3, 2),
                    expires_at=now() + timedelta(days=365))
    lenient.viewer.users.invitations.revoke(invitation_id=invs["3"].invitation_id)
    client.viewer.users.revoke_access(user_id=users["5"].user_id)
    move_invitation(server, invs["5"].invitation_id, expires_at=now() - timedelta(minutes=1))

    names = {inv.invitation_id: n for n, inv in invs.items()}
    today = invs["4"].created_at.astimezone(timezone.utc).date()

    def listed(**params) -> str:
        return "".join(names[i] for i in invitation_ids(lenient, **params))

    return SimpleNamespace(users=users, invs=invs, listed=listed, today=today)


def test_list_invitations_newest_first_with_their_states(invitation_history, lenient):
    h = invitation_history
    assert h.listed() == "54321"
    by_name = {n: lenient.viewer.users.invitations.retrieve(inv.invitation_id) for n, inv in h.invs.items()}
    assert {n: i.status for n, i in by_name.items()} == {"1": "sent", "2": "sent", "3": "revoked", "4": "sent",
                                                         "5": "revoked"}
    assert by_name["1"].created_at == utc(2024, 3, 1, 23, 59, 59, 999000)
    assert by_name["2"].created_at == utc(2024, 3, 2)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ([], "54321"),  # sent as `status=`: no filter
        (["sent"], "421"),
        (["revoked"], "53"),
        (["sent", "revoked"], "54321"),
        (["revoked", "sent"], "54321"),
        (["accepted"], ""),
        (["accepted", "rejected"], ""),
        (["rejected", "revoked"], "53"),
    ],
)
def test_list_invitations_by_status(invitation_history, status, expected):
    assert invitation_history.listed(status=status) == expected


def test_list_invitations_by_expiry(invitation_history):
    h = invitation_history
    assert h.listed(expired="all") == "54321"
    assert h.listed(expired="expired") == "51"  # whatever the status
    assert h.listed(expired="not-expired") == "432"
    assert h.listed(expired="not-expired", status=["sent"]) == "42"
    assert h.listed(expired="expired", status=["sent"]) == "1"


def test_list_invitations_by_creation_date(invitation_history):
    h = invitation_history
    today, yesterday = h.today.isoformat(), (h.today - timedelta(days=1)).isoformat()
    assert h.listed(start_date="2024-03-01") == "54321"
    assert h.listed(start_date="2024-03-02") == "5432"  # 1 was created a millisecond before
    assert h.listed(end_date="2024-03-01") == "1"  # inclusive, to the last millisecond
    assert h.listed(end_date="2024-03-02") == "21"
    assert h.listed(start_date="2024-03-01", end_date="2024-03-01") == "1"
    assert h.listed(start_date="2024-03-02", end_date="2024-03-02") == "2"
    assert h.listed(end_date="2024-02-29") == ""
    assert h.listed(start_date=today) == "543"
    assert h.listed(start_date=today, end_date=today) == "543"
    assert h.listed(end_date=yesterday) == "21"
    assert h.listed(start_date=(h.today + timedelta(days=1)).isoformat()) == ""
    assert h.listed(start_date="2024-03-03", end_date="2024-03-01") == ""
    assert h.listed(start_date="2024-03-01", end_date=today, status=["sent"], expired="not-expired") == "42"


def test_list_invitations_by_user(invitation_history, org):
    h = invitation_history
    assert h.listed(user_id=h.users["3"].user_id) == "3"
    assert h.listed(user_id=h.users["3"].user_id.upper().replace("USR_", "usr_")) == "3"
    assert h.listed(user_id=org.owner_user_id) == ""
    assert h.listed(user_id=random_user_id()) == ""
    assert h.listed(user_id=h.users["5"].user_id, status=["sent"]) == ""


def test_list_invitations_pages(invitation_history, lenient):
    h = invitation_history
    first = lenient.viewer.users.invitations.list(limit=2.0)
    pages = list(first.iter_pages())
    names = {inv.invitation_id: n for n, inv in h.invs.items()}
    assert ["".join(names[i.invitation_id] for i in p.invitations) for p in pages] == ["54", "32", "1"]
    assert all(p.has_more is True and p.cursor for p in pages[:-1])
    assert pages[-1].has_more is False and pages[-1].cursor is None

    sent = list(lenient.viewer.users.invitations.list(status=["sent"], limit=1).iter_pages())
    assert ["".join(names[i.invitation_id] for i in p.invitations) for p in sent] == ["4", "2", "1"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (dict(status=["pending"]), "status"),
        (dict(status=["sent", "SENT"]), "status"),
        (dict(expired="yes"), "expired"),
        (dict(expired="true"), "expired"),
        (dict(start_date="2024-3-1"), "startDate"),
        (dict(start_date="2024-03-01T00:00:00Z"), "startDate"),
        (dict(start_date="03/01/2024"), "startDate"),
        (dict(end_date="2024-02-30"), "endDate"),
        (dict(end_date="yesterday"), "endDate"),
        (dict(user_id="usr_1"), "userId"),
        (dict(user_id="inv_" + "0" * 32), "userId"),
        (dict(limit=0), "limit"),
        (dict(limit=101), "limit"),
        (dict(cursor="garbage!"), "cursor"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_list_invitations_rejects_invalid_filters(lenient, params, field):
    with pytest.raises(avara.BadRequestError) as e:
        lenient.viewer.users.invitations.list(**params)
    assert e.value.body["field"] == field


def test_list_invitations_rejects_a_users_cursor(client, lenient):
    for _ in range(2):
        invite(client)
    users_cursor = client.viewer.users.list(limit=1).cursor
    invitations_cursor = lenient.viewer.users.invitations.list(limit=1).cursor
    assert users_cursor and invitations_cursor
    with pytest.raises(avara.BadRequestError) as e:
        lenient.viewer.users.invitations.list(cursor=users_cursor)
    assert e.value.body["field"] == "cursor"
    with pytest.raises(avara.BadRequestError) as e:
        client.viewer.users.list(cursor=invitations_cursor)
    assert e.value.body["field"] == "cursor"


# =========================================================================== routing


def test_invitations_list_is_not_read_as_a_user_id(client, lenient):
    user = invite(client)
    body = client.get("/v1/viewer/users/invitations", cast_to=httpx.Response).json()
    assert set(body) == {"invitations", "cursor", "hasMore"}
    assert [i["userId"] for i in body["invitations"]] == [user.user_id]
    assert [i.user_id for i in lenient.viewer.users.invitations.list()] == [user.user_id]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.viewer.users.retrieve("reactivate"), "userId"),
        (lambda c: c.viewer.users.retrieve("revoke-access"), "userId"),
        (lambda c: c.viewer.users.update("reactivate", first_name="Hijack"), "userId"),
        (lambda c: c.viewer.users.update("revoke-access", first_name="Hijack"), "userId"),
        (lambda c: c.viewer.users.update("invitations", first_name="Hijack"), "userId"),
        (lambda c: c.viewer.users.invitations.retrieve("revoke"), "invitationId"),
        (lambda c: c.viewer.users.invitations.update("revoke", first_name="Hijack"), "invitationId"),
    ],
    ids=["GET-reactivate", "GET-revoke-access", "PATCH-reactivate", "PATCH-revoke-access", "PATCH-invitations",
         "GET-invitations-revoke", "PATCH-invitations-revoke"],
)
def test_reads_of_action_paths_are_rejected_as_bad_ids(org, client, call, field):
    """Spec §0: fixed segments win; GET/PATCH on a POST-only path fails the id check."""
    with pytest.raises(avara.BadRequestError) as e:
        call(client)
    assert e.value.body["field"] == field
    assert client.viewer.users.retrieve(org.owner_user_id).first_name != "Hijack"


def test_there_is_no_delete(org, client):
    user = invite(client)
    for path in (f"/v1/viewer/users/{user.user_id}", "/v1/viewer/users/invitations/revoke"):
        with pytest.raises(avara.APIStatusError) as e:
            client.delete(path, cast_to=object)
        assert e.value.status_code == 405
    assert client.viewer.users.retrieve(user.user_id).user_id == user.user_id


# =========================================================================== cross-org isolation


def test_another_org_cannot_see_or_touch_users_or_invitations(org, other_org, client, lenient):
    mine = invite(client, first_name="Private", last_name="Person", phone_number="5551234567")
    revoked = invite(client)
    inv = invitation_of(lenient, mine.user_id)
    lenient.viewer.users.revoke_access(user_id=revoked.user_id)
    theirs = other_org.client(_strict_response_validation=False)
    users, invitations = theirs.viewer.users, theirs.viewer.users.invitations

    for uid in (mine.user_id, revoked.user_id, org.owner_user_id):
        with pytest.raises(avara.NotFoundError):
            users.retrieve(uid)
        with pytest.raises(avara.NotFoundError):
            users.update(uid, first_name="Hijacked")
        with pytest.raises(avara.NotFoundError):
            users.revoke_access(user_id=uid)
        with pytest.raises(avara.NotFoundError):
            users.reactivate(user_id=uid)
        with pytest.raises(avara.NotFoundError):
            invitations.revoke(user_id=uid)
    with pytest.raises(avara.NotFoundError):
        invitations.retrieve(inv.invitation_id)
    with pytest.raises(avara.NotFoundError):
        invitations.update(inv.invitation_id, first_name="Hijacked")
    with pytest.raises(avara.NotFoundError):
        invitations.revoke(invitation_id=inv.invitation_id)
    with pytest.raises(avara.NotFoundError):
        invitations.revoke(invitation_id=inv.invitation_id, user_id=mine.user_id)

    # Listings show only the caller's own organization.
    assert user_ids(theirs) == [other_org.owner_user_id]
    assert user_ids(theirs, email=mine.email) == []
    assert user_ids(theirs, email=org.owner_email) == []
    assert user_ids(theirs, first_name="private") == []
    assert user_ids(theirs, invited_source="api") == []
    assert invitation_ids(theirs) == []
    assert invitation_ids(theirs, user_id=mine.user_id) == []
    assert invitation_ids(theirs, status=["sent", "revoked"]) == []

    # A cursor from this org leaks nothing of it there.
    cursor = client.viewer.users.list(limit=1).cursor
    assert cursor
    seen = user_ids(theirs, cursor=cursor)
    assert not set(seen) & {mine.user_id, revoked.user_id, org.owner_user_id}
    inv_cursor = lenient.viewer.users.invitations.list(limit=1).cursor
    assert inv_cursor
    assert invitation_ids(theirs, cursor=inv_cursor) == []

    # Nothing changed here.
    after = client.viewer.users.retrieve(mine.user_id)
    assert user_fields(after) == user_fields(mine)
    assert is_active(client.viewer.users.retrieve(revoked.user_id)) is False
    assert lenient.viewer.users.invitations.retrieve(inv.invitation_id).to_dict(mode="json") == \
        inv.to_dict(mode="json")


# =========================================================================== ephemeral sessions


def open_link(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, follow_redirects=True)


def test_ephemeral_session_link_opens_the_retrieval(server, client):
    retrieval = f"exam-{secrets.token_hex(4)} <CT & MR>"
    before = now()
    result = client.viewer.ephemeral_sessions.create(
        retrieval_id=retrieval,
        hanging_protocol={"layout": "2x2", "viewport_assignments": ["series-1", None, "series-3", None]},
        options={"snake_key": 1, "nested": {"camelCase": True, "list": [1, "two", None]}},
    )
    url = result.url
    assert url.startswith(f"{server.base_url}/viewer/session/"), url

    page = open_link(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "no-store" in page.headers.get("cache-control", "")
    text = html.unescape(page.text)
    assert retrieval in text
    assert html.escape(retrieval, quote=False) in page.text  # escaped, not raw markup
    assert "2x2" in text
    valid_until = re.search(r"Valid until</dt><dd>([^<]+)</dd>", page.text)
    assert valid_until, page.text
    expires = datetime.fromisoformat(valid_until.group(1).replace("Z", "+00:00"))
    assert before + EPHEMERAL_TTL - CLOCK_SLACK <= expires <= now() + EPHEMERAL_TTL + CLOCK_SLACK

    assert open_link(url).status_code == 200  # valid for its lifetime, not single-use


def test_ephemeral_session_with_only_a_retrieval_id(client):
    url = client.viewer.ephemeral_sessions.create(retrieval_id="r1").url
    page = open_link(url)
    assert page.status_code == 200
    assert "r1" in page.text


def test_every_layout_takes_rows_times_columns_assignments(client):
    assert len(LAYOUTS) == 16
    for layout in LAYOUTS:
        rows, cols = map(int, layout.split("x"))
        n = rows * cols
        assignments = [f"series-{i}" if i % 2 == 0 else None for i in range(n)]
        url = client.viewer.ephemeral_sessions.create(
            retrieval_id=f"r-{layout}", hanging_protocol={"layout": layout, "viewport_assignments": assignments},
        ).url
        assert layout in open_link(url).text
        for wrong in (n - 1, n + 1):
            with pytest.raises(avara.BadRequestError) as e:
                client.viewer.ephemeral_sessions.create(
                    retrieval_id="r", hanging_protocol={"layout": layout, "viewport_assignments": [None] * wrong})
            assert e.value.body["field"] == "hangingProtocol", (layout, wrong)


@pytest.mark.parametrize(
    "protocol",
    [
        {"layout": "5x5", "viewport_assignments": [None] * 25},
        {"layout": "0x1", "viewport_assignments": []},
        {"layout": "2X2", "viewport_assignments": [None] * 4},
        {"layout": "2x2 ", "viewport_assignments": [None] * 4},
        {"layout": "", "viewport_assignments": [None]},
        {"layout": "1x1"},
        {"viewport_assignments": [None]},
        {"layout": "1x1", "viewport_assignments": [42]},
        {"layout": "1x1", "viewport_assignments": "series-1"},
    ],
    ids=["5x5", "0x1", "upper-X", "trailing-space", "empty", "no-assignments", "no-layout", "number",
         "string"],
)
def test_ephemeral_session_rejects_invalid_hanging_protocols(client, protocol):
    with pytest.raises(avara.BadRequestError):
        client.viewer.ephemeral_sessions.create(retrieval_id="r", hanging_protocol=protocol)


def compact_json_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_ephemeral_options_up_to_3072_bytes(client):
    at_limit = {"blob": "x" * 3061}
    assert compact_json_size(at_limit) == 3072
    assert open_link(client.viewer.ephemeral_sessions.create(retrieval_id="r", options=at_limit).url).status_code \
        == 200

    for over in ({"blob": "x" * 3062}, {f"k{i}": i for i in range(400)}):
        assert compact_json_size(over) > 3072
        with pytest.raises(avara.BadRequestError) as e:
            client.viewer.ephemeral_sessions.create(retrieval_id="r", options=over)
        assert e.value.body["field"] == "options"


@pytest.mark.parametrize(
    ("retrieval_id", "ok"),
    [("", False), ("   ", False), ("x" * 257, False), ("x" * 256, True), ("é" * 256, True),
     ("1.2.840.10008/äöü?&=", True)],
    ids=["empty", "blank", "257-chars", "256-chars", "256-non-ascii", "punctuation"],
)
def test_ephemeral_retrieval_id_bounds(client, retrieval_id, ok):
    if ok:
        url = client.viewer.ephemeral_sessions.create(retrieval_id=retrieval_id).url
        page = open_link(url)
        assert page.status_code == 200
        assert retrieval_id in html.unescape(page.text)
    else:
        with pytest.raises(avara.BadRequestError) as e:
            client.viewer.ephemeral_sessions.create(retrieval_id=retrieval_id)
        assert e.value.body["field"] == "retrievalId"


def test_ephemeral_session_requires_a_retrieval_id(client):
    for body in ({}, {"retrievalId": None}, {"retrievalId": 7}):
        with pytest.raises(avara.BadRequestError):
            client.post("/v1/viewer/ephemeral-sessions", body=body, cast_to=object)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_tampered_ephemeral_link_is_refused(server, client):
    url = client.viewer.ephemeral_sessions.create(retrieval_id="secret-retrieval").url
    other = client.viewer.ephemeral_sessions.create(retrieval_id="other-retrieval").url
    base, token = url.rsplit("/", 1)
    payload, signature = token.split(".", 1)
    other_payload = other.rsplit("/", 1)[1].split(".", 1)[0]

    # Push the signed expiry an hour further, keeping the signature.
    head, expiry = _b64decode(payload).decode().rsplit("\n", 1)
    assert expiry.isdigit(), expiry
    stretched = _b64encode(f"{head}\n{int(expiry) + 3_600_000}".encode())
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    for bad in (f"{stretched}.{signature}", f"{payload}.{flipped}", f"{other_payload}.{signature}", payload,
                "not-a-token"):
        page = open_link(f"{base}/{bad}")
        assert page.status_code == 403, bad
        assert "secret-retrieval" not in page.text
        assert "other-retrieval" not in page.text
    assert open_link(url).status_code == 200


def test_session_and_study_links_are_not_interchangeable(server, client):
    session_url = client.viewer.ephemeral_sessions.create(retrieval_id="cross-purpose").url
    study = client.viewer.studies.create(severity="normal", study_description="Purpose", study_instance_uid=new_uid())
    study_url = client.viewer.studies.reroute_url(study_id=study.study_id).url
    session_token, study_token = session_url.rsplit("/", 1)[1], study_url.rsplit("/", 1)[1]

    as_study = open_link(f"{server.base_url}/viewer/open/{session_token}")
    assert as_study.status_code == 403
    as_session = open_link(f"{server.base_url}/viewer/session/{study_token}")
    assert as_session.status_code == 403
    assert study.study_instance_uid not in as_session.text


def test_ephemeral_session_needs_a_valid_api_key(server, org):
    bad = server.client(org.api_key[:-1] + ("A" if org.api_key[-1] != "A" else "B"))
    try:
        with pytest.raises(avara.AuthenticationError):
            bad.viewer.ephemeral_sessions.create(retrieval_id="r")
        with pytest.raises(avara.AuthenticationError):
            bad.viewer.users.invite(email=unique_email(), first_name="A", last_name="B", clinic_role="Doctor",
                                    level="member", can_manage_studies=False, has_dashboard_access=False)
        with pytest.raises(avara.AuthenticationError):
            bad.viewer.users.invitations.list()
    finally:
        bad.close()
