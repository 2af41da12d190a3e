"""Two command nodes on one store (issue 13, item 9), on SQLite and on PostgreSQL.

Each node keeps its own aggregate cache. Aggregates a batch only reads (the caller's User,
ApiKey, Project) are never checked at commit, so a node must notice what the other one
changed before it decides a batch (EventStore.refresh_cache)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import psycopg
import pytest

import adapters.eventstore as eventstore
from adapters.eventstore import EventStore, store_location
from adapters.security.apikeys import new_api_key, secret_sha256
from adapters.security.passwords import Passwords
from commands.identity import (
    AddMember,
    BootstrapSystem,
    CreateApiKey,
    Logout,
    RegisterUser,
    RemoveMember,
    RevokeApiKey,
)
from commands.models import (
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.ports import ConcurrencyConflict
from commands.processor import Submission, process_batch
from domain.access import SYSTEM, Credential
from domain.chip import Chip, chip_key
from domain.identity import default_project_of
from tests.conftest import ctx, sub

PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
ALICE_P = default_project_of("alice")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def nodes(store_url: str | None, tmp_path: Path) -> Iterator[tuple[EventStore, EventStore]]:
    """Node A with admin, alice and bob (a viewer in alice's project); node B, same store."""
    location = store_location(store_url, tmp_path)
    a = EventStore(location)
    bootstrap = BootstrapSystem(admin_username="admin", admin_password="admin-password-0")
    send(a, SYSTEM, bootstrap)
    for name in ("alice", "bob"):
        send(a, token("admin"), RegisterUser(username=name, password=f"{name}-password-0"))
    send(a, token("alice"), AddMember(username="bob", role="viewer"), project=ALICE_P)
    b = EventStore(location)
    yield a, b
    a.close()
    b.close()


def token(username: str, epoch: int = 0) -> Credential:
    return Credential(kind="token", username=username, token_epoch=epoch)


def send(node: EventStore, credential: Credential, command, code: str = "", **kw) -> None:
    """The command on `node` is accepted, or rejected with `code`."""
    submission = Submission(command, ctx(), credential=credential, **kw)
    (reply,) = process_batch([submission], node, PASSWORDS)
    assert (reply.status, getattr(reply, "code", "")) == (
        ("rejected", code) if code else ("accepted", "")
    ), reply


def test_a_logout_on_one_node_voids_the_token_on_the_other(nodes):
    a, b = nodes
    send(b, token("alice"), RegisterChip(chip_id="c1", size=2))  # B now caches alice
    send(a, token("alice"), Logout())
    send(b, token("alice"), RegisterChip(chip_id="c2", size=2), "unauthenticated")
    send(b, token("alice", 1), RegisterChip(chip_id="c2", size=2))


def test_a_logout_committed_during_the_other_nodes_batch_is_still_seen(nodes, monkeypatch):
    """B's own commit must not vouch for rows another node committed before it."""
    a, b = nodes
    send(b, token("alice"), RegisterChip(chip_id="c1", size=2))  # B now caches alice
    commit = b.commit

    def commit_after_a_logout(events):
        monkeypatch.setattr(b, "commit", commit)
        send(a, token("alice"), Logout())  # after B's refresh, before B's commit
        return commit(events)

    monkeypatch.setattr(b, "commit", commit_after_a_logout)
    send(b, token("bob"), RegisterChip(chip_id="c2", size=2))
    send(b, token("alice"), RegisterChip(chip_id="c3", size=2), "unauthenticated")


def test_a_key_revoked_on_one_node_stops_working_on_the_other(nodes):
    a, b = nodes
    key_id, secret, _ = new_api_key()
    create = CreateApiKey(
        key_id=key_id,
        name="script",
        scopes=["calibration:write"],
        secret_sha256=secret_sha256(secret),
    )
    send(a, token("alice"), create, project=ALICE_P)
    key = Credential(kind="api_key", key_id=key_id, key_secret_sha256=secret_sha256(secret))
    send(b, key, RegisterChip(chip_id="c1", size=2))  # B now caches the key
    send(a, token("alice"), RevokeApiKey(key_id=key_id), project=ALICE_P)
    send(b, key, RegisterChip(chip_id="c2", size=2), "unauthenticated")


def test_a_member_removed_on_one_node_loses_the_project_on_the_other(nodes):
    a, b = nodes
    read_only = RegisterChip(chip_id="c1", size=2)
    send(b, token("bob"), read_only, "forbidden", project=ALICE_P)  # B caches the project
    send(a, token("alice"), RemoveMember(username="bob"), project=ALICE_P)
    send(b, token("bob"), read_only, "project_not_found", project=ALICE_P)


def _task(i: int) -> RecordTaskResult:
    task = TaskResultIn(
        task_id=f"t{i}",
        task_name="CheckT1",
        qid="0",
        output_parameters={"t1": OutputParameter(value=float(i), unit="us")},
        start_at=T0 + timedelta(seconds=i),
        end_at=T0 + timedelta(seconds=i, milliseconds=500),
    )
    return RecordTaskResult(execution_id="e1", task=task)


def test_what_one_node_wrote_is_decided_on_by_the_other_without_conflicts(nodes, monkeypatch):
    a, b = nodes
    conflicts = []
    commit = b.commit

    def counting_commit(events):
        try:
            return commit(events)
        except ConcurrencyConflict:
            conflicts.append(1)
            raise

    monkeypatch.setattr(b, "commit", counting_commit)
    for command in (
        RegisterChip(chip_id="c1", size=4),
        StartExecution(execution_id="e1", chip_id="c1"),
    ):
        [reply] = process_batch([sub(command)], b)  # B caches the chip and the execution
        assert reply.status == "accepted", reply
    for i in range(0, 10, 2):
        for node, task in ((a, _task(i)), (b, _task(i + 1))):
            [reply] = process_batch([sub(task)], node)
            assert reply.status == "accepted", reply
    assert conflicts == []


def _register(node: EventStore, *chip_ids: str) -> None:
    chips = [
        Chip.register(ctx(), chip_id=c, size=1, topology_id="square-lattice", existing=None)
        for c in chip_ids
    ]
    node.commit([e for c in chips for e in c.collect_events()])


def test_an_absence_remembered_on_one_node_ends_when_the_other_creates_it(nodes):
    a, b = nodes
    assert b.load(Chip, chip_key("default", "c1")) is None  # remembered as absent
    _register(a, "c1")
    b.refresh_cache()
    assert b.load(Chip, chip_key("default", "c1")) is not None


def test_a_node_alone_reads_nothing_back_and_a_flood_empties_the_cache(nodes, monkeypatch):
    a, b = nodes
    # A's own commits follow what it had seen: its next refresh has nothing to read.
    assert a._seen == a.max_position()
    assert a._changes_after(a._seen, 10) == []
    # B last looked before A wrote more than a refresh reads: B starts afresh.
    monkeypatch.setattr(eventstore, "REFRESH_MAX_ROWS", 3)
    b.load(Chip, chip_key("default", "c1"))  # remembered as absent
    _register(a, *(f"c{i}" for i in range(5)))
    b.refresh_cache()
    assert b._cache == {} and b._seen == a.max_position()
    assert b.load(Chip, chip_key("default", "c1")) is not None


@pytest.mark.postgres
def test_postgres_inserts_wait_for_each_other(pg_schema, tmp_path):
    """Reading the log by position is safe only while notification ids are committed in
    order: the recorder must lock the table against other inserts before it draws ids."""
    store = EventStore(store_location(pg_schema, tmp_path))
    recorder = store.app.recorder
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    chip = Chip.register(ctx(), chip_id="c1", size=1, topology_id="square-lattice", existing=None)
    done = threading.Event()
    with psycopg.connect(pg_schema.split("?")[0]) as other:
        other.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")  # what a plain INSERT takes
        writer = threading.Thread(target=lambda: (store.commit(chip.collect_events()), done.set()))
        writer.start()
        time.sleep(0.3)
        assert not done.is_set()  # still waiting for the other inserter
        other.rollback()
    writer.join(5)
    assert done.is_set()
    store.close()
