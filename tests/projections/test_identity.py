"""Users, projects, members and API keys as the read side shows them, and the directory
that authentication reads, fed real events through a real store and read store."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eventstore import EventStore, envelope, store_location
from adapters.readstore import ReadStore
from domain.access import Credential, Unauthenticated, authenticate, project_role
from domain.aggregate import Aggregate
from domain.catalog import EVENT_TYPES
from domain.errors import NotFound
from domain.events import CommandContext
from domain.identity import ApiKey, User, user_key
from domain.projects import Project
from projections.identity import (
    IdentityProjector,
    get_member,
    get_project,
    get_user,
    list_all_projects,
    list_api_keys,
    list_members,
    list_projects_of,
    list_users,
    load_directory,
)
from projections.registry import all_projectors
from tests.conftest import ctx

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """Contexts a minute apart, so created_at orderings are deterministic."""

    def __init__(self) -> None:
        self.minutes = 0

    def __call__(self, actor: str = "tester", project_id: str = "default") -> CommandContext:
        self.minutes += 1
        return dataclasses.replace(
            ctx(project_id, at=T0 + timedelta(minutes=self.minutes)), actor=actor
        )


def register(at: CommandContext, username: str, role: str = "user") -> User:
    return User.register(
        at, username=username, full_name=username.title(), password_hash=f"hash-{username}",
        system_role=role, default_project_id=None, existing=None,
    )  # fmt: skip


def save(store: EventStore, *aggregates: Aggregate) -> None:
    store.commit([e for a in aggregates for e in a.collect_events()])


def envelopes(store: EventStore) -> list[dict]:
    return [envelope(n) for n in store.notifications_after(0, 10_000)]


@pytest.fixture
def store(tmp_path: Path):
    s = EventStore(store_location(None, tmp_path))
    yield s
    s.close()


@pytest.fixture
def read(tmp_path: Path):
    r = ReadStore(tmp_path / "read.duckdb", all_projectors())
    yield r
    r.close()


def test_projector_handles_every_identity_event():
    assert IdentityProjector.handles == {t for t in EVENT_TYPES if t.startswith("identity.")}


def test_users_are_listed_by_username_without_deleted_ones(store, read):
    at = Clock()
    alice, bob, carol, dave = (register(at(), n) for n in ("alice", "bob", "carol", "dave"))
    bob.update(at(), full_name="Robert", disabled=True, system_role="admin")
    bob.assign_default_project(at(), "p1")
    carol.delete(at())
    save(store, alice, bob, carol, dave)
    read.apply(envelopes(store))

    page = list_users(read, skip=1, limit=1)
    assert page == {
        "users": [
            {"username": "bob", "full_name": "Robert", "disabled": True,
             "system_role": "admin", "default_project_id": "p1"},
        ],
        "total": 3,
    }  # fmt: skip
    assert [u["username"] for u in list_users(read, skip=0, limit=10)["users"]] == [
        "alice",
        "bob",
        "dave",
    ]
    assert get_user(read, "bob") == {
        "username": "bob", "full_name": "Robert", "disabled": True, "system_role": "admin",
        "default_project_id": "p1", "created_at": (T0 + timedelta(minutes=2)).isoformat(),
        "updated_at": (T0 + timedelta(minutes=6)).isoformat(),
    }  # fmt: skip
    assert get_user(read, "carol") is None
    assert get_user(read, "nobody") is None

    # The directory keeps deleted accounts: authenticate() refuses them itself.
    directory = load_directory(read)
    assert directory.users["carol"].deleted and directory.users["carol"].token_epoch == 1
    assert directory.users["bob"].token_epoch == 1  # disabling voids tokens
    with pytest.raises(Unauthenticated):
        authenticate(Credential(kind="token", username="carol", token_epoch=1),
                     user=directory.users["carol"], now=T0)  # fmt: skip
    principal = authenticate(
        Credential(kind="token", username="alice"), user=directory.users["alice"], now=T0
    )
    assert principal.username == "alice" and not principal.is_admin


def test_members_after_transfer_and_deleted_projects_and_users_hidden(store, read):
    at = Clock()
    users = [register(at(), n) for n in ("alice", "bob", "carol", "dave")]
    p1 = Project.create(
        at("alice", "p1"), project_id="p1", name="Lab", description="main",
        tags=("qpu", "a"), owner="alice", existing=None,
    )  # fmt: skip
    p1.add_member(at("alice"), username="bob", role="editor")
    p1.add_member(at("alice"), username="carol", role="viewer")
    p1.transfer(at("alice"), to="bob", previous_owner_role="editor")
    p1.update(at("bob"), name="Lab 2", description="moved", tags=("b",), default_role="editor")
    p2 = Project.create(
        at("alice", "p2"), project_id="p2", name="Gone", description="", tags=(),
        owner="alice", existing=None,
    )  # fmt: skip
    p2.delete(at("alice"))
    p3 = Project.create(
        at("carol", "p3"), project_id="p3", name="Side", description="", tags=(),
        owner="carol", existing=None,
    )  # fmt: skip
    p3.transfer(at("carol"), to="dave", previous_owner_role="viewer")  # dave was no member
    p3.change_role(at("dave"), username="carol", role="editor")
    p1.add_member(at("bob"), username="dave", role="viewer")
    p1.remove_member(at("bob"), username="dave")
    save(store, *users, p1, p2, p3)
    read.apply(envelopes(store))

    assert get_project(read, "p1") == {
        "project_id": "p1", "owner_username": "bob", "name": "Lab 2", "description": "moved",
        "tags": ["b"], "default_role": "editor",
        "created_at": (T0 + timedelta(minutes=5)).isoformat(),
        "updated_at": (T0 + timedelta(minutes=9)).isoformat(),
    }  # fmt: skip
    members = list_members(read, "p1")
    assert [(m["username"], m["role"], m["invited_by"]) for m in members["members"]] == [
        ("alice", "editor", "alice"),
        ("bob", "owner", "alice"),
        ("carol", "viewer", "alice"),
    ]
    assert members["total"] == 3
    assert get_member(read, "p1", "carol") == {
        "project_id": "p1", "username": "carol", "full_name": "Carol", "role": "viewer",
        "status": "active", "invited_by": "alice", "last_accessed_at": None,
    }  # fmt: skip
    assert get_member(read, "p1", "dave") is None  # removed
    p3_members = {m["username"]: m for m in list_members(read, "p3")["members"]}
    assert {u: m["role"] for u, m in p3_members.items()} == {"carol": "editor", "dave": "owner"}
    assert p3_members["dave"]["invited_by"] == "carol"  # who transferred it

    assert get_project(read, "p2") is None
    listed = list_all_projects(read, skip=0, limit=10)
    assert listed["total"] == 2
    assert [
        (p["project_id"], p["owner_username"], p["member_count"]) for p in listed["projects"]
    ] == [
        ("p1", "bob", 3),
        ("p3", "dave", 2),
    ]
    assert list_all_projects(read, skip=1, limit=5)["projects"][0]["project_id"] == "p3"
    mine = list_projects_of(read, "alice")
    assert mine["total"] == 1 and mine["projects"][0] == get_project(read, "p1")
    assert [p["project_id"] for p in list_projects_of(read, "carol")["projects"]] == ["p1", "p3"]

    # The directory answers project_role() for the HTTP layer.
    directory = load_directory(read)
    bob = authenticate(
        Credential(kind="token", username="bob"), user=directory.users["bob"], now=T0
    )
    assert project_role(bob, "p1", directory.projects["p1"], need="owner", scope=None) == "owner"
    assert directory.projects["p1"].role_of("alice") == "editor"
    assert directory.projects["p2"].deleted
    with pytest.raises(NotFound):
        project_role(bob, "p2", directory.projects["p2"], need="viewer", scope=None)

    # A deleted account leaves every member list, and the counts.
    carol = User.replay(store.aggregate_events(user_key("carol")))
    assert carol is not None
    carol.delete(at())
    save(store, carol)
    read.apply(envelopes(store))
    assert [m["username"] for m in list_members(read, "p1")["members"]] == ["alice", "bob"]
    assert get_member(read, "p1", "carol") is None
    assert list_all_projects(read, skip=0, limit=10)["projects"][0]["member_count"] == 2


def test_api_keys_are_listed_without_secrets(store, read):
    at = Clock()
    alice, bob = register(at(), "alice"), register(at(), "bob")
    secret = hashlib.sha256(b"s3cret").hexdigest()
    expiry = T0 + timedelta(days=30)
    k1 = ApiKey.create(
        at("alice", "p1"), key_id="k1", name="ci", scopes=("read", "calibration:write"),
        secret_sha256=secret, expires_at=expiry, existing=None,
    )  # fmt: skip
    k2 = ApiKey.create(
        at("bob", "p1"), key_id="k2", name="bot", scopes=("read",),
        secret_sha256=secret, expires_at=None, existing=None,
    )  # fmt: skip
    k3 = ApiKey.create(
        at("alice", "p9"), key_id="k3", name="other", scopes=("read",),
        secret_sha256=secret, expires_at=None, existing=None,
    )  # fmt: skip
    k2.revoke(at("bob"))
    save(store, alice, bob, k1, k2, k3)
    read.apply(envelopes(store))

    listed = list_api_keys(read, "p1", owner=None)
    assert listed == {
        "api_keys": [
            {"key_id": "k1", "name": "ci", "owner_username": "alice",
             "scopes": ["calibration:write", "read"],
             "created_at": (T0 + timedelta(minutes=3)).isoformat(),
             "expires_at": expiry.isoformat(), "revoked": False},
            {"key_id": "k2", "name": "bot", "owner_username": "bob", "scopes": ["read"],
             "created_at": (T0 + timedelta(minutes=4)).isoformat(),
             "expires_at": None, "revoked": True},
        ],
        "total": 2,
    }  # fmt: skip
    assert [k["key_id"] for k in list_api_keys(read, "p1", owner="bob")["api_keys"]] == ["k2"]
    assert list_api_keys(read, "p1", owner="carol") == {"api_keys": [], "total": 0}
    assert secret not in repr(list_api_keys(read, "p9", owner=None))

    directory = load_directory(read)
    credential = Credential(kind="api_key", username="alice", key_id="k1", key_secret_sha256=secret)
    principal = authenticate(
        credential, user=directory.users["alice"], key=directory.keys["k1"], now=T0
    )
    assert principal.key_project == "p1"
    assert principal.key_scopes == {"read", "calibration:write"}
    with pytest.raises(Unauthenticated):  # expired
        authenticate(credential, user=directory.users["alice"], key=directory.keys["k1"],
                     now=expiry)  # fmt: skip
    with pytest.raises(Unauthenticated):  # revoked
        authenticate(dataclasses.replace(credential, username="bob", key_id="k2"),
                     user=directory.users["bob"], key=directory.keys["k2"], now=T0)  # fmt: skip


# -- property: the read model's account state is the aggregate's ------------------
OPS = st.one_of(
    st.tuples(st.just("password")),
    st.tuples(st.just("logout")),
    st.tuples(st.just("disable")),
    st.tuples(st.just("enable")),
    st.tuples(st.just("update"), st.booleans(), st.sampled_from(["user", "admin"])),
    st.tuples(st.just("default_project"), st.sampled_from([None, "p1", "p2"])),
)


def operate(user: User, at: CommandContext, op: tuple) -> None:
    match op:
        case ("password",):
            user.set_password(at, password_hash=f"h{at.received_at}", by_admin=False)
        case ("logout",):
            user.revoke_tokens(at, reason="logout")
        case ("disable" | "enable" as verb,):
            user.update(at, full_name=user.full_name, disabled=verb == "disable",
                        system_role=user.system_role)  # fmt: skip
        case ("update", disabled, role):
            user.update(at, full_name=f"{user.username} {at.received_at.minute}",
                        disabled=disabled, system_role=role)  # fmt: skip
        case ("default_project", project_id):
            user.assign_default_project(at, project_id)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.sampled_from(["ann", "ben"]), OPS), max_size=25),
    data=st.data(),
)
def test_account_state_equals_the_aggregates_after_any_batching(ops, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        store = EventStore(store_location(None, path))
        at = Clock()
        users = {name: register(at(), name) for name in ("ann", "ben")}
        save(store, *users.values())
        for name, op in ops:  # each operation its own command and commit
            operate(users[name], at(), op)
            save(store, users[name])
        envs = envelopes(store)

        expected = {}
        for name in users:
            replayed = User.replay(store.aggregate_events(user_key(name)))
            assert replayed is not None
            expected[name] = (replayed.token_epoch, replayed.disabled, replayed.system_role,
                              replayed.full_name, replayed.default_project_id)  # fmt: skip
        store.close()

        def state(read: ReadStore) -> dict[str, tuple]:
            users = load_directory(read).users
            return {
                n: (u.token_epoch, u.disabled, u.system_role, u.full_name, u.default_project_id)
                for n, u in users.items()
            }

        whole = ReadStore(path / "whole.duckdb", all_projectors())
        whole.apply(envs)
        assert state(whole) == expected
        whole.apply(envs)  # redelivery of the whole batch: nothing changes
        assert state(whole) == expected
        whole.close()

        pieces = ReadStore(path / "pieces.duckdb", all_projectors())
        i = 0
        while i < len(envs):
            size = data.draw(st.integers(1, 6), label="batch size")
            back = data.draw(st.integers(0, 3), label="redelivered")
            pieces.apply(envs[max(0, i - back) : i + size])
            i += size
        assert state(pieces) == expected
        pieces.close()
