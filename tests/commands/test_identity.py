"""Identity and tenancy on the command side, through the processor and the real SQLite store.

The adapters have already checked token signatures and key formats; these tests build
credentials directly and check what the command side decides: who is still authenticated,
which role a caller has in which project, what an API key may do, the ownership and admin
rules, and that no password or key secret ever reaches the store.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.eventstore import EventStore, envelope, store_location
from adapters.security.apikeys import new_api_key, secret_sha256
from adapters.security.passwords import Passwords
from commands.identity import (
    AddMember,
    BootstrapSystem,
    ChangeMemberRole,
    ChangePassword,
    CreateApiKey,
    CreateProject,
    DeleteProject,
    DeleteUser,
    Logout,
    RegisterUser,
    RemoveMember,
    ResetPassword,
    RevokeApiKey,
    TransferOwnership,
    UpdateUser,
)
from commands.models import RegisterChip
from commands.processor import Submission, process_batch
from domain.access import IDENTITY_PROJECT, SYSTEM, Credential
from domain.identity import User, default_project_of, user_key
from domain.projects import Project, project_key
from tests.conftest import ctx

PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
PW = {name: f"{name}-password-0" for name in ("admin", "alice", "bob", "carol", "dave", "erin")}
ALICE_P = default_project_of("alice")
BOB_P = default_project_of("bob")
NO_SUCH_PROJECT = "0123456789abcdef"


# --- Helpers ---------------------------------------------------------------------------


def token(username: str, epoch: int = 0) -> Credential:
    return Credential(kind="token", username=username, token_epoch=epoch)


def api_key(key_id: str, secret: str) -> Credential:
    return Credential(kind="api_key", key_id=key_id, key_secret_sha256=secret_sha256(secret))


def as_(
    credential: Credential,
    command,
    *,
    project: str | None = None,
    key: str | None = None,
    at: datetime | None = None,
) -> Submission:
    return Submission(
        command, ctx(at=at), credential=credential, project=project, idempotency_key=key
    )


def run(store: EventStore, *submissions: Submission):
    return process_batch(list(submissions), store, PASSWORDS)


def send(store: EventStore, credential: Credential, command, **kw):
    (reply,) = run(store, as_(credential, command, **kw))
    return reply


def accepted(store: EventStore, credential: Credential, command, **kw):
    reply = send(store, credential, command, **kw)
    assert reply.status == "accepted", reply
    return reply


def refused(store: EventStore, credential: Credential, command, code: str, **kw):
    """The command is rejected with `code` and nothing at all is appended."""
    before = store.max_position()
    reply = send(store, credential, command, **kw)
    assert (reply.status, reply.code) == ("rejected", code), reply
    assert store.max_position() == before
    return reply


def envelopes(store: EventStore) -> list[dict]:
    return [envelope(row) for row in store.notifications_after(0, 10_000)]


def events_of(store: EventStore, reply) -> list[dict]:
    ids = set(reply.event_ids)
    return [env for env in envelopes(store) if env["event_id"] in ids]


def epoch(store: EventStore, username: str) -> int:
    return store.load(User, user_key(username)).token_epoch


def members(store: EventStore, project_id: str) -> dict[str, str]:
    return dict(store.load(Project, project_key(project_id)).members)


def chip(n: int | str) -> RegisterChip:
    return RegisterChip(chip_id=f"c{n}", size=2)


def register(store: EventStore, username: str, system_role: str = "user") -> None:
    command = RegisterUser(username=username, password=PW[username], system_role=system_role)
    accepted(store, token("admin"), command)


def new_key(
    store: EventStore,
    creator: str,
    project: str,
    scopes: list[str],
    *,
    expires_at: datetime | None = None,
    at: datetime | None = None,
) -> tuple[str, str]:
    key_id, secret, _full = new_api_key()
    command = CreateApiKey(
        key_id=key_id,
        name="script",
        scopes=scopes,
        secret_sha256=secret_sha256(secret),
        expires_at=expires_at,
    )
    accepted(store, token(creator), command, project=project, at=at)
    return key_id, secret


def build_world(store: EventStore) -> EventStore:
    """admin (+ project "default"); alice, bob, carol, dave with their own projects;
    in alice's project bob is a viewer and carol an editor; dave is no member of it."""
    command = BootstrapSystem(admin_username="admin", admin_password=PW["admin"])
    (reply,) = process_batch([Submission(command, ctx(), credential=SYSTEM)], store, PASSWORDS)
    assert reply.status == "accepted", reply
    for name in ("alice", "bob", "carol", "dave"):
        register(store, name)
    accepted(store, token("alice"), AddMember(username="bob", role="viewer"), project=ALICE_P)
    accepted(store, token("alice"), AddMember(username="carol", role="editor"), project=ALICE_P)
    return store


@pytest.fixture
def world(sqlite_store: EventStore) -> EventStore:
    return build_world(sqlite_store)


# --- Authentication: tokens die with logout, password changes and disabling -----------


def test_bootstrap_creates_the_admin_and_the_default_project(world):
    assert members(world, "default") == {"admin": "owner"}
    assert members(world, ALICE_P) == {"alice": "owner", "bob": "viewer", "carol": "editor"}
    assert world.load(User, user_key("alice")).default_project_id == ALICE_P
    again = BootstrapSystem(admin_username="mallory", admin_password="whatever-pw")
    refused(world, SYSTEM, again, "already_bootstrapped")
    refused(world, token("admin"), again, "forbidden")  # only qledger itself sends it


def test_an_unknown_user_or_a_wrong_epoch_is_unauthenticated(world):
    refused(world, token("nobody"), chip(1), "unauthenticated", project=ALICE_P)
    refused(world, token("alice", 1), chip(1), "unauthenticated")  # epoch from the future
    refused(world, token("alice", -1), chip(1), "unauthenticated")
    accepted(world, token("alice", 0), chip(1))


def _logout(store):
    accepted(store, token("alice"), Logout())


def _change_password(store):
    change = ChangePassword(current_password=PW["alice"], new_password="alice-password-1")
    accepted(store, token("alice"), change)


def _reset_password(store):
    accepted(store, token("admin"), ResetPassword(username="alice", new_password="reset-by-admin"))


@pytest.mark.parametrize(
    "revoke", [_logout, _change_password, _reset_password], ids=["logout", "change", "reset"]
)
def test_tokens_issued_before_a_revocation_stop_working_and_new_ones_work(world, revoke):
    accepted(world, token("alice", 0), chip(1))
    revoke(world)
    assert epoch(world, "alice") == 1
    refused(world, token("alice", 0), chip(2), "unauthenticated")
    refused(world, token("alice", 0), Logout(), "unauthenticated")
    accepted(world, token("alice", 1), chip(2))


def test_disabling_voids_tokens_and_re_enabling_does_not_revive_them(world):
    accepted(world, token("admin"), UpdateUser(username="alice", disabled=True))
    refused(world, token("alice", 0), chip(1), "unauthenticated")
    # A token with the new epoch can't be used either while the account is disabled.
    refused(world, token("alice", 1), chip(1), "unauthenticated")
    accepted(world, token("admin"), UpdateUser(username="alice", disabled=False))
    refused(world, token("alice", 0), chip(1), "unauthenticated")
    accepted(world, token("alice", 1), chip(1))
    # Re-enabling an enabled account changes nothing about tokens.
    accepted(world, token("admin"), UpdateUser(username="alice", disabled=False))
    accepted(world, token("alice", 1), chip(2))


def test_a_deleted_user_is_unauthenticated_with_any_epoch(world):
    accepted(world, token("admin"), DeleteUser(username="dave"))
    for e in (0, 1, 2):
        refused(world, token("dave", e), chip(1), "unauthenticated")


# --- Project roles -----------------------------------------------------------------


def test_writing_into_a_project_needs_the_editor_role(world):
    refused(world, token("bob"), chip(1), "forbidden", project=ALICE_P)  # viewer
    accepted(world, token("carol"), chip(1), project=ALICE_P)  # editor
    accepted(world, token("alice"), chip(2), project=ALICE_P)  # owner
    accepted(world, token("admin"), chip(3), project=ALICE_P)  # admin, no member
    accepted(world, token("admin"), chip(3), project=BOB_P)


def test_managing_members_needs_the_owner_role(world):
    refused(world, token("carol"), AddMember(username="dave"), "forbidden", project=ALICE_P)
    refused(world, token("bob"), RemoveMember(username="carol"), "forbidden", project=ALICE_P)
    accepted(world, token("admin"), AddMember(username="dave"), project=ALICE_P)
    assert members(world, ALICE_P)["dave"] == "viewer"


def test_other_projects_are_not_found_whether_they_exist_or_not(world):
    # dave is a member of his own project only: alice's looks exactly like a missing one.
    existing = refused(world, token("dave"), chip(1), "project_not_found", project=ALICE_P)
    missing = refused(world, token("dave"), chip(1), "project_not_found", project=NO_SUCH_PROJECT)
    assert existing.message == f"project '{ALICE_P}' not found"
    assert missing.message == f"project '{NO_SUCH_PROJECT}' not found"
    # Also for commands no role of the caller would allow, and for viewers' neighbours.
    refused(world, token("dave"), AddMember(username="dave"), "project_not_found", project=ALICE_P)
    refused(world, token("bob"), chip(1), "project_not_found", project="default")


def test_a_command_without_a_project_lands_in_the_callers_default_project(world):
    reply = accepted(world, token("alice"), chip(1))
    (event,) = events_of(world, reply)
    assert event["type"] == "chip.ChipRegistered"
    assert (event["project_id"], event["actor"]) == (ALICE_P, "alice")
    reply = accepted(world, token("carol"), chip(2), project=ALICE_P)
    assert [(e["project_id"], e["actor"]) for e in events_of(world, reply)] == [(ALICE_P, "carol")]
    # Account events belong to no project.
    reply = accepted(world, token("bob"), Logout())
    assert [(e["project_id"], e["actor"]) for e in events_of(world, reply)] == [
        (IDENTITY_PROJECT, "bob")
    ]


# --- API keys ------------------------------------------------------------------------


def test_an_api_key_acts_in_its_project_within_its_scope(world):
    key_id, secret = new_key(world, "alice", ALICE_P, ["calibration:write"])
    reply = accepted(world, api_key(key_id, secret), chip(1), project=ALICE_P)
    (event,) = events_of(world, reply)
    assert (event["project_id"], event["actor"]) == (ALICE_P, f"apikey:{key_id}")
    # Without X-Project-Id a key acts in its own project.
    reply = accepted(world, api_key(key_id, secret), chip(2))
    assert [e["project_id"] for e in events_of(world, reply)] == [ALICE_P]
    # Only the hash of the secret is stored.
    created = next(e for e in envelopes(world) if e["type"] == "identity.ApiKeyCreated")
    assert created["payload"]["secret_sha256"] == secret_sha256(secret)
    assert created["payload"]["owner_username"] == "alice"
    assert all(secret.encode() not in row.state for row in world.notifications_after(0, 10_000))


def test_a_wrong_secret_or_an_unknown_key_is_unauthenticated(world):
    key_id, secret = new_key(world, "alice", ALICE_P, ["calibration:write"])
    refused(world, api_key(key_id, secret + "x"), chip(1), "unauthenticated", project=ALICE_P)
    other_id, _, _ = new_api_key()
    refused(world, api_key(other_id, secret), chip(1), "unauthenticated", project=ALICE_P)
    # A key credential carrying a username does not turn into that user.
    forged = Credential(kind="api_key", username="alice", key_id=other_id, key_secret_sha256="0")
    refused(world, forged, chip(1), "unauthenticated", project=ALICE_P)


def test_a_revoked_key_is_unauthenticated(world):
    key_id, secret = new_key(world, "alice", ALICE_P, ["calibration:write"])
    accepted(world, api_key(key_id, secret), chip(1))
    accepted(world, token("alice"), RevokeApiKey(key_id=key_id), project=ALICE_P)
    refused(world, api_key(key_id, secret), chip(2), "unauthenticated")
    refused(world, token("alice"), RevokeApiKey(key_id=key_id), "api_key_revoked", project=ALICE_P)


def test_an_expired_key_is_unauthenticated(world):
    now = datetime.now(UTC)
    key_id, secret = new_key(
        world, "alice", ALICE_P, ["calibration:write"], expires_at=now + timedelta(hours=1), at=now
    )
    key = api_key(key_id, secret)
    accepted(world, key, chip(1), at=now + timedelta(minutes=59))
    refused(world, key, chip(2), "unauthenticated", at=now + timedelta(hours=1))
    refused(world, key, chip(2), "unauthenticated", at=now + timedelta(days=1))
    # Minting a key that is already expired is refused outright.
    command = CreateApiKey(
        key_id=new_api_key()[0],
        name="late",
        scopes=["read"],
        secret_sha256=secret_sha256("x"),
        expires_at=now - timedelta(seconds=1),
    )
    refused(world, token("alice"), command, "invalid_expiry", project=ALICE_P, at=now)


def test_a_key_without_the_scope_or_in_another_project_is_forbidden(world):
    read_id, read_secret = new_key(world, "alice", ALICE_P, ["read"])
    refused(world, api_key(read_id, read_secret), chip(1), "forbidden", project=ALICE_P)
    # alice may write into bob's project, but her key for her own project may not.
    accepted(world, token("bob"), AddMember(username="alice", role="editor"), project=BOB_P)
    accepted(world, token("alice"), chip(1), project=BOB_P)
    key_id, secret = new_key(world, "alice", ALICE_P, ["calibration:write"])
    for project in (BOB_P, NO_SUCH_PROJECT, "default"):
        refused(world, api_key(key_id, secret), chip(2), "forbidden", project=project)


def test_a_key_can_not_send_identity_commands(world):
    key_id, secret = new_key(world, "alice", ALICE_P, ["calibration:write", "read"])
    key = api_key(key_id, secret)
    commands = [
        CreateProject(project_id="abcdef0123", name="by a key"),
        Logout(),
        ChangePassword(current_password=PW["alice"], new_password="stolen-key-pw"),
        RegisterUser(username="mallory", password="mallory-pw-1"),
        AddMember(username="dave", role="owner"),
        RevokeApiKey(key_id=key_id),
        CreateApiKey(
            key_id=new_api_key()[0], name="child", scopes=["read"], secret_sha256="0" * 64
        ),
    ]
    for command in commands:
        refused(world, key, command, "forbidden", project=ALICE_P)
    accepted(world, key, chip(1))  # the key itself is unharmed


def test_a_key_never_exceeds_its_creators_role(world):
    # bob is a viewer of alice's project: a read key yes, a write key no.
    new_key(world, "bob", ALICE_P, ["read"])
    key_id, _, _ = new_api_key()
    for scopes in (["calibration:write"], ["read", "twin:write"]):
        command = CreateApiKey(
            key_id=key_id, name="too strong", scopes=scopes, secret_sha256="0" * 64
        )
        refused(world, token("bob"), command, "forbidden", project=ALICE_P)
    # dave is no member: the project does not exist for him.
    command = CreateApiKey(key_id=key_id, name="x", scopes=["read"], secret_sha256="0" * 64)
    refused(world, token("dave"), command, "project_not_found", project=ALICE_P)


def test_a_key_follows_its_creators_membership_and_account(world):
    key_id, secret = new_key(world, "carol", ALICE_P, ["calibration:write"])
    key = api_key(key_id, secret)
    accepted(world, key, chip(1))
    # Demoted to viewer: the write key is now beyond carol's role.
    accepted(
        world, token("alice"), ChangeMemberRole(username="carol", role="viewer"), project=ALICE_P
    )
    refused(world, key, chip(2), "forbidden")
    accepted(
        world, token("alice"), ChangeMemberRole(username="carol", role="editor"), project=ALICE_P
    )
    accepted(world, key, chip(2))
    # Removed from the project: the key is as good as the project being gone.
    accepted(world, token("alice"), RemoveMember(username="carol"), project=ALICE_P)
    refused(world, key, chip(3), "project_not_found")
    accepted(world, token("alice"), AddMember(username="carol", role="editor"), project=ALICE_P)
    accepted(world, key, chip(3))
    # Creator disabled: the key stops authenticating at all.
    accepted(world, token("admin"), UpdateUser(username="carol", disabled=True))
    refused(world, key, chip(4), "unauthenticated")
    # A key does not depend on its creator's tokens: logout of carol leaves it alone.
    accepted(world, token("admin"), UpdateUser(username="carol", disabled=False))
    accepted(world, token("carol", 1), Logout())
    accepted(world, key, chip(4))


def test_a_key_may_be_revoked_by_its_creator_or_an_owner_only(world):
    key_id, _secret = new_key(world, "carol", ALICE_P, ["read"])
    refused(world, token("bob"), RevokeApiKey(key_id=key_id), "forbidden", project=ALICE_P)
    refused(world, token("dave"), RevokeApiKey(key_id=key_id), "project_not_found", project=ALICE_P)
    refused(world, token("bob"), RevokeApiKey(key_id=key_id), "api_key_not_found", project=BOB_P)
    accepted(world, token("alice"), RevokeApiKey(key_id=key_id), project=ALICE_P)


def test_an_admin_can_not_mint_a_key_in_a_project_they_are_no_member_of(world):
    """A key acts with its creator's membership, never with admin rights: an admin who is
    not a member would get a key refused on every use, so it is not minted at all."""
    key_id, secret, _full = new_api_key()
    command = CreateApiKey(
        key_id=key_id,
        name="script",
        scopes=["calibration:write"],
        secret_sha256=secret_sha256(secret),
    )
    refused(world, token("admin"), command, "forbidden", project=ALICE_P)


def test_a_deleted_project_is_gone_for_members_keys_and_the_default(world):
    key_id, secret = new_key(world, "carol", ALICE_P, ["calibration:write"])
    refused(world, token("carol"), DeleteProject(), "forbidden", project=ALICE_P)
    accepted(world, token("alice"), DeleteProject(), project=ALICE_P)
    assert world.load(User, user_key("alice")).default_project_id is None
    refused(world, token("alice"), chip(1), "no_project")
    refused(world, token("alice"), chip(1), "project_not_found", project=ALICE_P)
    refused(world, token("carol"), chip(1), "project_not_found", project=ALICE_P)
    refused(world, api_key(key_id, secret), chip(1), "project_not_found")
    accepted(world, token("admin"), chip(1), project=BOB_P)  # others are untouched
    refused(world, token("admin"), chip(1), "project_not_found", project=ALICE_P)


def test_a_users_project_can_not_block_a_future_registration(world):
    # Default project ids are outside the ids a client may choose for a new project.
    with pytest.raises(ValidationError):
        CreateProject(project_id=default_project_of("erin"), name="squatted")
    accepted(world, token("admin"), RegisterUser(username="erin", password=PW["erin"]))


# --- Ownership and admin rules -------------------------------------------------------


def test_the_owner_can_not_be_removed_or_demoted(world):
    for command in (
        RemoveMember(username="alice"),
        ChangeMemberRole(username="alice", role="editor"),
        ChangeMemberRole(username="alice", role="viewer"),
    ):
        refused(world, token("alice"), command, "last_owner", project=ALICE_P)
        refused(world, token("admin"), command, "last_owner", project=ALICE_P)
    refused(
        world, token("alice"), TransferOwnership(username="alice"), "already_owner", project=ALICE_P
    )
    assert members(world, ALICE_P)["alice"] == "owner"


def test_after_a_transfer_the_old_owner_can_be_removed(world):
    accepted(
        world, token("alice"), TransferOwnership(username="bob", role="editor"), project=ALICE_P
    )
    project = world.load(Project, project_key(ALICE_P))
    assert project.owner_username == "bob"
    assert members(world, ALICE_P) == {"alice": "editor", "bob": "owner", "carol": "editor"}
    refused(world, token("alice"), AddMember(username="dave"), "forbidden", project=ALICE_P)
    refused(world, token("bob"), RemoveMember(username="bob"), "last_owner", project=ALICE_P)
    accepted(world, token("bob"), RemoveMember(username="alice"), project=ALICE_P)
    refused(world, token("alice"), chip(1), "project_not_found", project=ALICE_P)


def test_the_last_admin_can_not_be_deleted_demoted_or_disabled(world):
    for command in (
        DeleteUser(username="admin"),
        UpdateUser(username="admin", system_role="user"),
        UpdateUser(username="admin", disabled=True),
    ):
        refused(world, token("admin"), command, "last_admin")
    assert world.load(User, user_key("admin")).system_role == "admin"


def test_with_two_admins_one_can_be_demoted_but_not_the_other(world):
    register(world, "erin", system_role="admin")
    accepted(world, token("erin"), UpdateUser(username="admin", system_role="user"))
    refused(world, token("admin"), UpdateUser(username="dave", disabled=True), "forbidden")
    refused(world, token("erin"), UpdateUser(username="erin", system_role="user"), "last_admin")
    refused(world, token("erin"), DeleteUser(username="erin"), "last_admin")
    # Promoting someone again makes room; a disabled admin does not count.
    accepted(world, token("erin"), UpdateUser(username="dave", system_role="admin"))
    accepted(world, token("erin"), UpdateUser(username="dave", disabled=True))
    refused(world, token("erin"), DeleteUser(username="erin"), "last_admin")
    accepted(world, token("erin"), UpdateUser(username="dave", disabled=False))
    accepted(world, token("dave", 1), DeleteUser(username="erin"))


def test_only_an_admin_may_register_users(world):
    command = RegisterUser(username="mallory", password="mallory-pw-1")
    refused(world, token("alice"), command, "forbidden")  # owner of a project, not admin
    refused(world, token("alice"), command, "forbidden", project=ALICE_P)


def test_a_taken_username_is_refused_as_username_taken(world):
    # The bootstrap admin has the project "default", not default_project_of("admin").
    refused(
        world, token("admin"), RegisterUser(username="admin", password="x" * 8), "username_taken"
    )
    refused(
        world, token("admin"), RegisterUser(username="ADMIN ", password="x" * 8), "username_taken"
    )


def test_re_registering_a_user_is_username_taken(world):
    refused(
        world, token("admin"), RegisterUser(username="alice", password="x" * 8), "username_taken"
    )


def test_a_deleted_users_name_stays_taken(world):
    accepted(world, token("admin"), DeleteUser(username="dave"))
    refused(
        world, token("admin"), RegisterUser(username="dave", password="x" * 8), "username_taken"
    )


def test_a_deleted_users_name_can_not_be_registered_again(world):
    """The name is not reused, and the answer says why."""
    accepted(world, token("admin"), DeleteUser(username="dave"))
    before = world.max_position()
    reply = send(world, token("admin"), RegisterUser(username="dave", password="x" * 8))
    assert reply.status == "rejected" and world.max_position() == before
    assert world.load(User, user_key("dave")).deleted


def test_a_wrong_current_password_changes_nothing(world):
    change = ChangePassword(current_password="not-alices-pw", new_password="alice-password-1")
    refused(world, token("alice"), change, "wrong_password")
    user = world.load(User, user_key("alice"))
    assert PASSWORDS.verify(user.password_hash, PW["alice"])
    assert not PASSWORDS.verify(user.password_hash, "alice-password-1")
    assert user.token_epoch == 0
    accepted(world, token("alice", 0), chip(1))  # the token still works
    # The right one does change it.
    right = ChangePassword(current_password=PW["alice"], new_password="alice-password-1")
    accepted(world, token("alice"), right)
    user = world.load(User, user_key("alice"))
    assert PASSWORDS.verify(user.password_hash, "alice-password-1")
    assert not PASSWORDS.verify(user.password_hash, PW["alice"])


# --- Secrets never reach the store ------------------------------------------------------


def test_no_password_is_ever_stored(world):
    first, second, third = "correct horse battery", "staple battery horse", "reset by the admin"
    accepted(world, token("admin"), RegisterUser(username="erin", password=first))
    accepted(world, token("erin"), ChangePassword(current_password=first, new_password=second))
    accepted(world, token("admin"), ResetPassword(username="erin", new_password=third))
    refused(
        world,
        token("erin", 2),
        ChangePassword(current_password="not " + third, new_password="never stored pw"),
        "wrong_password",
    )
    rows = world.notifications_after(0, 10_000)
    for row in rows:
        for secret in (first, second, third, "never stored pw", *PW.values()):
            assert secret.encode() not in row.state, (row.topic, secret)
    hashes = [
        env["payload"]["password_hash"]
        for env in map(envelope, rows)
        if "password_hash" in env["payload"]
    ]
    assert len(hashes) == 1 + 4 + 1 + 2  # admin, alice..dave, erin, two changes
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert PASSWORDS.verify(world.load(User, user_key("erin")).password_hash, third)


def test_the_idempotency_fingerprint_ignores_passwords(world):
    one = ChangePassword(current_password=PW["alice"], new_password="alice-password-1")
    two = ChangePassword(current_password="other current", new_password="alice-password-2")
    assert as_(token("alice"), one).fingerprint == as_(token("alice"), two).fingerprint
    assert "alice-password" not in repr(one)
    register_one = as_(token("admin"), RegisterUser(username="x1", password="aaaaaaaa"))
    register_two = as_(token("admin"), RegisterUser(username="x1", password="bbbbbbbb"))
    assert register_one.fingerprint == register_two.fingerprint


def test_a_repeated_change_password_with_the_same_key_is_not_executed_again(world):
    """What happens: the first ChangePassword voids the token it was sent with, so a retry
    with that token is unauthenticated (authorisation comes before the idempotency replay).
    With a fresh token, the retry - even with another new password, which the fingerprint
    can't see - gets the first reply back and changes nothing."""
    first = ChangePassword(current_password=PW["alice"], new_password="alice-password-1")
    reply = accepted(world, token("alice", 0), first, key="pw-1")
    after = world.max_position()
    retry = ChangePassword(current_password=PW["alice"], new_password="alice-password-2")
    refused(world, token("alice", 0), retry, "unauthenticated", key="pw-1")
    again = send(world, token("alice", 1), retry, key="pw-1")
    assert again == reply
    assert world.max_position() == after
    user = world.load(User, user_key("alice"))
    assert user.token_epoch == 1
    assert PASSWORDS.verify(user.password_hash, "alice-password-1")
    assert not PASSWORDS.verify(user.password_hash, "alice-password-2")
    # The same from a fresh process, without the cached aggregates.
    fresh = EventStore(world.location)
    try:
        assert send(fresh, token("alice", 1), retry, key="pw-1") == reply
        assert fresh.max_position() == after
    finally:
        fresh.close()


@pytest.mark.parametrize("kind", ["logout", "change_password"])
def test_idempotency_keys_of_different_users_do_not_collide(world, kind):
    if kind == "logout":
        alices, bobs = Logout(), Logout()
    else:
        alices = ChangePassword(current_password=PW["alice"], new_password="alice-password-1")
        bobs = ChangePassword(current_password=PW["bob"], new_password="bob-password-1")
    accepted(world, token("alice"), alices, key="shared-key")
    reply = accepted(world, token("bob"), bobs, key="shared-key")
    assert [e["actor"] for e in events_of(world, reply)] == ["bob"]
    assert epoch(world, "bob") == 1  # bob's old tokens are void


# --- Batches -----------------------------------------------------------------------------


def test_unauthorised_commands_in_a_batch_do_not_cost_the_others(world):
    before = world.max_position()
    replies = run(
        world,
        as_(token("alice"), chip(1), project=ALICE_P),
        as_(token("dave"), chip(2), project=ALICE_P),  # no member
        as_(token("bob"), chip(3), project=ALICE_P),  # viewer
        as_(token("carol", 5), chip(4), project=ALICE_P),  # stale token
        as_(token("carol"), chip(5), project=ALICE_P),
        as_(token("nobody"), Logout()),
        as_(token("dave"), chip(6)),  # into his own project
        as_(token("bob"), RegisterUser(username="mallory", password="mallory-pw")),
    )
    assert [(r.status, getattr(r, "code", None)) for r in replies] == [
        ("accepted", None),
        ("rejected", "project_not_found"),
        ("rejected", "forbidden"),
        ("rejected", "unauthenticated"),
        ("accepted", None),
        ("rejected", "unauthenticated"),
        ("accepted", None),
        ("rejected", "forbidden"),
    ]
    stored = envelopes(world)[before:]
    assert [(e["project_id"], e["actor"], e["payload"]["chip_id"]) for e in stored] == [
        (ALICE_P, "alice", "c1"),
        (ALICE_P, "carol", "c5"),
        (default_project_of("dave"), "dave", "c6"),
    ]


@pytest.mark.parametrize("who", ["same_caller_default_and_explicit", "two_members"])
def test_a_repeated_key_in_one_batch_does_not_sink_the_batch(world, who):
    first = as_(token("carol"), chip(1), project=ALICE_P, key="k-1")
    if who == "same_caller_default_and_explicit":
        first = as_(token("alice"), chip(1), key="k-1")
        second = as_(token("alice"), chip(1), project=ALICE_P, key="k-1")
    else:
        second = as_(token("alice"), chip(1), project=ALICE_P, key="k-1")
    unrelated = as_(token("bob"), chip(9))
    replies = run(world, unrelated, first, second)
    if who == "same_caller_default_and_explicit":
        # One caller, one project, one key: the same command, answered once.
        assert [r.status for r in replies] == ["accepted", "accepted", "accepted"]
        assert replies[1] == replies[2]
    else:
        # Keys belong to their sender: Alice's k-1 is not Carol's; her chip c1 is a new
        # command, refused on its own merits, and the batch is unharmed.
        assert [r.status for r in replies] == ["accepted", "accepted", "rejected"]
        assert replies[2].code == "chip_exists"


# --- Property: membership operations keep the project consistent ------------------------

POOL = ["alice", "bob", "carol", "dave"]
ROLES = ["viewer", "editor", "owner"]

operations = st.lists(
    st.tuples(
        # Who sends it ("owner": the current one); mostly someone allowed to.
        st.sampled_from(["admin", "owner", "admin", "owner", *POOL]),
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from(POOL), st.sampled_from(ROLES)),
            st.tuples(st.just("change"), st.sampled_from(POOL), st.sampled_from(ROLES)),
            st.tuples(st.just("remove"), st.sampled_from(POOL), st.just("")),
            st.tuples(st.just("transfer"), st.sampled_from(POOL), st.sampled_from(ROLES)),
        ),
    ),
    max_size=12,
)


def _expected(model: dict[str, str], owner: str, actor: str, op: tuple[str, str, str]):
    """(code or None, new members, new owner) as a simple model of the rules."""
    kind, who, role = op
    if actor != "admin":
        if actor not in model:
            return "project_not_found", model, owner
        if model[actor] != "owner":
            return "forbidden", model, owner
    new = dict(model)
    if kind == "add":
        if who in model:
            return "already_member", model, owner
        new[who] = role
    elif kind == "change":
        if who not in model:
            return "member_not_found", model, owner
        if who == owner and role != "owner":
            return "last_owner", model, owner
        new[who] = role
    elif kind == "remove":
        if who not in model:
            return "member_not_found", model, owner
        if who == owner:
            return "last_owner", model, owner
        del new[who]
    else:
        if who == owner:
            return "already_owner", model, owner
        new[who], new[owner], owner = "owner", role, who
    return None, new, owner


def _command(op: tuple[str, str, str]):
    kind, who, role = op
    if kind == "add":
        return AddMember(username=who, role=role)
    if kind == "change":
        return ChangeMemberRole(username=who, role=role)
    if kind == "remove":
        return RemoveMember(username=who)
    return TransferOwnership(username=who, role=role)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_membership_operations_match_a_simple_model(ops):
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(store_location(None, Path(tmp)))
        try:
            build_world(store)
            model = members(store, ALICE_P)
            owner = "alice"
            for actor, op in ops:
                sender = owner if actor == "owner" else actor
                code, model, owner = _expected(model, owner, sender, op)
                event(f"{op[0]}: {code or 'accepted'}")
                before = store.max_position()
                reply = send(store, token(sender), _command(op), project=ALICE_P)
                if code is None:
                    assert reply.status == "accepted", (op, reply)
                else:
                    assert (reply.status, reply.code) == ("rejected", code), (op, reply)
                    assert store.max_position() == before
                project = store.load(Project, project_key(ALICE_P))
                assert project.members == model
                assert project.owner_username == owner
                assert project.members.get(project.owner_username) == "owner"
            # The same state from the stored events alone (a fresh process).
            fresh = EventStore(store.location)
            try:
                replayed = fresh.load(Project, project_key(ALICE_P))
                assert (replayed.members, replayed.owner_username) == (model, owner)
                stored = [orjson.loads(r.state) for r in fresh.notifications_after(0, 10_000)]
                assert all(e["actor"] != "tester" for e in stored)
            finally:
                fresh.close()
        finally:
            store.close()


def test_names_that_read_as_qledger_itself_are_reserved(world):
    # Events record the actor by name: "system" must only ever mean qledger itself.
    for name in ("system", "SYSTEM", "root"):
        refused(world, token("admin"), RegisterUser(username=name, password="x" * 8), "username_reserved")  # fmt: skip
