"""Golden tests of the dashboard queries (provenance, metrics, chip metric views) against
a running `qledger serve`.

A generated calibration history of a 64-qubit chip (six daily executions, four tasks per
qubit, a cross-resonance task on some couplings) goes in as commands over NATS; the
expected answers are computed here, from the generated data alone, and compared with
what the HTTP API answers, now and `as_of` instants between the days.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest

from tests.e2e.serving import Serve, run_bounded

pytestmark = pytest.mark.e2e

DAYS = 6
QUBITS = 64
DEGRADING = {5, 17, 42}  # t1 falls by 6 us every day on these
LOW_T1 = {9}  # t1 under the policy minimum (20 us) on the last day
NOISY = {33}  # t1 falls by 1 us a day with a 5 us error: not significant
UNCALIBRATED = 63  # its T1 is last measured on day 2: stale by the policy's 48 h
# The last day ends three hours before the test runs.
DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS - 1, hours=3)


@dataclass
class Version:
    entity_id: str
    chip: str
    qid: str
    name: str
    value: float
    error: float | None
    day: int
    task_name: str
    used: list[str]
    valid_from: datetime


@dataclass
class History:
    """The generated lab history, as the test knows it (no server involved)."""

    versions: list[Version] = field(default_factory=list)
    cut: list[datetime] = field(default_factory=list)  # after day d was recorded

    def series(self, chip: str, qid: str, name: str, upto_day: int = DAYS) -> list[Version]:
        return [
            v
            for v in self.versions
            if (v.chip, v.qid, v.name) == (chip, qid, name) and v.day < upto_day
        ]

    def by_id(self) -> dict[str, Version]:
        return {v.entity_id: v for v in self.versions}


def day_tasks(rng: random.Random, day: int, history: History) -> list[list[tuple[str, dict]]]:
    """The day's task results in waves: a wave reads only what earlier waves wrote."""
    ex = f"d{day}"
    base = DAY0 + timedelta(days=day)
    waves: list[list[tuple[str, dict]]] = [[], [], [], []]

    def task(wave, name, qid, minute, inputs, outputs, chip="64Q", execution=ex):
        tid = f"{name.lower()}-{qid}"
        body = {
            "task_id": tid,
            "task_name": name,
            "qid": qid,
            "task_type": "coupling" if "-" in qid else "qubit",
            "input_parameters": inputs,
            "output_parameters": {
                k: {"value": v, "error": e, "unit": "us"} for k, (v, e) in outputs.items()
            },
            "start_at": (base + timedelta(minutes=minute)).isoformat(),
            "end_at": (base + timedelta(minutes=minute + 1)).isoformat(),
        }
        known = {(v.chip, v.qid, v.name): v.entity_id for v in history.versions}
        used = []
        for k, spec in inputs.items():
            if "entity_id" in spec:
                used.append(spec["entity_id"])
            elif (chip, spec.get("qid", qid), k) in known:
                used.append(known[(chip, spec.get("qid", qid), k)])
        for k, (v, e) in outputs.items():
            history.versions.append(
                Version(
                    f"{k}:{qid}:{execution}:{tid}", chip, qid, k, v, e, day, name,
                    sorted(set(used)), base + timedelta(minutes=minute + 1),
                )
            )  # fmt: skip
        waves[wave].append((execution, body))

    for q in range(QUBITS):
        qid = str(q)
        task(0, "CheckQubitFrequency", qid, 0, {}, {"qubit_frequency": (7.0 + q / 100 + rng.gauss(0, 1e-3), 1e-4)})  # fmt: skip
        if q in DEGRADING:
            t1 = (90.0 - 6 * day, 0.5)
        elif q in NOISY:
            t1 = (60.0 - day, 5.0)
        elif q in LOW_T1 and day == DAYS - 1:
            t1 = (12.0, 0.5)
        else:
            t1 = (rng.uniform(40, 100), 1.0)
        if not (q == UNCALIBRATED and day > 2):
            task(1, "CheckT1", qid, 10, {"qubit_frequency": {}}, {"t1": t1})
        task(1, "CheckX90", qid, 10, {"qubit_frequency": {}}, {"x90_gate_fidelity": (rng.uniform(0.995, 0.9999), None)})  # fmt: skip
        task(2, "CheckT2Echo", qid, 20, {"qubit_frequency": {}, "t1": {}}, {"t2_echo": (rng.uniform(20, 80), 1.0)})  # fmt: skip
    # Cross resonance on a different set of couplings each day (added / removed params).
    for q in range(day, QUBITS - 1, 7):
        if q % 8 != 7:
            task(3, "CheckZX90", f"{q}-{q + 1}", 30, {"x90_gate_fidelity": {"qid": str(q)}}, {"zx90_gate_fidelity": (rng.uniform(0.9, 0.99), None)})  # fmt: skip
    return waves


async def send(nc, subject: str, body: dict, token: str) -> dict:
    msg = await nc.request(
        subject, json.dumps(body).encode(), timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    reply = json.loads(msg.data)
    assert reply["status"] == "accepted", (body, reply)
    return reply


async def load_history(serve: Serve, history: History) -> int:
    rng = random.Random(7)
    nc = await nats.connect(serve.nats_url)
    token, position = serve.token, 0
    try:
        await send(nc, "qledger.cmd.chip.register", {"chip_id": "64Q", "size": QUBITS}, token)
        await send(nc, "qledger.cmd.chip.register", {"chip_id": "4Q", "size": 4}, token)
        for day in range(DAYS):
            start = {"execution_id": f"d{day}", "chip_id": "64Q", "name": f"day {day}",
                     "started_at": (DAY0 + timedelta(days=day)).isoformat(),
                     "tags": ["daily", "odd"] if day % 2 else ["daily"]}  # fmt: skip
            await send(nc, "qledger.cmd.calibration.start_execution", start, token)
            for wave in day_tasks(rng, day, history):
                replies = await asyncio.gather(
                    *(
                        send(
                            nc,
                            "qledger.cmd.calibration.record_task_result",
                            {"execution_id": ex, "task": body},
                            token,
                        )  # fmt: skip
                        for ex, body in wave
                    )
                )
                position = max([position, *(r["position"] for r in replies)])
            await asyncio.sleep(0.05)
            history.cut.append(datetime.now(UTC))
            await asyncio.sleep(0.05)
        # Another chip with a qubit "0" too: its values must never mix with 64Q's.
        await send(nc, "qledger.cmd.calibration.start_execution", {"execution_id": "b0", "chip_id": "4Q"}, token)  # fmt: skip
        t = DAY0 + timedelta(hours=2)
        body = {"task_id": "t1-0", "task_name": "CheckT1", "qid": "0",
                "output_parameters": {"t1": {"value": 1234.0, "unit": "us"}},
                "start_at": t.isoformat(), "end_at": (t + timedelta(minutes=1)).isoformat()}  # fmt: skip
        reply = await send(nc, "qledger.cmd.calibration.record_task_result", {"execution_id": "b0", "task": body}, token)  # fmt: skip
        history.versions.append(Version("t1:0:b0:t1-0", "4Q", "0", "t1", 1234.0, None, -1, "CheckT1", [], t + timedelta(minutes=1)))  # fmt: skip
        return reply["position"]
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[httpx.Client, History]]:
    serve = Serve(Path(tmp_path_factory.mktemp("golden")), None).start()
    history = History()
    position = run_bounded(load_history(serve, history))
    client = serve.client()
    client.headers["X-Min-Position"] = str(position)
    assert client.get("/api/provenance/stats").status_code == 200
    del client.headers["X-Min-Position"]
    yield client, history
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


def get(api: httpx.Client, path: str, **params) -> dict:
    r = api.get(path, params=params)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def test_history_is_per_chip_and_as_of_shows_the_past(lab):
    api, h = lab
    r = api.get("/api/provenance/history", params={"parameter_name": "t1", "qid": "0"})
    assert r.status_code == 422 and r.json()["code"] == "ambiguous_qid"
    got = get(api, "/api/provenance/history", parameter_name="t1", qid="5", chip_id="64Q")
    expected = h.series("64Q", "5", "t1")
    assert got["total_versions"] == DAYS
    assert [v["value"] for v in got["versions"]] == [v.value for v in reversed(expected)]
    # valid_until of each version is its successor's valid_from; the newest has none
    assert [v["valid_until"] for v in got["versions"]] == [None] + [
        v.valid_from.isoformat() for v in reversed(expected[1:])
    ]
    other = get(api, "/api/provenance/history", parameter_name="t1", qid="0", chip_id="4Q")
    assert [v["value"] for v in other["versions"]] == [1234.0]
    for day in (0, 2, 4):
        past = get(api, "/api/provenance/history", parameter_name="t1", qid="5", chip_id="64Q",
                   as_of=h.cut[day].isoformat())  # fmt: skip
        assert past["total_versions"] == day + 1
        assert past["versions"][0]["valid_until"] is None  # its successor was not known yet


def test_lineage_and_impact_follow_the_recorded_inputs(lab):
    api, h = lab
    ids = h.by_id()
    t2 = next(v for v in h.versions if v.name == "t2_echo" and v.qid == "3" and v.day == 4)
    got = get(api, f"/api/provenance/lineage/{t2.entity_id}", max_depth=20)
    ancestors = {n["node_id"] for n in got["nodes"] if n["node_type"] == "entity"}
    expected, todo = {t2.entity_id}, [t2.entity_id]
    while todo:
        for parent in ids[todo.pop()].used:
            if parent not in expected:
                expected.add(parent)
                todo.append(parent)
    assert ancestors == expected and len(expected) == 3  # itself, t1, qubit_frequency
    assert got["origin"]["entity"]["value"] == t2.value
    assert {e["relation_type"] for e in got["edges"]} == {
        "wasGeneratedBy",
        "wasDerivedFrom",
        "used",
    }
    activity = next(n for n in got["nodes"] if n["node_type"] == "activity")
    assert activity["activity"]["task_name"] in {"CheckT2Echo", "CheckT1", "CheckQubitFrequency"}
    # an older version reports that its series has moved on
    freq = next(n for n in got["nodes"] if n["node_id"].startswith("qubit_frequency"))
    assert (freq["entity"]["version"], freq["latest_version"]) == (5, DAYS)

    one = get(api, f"/api/provenance/lineage/{t2.entity_id}", max_depth=1)
    assert max(n["depth"] for n in one["nodes"]) == 1

    freq_id = next(v.entity_id for v in h.versions if v.name == "qubit_frequency" and v.qid == "3" and v.day == 3)  # fmt: skip
    impact = get(api, f"/api/provenance/impact/{freq_id}", max_depth=20)
    derived = {n["node_id"] for n in impact["nodes"]} - {freq_id}
    closure = {freq_id}
    for v in h.versions:  # versions are in recording order: parents come first
        if closure & set(v.used):
            closure.add(v.entity_id)
    assert derived == closure - {freq_id}
    assert any(d.startswith("zx90_gate_fidelity:3-4:") for d in derived)  # via x90 of Q3


def test_recommendations_are_a_plan_in_dependency_order(lab):
    api, h = lab
    freq_id = next(v.entity_id for v in h.versions if v.name == "qubit_frequency" and v.qid == "3" and v.day == 3)  # fmt: skip
    plan = get(api, f"/api/provenance/recommendations/{freq_id}", max_depth=20)
    order = [t["task_name"] for t in plan["recommended_tasks"]]
    assert set(order) == {"CheckT1", "CheckX90", "CheckT2Echo", "CheckZX90"}
    # T2 echo reads T1; ZX90 reads X90: each comes after what it reads
    assert order.index("CheckT1") < order.index("CheckT2Echo")
    assert order.index("CheckX90") < order.index("CheckZX90")
    by_name = {t["task_name"]: t for t in plan["recommended_tasks"]}
    assert by_name["CheckZX90"]["priority"] == 2 and by_name["CheckT1"]["priority"] == 1
    assert by_name["CheckZX90"]["affected_qids"] == ["3-4"]
    assert plan["total_affected_parameters"] == 4
    assert plan["source_parameter_name"] == "qubit_frequency" and plan["source_qid"] == "3"


def test_compare_two_days(lab):
    api, h = lab
    got = get(api, "/api/provenance/compare", execution_id_before="d4", execution_id_after="d5")

    def values(day):
        return {(v.name, v.qid): v.value for v in h.versions if v.day == day and v.chip == "64Q"}

    before, after = values(4), values(5)
    assert {(p["parameter_name"], p["qid"]) for p in got["added_parameters"]} == after.keys() - before.keys()  # fmt: skip
    assert {(p["parameter_name"], p["qid"]) for p in got["removed_parameters"]} == before.keys() - after.keys()  # fmt: skip
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    assert {(p["parameter_name"], p["qid"]) for p in got["changed_parameters"]} == changed
    assert got["unchanged_count"] == len(before.keys() & after.keys()) - len(changed)
    t1 = next(
        p for p in got["changed_parameters"] if p["parameter_name"] == "t1" and p["qid"] == "5"
    )
    assert t1["delta"] == pytest.approx(-6.0) and t1["delta_percent"] == pytest.approx(
        -6 / 66 * 100
    )
    r = api.get("/api/provenance/compare", params={"execution_id_before": "nope", "execution_id_after": "d5"})  # fmt: skip
    assert r.status_code == 404


def test_stats_executions_and_changes(lab):
    api, h = lab
    stats = get(api, "/api/provenance/stats")
    assert stats["total_entities"] == len(h.versions)
    derived = sum(len(v.used) for v in h.versions)
    assert stats["relation_counts"]["wasDerivedFrom"] == derived
    assert stats["relation_counts"]["wasGeneratedBy"] == len(h.versions)
    assert stats["total_activities"] == len({(v.day, v.task_name, v.qid) for v in h.versions})
    execs = get(api, "/api/provenance/executions", limit=3)["executions"]
    assert [e["execution_id"] for e in execs] == ["d5", "d4", "d3"]

    got = get(api, "/api/provenance/changes", limit=50, within_hours=24, parameter_names=["t1"])
    assert got["total_count"] == len([v for v in h.versions if v.name == "t1" and v.day == 5])
    assert len(got["changes"]) == 50  # the limit; total_count counts them all
    for c in got["changes"]:
        prev, cur = h.series("64Q", c["qid"], "t1")[-2:]
        assert (c["previous_value"], c["value"]) == (prev.value, cur.value)
        assert c["delta"] == pytest.approx(cur.value - prev.value)
    # As the lab stood after day 3: day 4 (27 h ago) was not recorded yet, day 3 (51 h
    # ago) falls in a 60 h window, day 2 (75 h ago) does not.
    past = get(api, "/api/provenance/changes", limit=50, within_hours=60,
               parameter_names=["t1"], as_of=h.cut[3].isoformat())  # fmt: skip
    assert past["total_count"] == len([v for v in h.versions if v.name == "t1" and v.day == 3])
    assert {c["execution_id"] for c in past["changes"]} == {"d3"}


def streak(
    values: list[float], errors: list[float | None], *, falling: bool, significance: bool
) -> int:
    """Consecutive worsening steps ending at the newest value, computed independently:
    with significance, a step within the combined error is skipped and the next step is
    compared with the last significant value."""
    count, ref, ref_err = 0, values[0], errors[0] or 0.0
    for v, e in zip(values[1:], errors[1:], strict=True):
        if significance and abs(v - ref) < ((e or 0.0) ** 2 + ref_err**2) ** 0.5:
            continue
        worse = v < ref if falling else v > ref
        count = count + 1 if worse else 0
        ref, ref_err = v, e or 0.0
    return count


def test_degradation_trends(lab):
    api, h = lab
    for significance in (False, True):
        for day in (DAYS, 4):
            expected = set()
            for q in range(QUBITS):
                for name in ("t1", "t2_echo", "x90_gate_fidelity"):
                    s = h.series("64Q", str(q), name, upto_day=day)
                    n = streak([v.value for v in s], [v.error for v in s], falling=True, significance=significance)  # fmt: skip
                    if n >= 3:
                        expected.add((name, str(q), n))
            params = {"min_streak": 3, "limit": 100, "significance": significance}
            if day < DAYS:
                params["as_of"] = h.cut[day - 1].isoformat()
            got = get(api, "/api/provenance/degradation-trends", **params)
            assert {(t["parameter_name"], t["qid"], t["streak_count"]) for t in got["trends"]} == expected  # fmt: skip
            assert got["total_count"] == len(expected)
    t = next(
        t for t in get(api, "/api/provenance/degradation-trends", min_streak=5)["trends"] if t["qid"] == "5"
    )  # fmt: skip
    assert (
        t["values"] == [90.0, 84.0, 78.0, 72.0, 66.0, 60.0] and t["evaluation_mode"] == "maximize"
    )
    assert t["total_delta"] == -30.0 and t["delta_per_step"] == -6.0
    noisy = get(
        api, "/api/provenance/degradation-trends", significance=True, parameter_names=["t1"]
    )
    assert "33" not in {t["qid"] for t in noisy["trends"]}  # 1 us steps, 5 us errors: noise


def test_policy_violations(lab):
    api, h = lab
    got = get(api, "/api/provenance/policy/violations", parameter_names=["t1"], limit=1000)
    low = {(v["qid"], v["check_type"]) for v in got["violations"] if v["check_type"] == "min"}
    assert low == {("9", "min")}
    stale = [v for v in got["violations"] if v["check_type"] == "staleness" and v["chip_id"] == "64Q"]  # fmt: skip
    newest = {v.qid: v for v in h.versions if v.name == "t1" and v.chip == "64Q"}
    expected = {q for q, v in newest.items() if datetime.now(UTC) - v.valid_from > timedelta(hours=48)}  # fmt: skip
    assert {v["qid"] for v in stale} == expected == {str(UNCALIBRATED)}
    assert {v["chip_id"] for v in got["violations"]} <= {"64Q", "4Q"}
    v9 = next(v for v in got["violations"] if v["qid"] == "9" and v["check_type"] == "min")
    assert (v9["measured"], v9["warn_threshold"], v9["severity"]) == (12.0, 20.0, "warn")
    # as of before day 5 nobody was under the minimum
    past = get(api, "/api/provenance/policy/violations", parameter_names=["t1"], limit=1000,
               as_of=h.cut[4].isoformat())  # fmt: skip
    assert not [v for v in past["violations"] if v["check_type"] == "min"]

    nine = next(v.entity_id for v in h.versions if v.name == "qubit_frequency" and v.qid == "9" and v.day == 5)  # fmt: skip
    impact = get(api, f"/api/provenance/policy/impact/{nine}", max_depth=5)
    assert {(v["parameter_name"], v["qid"], v["check_type"]) for v in impact["violations"] if v["check_type"] == "min"} == {("t1", "9", "min")}  # fmt: skip


def test_bad_input_is_refused(lab):
    api, h = lab
    some = h.versions[-1].entity_id
    cases = [
        (f"/api/provenance/lineage/{some}", {"max_depth": 0}, 422),
        (f"/api/provenance/impact/{some}", {"max_depth": 21}, 422),
        ("/api/provenance/lineage/nope:0:x:y", {}, 404),
        ("/api/provenance/recommendations/nope:0:x:y", {}, 404),
        ("/api/provenance/stats", {"as_of": "2999-01-01T00:00:00Z"}, 422),
        ("/api/provenance/stats", {"as_of": "yesterday"}, 422),
        ("/api/provenance/stats", {"as_of": "2026-01-01T00:00:00", "tz": "Mars/Olympus"}, 422),
        ("/api/provenance/degradation-trends", {"min_streak": 2}, 422),
        ("/api/provenance/changes", {"within_hours": 0}, 422),
        ("/api/provenance/policy/violations", {"severity": "fatal"}, 422),
    ]
    for path, params, status in cases:
        r = api.get(path, params=params)
        assert r.status_code == status, (path, params, r.text)
        assert {"code", "message"} <= r.json().keys()
    # an entity recorded after the instant asked about did not exist then
    r = api.get(f"/api/provenance/entities/{some}", params={"as_of": h.cut[0].isoformat()})
    assert r.status_code == 404


def test_lineage_p99_on_this_history(lab):
    """Not a benchmark (bench/queries.py is): a guard that traversal stays in memory."""
    api, h = lab
    ids = [v.entity_id for v in h.versions if v.name == "t2_echo"][:50]
    took = []
    for e in ids:
        start = time.perf_counter()
        get(api, f"/api/provenance/lineage/{e}", max_depth=20)
        took.append(time.perf_counter() - start)
    assert sorted(took)[int(0.99 * len(took))] < 0.25


# -- metrics and chip metric views -------------------------------------------------------
QUBIT_METRICS = ("t1", "t2_echo", "qubit_frequency", "x90_gate_fidelity")


def newest(h: History, name: str, upto_day: int = DAYS) -> dict[str, Version]:
    out = {}
    for v in h.versions:
        if v.chip == "64Q" and v.name == name and v.day < upto_day:
            out[v.qid] = v
    return out


def test_metrics_config_is_metrics_yaml(lab):
    api, _ = lab
    config = get(api, "/api/metrics/config")
    assert config["qubit_metrics"]["t1"]["evaluation"]["mode"] == "maximize"
    assert config["coupling_metrics"]["zx90_gate_fidelity"]["scale"] == 100
    assert "color_scale" in config


def test_chip_metrics_latest_best_and_average(lab):
    api, h = lab
    latest = get(api, "/api/metrics/chips/64Q/metrics")
    assert latest["qubit_count"] == QUBITS
    for name in QUBIT_METRICS:
        assert {q: m["value"] for q, m in latest["qubit_metrics"][name].items()} == {
            q: v.value for q, v in newest(h, name).items()
        }
        # times leave with an explicit offset, as everywhere else
        assert {q: m["calibrated_at"] for q, m in latest["qubit_metrics"][name].items()} == {
            q: v.valid_from.isoformat() for q, v in newest(h, name).items()
        }
    assert {q: m["value"] for q, m in latest["coupling_metrics"]["zx90_gate_fidelity"].items()} == {
        q: v.value for q, v in newest(h, "zx90_gate_fidelity").items()
    }
    recent = get(api, "/api/metrics/chips/64Q/metrics", within_hours=24)
    assert set(recent["qubit_metrics"]["t1"]) == {str(q) for q in range(QUBITS)} - {
        str(UNCALIBRATED)
    }

    best = get(api, "/api/metrics/chips/64Q/metrics", selection_mode="best")
    for name in QUBIT_METRICS:
        for qid, got in best["qubit_metrics"][name].items():
            values = [v.value for v in h.series("64Q", qid, name)]
            expected = values[-1] if name == "qubit_frequency" else max(values)  # mode none: latest
            assert got["value"] == expected, (name, qid)

    avg = get(api, "/api/metrics/chips/64Q/metrics", selection_mode="average")
    for qid, got in avg["qubit_metrics"]["t1"].items():
        values = [v.value for v in h.series("64Q", qid, "t1")]
        assert got["count"] == len(values)
        assert got["value"] == pytest.approx(statistics.mean(values))
        assert got["stddev"] == pytest.approx(statistics.stdev(values))
    # the other chip's qubit "0" keeps its own value
    assert get(api, "/api/metrics/chips/4Q/metrics")["qubit_metrics"]["t1"]["0"]["value"] == 1234.0
    assert latest["qubit_metrics"]["t1"]["0"]["value"] != 1234.0


def test_heatmap_summary_and_their_past(lab):
    api, h = lab
    t1 = get(api, "/api/chips/64Q/metrics/heatmap/t1")
    assert t1["values"] == {q: v.value for q, v in newest(h, "t1").items()}
    assert t1["unit"] == "µs"
    zx = get(api, "/api/chips/64Q/metrics/heatmap/zx90_gate_fidelity")
    assert zx["values"] == {q: v.value for q, v in newest(h, "zx90_gate_fidelity").items()}
    past = get(api, "/api/chips/64Q/metrics/heatmap/t1", as_of=h.cut[2].isoformat())
    assert past["values"] == {q: v.value for q, v in newest(h, "t1", upto_day=3).items()}

    summary = get(api, "/api/chips/64Q/metrics/summary")
    for name in QUBIT_METRICS:
        assert summary["averages"][name] == pytest.approx(
            statistics.mean(v.value for v in newest(h, name).values())
        )
    r = api.get("/api/chips/64Q/metrics/heatmap/t3")
    assert r.status_code == 404 and r.json()["code"] == "unknown_metric"
    assert "t1" in r.json()["message"] and "zx90_gate_fidelity" in r.json()["message"]
    assert api.get("/api/chips/nope/metrics/heatmap/t1").status_code == 404


def test_metric_history_and_dates(lab):
    api, h = lab
    got = get(api, "/api/metrics/chips/64Q/qubits/5/history", metric="t1")
    expected = list(reversed(h.series("64Q", "5", "t1")))
    assert [x["value"] for x in got["history"]] == [v.value for v in expected]
    first = got["history"][0]
    assert first["task_id"] == "checkt1-5" and first["execution_id"] == f"d{DAYS - 1}"
    assert first["output_parameters"]["t1"]["value"] == expected[0].value
    assert "qubit_frequency" in first["input_parameters"]
    assert len(get(api, "/api/metrics/chips/64Q/qubits/5/history", metric="t1", limit=2)["history"]) == 2  # fmt: skip
    assert len(get(api, "/api/metrics/chips/64Q/qubits/5/history", metric="t1", within_days=2)["history"]) == 2  # fmt: skip
    zx = get(api, "/api/metrics/chips/64Q/couplings/3-4/history", metric="zx90_gate_fidelity")
    assert [x["value"] for x in zx["history"]] == [v.value for v in reversed(h.series("64Q", "3-4", "zx90_gate_fidelity"))]  # fmt: skip
    wrong = api.get("/api/metrics/chips/64Q/qubits/5/history", params={"metric": "zx90_gate_fidelity"})  # fmt: skip
    assert wrong.status_code == 404 and wrong.json()["code"] == "unknown_metric"

    for zone in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        dates = get(api, "/api/chips/64Q/dates", tz=zone)["data"]
        tz = ZoneInfo(zone)
        assert dates == sorted({(DAY0 + timedelta(days=d)).astimezone(tz).strftime("%Y%m%d") for d in range(DAYS)}, reverse=True)  # fmt: skip
    assert api.get("/api/chips/64Q/dates", params={"tz": "Nowhere/Else"}).status_code == 422


# -- task results and tags ----------------------------------------------------------------
def test_latest_task_results_now_and_on_a_day(lab):
    api, h = lab
    got = get(api, "/api/task-results/qubits/latest", chip_id="64Q", task="CheckT1")
    assert got["task_name"] == "CheckT1"
    newest_t1 = newest(h, "t1")
    assert set(got["result"]) == set(newest_t1) == {str(q) for q in range(QUBITS)}
    for qid, result in got["result"].items():
        assert result["output_parameters"]["t1"]["value"] == newest_t1[qid].value
        assert result["status"] == "completed" and result["task_id"] == f"checkt1-{qid}"
    zx = get(api, "/api/task-results/couplings/latest", chip_id="64Q", task="CheckZX90")
    assert {k: r["output_parameters"]["zx90_gate_fidelity"]["value"] for k, r in zx["result"].items()} == {
        q: v.value for q, v in newest(h, "zx90_gate_fidelity").items()
    }  # fmt: skip

    for zone in ("UTC", "Asia/Tokyo"):
        tz = ZoneInfo(zone)
        date = (DAY0 + timedelta(days=3)).astimezone(tz).strftime("%Y%m%d")
        expected = {}
        for v in h.versions:  # in time order: the last one of the day wins
            if (
                v.chip == "64Q"
                and v.name == "t1"
                and v.valid_from.astimezone(tz).strftime("%Y%m%d") == date
            ):
                expected[v.qid] = v.value
        on_day = get(api, "/api/task-results/qubits/history", chip_id="64Q", task="CheckT1", date=date, tz=zone)  # fmt: skip
        assert {q: r["output_parameters"]["t1"]["value"] for q, r in on_day["result"].items()} == expected  # fmt: skip
        # (Which qubits the day holds depends on the hour the test runs: in Tokyo a
        # day's measurements can straddle midnight. The equality above is the check.)
        assert len(expected) >= QUBITS - 1


def test_one_targets_history_of_a_task(lab):
    api, h = lab
    got = get(api, "/api/task-results/qubits/5/history", chip_id="64Q", task="CheckT1")
    assert got["name"] == "CheckT1"
    values = [r["output_parameters"]["t1"]["value"] for r in got["data"].values()]
    assert values == [v.value for v in reversed(h.series("64Q", "5", "t1"))]
    assert {r["execution_id"] for r in got["data"].values()} == {f"d{d}" for d in range(DAYS)}
    pair = get(api, "/api/task-results/couplings/3-4/history", chip_id="64Q", task="CheckZX90")
    assert len(pair["data"]) == len(h.series("64Q", "3-4", "zx90_gate_fidelity"))
    past = get(api, "/api/task-results/qubits/5/history", chip_id="64Q", task="CheckT1", as_of=h.cut[1].isoformat())  # fmt: skip
    assert len(past["data"]) == 2


def test_timeseries_by_tag_and_the_tags(lab):
    api, h = lab
    window = {"start_at": (DAY0 - timedelta(days=1)).isoformat(), "end_at": datetime.now(UTC).isoformat()}  # fmt: skip
    got = get(api, "/api/task-results/timeseries", chip_id="64Q", tag="odd", parameter="t1", **window)  # fmt: skip
    expected: dict[str, list[float]] = {}
    for v in h.versions:
        if v.chip == "64Q" and v.name == "t1" and v.day % 2 == 1:
            expected.setdefault(v.qid, []).append(v.value)
    assert {q: [p["value"] for p in points] for q, points in got["data"].items()} == expected
    one = get(api, "/api/task-results/timeseries", chip_id="64Q", tag="daily", parameter="t1", qid="5", **window)  # fmt: skip
    assert list(one["data"]) == ["5"] and len(one["data"]["5"]) == DAYS
    narrow = {
        "start_at": (DAY0 + timedelta(days=4, hours=-1)).isoformat(),
        "end_at": window["end_at"],
    }
    recent = get(api, "/api/task-results/timeseries", chip_id="64Q", tag="daily", parameter="t1", qid="5", **narrow)  # fmt: skip
    assert [p["execution_id"] for p in recent["data"]["5"]] == ["d4", "d5"]
    assert get(api, "/api/tags") == {"tags": [{"name": "daily"}, {"name": "odd"}]}

    bad = [
        ("/api/task-results/qubits/history", {"chip_id": "64Q", "task": "CheckT1", "date": "2026-11-01"}, 422),
        ("/api/task-results/qubits/history", {"chip_id": "64Q", "task": "CheckT1", "date": "20261341"}, 422),
        ("/api/task-results/qubits/latest", {"chip_id": "nope", "task": "CheckT1"}, 404),
        ("/api/task-results/timeseries", {"chip_id": "64Q", "tag": "x", "parameter": "t1", "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}, 422),
    ]  # fmt: skip
    for path, params, status in bad:
        r = api.get(path, params=params)
        assert r.status_code == status, (path, params, r.text)
