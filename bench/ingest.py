"""qledger ingest benchmark (not part of the test suite).

Starts a fresh `qledger serve` (temp data dir, free ports; SQLite, or a fresh PostgreSQL
schema), registers a 64-qubit chip, starts one execution, then sends N
`qledger.cmd.calibration.record_task_result` NATS requests (5 output parameters each: 6
domain events + 1 idempotency record per command) with up to --concurrency in flight.

Measured:
* command latency (request sent -> reply received) and commands/s;
* stream lag: envelope `recorded_at` (stamped at store commit) -> event seen by this client
  on core NATS, sampled on `qledger.evt.*.calibration.TaskResultRecorded` (one event in
  seven; the client's own event loop adds to it);
* projection lag seen by the client: /api/health is polled every 50 ms while sending; for
  each reply, the time from the reply until `projection_position` >= the reply's position
  (50 ms resolution, plus the poll's own HTTP round trip);
* projection lag measured by the server: store commit (`recorded_at`) -> DuckDB commit of
  the oldest event of each projected batch (its p50/p99 from /api/health at the end);
* end-to-end accepted events/s: domain events / (first send -> read model caught up);
* CPU seconds used by qledger's two processes (command side; relay + projections + HTTP),
  nats-server, PostgreSQL (all its processes) and this client.

--rate R offers R task results/s (open loop) instead of sending as fast as replies come
back: the way to measure lag at a given throughput rather than at saturation.

Baselines on the same machine and kind of store: raw JetStream `publish_async` of as many
~600-byte messages into a file stream on the same nats-server, and raw `eventsourcing`
appends of as many events (500 per `app.save`), with the server's store settings.

    cd /work/main && .venv/bin/python bench/ingest.py [--n 5000] [--store sqlite|postgres] [--concurrency 256]

PostgreSQL: postgresql://postgres@127.0.0.1:5432/test; the schemas are created, then dropped.
The client shares the machine (and its CPUs) with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.js import api

from adapters.eventstore import store_location

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
QIDS = 64
CPU_GROUPS = ("qledger_commands", "qledger_read_side", "nats", "postgres", "client")
BASE = datetime(2025, 1, 1, tzinfo=UTC)
# name: (base value, spread, unit, error)
OUTPUTS = {
    "t1": (40e-6, 20e-6, "s", 1.5e-6),
    "t2_echo": (30e-6, 15e-6, "s", 2e-6),
    "qubit_frequency": (4.8e9, 2e8, "Hz", 1.2e4),
    "readout_fidelity": (0.9, 0.09, "", 0.002),
    "x90_amplitude": (0.1, 0.05, "a.u.", 0.001),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p50_p99(values: list[float], scale: float = 1.0) -> list[float]:
    ordered = sorted(values) or [float("nan")]
    return [
        round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale, 1) for q in (0.5, 0.99)
    ]


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime, all threads
        except (OSError, IndexError, ValueError):
            pass  # the process has gone
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def pg_execute(sql: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def task_body(i: int) -> bytes:
    rnd, q = divmod(i, QIDS)  # start_at strictly increases per qid with the round
    start = BASE + timedelta(minutes=rnd, seconds=q)
    x = (i % 97) / 97
    outputs = {
        k: {"value": v + d * x, "unit": u, "error": e} for k, (v, d, u, e) in OUTPUTS.items()
    }
    task = dict(task_id=f"task-{i}", task_name="CheckT1", qid=str(q), output_parameters=outputs)
    for key, t in (("start_at", start), ("end_at", start + timedelta(seconds=30))):
        task[key] = t.isoformat().replace("+00:00", "Z")
    return json.dumps({"execution_id": "bench-ex", "task": task}).encode()


class Server:
    """`qledger serve` as a subprocess; stop() sends SIGTERM, then SIGKILL after 15 s."""

    def __init__(self, data_dir: Path, eventstore_url: str | None) -> None:
        self.data_dir = data_dir
        http_port, nats_port = free_port(), free_port()
        env = dict(os.environ, QLEDGER_DATA_DIR=str(data_dir), QLEDGER_LOG_LEVEL="warning")
        env.update(QLEDGER_ADMIN_USERNAME="bench", QLEDGER_ADMIN_PASSWORD=BENCH_PASSWORD)
        env.update(QLEDGER_HTTP_PORT=str(http_port), QLEDGER_NATS_PORT=str(nats_port))
        if eventstore_url:
            env["QLEDGER_EVENTSTORE_URL"] = eventstore_url
        self.log_path = data_dir.parent / "server.log"
        self.log = open(self.log_path, "wb")
        exe = str(Path(sys.executable).parent / "qledger")
        self.proc = subprocess.Popen(
            [exe, "serve"], env=env, cwd=data_dir.parent, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.health_url = f"http://127.0.0.1:{http_port}/api/health"
        self.login_url = f"http://127.0.0.1:{http_port}/api/auth/login"
        self.nats_url = f"nats://127.0.0.1:{nats_port}"

    async def wait_ready(self, http: httpx.AsyncClient, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"qledger serve exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if (await http.get(self.health_url, timeout=2)).status_code == 200:
                    # Commands carry the first admin's token, as any bus client's would.
                    form = {"username": "bench", "password": BENCH_PASSWORD}
                    login = await http.post(self.login_url, data=form, timeout=10)
                    if login.status_code == 200:
                        AUTH["Authorization"] = f"Bearer {login.json()['access_token']}"
                        return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"qledger serve not healthy within {limit} s:\n{self.tail()}")

    def nats_pids(self) -> list[int]:
        pid_file = self.data_dir / "nats" / "nats-server.pid"
        return [int(pid_file.read_text().strip())] if pid_file.exists() else []

    def read_side_pids(self) -> list[int]:
        """The child running relay + projections + HTTP (python, not nats-server)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [p for p in pids if p not in self.nats_pids()]

    def tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print("qledger serve still running 15 s after SIGTERM; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


BENCH_PASSWORD = "bench-admin-password"
AUTH: dict[str, str] = {}  # the signed-in admin's Authorization header


async def request(nc: nats.NATS, name: str, body: bytes, key: str) -> dict:
    msg = await nc.request(
        f"qledger.cmd.{name}", body, timeout=60, headers={"Idempotency-Key": key, **AUTH}
    )
    return json.loads(msg.data)


async def ingest(
    server: Server, http: httpx.AsyncClient, n: int, concurrency: int, store: str, rate: float
) -> dict:
    nc = await nats.connect(server.nats_url, name="bench", connect_timeout=10)
    run = uuid.uuid4().hex[:8]
    try:
        setup = {
            "chip.register": {"chip_id": "bench", "size": QIDS},
            "calibration.start_execution": {"execution_id": "bench-ex", "chip_id": "bench"},
        }
        for name, body in setup.items():
            reply = await request(nc, name, json.dumps(body).encode(), f"{run}-{name}")
            if reply.get("status") != "accepted":
                raise RuntimeError(f"setup command {name} rejected: {reply}")

        stream_lags: list[float] = []

        async def on_event(msg) -> None:
            recorded = datetime.fromisoformat(json.loads(msg.data)["recorded_at"]).timestamp()
            stream_lags.append(time.time() - recorded)

        # One event in seven (the task results) is sample enough, and keeps the client's
        # own load on the shared CPUs down.
        await nc.subscribe(
            "qledger.evt.*.calibration.TaskResultRecorded",
            cb=on_event,
            pending_msgs_limit=1_000_000,
        )
        samples: list[tuple[float, int]] = []  # (response time, projection_position)
        polling = True

        async def poll_health() -> None:
            while polling:
                r = await http.get(server.health_url, timeout=10)
                samples.append((time.perf_counter(), r.json()["projection_position"]))
                await asyncio.sleep(0.05)

        bodies = [task_body(i) for i in range(n)]
        replies: list[tuple[float, float, dict]] = []  # (sent, replied, reply)
        sem = asyncio.Semaphore(concurrency)

        async def send(i: int) -> None:
            if rate:  # open loop: command i is due at i / rate seconds after the start
                await asyncio.sleep(max(0.0, t_first + i / rate - time.perf_counter()))
            async with sem:
                t0 = time.perf_counter()
                try:
                    reply = await request(
                        nc, "calibration.record_task_result", bodies[i], f"{run}-{i}"
                    )
                except (TimeoutError, nats.errors.TimeoutError):
                    reply = {
                        "status": "rejected",
                        "code": "client_timeout",
                        "message": "no reply in 60 s",
                    }
                replies.append((t0, time.perf_counter(), reply))

        poller = asyncio.create_task(poll_health())
        pids = {
            "qledger_commands": [server.proc.pid],
            "qledger_read_side": server.read_side_pids(),
            "nats": server.nats_pids(),
        }
        pids["postgres"] = postgres_pids() if store == "postgres" else []
        cpu0, client0 = {k: cpu_seconds(v) for k, v in pids.items()}, time.process_time()
        t_first = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(n))), timeout=60 + n / 10)
        t_last = max(t1 for _, t1, _ in replies)

        accepted = [(t1, r) for _, t1, r in replies if r.get("status") == "accepted"]
        rejected = [r for _, _, r in replies if r.get("status") != "accepted"]
        max_pos = max((r["position"] for _, r in accepted), default=0)
        deadline = time.monotonic() + 120
        while not samples or samples[-1][1] < max_pos:
            if poller.done():
                poller.result()  # raises the poller's error
            if time.monotonic() > deadline:
                stuck = samples[-1][1] if samples else "?"
                raise TimeoutError(f"read model stuck at position {stuck} < {max_pos} after 120 s")
            await asyncio.sleep(0.02)
        t_caught = samples[-1][0]
        cpu = {f"cpu_{k}_s": round(cpu_seconds(v) - cpu0[k], 2) for k, v in pids.items()}
        cpu["cpu_client_s"] = round(time.process_time() - client0, 2)
        polling = False
        await asyncio.wait_for(poller, timeout=15)
        server_lag = (await http.get(server.health_url, timeout=10)).json()["projection_lag_ms"]
        await asyncio.sleep(0.3)  # let the last events arrive on the bus

        times, positions = [t for t, _ in samples], []
        for _, p in samples:
            positions.append(max(p, positions[-1] if positions else 0))
        proj_lags = [
            max(0.0, times[bisect.bisect_left(positions, r["position"])] - t1) for t1, r in accepted
        ]
        events = sum(len(r["event_ids"]) for _, r in accepted)
        wall = t_caught - t_first
        return {
            "commands": n,
            "accepted": len(accepted),
            "rejected": len(rejected),
            "rejection_examples": rejected[:3],
            "events": events,
            "wall_s": round(wall, 3),
            "events_per_s": round(events / wall, 1),
            "commands_per_s": round(n / (t_last - t_first), 1),
            "latency_ms_p50_p99": p50_p99([t1 - t0 for t0, t1, _ in replies], 1000),
            "projection_lag_ms_p50_p99": p50_p99(proj_lags, 1000),
            "catchup_after_last_reply_ms": round((t_caught - t_last) * 1000, 1),
            "server_projection_lag_ms_p50_p99": [server_lag["p50"], server_lag["p99"]],
            "stream_lag_ms_p50_p99": p50_p99(stream_lags, 1000),
            "stream_events_seen": len(stream_lags),
            **cpu,
        }
    finally:
        await nc.close()


async def raw_jetstream(nats_url: str, count: int) -> float:
    nc = await nats.connect(nats_url, name="bench-raw", connect_timeout=10)
    js = nc.jetstream()
    try:
        config = api.StreamConfig(
            name="BENCH_RAW",
            subjects=["bench.raw.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,
        )
        await js.add_stream(config)
        payload = json.dumps({"type": "bench.raw", "payload": "x" * 570}).encode()  # ~600 bytes
        t0 = time.perf_counter()
        acks = []
        for i in range(count):
            headers = {"Nats-Msg-Id": f"raw-{i}"}
            acks.append(
                await js.publish_async(
                    f"bench.raw.{i % QIDS}", payload, wait_stall=30, headers=headers
                )
            )
        await asyncio.wait_for(asyncio.gather(*acks), timeout=120)
        return count / (time.perf_counter() - t0)
    finally:
        try:
            await js.delete_stream("BENCH_RAW")
        finally:
            await nc.close()


class Sample(Aggregate):
    def __init__(self, note: str) -> None:
        self.note = note
        self.count = 0

    @event("Bumped")
    def bump(self, note: str) -> None:
        self.count += 1


def raw_eventsourcing(env: dict[str, str], count: int) -> float:
    app = Application(env=env)
    note = "y" * 300
    try:
        t0, done = time.perf_counter(), 0
        while done < count:
            batch = [Sample(note) for _ in range(100)]  # 100 aggregates x 5 events per save
            for agg in batch:
                for _ in range(4):
                    agg.bump(note)
            app.save(*batch)
            done += 500
        return done / (time.perf_counter() - t0)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="qledger ingest benchmark")
    parser.add_argument("--n", type=int, default=5000, help="task-result commands to send")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered load in task results/s (open loop); 0 = as fast as replies allow",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qledger-bench-"))
    schemas = [f"bench_{uuid.uuid4().hex[:10]}", f"bench_raw_{uuid.uuid4().hex[:10]}"]
    postgres = args.store == "postgres"
    url = f"{PG_URL}?schema={schemas[0]}" if postgres else None
    raw_url = f"{PG_URL}?schema={schemas[1]}" if postgres else f"sqlite:///{tmp}/raw.sqlite"
    server: Server | None = None

    async def against_server(server: Server) -> tuple[dict, float]:
        async with httpx.AsyncClient() as http:
            await server.wait_ready(http)
            res = await ingest(server, http, args.n, args.concurrency, args.store, args.rate)
            return res, await raw_jetstream(server.nats_url, res["events"] or args.n * 6)

    try:
        for schema in schemas if postgres else []:
            pg_execute(f'CREATE SCHEMA "{schema}"')
        server = Server(tmp / "data", url)
        res, js_rate = asyncio.run(against_server(server))
        server.stop()
        res["baseline_jetstream_msgs_per_s"] = round(js_rate, 1)
        es_rate = raw_eventsourcing(store_location(raw_url, tmp).env, res["events"])
        res["baseline_eventsourcing_events_per_s"] = round(es_rate, 1)
    except BaseException:
        if server is not None:
            print(f"--- qledger serve log (tail) ---\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            server.stop()
        for schema in schemas if postgres else []:
            pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(Path(tmp) / "server.log", os.environ["BENCH_KEEP_LOG"])
        shutil.rmtree(tmp, ignore_errors=True)

    r = dict(res, store=args.store, n=args.n, concurrency=args.concurrency, rate=args.rate)
    offered = f"offered {args.rate:g} task results/s" if args.rate else "closed loop"
    print(
        f"qledger ingest benchmark — store={args.store}, N={args.n} task results "
        f"({r['events']} domain events), concurrency={args.concurrency}, {offered}"
    )
    rows = [
        ("accepted / rejected commands", [r["accepted"], r["rejected"]]),
        ("wall time: first send -> read model caught up (s)", r["wall_s"]),
        ("end-to-end accepted events/s", r["events_per_s"]),
        ("commands/s", r["commands_per_s"]),
        ("command latency p50 / p99 (ms)", r["latency_ms_p50_p99"]),
        ("projection lag, seen by client p50 / p99 (ms)", r["projection_lag_ms_p50_p99"]),
        (
            "projection lag, server: store -> DuckDB p50 / p99",
            r["server_projection_lag_ms_p50_p99"],
        ),
        ("read model caught up after last reply (ms)", r["catchup_after_last_reply_ms"]),
        ("stream lag recorded_at -> bus p50 / p99 (ms)", r["stream_lag_ms_p50_p99"]),
        (
            "CPU s: commands / read side / nats / pg / client",
            [r[f"cpu_{k}_s"] for k in CPU_GROUPS],
        ),
        ("baseline raw JetStream publish_async msgs/s", r["baseline_jetstream_msgs_per_s"]),
        ("baseline raw eventsourcing append events/s", r["baseline_eventsourcing_events_per_s"]),
    ]
    for label, value in rows:
        shown = " / ".join(map(str, value)) if isinstance(value, list) else value
        print(f"{label:<50}: {shown}")
    for example in r["rejection_examples"]:
        print(f"  rejected: {example}")
    print("JSON: " + json.dumps(r))


if __name__ == "__main__":
    main()
