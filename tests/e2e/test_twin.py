"""The digital twin over HTTP against a running `qledger serve`: backends, jobs and their
results, controller commands as events that jobs run under, telemetry, config writes,
and every kind of bad input."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, alive, running

pytestmark = pytest.mark.e2e

TWIN = "/api/v1/digital-twin"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("twin")))


# One budget for every wait on a job: a long poll asks the server for LONG_POLL seconds,
# the client waits longer than that, and a job may take up to JOB_BUDGET in all (a loaded
# machine runs the same jobs several times slower).
JOB_BUDGET = 180.0
LONG_POLL = 20.0
CLIENT_TIMEOUT = LONG_POLL + 10.0


@pytest.fixture(scope="module")
def twin(served: Serve) -> httpx.Client:
    client = served.client()
    client.base_url = served.base + TWIN
    client.timeout = CLIENT_TIMEOUT
    return client


def finished(twin: httpx.Client, job: dict) -> httpx.Response:
    """The job's result once it ended: long polls, each shorter than the client's
    timeout, until the job's budget is spent."""
    deadline = time.monotonic() + JOB_BUDGET
    while True:
        r = twin.get(
            f"/jobs/{job['job_id']}/result",
            params={"wait": LONG_POLL, "min_position": job["position"]},
        )
        if r.status_code != 202 or time.monotonic() > deadline:
            return r


def run(twin: httpx.Client, circuits, *, backend="ibm_jakarta_like", shots=2000, **meta) -> dict:
    r = twin.post("/jobs", json={"backend_id": backend, "circuits": circuits, "shots": shots,
                                 "metadata": meta})  # fmt: skip
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "QUEUED"
    result = finished(twin, job)
    assert result.status_code == 200, result.text
    return result.json()


def noise_share(counts: dict[str, int]) -> float:
    """Share of a Bell pair's shots off the ideal outcomes 00 and 11."""
    return (counts.get("01", 0) + counts.get("10", 0)) / sum(counts.values())


def test_backends_have_topology_limits_and_positions(twin: httpx.Client):
    listed = {b["backend_id"]: b for b in twin.get("/backends").json()["backends"]}
    assert set(listed) == {"ibm_jakarta_like", "line_5", "heavy_hex_27", "square_64", "square_100"}
    jakarta = twin.get("/backends/ibm_jakarta_like").json()
    assert jakarta["num_qubits"] == 7 and jakarta["coupling_map"][0] == [0, 1]
    assert set(jakarta["basis_gates"]) == {"cx", "id", "rz", "sx", "x"}
    assert len(jakarta["qubit_positions"]) == 7
    assert jakarta["limits"]["max_shots"] == 100_000
    assert twin.get("/backends/nope").status_code == 404
    assert twin.get("/health").json()["status"] == "healthy"


def test_the_backend_shows_the_noise_it_runs_and_a_command_is_seen_at_once(
    twin: httpx.Client,
):
    """The detail and the telemetry serve the effective noise per qubit and coupling;
    a read right after a controller command (no min_position) already shows it."""
    noise = twin.get("/backends/line_5").json()["noise"]
    assert len(noise["qubits"]) == 5 and len(noise["edges"]) == 4
    q0, e01 = noise["qubits"][0], noise["edges"][0]
    assert q0["gate_error"] >= q0["gate_error_configured"] > 0  # relaxation is a floor
    assert {"t1_us", "t2_us", "readout_p1_given_0", "readout_p0_given_1", "gate_time_ns"} <= set(q0)
    assert e01["qubits"] == [0, 1] and e01["gate_error"] > 0 and e01["gate_time_ns"] > 0
    off = {"command_type": "inject_noise_override", "payload": {"gate_error_multiplier": 0}}
    assert twin.post("/controller/line_5/commands", json=off).status_code == 200
    seen = twin.get("/telemetry/qubits", params={"backend_id": "line_5"}).json()
    assert all(q["gate_error_configured"] == 0 for q in seen["qubits"])
    assert all(e["gate_error_configured"] == 0 for e in seen["edges"])
    assert 0 < seen["qubits"][0]["gate_error"] < q0["gate_error"]  # relaxation remains
    coherent = {"command_type": "set_qubit_noise",
                "payload": {"qubit": 2, "detuning_mhz": -0.25, "amplitude_error": 0.01}}  # fmt: skip
    assert twin.post("/controller/line_5/commands", json=coherent).status_code == 200
    q2 = twin.get("/telemetry/qubits", params={"backend_id": "line_5"}).json()["qubits"][2]
    assert (q2["detuning_mhz"], q2["amplitude_error"]) == (-0.25, 0.01)
    assert sorted(q2["overridden"]) == ["amplitude_error", "detuning_mhz"]
    reset = twin.post("/controller/line_5/commands", json={"command_type": "reset"})
    assert reset.status_code == 200
    back = twin.get("/backends/line_5").json()["noise"]["qubits"][0]
    # back to the config's value (drift moves it by ~1e-4 relative per second)
    assert back["gate_error_configured"] == pytest.approx(q0["gate_error_configured"], rel=1e-2)


def test_idle_time_and_circuits_as_written(twin: httpx.Client):
    """X, a delay, measure: decays with the delay; X x 20 at level 0 runs twenty gates
    (their errors show), at level 1 none (readout only)."""
    head = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1];'
    short, long_ = (f"{head} x q[0]; delay({t}us) q[0]; measure q[0] -> c[0];" for t in (0, 60))
    decayed = run(twin, [short, long_], shots=20_000, seed=5)["results"]
    p1 = [r["counts"].get("1", 0) / 20_000 for r in decayed]
    assert p1[1] < p1[0] - 0.1, p1
    assert all(r["approximation"] is None and r["parts"] for r in decayed)
    x20 = f"{head} " + "x q[0]; " * 20 + "measure q[0] -> c[0];"
    written = run(twin, [x20], shots=20_000, seed=5, optimization_level=0)["results"][0]
    merged = run(twin, [x20], shots=20_000, seed=5)["results"][0]
    assert written["counts"].get("1", 0) > merged["counts"].get("1", 0)
    bad = twin.post("/jobs", json={"backend_id": "line_5", "circuits": [x20],
                                   "metadata": {"optimization_level": "max"}})  # fmt: skip
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_optimization_level")


def test_a_bell_job_runs_and_its_seed_reproduces_it(twin: httpx.Client):
    first = run(twin, [BELL], seed=11)
    assert first["status"] == "COMPLETED"
    (circuit,) = first["results"]
    assert sum(circuit["counts"].values()) == 2000 and circuit["engine"] == "density_matrix"
    assert circuit["counts"]["00"] + circuit["counts"]["11"] > 1700
    assert 0 < noise_share(circuit["counts"]) < 0.15
    again = run(twin, [BELL], seed=11)
    assert again["results"][0]["counts"] == circuit["counts"]
    status = twin.get(f"/jobs/{first['job_id']}", params={"min_position": first["position"]}).json()
    assert status["status"] == "COMPLETED" and status["started_at"] and status["finished_at"]


def test_a_job_submitted_after_a_controller_command_runs_under_it(twin: httpx.Client):
    base = noise_share(run(twin, [BELL], backend="line_5", seed=3)["results"][0]["counts"])
    r = twin.post(
        "/controller/line_5/commands",
        json={"command_type": "inject_noise_override",
              "payload": {"gate_error_multiplier": 40, "readout_error_multiplier": 8}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    # At once, without waiting for anything: the job must see the command.
    job = run(twin, [BELL], backend="line_5", seed=3)
    assert noise_share(job["results"][0]["counts"]) > base + 0.2
    trace = twin.get(
        "/telemetry/trace/export", params={"job_id": job["job_id"], "min_position": job["position"]}
    ).json()
    assert trace["ran_after_position"] == r.json()["position"]
    assert trace["controller_state"]["gate_error_multiplier"] == 40
    kinds = [e["event_type"] for e in trace["events"]]
    assert kinds == ["job_submitted", "job_started", "job_completed"]
    state = twin.get("/controller/line_5/state").json()
    assert state["effective_multipliers"]["gate_error"] == 40
    assert (
        twin.post("/controller/line_5/commands", json={"command_type": "reset"}).status_code == 200
    )
    calm = run(twin, [BELL], backend="line_5", seed=3)
    assert noise_share(calm["results"][0]["counts"]) < base + 0.05


def test_qubit_telemetry_shows_overrides_and_revert(twin: httpx.Client):
    cmd = {
        "command_type": "set_qubit_noise",
        "payload": {"qubit": 3, "t1_us": 42.0, "readout_error": 0.2},
    }
    r = twin.post("/controller/ibm_jakarta_like/commands", json=cmd)
    twin.headers["X-Min-Position"] = str(r.json()["position"])
    q3 = twin.get("/telemetry/qubits", params={"backend_id": "ibm_jakarta_like"}).json()["qubits"][
        3
    ]
    assert (q3["t1_us"], q3["readout_error"]) == (42.0, 0.2)
    assert q3["overridden"] == ["readout_error", "t1_us"]
    r = twin.post("/controller/ibm_jakarta_like/commands",
                  json={"command_type": "set_qubit_noise", "payload": {"qubit": 3, "t1_us": -1}})  # fmt: skip
    twin.headers["X-Min-Position"] = str(r.json()["position"])
    q3 = twin.get("/telemetry/qubits", params={"backend_id": "ibm_jakarta_like"}).json()["qubits"][
        3
    ]
    assert q3["t1_us"] == 98.4 and q3["readout_error"] == 0.2  # t1 back to the config value
    del twin.headers["X-Min-Position"]


def test_controller_loop_cadence_and_event_log(twin: httpx.Client):
    for _ in range(3):
        r = twin.post("/controller/heavy_hex_27/commands",
                      json={"command_type": "policy_update", "payload": {"gate_error_multiplier": 1.1}})  # fmt: skip
        assert r.status_code == 200
    twin.headers["X-Min-Position"] = str(r.json()["position"])
    loop = twin.get("/telemetry/loop", params={"backend_id": "heavy_hex_27"}).json()
    assert loop["count"] == 3 and loop["interval_s"]["min"] >= 0
    events = twin.get("/telemetry/events", params={"backend_id": "heavy_hex_27"}).json()["events"]
    assert [e["event_type"] for e in events] == ["controller_command"] * 3
    assert events[0]["payload"]["command_type"] == "policy_update"
    del twin.headers["X-Min-Position"]


def test_cancel_a_queued_job_and_not_a_finished_one(twin: httpx.Client):
    # A long job keeps the runner busy while the second one waits in the queue.
    wide = (
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[12]; creg c[12]; '
        + "".join(f"t q[{i}]; h q[{i}]; cx q[{i}],q[{(i + 1) % 12}];" for i in range(12))
        + " measure q -> c;"
    )
    slow = twin.post(
        "/jobs", json={"backend_id": "square_64", "circuits": [wide] * 3, "shots": 256}
    ).json()
    queued = twin.post(
        "/jobs", json={"backend_id": "line_5", "circuits": [BELL], "shots": 10}
    ).json()
    r = twin.delete(f"/jobs/{queued['job_id']}")
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    gone = twin.get(
        f"/jobs/{queued['job_id']}/result", params={"min_position": r.json()["position"]}
    )
    assert (gone.status_code, gone.json()["code"]) == (410, "job_cancelled")
    done = finished(twin, slow)
    assert done.status_code == 200 and done.json()["results"][0]["engine"] == "trajectories"
    again = twin.delete(f"/jobs/{slow['job_id']}")
    assert (again.status_code, again.json()["code"]) == (409, "job_finished")


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (
            {"circuits": ['OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];']},
            422,
            "invalid_qasm",
            "line 4, column 0",
        ),
        ({"backend_id": "nope"}, 404, "unknown_backend", "ibm_jakarta_like"),
        ({"shots": 0}, 422, "invalid_shots", "100000"),
        ({"shots": 100_001}, 422, "invalid_shots", "max_shots"),
        ({"circuits": [BELL] * 21}, 422, "too_many_circuits", "at most 20"),
        (
            {"circuits": [BELL.replace("q[2]", "q[9]").replace("c[2]", "c[9]")]},
            422,
            "too_many_qubits",
            "has 7",
        ),
        (
            {"circuits": ["OPENQASM 2.0; qreg q[2]; creg c[1]; measure q -> c;"]},
            422,
            "invalid_qasm",
            "line 1, column",
        ),
    ],
)
def test_bad_jobs_are_refused_and_change_nothing(twin, served, body, status, code, says):
    before = served.health()["store_position"]
    r = twin.post("/jobs", json={"backend_id": "ibm_jakarta_like", "circuits": [BELL], **body})
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert says in r.json()["message"]
    assert served.health()["store_position"] == before


@pytest.mark.parametrize(
    ("command", "code", "says"),
    [
        ({"command_type": "warp_drive"}, "unknown_command_type", "set_qubit_noise"),
        (
            {"command_type": "policy_update", "payload": {"gain": 2}},
            "unknown_payload_field",
            "drift_multiplier",
        ),
        (
            {"command_type": "set_qubit_noise", "payload": {"qubit": 7, "t1_us": 50}},
            "qubit_out_of_range",
            "0..6",
        ),
        (
            {"command_type": "set_scenario", "payload": {"scenario_name": "sunny"}},
            "unknown_scenario",
            "noisy_day",
        ),
    ],
)
def test_bad_controller_commands_are_refused(twin, served, command, code, says):
    before = served.health()["store_position"]
    r = twin.post("/controller/ibm_jakarta_like/commands", json=command)
    assert (r.status_code, r.json()["code"]) == (422, code), r.text
    assert says in r.json()["message"]
    assert served.health()["store_position"] == before


def test_config_writes_are_validated_events(twin: httpx.Client, served: Serve):
    files = [f["path"] for f in twin.get("/config").json()["files"]]
    assert "backends.yaml" in files and "noise/ibm_jakarta_like.yaml" in files
    path = "scheduler/default.yaml"
    original = twin.get("/config/content", params={"path": path}).json()["content"]
    before = served.health()["store_position"]
    broken = twin.put(
        "/config/content", json={"path": path, "content": original + "max_shotz: 5\n"}
    )
    assert (broken.status_code, broken.json()["code"]) == (422, "invalid_config")
    assert "scheduler/default.yaml:6: max_shotz: unknown key" in broken.json()["message"]
    assert served.health()["store_position"] == before
    assert twin.get("/config/content", params={"path": path}).json()["content"] == original
    assert (
        twin.put("/config/content", json={"path": "../../etc/passwd", "content": "x"}).status_code
        == 404
    )

    smaller = original.replace("max_shots: 100000", "max_shots: 500")
    r = twin.put("/config/content", json={"path": path, "content": smaller})
    assert r.status_code == 200, r.text
    twin.headers["X-Min-Position"] = str(r.json()["position"])
    assert twin.get("/config/content", params={"path": path}).json()["content"] == smaller
    refused = twin.post("/jobs", json={"backend_id": "line_5", "circuits": [BELL], "shots": 501})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_shots")
    assert twin.get("/backends/line_5").json()["limits"]["max_shots"] == 500
    assert twin.put("/config/content", json={"path": path, "content": original}).status_code == 200
    del twin.headers["X-Min-Position"]


def test_metrics_in_json_and_prometheus(twin: httpx.Client):
    job = run(twin, [BELL], backend="line_5", shots=100)
    metrics = twin.get("/metrics", params={"min_position": job["position"]}).json()["backends"]
    assert metrics["line_5"]["completed_jobs"] >= 1 and metrics["line_5"]["avg_run_latency_s"] >= 0
    text = twin.get("/metrics/prometheus").text
    assert 'qledger_twin_completed_jobs{backend_id="line_5"}' in text


def test_scenario_compatibility_reports_ignored_keys(twin: httpx.Client, served: Serve):
    path = "scenarios/quiet_night.yaml"
    content = twin.get("/config/content", params={"path": path}).json()["content"]
    r = twin.put("/config/content", json={"path": path, "content": content + "humidity: 0.4\n"})
    assert r.status_code == 200, r.text
    r = twin.post("/controller/line_5/commands",
                  json={"command_type": "set_scenario", "payload": {"scenario_name": "quiet_night"}})  # fmt: skip
    twin.headers["X-Min-Position"] = str(r.json()["position"])
    report = twin.get("/telemetry/scenario/compatibility", params={"backend_id": "line_5"}).json()
    assert report["scenario"] == "quiet_night" and report["ignored"] == ["humidity"]
    assert "gate_error_multiplier" in report["recognized"]
    del twin.headers["X-Min-Position"]


def test_another_team_sees_neither_jobs_nor_controller_state(twin: httpx.Client, served: Serve):
    job = run(twin, [BELL], backend="line_5", shots=50)
    mine = twin.get(f"/jobs/{job['job_id']}", params={"min_position": job["position"]})
    assert mine.status_code == 200
    project = (
        served.client().post("/api/projects", json={"name": "twin team b"}).json()["project_id"]
    )
    theirs = {"X-Project-Id": project}
    assert twin.get(f"/jobs/{job['job_id']}", headers=theirs).status_code == 404
    state = twin.get("/controller/line_5/state", headers=theirs).json()
    assert state["commands_applied"] == 0
    events = twin.get("/telemetry/events", headers=theirs).json()
    assert events["events"] == []


def test_the_event_stream_delivers_live_events(twin: httpx.Client, served: Serve):
    with httpx.stream(
        "GET", served.base + TWIN + "/telemetry/events/stream", params={"backend_id": "line_5"},
        headers=twin.headers, timeout=20,
    ) as stream:  # fmt: skip
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        twin.post("/controller/line_5/commands",
                  json={"command_type": "set_adc_gain", "payload": {"readout_error_multiplier": 1.2}})  # fmt: skip
        got = []
        for line in lines:
            got.append(line)
            if line.startswith("data:"):
                break
    assert "event: controller_command" in got
    assert '"command_type":"set_adc_gain"' in got[-1]


def test_queued_and_running_jobs_survive_a_kill(tmp_path: Path):
    serve = Serve(tmp_path, None).start()
    client = serve.client()
    client.base_url = serve.base + TWIN
    wide = (
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[12]; creg c[12]; '
        + "".join(f"t q[{i}]; h q[{i}]; cx q[{i}],q[{(i + 1) % 12}];" for i in range(12))
        + " measure q -> c;"
    )
    slow = client.post(
        "/jobs",
        json={
            "backend_id": "square_64",
            "circuits": [wide] * 2,
            "shots": 128,
            "metadata": {"seed": 1},
        },
    ).json()
    queued = client.post(
        "/jobs",
        json={"backend_id": "line_5", "circuits": [BELL], "shots": 100, "metadata": {"seed": 2}},
    ).json()
    children = serve.children()
    serve.proc.send_signal(signal.SIGKILL)
    serve.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children), "a killed qledger left children behind"

    serve.start()
    client = serve.client()
    client.base_url = serve.base + TWIN
    client.timeout = CLIENT_TIMEOUT
    for job in (slow, queued):
        r = finished(client, job)
        assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


# The twin reference's "Python (requests)" client example, verbatim from its
# documentation except the base URL and the token.
REFERENCE_CLIENT = """
import requests, time

BASE = "http://localhost/api/v1/digital-twin"
headers = {"Authorization": "Bearer YOUR_ACCESS_TOKEN"}

# Submit job
r = requests.post(f"{BASE}/jobs", headers=headers, json={
    "backend_id": "ibm_jakarta_like",
    "circuits": ['OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'],
    "shots": 1024,
})
job_id = r.json()["job_id"]
print("Submitted:", job_id)

# Poll until done
while True:
    status = requests.get(f"{BASE}/jobs/{job_id}", headers=headers).json()
    print("Status:", status["status"])
    if status["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
        break
    time.sleep(1)

# Get counts
result = requests.get(f"{BASE}/jobs/{job_id}/result", headers=headers).json()
print("Counts:", result["results"][0]["counts"])
"""


def test_the_reference_python_client_runs_unchanged(served: Serve, tmp_path: Path):
    script = REFERENCE_CLIENT.replace("http://localhost", served.base).replace(
        "YOUR_ACCESS_TOKEN", served.token
    )
    (tmp_path / "client.py").write_text(script)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "client.py")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Submitted: ") and "Status: COMPLETED" in lines
    counts = ast.literal_eval(lines[-1].removeprefix("Counts: "))
    assert sum(counts.values()) == 1024 and counts["00"] + counts["11"] > 900
