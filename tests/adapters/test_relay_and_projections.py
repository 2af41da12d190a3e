"""Relay and projection runner against a real nats-server and real store/DuckDB files."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import nats
import pytest

from adapters.eventstore import EventStore
from adapters.projection_runner import ProjectionRunner
from adapters.readstore import ReadStore
from adapters.relay import Relay, stream_checkpoint
from commands.models import RegisterChip
from commands.processor import process_batch
from projections.chips import list_chips
from projections.registry import all_projectors
from tests.conftest import sub


@pytest.fixture
async def nc(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    # Each test gets an empty stream: the server is shared by the session.
    try:
        await js.delete_stream("QLEDGER_EVENTS")
    except nats.js.errors.NotFoundError:
        pass
    yield nc
    await nc.close()


@pytest.fixture
def js(nc):
    return nc.jetstream()


def register(store: EventStore, *chip_ids: str) -> None:
    replies = process_batch([sub(RegisterChip(chip_id=c, size=4)) for c in chip_ids], store)
    assert all(r.status == "accepted" for r in replies)


async def run_for(coro, seconds: float) -> None:
    task = asyncio.create_task(coro)
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def stream_positions(js) -> list[int]:
    info = await js.stream_info("QLEDGER_EVENTS")
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("QLEDGER_EVENTS", seq=seq)
        assert int(msg.headers["Nats-Msg-Id"]) == json.loads(msg.data)["position"]
        out.append(json.loads(msg.data)["position"])
    return out


async def test_relay_publishes_in_order_and_resumes_without_gaps_or_duplicates(
    nc, js, sqlite_store
):
    register(sqlite_store, "a", "b", "c")
    await run_for(Relay(sqlite_store, nc).run(), 0.5)
    assert await stream_positions(js) == [1, 2, 3]

    # A relay that crashed after publishing but before it could checkpoint anywhere
    # re-sends: the stream's duplicate window drops the copies.
    replay = Relay(sqlite_store, nc)
    await run_for(replay.run(), 0.3)  # subscribes its ack inbox; publishes nothing new
    await replay._publish(sqlite_store.notifications_after(0, 10))
    register(sqlite_store, "d")
    await run_for(Relay(sqlite_store, nc).run(), 0.5)
    assert await stream_positions(js) == [1, 2, 3, 4]
    assert await stream_checkpoint(js) == 4
    msg = await js.get_msg("QLEDGER_EVENTS", seq=4)
    assert msg.subject == "qledger.evt.default.chip.ChipRegistered"


async def test_the_stream_refuses_an_event_whose_predecessor_is_missing(nc, js, sqlite_store):
    register(sqlite_store, "a", "b", "c")
    await run_for(Relay(sqlite_store, nc).run(), 0.5)
    register(sqlite_store, "d", "e")
    # A relay that believes event 4 was stored (say, its connection dropped mid-batch
    # after the write but before the server got it) must not publish 5 past the hole.
    lost = Relay(sqlite_store, nc)
    await lost.start()
    lost.position = 4
    with pytest.raises(RuntimeError, match="refused"):
        await lost._publish(sqlite_store.notifications_after(4, 10))
    assert await stream_positions(js) == [1, 2, 3]
    # Restarted, it resumes from what the stream really holds.
    await run_for(Relay(sqlite_store, nc).run(), 0.5)
    assert await stream_positions(js) == [1, 2, 3, 4, 5]


async def test_projection_runner_catches_up_follows_the_stream_and_serves_min_position(
    nc, js, sqlite_store, tmp_path: Path
):
    register(sqlite_store, "a")
    read = ReadStore(tmp_path / "read.duckdb", all_projectors())
    durable = f"test-{uuid.uuid4().hex[:8]}"
    runner = ProjectionRunner(read, sqlite_store, js, durable=durable)
    relay = Relay(sqlite_store, nc)
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(relay.run())]
    try:
        assert await runner.wait_for(1, timeout=5)
        register(sqlite_store, "b", "c")
        relay.notify()
        assert await runner.wait_for(3, timeout=5)
        assert [c["chip_id"] for c in list_chips(read, "default")["chips"]] == ["a", "b", "c"]
        assert not await runner.wait_for(99, timeout=0.3)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Every delivered message was acked explicitly.
    info = await js.consumer_info("QLEDGER_EVENTS", durable)
    assert info.num_ack_pending == 0 and info.delivered.stream_seq == 3
    read.close()


async def test_a_lost_read_model_file_is_rebuilt_from_the_store_on_start(
    nc, js, sqlite_store, tmp_path
):
    register(sqlite_store, "a", "b")
    relay_task = asyncio.create_task(Relay(sqlite_store, nc).run())
    durable = f"test-{uuid.uuid4().hex[:8]}"
    read = ReadStore(tmp_path / "one.duckdb", all_projectors())
    await run_for(ProjectionRunner(read, sqlite_store, js, durable=durable).run(), 1.0)
    read.close()
    # The consumer has acked everything; a fresh DuckDB file must still get every chip.
    fresh = ReadStore(tmp_path / "two.duckdb", all_projectors())
    await run_for(ProjectionRunner(fresh, sqlite_store, js, durable=durable).run(), 1.0)
    assert list_chips(fresh, "default")["total"] == 2
    relay_task.cancel()
    await asyncio.gather(relay_task, return_exceptions=True)
    fresh.close()


async def test_a_foreign_message_on_the_stream_stops_the_relay_instead_of_a_replay(
    nc, js, sqlite_store
):
    register(sqlite_store, "a")
    await run_for(Relay(sqlite_store, nc).run(), 0.5)
    await js.publish("qledger.evt.default.chip.Forged", b"{}")
    with pytest.raises(RuntimeError, match="not published by the qledger relay"):
        await Relay(sqlite_store, nc).start()
    info = await js.stream_info("QLEDGER_EVENTS")
    assert info.state.messages == 2  # nothing republished


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_commits_leave_the_log_checkpoint_to_the_relay(nc, js, sqlite_store):
    # SQLite would checkpoint its write-ahead log inside whichever commit takes it past
    # 1,000 pages (4 MB): 5-7 ms on every ~200th command. The relay does it instead.
    db = Path(sqlite_store.location.env["SQLITE_DBNAME"])
    wal = db.with_name(db.name + "-wal")
    for i in range(700):
        register(sqlite_store, f"c{i}")
    assert _size(wal) > 5 * 1024 * 1024  # past the default 4 MB...
    before = _size(db)  # ...and nothing moved into the database file
    assert before < 64 * 1024
    await run_for(Relay(sqlite_store, nc).run(), 1.5)
    assert await stream_positions(js) == list(range(1, 701))
    assert _size(db) > before + 256 * 1024  # the relay checkpointed
