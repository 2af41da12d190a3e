"""qledger dashboard-query benchmark (not part of the test suite).

Writes a generated calibration history of a 256-qubit chip (16x16 square lattice, daily
runs: frequency, T1, T2, X90, readout on every qubit, ZX90 on every coupling; each task
reads the versions it depends on, so lineage is real) straight into a fresh SQLite event
store with qledger's own command processor, starts `qledger serve` on it (the read models
catch up from the store), then times each dashboard query over HTTP.

Printed next to each HTTP figure, from the same run: the same query function called
in-process on the same DuckDB file (no HTTP, no auth), and for lineage and impact a raw
DuckDB recursive CTE over the same relation table: the one-query-per-level traversal the
in-memory graph replaces.

    cd /work/main && .venv/bin/python bench/queries.py [--events 1000000] [--samples 200]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx

from adapters.eventstore import EventStore, store_location
from commands.models import (
    InputParameter,
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.processor import Submission, process_batch
from config.catalog import load_metrics, load_policy
from domain.access import SYSTEM
from domain.events import CommandContext
from projections import changes, lineage, metrics, quality, task_results
from projections import provenance as q

SIDE = 16
QUBITS = SIDE * SIDE
COUPLINGS = [f"{r * SIDE + c}-{r * SIDE + c + 1}" for r in range(SIDE) for c in range(SIDE - 1)] + [
    f"{r * SIDE + c}-{(r + 1) * SIDE + c}" for r in range(SIDE - 1) for c in range(SIDE)
]
QLEDGER = str(Path(sys.executable).parent / "qledger")
PASSWORD = "bench-admin-pw-1"


def submission(cmd, at: datetime) -> Submission:
    ctx = CommandContext(
        project_id="default",
        actor="bench",
        command_id=__import__("uuid").uuid4(),
        correlation_id="bench",
        received_at=at,
    )
    return Submission(cmd, ctx, credential=SYSTEM, project="default")


def day_waves(rng: random.Random, day: int, start: datetime) -> list[list[RecordTaskResult]]:
    ex = f"d{day:04d}"
    base = start + timedelta(days=day)

    def task(name, qid, minute, inputs, outputs):
        return RecordTaskResult(
            execution_id=ex,
            task=TaskResultIn(
                task_id=f"{name}-{qid}", task_name=name, qid=qid,
                task_type="coupling" if "-" in qid else "qubit",
                input_parameters=inputs,
                output_parameters={k: OutputParameter(value=v, error=e, unit=u) for k, (v, e, u) in outputs.items()},
                start_at=base + timedelta(minutes=minute), end_at=base + timedelta(minutes=minute + 1),
            ),
        )  # fmt: skip

    freq, after_freq, after_t1, pairs = [], [], [], []
    for qn in range(QUBITS):
        qid, drift = str(qn), 1 - 0.002 * (day % 30) if qn % 17 == 0 else 1.0
        freq.append(task("CheckQubitFrequency", qid, 0, {}, {
            "qubit_frequency": (7.0 + qn / 1000 + rng.gauss(0, 1e-4), 1e-5, "GHz"),
            "anharmonicity": (-330 + rng.gauss(0, 2), 0.5, "MHz")}))  # fmt: skip
        f = {"qubit_frequency": InputParameter()}
        after_freq += [
            task("CheckT1", qid, 10, f, {"t1": (rng.uniform(40, 120) * drift, 2.0, "us")}),
            task("CheckX90", qid, 10, f, {
                "x90_gate_fidelity": (rng.uniform(0.995, 0.9999), 1e-4, ""),
                "x180_gate_fidelity": (rng.uniform(0.99, 0.9995), 1e-4, "")}),
            task("CheckReadout", qid, 10, f, {"average_readout_fidelity": (rng.uniform(0.8, 0.99), 1e-3, "")}),
        ]  # fmt: skip
        after_t1.append(task("CheckT2Echo", qid, 20, {**f, "t1": InputParameter()}, {
            "t2_echo": (rng.uniform(20, 150), 2.0, "us"), "t2_star": (rng.uniform(10, 60), 1.0, "us")}))  # fmt: skip
    for c in COUPLINGS:
        control = c.split("-")[0]
        pairs.append(task("CheckZX90", c, 30, {"x90_gate_fidelity": InputParameter(qid=control)}, {
            "zx90_gate_fidelity": (rng.uniform(0.9, 0.99), 1e-3, ""),
            "bell_state_fidelity": (rng.uniform(0.85, 0.98), 1e-3, "")}))  # fmt: skip
    return [freq, after_freq, after_t1, pairs]


EVENTS_PER_DAY = QUBITS * (3 + 2 + 3 + 2 + 3) + len(COUPLINGS) * 3 + 1


def load(data_dir: Path, events: int) -> tuple[int, float]:
    store = EventStore(store_location(None, data_dir))
    days = max(1, events // EVENTS_PER_DAY)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days + 1)
    rng = random.Random(1)
    t0 = time.perf_counter()
    process_batch([submission(RegisterChip(chip_id="256Q", size=QUBITS), start)], store)
    for day in range(days):
        at = start + timedelta(days=day)
        batch = [submission(StartExecution(execution_id=f"d{day:04d}", chip_id="256Q", started_at=at, tags=["daily"]), at)]  # fmt: skip
        for wave in day_waves(rng, day, start):
            batch += [submission(c, at) for c in wave]
            for i in range(0, len(batch), 500):
                replies = process_batch(batch[i : i + 500], store)
                bad = [r for r in replies if r.status != "accepted"]
                assert not bad, bad[:3]
            batch = []
        if day % 20 == 0:
            print(f"  day {day}/{days}: {store.max_position():,} events", flush=True)
    total = store.max_position()
    store.close()
    return total, time.perf_counter() - t0


def pct(samples: list[float]) -> str:
    s = sorted(samples)
    return (
        f"{1000 * statistics.median(s):7.1f} / {1000 * s[min(len(s) - 1, int(0.99 * len(s)))]:7.1f}"
    )


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "QLEDGER_DATA_DIR": str(data_dir), "QLEDGER_HTTP_PORT": str(port),
           "QLEDGER_ADMIN_PASSWORD": PASSWORD, "QLEDGER_LOG_LEVEL": "warning"}  # fmt: skip
    log = open(data_dir / "serve.log", "ab")
    return subprocess.Popen([QLEDGER, "serve"], env=env, stdout=log, stderr=log)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="qledger-bench-queries-"))
    print(f"data dir {data_dir}; writing about {args.events:,} events ({EVENTS_PER_DAY:,} a day)")
    total, took = load(data_dir, args.events)
    print(f"wrote {total:,} events in {took:.0f} s ({total / took:,.0f} events/s, in-process)")

    port = 18000 + os.getpid() % 1000
    proc = serve(data_dir, port)
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    token = ""
    while True:
        assert proc.poll() is None, (data_dir / "serve.log").read_text()[-2000:]
        try:
            h = httpx.get(base + "/api/health", timeout=2).json()
            if h["projection_position"] >= total:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    catch_up = time.perf_counter() - t0
    print(f"read models caught up with {total:,} events in {catch_up:.0f} s (start included)")
    # The relay then publishes the whole store to the fresh stream, and the projection
    # consumer reads it back (no-ops): wait for both, or they compete with the queries.
    while httpx.get(base + "/api/health", timeout=5).json()["relay_position"] < total:
        time.sleep(1)
    print(f"relay done after {time.perf_counter() - t0:.0f} s")
    while httpx.get(base + "/api/health", timeout=5).json().get("lineage_graph") != "loaded":
        time.sleep(1)
    print(f"lineage graph loaded after {time.perf_counter() - t0:.0f} s")
    time.sleep(10)  # the stream's replay into the projection consumer (skipped, unparsed)
    query_pid = subprocess.run(["pgrep", "-f", "adapters.cli serve --role query"], capture_output=True, text=True).stdout.split()  # fmt: skip
    if query_pid:
        rss = next(
            line for line in open(f"/proc/{query_pid[0]}/status") if line.startswith("VmRSS")
        )
        print(f"query process (projections, lineage graph, HTTP): {rss.split(':')[1].strip()}")
    token = httpx.post(base + "/api/auth/login", data={"username": "admin", "password": PASSWORD}).json()["access_token"]  # fmt: skip
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    rng = random.Random(2)
    store = EventStore(store_location(None, data_dir))
    del store  # the ids below come from the read side
    # Entities to trace: a mix of newest and old versions of T2 echo and qubit frequency.
    read_ids = api.get("/api/provenance/history", params={"parameter_name": "t2_echo", "qid": "5", "limit": 1000}).json()  # fmt: skip
    t2_ids = [v["entity_id"] for v in read_ids["versions"]]
    freq_ids = [v.replace("t2_echo", "qubit_frequency").replace("CheckT2Echo", "CheckQubitFrequency") for v in t2_ids]  # fmt: skip
    days = len(t2_ids)
    as_of = (datetime.now(UTC) - timedelta(days=days // 2)).isoformat()
    now_iso = datetime.now(UTC).isoformat()
    month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    print(f"{days} days of history; entity ids from qubit 5")

    queries = {
        "history (t1 of one qubit)": lambda: (
            "/api/provenance/history",
            {"parameter_name": "t1", "qid": str(rng.randrange(QUBITS)), "limit": 50},
        ),  # fmt: skip
        "lineage (max_depth 20)": lambda: (
            f"/api/provenance/lineage/{rng.choice(t2_ids)}",
            {"max_depth": 20},
        ),  # fmt: skip
        "impact (max_depth 20)": lambda: (
            f"/api/provenance/impact/{rng.choice(freq_ids)}",
            {"max_depth": 20},
        ),  # fmt: skip
        "recommendations": lambda: (
            f"/api/provenance/recommendations/{rng.choice(freq_ids)}",
            {"max_depth": 20},
        ),  # fmt: skip
        "heatmap (t1)": lambda: ("/api/chips/256Q/metrics/heatmap/t1", {}),
        "metrics summary": lambda: ("/api/chips/256Q/metrics/summary", {}),
        "chip metrics, latest": lambda: ("/api/metrics/chips/256Q/metrics", {}),
        "chip metrics, best 7 days": lambda: (
            "/api/metrics/chips/256Q/metrics",
            {"selection_mode": "best", "within_hours": 168},
        ),
        "chip metrics, average 7 days": lambda: (
            "/api/metrics/chips/256Q/metrics",
            {"selection_mode": "average", "within_hours": 168},
        ),
        "metric history (one qubit)": lambda: (
            f"/api/metrics/chips/256Q/qubits/{rng.randrange(QUBITS)}/history",
            {"metric": "t1"},
        ),
        "timeseries (one qubit, 30 days)": lambda: (
            "/api/task-results/timeseries",
            {
                "chip_id": "256Q",
                "tag": "daily",
                "parameter": "t1",
                "qid": str(rng.randrange(QUBITS)),
                "start_at": month_ago,
                "end_at": now_iso,
            },
        ),
        "timeseries (whole chip, 7 days)": lambda: (
            "/api/task-results/timeseries",
            {
                "chip_id": "256Q",
                "tag": "daily",
                "parameter": "t1",
                "start_at": week_ago,
                "end_at": now_iso,
            },
        ),
        "task results, latest": lambda: (
            "/api/task-results/qubits/latest",
            {"chip_id": "256Q", "task": "CheckT1"},
        ),
        "degradation trends": lambda: ("/api/provenance/degradation-trends", {"min_streak": 3}),
        "degradation trends, as_of": lambda: (
            "/api/provenance/degradation-trends",
            {"min_streak": 3, "as_of": as_of},
        ),  # fmt: skip
        "policy violations": lambda: ("/api/provenance/policy/violations", {}),
        "recent changes (24 h)": lambda: ("/api/provenance/changes", {"within_hours": 24}),
        "stats": lambda: ("/api/provenance/stats", {}),
    }
    http: dict[str, list[float]] = {}
    for name, make in queries.items():
        path, params = make()
        assert api.get(path, params=params).status_code == 200, (path, api.get(path, params=params).text)  # fmt: skip
        samples = []
        for _ in range(args.samples):
            path, params = make()
            t = time.perf_counter()
            r = api.get(path, params=params)
            samples.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        http[name] = samples
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)

    # The same query functions in-process, and raw DuckDB baselines, on the same file.
    con = duckdb.connect(str(data_dir / "read.duckdb"), read_only=True)
    con.execute("SET threads = 1")

    class Reader:
        def rows(self, sql, params=()):
            cur = con.cursor()
            cur.execute(sql, list(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

        def generation(self, projector):
            return 1

    db, graph = Reader(), lineage.ProvenanceGraph()
    t = time.perf_counter()
    with graph.lock:
        graph.refresh(db)
    print(f"in-memory graph built in {time.perf_counter() - t:.1f} s")
    catalog, policy = load_metrics(), load_policy()
    direct = {
        "history (t1 of one qubit)": lambda: q.parameter_history(
            db, "default", "t1", str(rng.randrange(QUBITS)), limit=50, chip_id=None
        ),  # fmt: skip
        "lineage (max_depth 20)": lambda: lineage.lineage(
            db, graph, "default", rng.choice(t2_ids), max_depth=20
        ),  # fmt: skip
        "impact (max_depth 20)": lambda: lineage.impact(
            db, graph, "default", rng.choice(freq_ids), max_depth=20
        ),  # fmt: skip
        "recommendations": lambda: lineage.recommendations(
            db, graph, "default", rng.choice(freq_ids), max_depth=20
        ),  # fmt: skip
        "heatmap (t1)": lambda: metrics.heatmap(db, "default", "256Q", catalog.metrics["t1"]),
        "metrics summary": lambda: metrics.summary(db, "default", "256Q", catalog),
        "chip metrics, latest": lambda: metrics.chip_metrics(
            db, "default", "256Q", catalog, selection_mode="latest", within_hours=None
        ),
        "chip metrics, best 7 days": lambda: metrics.chip_metrics(
            db, "default", "256Q", catalog, selection_mode="best", within_hours=168
        ),
        "chip metrics, average 7 days": lambda: metrics.chip_metrics(
            db, "default", "256Q", catalog, selection_mode="average", within_hours=168
        ),
        "metric history (one qubit)": lambda: metrics.metric_history(
            db,
            "default",
            "256Q",
            str(rng.randrange(QUBITS)),
            catalog.metrics["t1"],
            limit=None,
            within_days=None,
        ),
        "timeseries (one qubit, 30 days)": lambda: task_results.timeseries(
            db,
            "default",
            "256Q",
            tag="daily",
            parameter="t1",
            qid=str(rng.randrange(QUBITS)),
            start_at=datetime.fromisoformat(month_ago),
            end_at=datetime.fromisoformat(now_iso),
        ),
        "timeseries (whole chip, 7 days)": lambda: task_results.timeseries(
            db,
            "default",
            "256Q",
            tag="daily",
            parameter="t1",
            qid=None,
            start_at=datetime.fromisoformat(week_ago),
            end_at=datetime.fromisoformat(now_iso),
        ),
        "task results, latest": lambda: task_results.latest_results(
            db, "default", "256Q", "CheckT1", "qubit"
        ),
        "degradation trends": lambda: quality.degradation_trends(
            db, "default", catalog, min_streak=3, limit=50
        ),  # fmt: skip
        "degradation trends, as_of": lambda: quality.degradation_trends(
            db,
            "default",
            catalog,
            min_streak=3,
            limit=50,
            at=q.Moment(datetime.fromisoformat(as_of)),
        ),  # fmt: skip
        "policy violations": lambda: quality.policy_violations(db, "default", policy, limit=100),
        "recent changes (24 h)": lambda: changes.recent_changes(
            db, "default", limit=20, within_hours=24, parameter_names=None
        ),  # fmt: skip
        "stats": lambda: changes.stats(db, "default"),
    }
    recursive = (
        "WITH RECURSIVE walk(node, depth) AS (SELECT ?, 0 UNION"
        " SELECT {next}, w.depth + 1 FROM walk w JOIN prov_relation r ON r.project_id = 'default'"
        " AND {join} WHERE w.depth < 20 {rel}) SELECT node, min(depth) FROM walk GROUP BY node"
    )
    raw_sql = {
        "lineage (max_depth 20)": (
            recursive.format(next="r.object", join="r.subject = w.node", rel=""),
            t2_ids,
        ),  # fmt: skip
        "impact (max_depth 20)": (
            recursive.format(
                next="r.subject", join="r.object = w.node", rel="AND r.relation = 'wasDerivedFrom'"
            ),
            freq_ids,
        ),  # fmt: skip
    }
    print(f"\n{'query':30s} {'HTTP p50 / p99 ms':>20s} {'in-process p50 / p99':>22s} {'raw DuckDB CTE p50 / p99':>26s}")  # fmt: skip
    for name, fn in direct.items():
        samples = []
        for _ in range(args.samples):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        raw = ""
        if name in raw_sql:
            sql, ids = raw_sql[name]
            rs = []
            for _ in range(max(20, args.samples // 5)):
                t = time.perf_counter()
                con.execute(sql, [rng.choice(ids)]).fetchall()
                rs.append(time.perf_counter() - t)
            raw = pct(rs)
        print(f"{name:30s} {pct(http[name]):>20s} {pct(samples):>22s} {raw:>26s}")
    versions = con.execute("SELECT count(*) FROM parameter_version").fetchone()[0]
    relations = con.execute("SELECT count(*) FROM prov_relation").fetchone()[0]
    print(f"\n{total:,} events, {versions:,} parameter versions, {relations:,} relations")
    con.close()


if __name__ == "__main__":
    main()
