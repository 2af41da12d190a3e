"""The event store contract: the same assertions on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from eventsourcing.persistence import JSONTranscoder, StoredEvent

from adapters.eventstore import EnvelopeMapper, EventStore, envelope, store_location
from commands.models import (
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.ports import ConcurrencyConflict
from commands.processor import process_batch
from domain.chip import Chip, ChipRegistered, chip_key
from domain.execution import TaskResultRecorded
from domain.parameters import series_key
from tests.conftest import ctx, sub

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_round_trip_keeps_every_field_and_the_envelope(store: EventStore):
    chip = Chip.register(ctx(), chip_id="c1", size=4, topology_id="square-lattice", existing=None)
    (event,) = chip.collect_events()
    (position,) = store.commit([event])

    loaded = store.aggregate_events(chip.id)
    assert loaded == [event]
    assert isinstance(loaded[0], ChipRegistered)
    (note,) = store.notifications_after(position - 1, 10)
    env = envelope(note)
    assert env["position"] == position
    assert env["type"] == "chip.ChipRegistered" and note.topic == "chip.ChipRegistered"
    assert env["event_id"] == str(event.event_id)
    assert env["aggregate_id"] == str(chip.id) and env["aggregate_version"] == 1
    assert env["project_id"] == "default" and env["actor"] == "tester"
    assert set(env) >= {
        "schema_version",
        "correlation_id",
        "causation_id",
        "occurred_at",
        "recorded_at",
    }
    assert env["payload"]["qubits"] == ["0", "1", "2", "3"]


def test_taken_aggregate_version_is_a_conflict_and_appends_nothing(store: EventStore):
    c = ctx()
    first = Chip.register(c, chip_id="c1", size=4, topology_id="square-lattice", existing=None)
    second = Chip.register(c, chip_id="c1", size=9, topology_id="square-lattice", existing=None)
    store.commit(first.collect_events())
    before = store.max_position()
    with pytest.raises(ConcurrencyConflict):
        store.commit(second.collect_events())
    assert store.max_position() == before


def test_positions_increase_in_commit_order_and_position_of_finds_them(store: EventStore):
    chips = [
        Chip.register(ctx(), chip_id=f"c{i}", size=1, topology_id="square-lattice", existing=None)
        for i in range(5)
    ]
    positions = store.commit([e for c in chips for e in c.collect_events()])
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert [store.position_of(c.id, 1) for c in chips] == positions
    assert [n.id for n in store.notifications_after(0, 100)] == positions
    assert [n.id for n in store.notifications_after(positions[1], 2)] == positions[2:4]


def _task(i: int, qid: str = "0") -> TaskResultIn:
    return TaskResultIn(
        task_id=f"t{i}",
        task_name="CheckT1",
        qid=qid,
        output_parameters={"t1": OutputParameter(value=float(i), unit="us")},
        start_at=T0 + timedelta(seconds=i),
        end_at=T0 + timedelta(seconds=i, milliseconds=500),
    )


def test_concurrent_writers_allocate_versions_without_gaps_or_repeats(store_url, tmp_path):
    """Two processes' worth of writers (separate stores, separate caches) on one series."""
    location = store_location(store_url, tmp_path)
    setup = EventStore(location)
    process_batch([sub(RegisterChip(chip_id="c1", size=4))], setup)
    process_batch([sub(StartExecution(execution_id="e1", chip_id="c1"))], setup)
    writers = [EventStore(location) for _ in range(2)]
    replies: list = []
    lock = threading.Lock()

    def write(w: EventStore, offset: int) -> None:
        for i in range(offset, 40, 2):
            r = process_batch([sub(RecordTaskResult(execution_id="e1", task=_task(i)))], w)
            with lock:
                replies.extend(r)

    threads = [threading.Thread(target=write, args=(w, k)) for k, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    accepted = [r for r in replies if r.status == "accepted"]
    # Stale measurements may be refused (a later one won the race); nothing else may fail.
    assert {r.code for r in replies if r.status == "rejected"} <= {"stale_measurement"}
    series = setup.aggregate_events(series_key("default", "c1", "0", "t1"))
    assert [e.version for e in series] == list(range(1, len(series) + 1))
    assert len(series) == len(accepted) > 0
    for s in (setup, *writers):
        s.close()


@pytest.mark.postgres
async def test_processes_opening_a_fresh_postgres_store_together_all_get_it(pg_schema, tmp_path):
    """Several qledger processes start at once and each creates the store's tables; the
    PostgreSQL catalog answers some of them "tuple concurrently updated"."""
    import asyncio

    from adapters.bootstrap import _open_store
    from config.settings import Settings

    settings = Settings(eventstore_url=pg_schema, data_dir=tmp_path)
    stores = await asyncio.gather(*(_open_store(settings) for _ in range(6)))
    assert all(s.max_position() == 0 for s in stores)
    for s in stores:
        s.close()


def test_a_task_result_stored_before_figures_existed_still_loads(store: EventStore):
    """Schema evolution: a version-1 TaskResultRecorded (no figure fields) is upcast on
    load, so executions recorded before figures keep working."""
    process_batch([sub(RegisterChip(chip_id="c1", size=4))], store)
    process_batch([sub(StartExecution(execution_id="e1", chip_id="c1", started_at=T0))], store)
    task = TaskResultIn(
        task_id="t1", task_name="CheckT1", qid="0", start_at=T0, end_at=T0 + timedelta(minutes=1)
    )
    [reply] = process_batch([sub(RecordTaskResult(execution_id="e1", task=task))], store)
    assert reply.status == "accepted"
    (note,) = store.notifications_after(reply.position - 1, 1)
    assert envelope(note)["schema_version"] == 2
    # The row as the previous release wrote it.
    old = envelope(note)
    for key in ("figure_path", "json_figure_path"):
        del old["payload"][key]
    old["schema_version"] = 1
    row = StoredEvent(
        originator_id=uuid.UUID(old["aggregate_id"]),
        originator_version=old["aggregate_version"],
        topic=note.topic,
        state=orjson.dumps({k: v for k, v in old.items() if k != "position"}),
    )
    event = EnvelopeMapper(transcoder=JSONTranscoder()).to_domain_event(row)
    assert isinstance(event, TaskResultRecorded)
    assert (event.task_id, event.figure_path, event.json_figure_path) == ("t1", (), ())


def _counting_reads(store: EventStore) -> list[uuid.UUID]:
    reads: list[uuid.UUID] = []
    get = store.app.repository.get

    def counted(aggregate_id, **kwargs):
        reads.append(aggregate_id)
        return get(aggregate_id, **kwargs)

    store.app.repository.get = counted  # type: ignore[method-assign]
    return reads


def test_an_aggregate_not_found_is_remembered_until_a_batch_creates_it(store: EventStore):
    # Hot paths look up aggregates that mostly do not exist (a backend nobody sent a
    # controller command): the store is asked once, not on every command.
    reads = _counting_reads(store)
    c1 = chip_key("default", "c1")
    start = sub(StartExecution(execution_id="e1", chip_id="c1"))  # needs the chip
    assert [process_batch([start], store)[0].status for _ in range(2)] == ["rejected"] * 2
    assert reads.count(c1) == 1
    # A batch that creates it replaces what was remembered.
    first = process_batch([sub(RegisterChip(chip_id="c1", size=4))], store)[0]
    again = process_batch([sub(RegisterChip(chip_id="c1", size=4))], store)[0]
    assert (first.status, again.status, again.code) == ("accepted", "rejected", "chip_exists")
    assert reads.count(c1) == 1


def test_two_nodes_never_both_create_an_aggregate_one_remembered_absent(
    store: EventStore,
):
    other = EventStore(store.location)  # a second command node on the same store
    try:
        # This node looks c1 up and remembers it absent; then the other node creates it.
        start = sub(StartExecution(execution_id="e1", chip_id="c1"))  # needs the chip
        assert process_batch([start], store)[0].status == "rejected"
        assert process_batch([sub(RegisterChip(chip_id="c1", size=4))], other)[0].status == (
            "accepted"
        )
        # Creating it here conflicts in the store; the batch is retried with what the
        # store holds (the remembered absence forgotten) and refused as a duplicate.
        reply = process_batch([sub(RegisterChip(chip_id="c1", size=9))], store)[0]
        assert (reply.status, reply.code) == ("rejected", "chip_exists")
        assert len(store.load(Chip, chip_key("default", "c1")).qubits) == 4
    finally:
        other.close()
