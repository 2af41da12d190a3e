"""`qledger serve` as a user runs it: a subprocess on free ports, HTTP and raw NATS clients,
SIGKILL in the middle of a stream of commands, restart, and nothing lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from adapters.eventstore import EventStore, store_location
from adapters.natsserver import EmbeddedNats
from tests.e2e.serving import QLEDGER, Serve, alive, run_bounded

pytestmark = pytest.mark.e2e
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def task_body(i: int) -> dict:
    return {
        "execution_id": "e1",
        "task": {
            "task_id": f"t{i}",
            "task_name": "CheckT1",
            "qid": str(i % 16),
            "output_parameters": {
                "t1": {"value": 40.0 + i, "unit": "us", "error": 0.5},
                "t2_echo": {"value": 20.0 + i, "unit": "us"},
            },
            "start_at": (T0 + timedelta(seconds=i)).isoformat(),
            "end_at": (T0 + timedelta(seconds=i, milliseconds=500)).isoformat(),
        },
    }


async def request(
    nc, subject: str, body: dict, key: str | None = None, timeout: float = 10, token: str = ""
) -> dict:
    headers = {"Authorization": f"Bearer {token or TOKEN['admin']}"}
    if key:
        headers["Idempotency-Key"] = key
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=timeout, headers=headers)
    return json.loads(msg.data)


TOKEN: dict[str, str] = {}  # the running server's admin token, for bus requests


async def stream_events(url: str) -> list[dict]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info("QLEDGER_EVENTS")
    sub = await js.subscribe("qledger.evt.>", ordered_consumer=True)
    out = []
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=5)
        out.append(
            {"msg_id": msg.headers["Nats-Msg-Id"], "subject": msg.subject, **json.loads(msg.data)}
        )
    await nc.close()
    return out


async def ignore(_err: Exception) -> None:
    """The killed server's connection errors are expected."""


def wait_until_caught_up(serve: Serve, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = serve.health()
        if h["relay_position"] == h["projection_position"] == h["store_position"]:
            return h
        time.sleep(0.1)
    raise AssertionError(f"not caught up: {serve.health()}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_schema")


def test_serve_records_over_http_and_nats_and_survives_sigkill(tmp_path: Path, backend):
    serve = Serve(tmp_path, backend).start()
    client = serve.client()
    TOKEN["admin"] = serve.token

    # HTTP write + read-your-writes
    r = client.post("/api/chips", json={"chip_id": "c1", "size": 16})
    assert r.status_code == 200, r.text
    assert r.json()["qubit_count"] == 16 and r.json()["coupling_count"] == 24
    bad = client.post(
        "/api/chips",
        content=b'{"chip_id": "c1", "size": ',
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    dup = client.post("/api/chips", json={"chip_id": "c1", "size": 16})
    assert dup.status_code == 409 and dup.json()["code"] == "chip_exists"

    async def first_steps():
        nc = await nats.connect(serve.nats_url)
        start = await request(
            nc, "qledger.cmd.calibration.start_execution", {"execution_id": "e1", "chip_id": "c1"}
        )
        bad = await request(nc, "qledger.cmd.calibration.start_execution", {"execution_id": "e1"})
        junk = await request(nc, "qledger.cmd.calibration.record_task_result", {"nope": 1})
        await nc.close()
        return start, bad, junk

    start, bad_cmd, junk = run_bounded(first_steps())
    assert start["status"] == "accepted" and start["position"] >= 2
    assert (bad_cmd["status"], bad_cmd["code"]) == ("rejected", "invalid_command")
    assert junk["code"] == "invalid_command"
    over_http = client.post(
        "/api/executions/e1/tasks", json=task_body(0)["task"], headers={"Idempotency-Key": "k0"}
    )
    assert over_http.status_code == 200, over_http.text
    position = over_http.json()["position"]
    qubit = client.get("/api/chips/c1/qubits/0", params={"min_position": position}).json()
    assert qubit["data"]["t1"]["value"] == 40.0 and qubit["data"]["t1"]["version"] == 1

    # A stream of commands over NATS, killed with SIGKILL midway.
    n = 300
    children = serve.children()
    # + query side, relay, the twin's simulation worker and its circuit checker: all must
    # go with the parent.
    assert serve.nats_pid() in children and len(children) == 5
    acked: dict[int, dict] = {}

    async def stream_and_kill():
        nc = await nats.connect(serve.nats_url, max_reconnect_attempts=0, error_cb=ignore)
        sem = asyncio.Semaphore(16)
        killed = asyncio.Event()

        async def one(i: int):
            async with sem:
                if killed.is_set():
                    return
                try:
                    subject = "qledger.cmd.calibration.record_task_result"
                    acked[i] = await request(nc, subject, task_body(i), f"k{i}", timeout=2)
                except Exception:
                    pass  # no reply: outcome unknown, resent below with the same key

        async def killer():
            while len(acked) < n // 3:
                await asyncio.sleep(0.005)
            serve.proc.send_signal(signal.SIGKILL)
            killed.set()

        await asyncio.gather(killer(), *(one(i) for i in range(1, n)))
        with contextlib.suppress(Exception):
            await nc.close()

    run_bounded(stream_and_kill())
    serve.proc.wait(timeout=10)
    assert n // 3 <= len(acked) < n - 1, "the kill landed mid-stream"
    assert all(r["status"] == "accepted" for r in acked.values())
    deadline = time.monotonic() + 5
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, children)), "a child outlived its killed parent"

    # Restart on the same data dir; the client resends everything with the same keys.
    serve.start()

    async def resend():
        nc = await nats.connect(serve.nats_url)
        replies = {
            i: await request(
                nc, "qledger.cmd.calibration.record_task_result", task_body(i), f"k{i}"
            )
            for i in range(1, n)
        }
        await nc.close()
        return replies

    replies = run_bounded(resend())
    assert all(r["status"] == "accepted" for r in replies.values())
    for i, first in acked.items():
        assert replies[i] == first, "an acknowledged command is replayed, not redone"
    health = wait_until_caught_up(serve)

    # Exactly once in the store ...
    store = EventStore(store_location(backend, tmp_path))
    notes = store.notifications_after(0, 1_000_000)
    rows = [(n.topic, n.state) for n in notes]
    store.close()
    stored = Counter(
        json.loads(s)["payload"]["task_id"]
        for t, s in rows
        if t == "calibration.TaskResultRecorded"
    )
    assert set(stored) == {f"t{i}" for i in range(n)} and set(stored.values()) == {1}
    assert notes[-1].id == health["store_position"]
    # ... on the stream (no gaps, no duplicates) ...
    events = run_bounded(stream_events(serve.nats_url))
    positions = [n.id for n in notes]
    assert [int(e["msg_id"]) for e in events] == positions
    assert [e["position"] for e in events] == positions
    # The first admin and project `default` come first, then the lab's own events.
    assert events[0]["subject"] == "qledger.evt._identity.identity.UserRegistered"
    assert "qledger.evt.default.chip.ChipRegistered" in {e["subject"] for e in events}
    on_stream = Counter(
        e["payload"]["task_id"] for e in events if e["type"] == "calibration.TaskResultRecorded"
    )
    assert on_stream == stored
    # ... and in the read models.
    execution = client.get("/api/executions/e1").json()
    assert Counter(t["task_id"] for t in execution["task"]) == stored
    history = client.get(
        "/api/provenance/history", params={"parameter_name": "t1", "qid": "3", "limit": 1000}
    ).json()
    assert [v["version"] for v in history["versions"]] == list(
        range(len(history["versions"]), 0, -1)
    )
    assert history["versions"][0]["valid_until"] is None
    assert all(v["valid_until"] for v in history["versions"][1:])
    before_rebuild = {
        "execution": execution,
        "history": history,
        "qubits": client.get("/api/chips/c1/qubits", params={"limit": 256}).json(),
        "entity": client.get(
            f"/api/provenance/entities/{history['versions'][1]['entity_id']}"
        ).json(),
    }

    # Ctrl-C (SIGINT) stops everything, then the read models are rebuilt from the store.
    children = serve.children()
    serve.proc.send_signal(signal.SIGINT)
    assert serve.proc.wait(timeout=30) == 0
    assert not any(map(alive, children))
    rebuilt = subprocess.run(
        [QLEDGER, "projections", "rebuild"],
        env={**os.environ, "QLEDGER_DATA_DIR": str(tmp_path), "QLEDGER_EVENTSTORE_URL": backend or ""},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"{len(rows)} events" in rebuilt.stdout
    serve.start()
    after_rebuild = {
        "execution": client.get("/api/executions/e1").json(),
        "history": client.get(
            "/api/provenance/history", params={"parameter_name": "t1", "qid": "3", "limit": 1000}
        ).json(),
        "qubits": client.get("/api/chips/c1/qubits", params={"limit": 256}).json(),
        "entity": client.get(
            f"/api/provenance/entities/{history['versions'][1]['entity_id']}"
        ).json(),
    }
    assert after_rebuild == before_rebuild
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


def test_serve_stops_and_says_so_when_nats_server_dies(tmp_path: Path):
    serve = Serve(tmp_path, None).start()
    children = serve.children()
    os.kill(serve.nats_pid(), signal.SIGKILL)
    assert serve.proc.wait(timeout=30) == 1
    deadline = time.monotonic() + 5
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, children))
    assert "stopped unexpectedly" in (tmp_path / "serve.log").read_text()


def test_serve_uses_an_existing_nats_when_told_to(tmp_path: Path, monkeypatch):
    nats_server = EmbeddedNats(tmp_path / "site-nats").start()
    try:
        monkeypatch.setenv("QLEDGER_NATS_URL", nats_server.url)
        serve = Serve(tmp_path / "data", None, keep_nats_url=True)
        serve.data_dir.mkdir()
        serve.start()
        assert serve.children() and not (tmp_path / "data" / "nats").exists()
        r = serve.client().post("/api/chips", json={"chip_id": "c1", "size": 4})
        assert r.status_code == 200, r.text

        events = run_bounded(stream_events(nats_server.url))
        assert "qledger.evt.default.chip.ChipRegistered" in {e["subject"] for e in events}
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=30) == 0
        assert nats_server.proc.poll() is None, "qledger must not stop a NATS it did not start"
    finally:
        nats_server.stop()
