"""QEC sessions over HTTP and NATS against a running `qledger serve`: the reference's
session loop, re-reading a round, bulk rounds, autonomous runs, the FPGA bridge example,
every kind of bad input, and a session that survives a SIGKILL bit for bit."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import nats
import pytest
import yaml

from tests.e2e.serving import Serve, run_bounded, running

pytestmark = pytest.mark.e2e

TWIN = "/api/v1/digital-twin"
QEC = "/qec_session/v1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("qec")))


def twin_client(served: Serve) -> httpx.Client:
    client = served.client()
    client.base_url = served.base + TWIN
    client.timeout = 30
    return client


@pytest.fixture(scope="module")
def twin(served: Serve) -> httpx.Client:
    return twin_client(served)


def create(twin: httpx.Client, **body) -> dict:
    r = twin.post(f"{QEC}/", json={"backend_id": "ibm_jakarta_like", "code_family": "repetition",
                                    "code_distance": 3, **body})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


# The twin reference's "QEC session loop (Python pseudocode)", verbatim from its
# documentation except the base URL and the token.
REFERENCE_LOOP = """
import requests

BASE = "http://localhost/api/v1/digital-twin"
H = {"Authorization": "Bearer "+TOKEN}

# 1. Create session
s = requests.post(f"{BASE}/qec_session/v1/", headers=H, json={
    "backend_id": "ibm_jakarta_like",
    "code_family": "repetition",
    "code_distance": 3,
}).json()
session_id = s["session_id"]
print("Stabilizers:", s["num_stabilizers"])

# 2. Run rounds
for round_idx in range(10):
    syndrome = requests.get(
        f"{BASE}/qec_session/v1/{session_id}/round/{round_idx}/syndrome",
        headers=H,
    ).json()
    print(f"Round {round_idx} syndrome:", syndrome["syndrome_bits"])

    # Your decoder logic here...
    correction = [0] * len(syndrome["syndrome_bits"])

    requests.post(
        f"{BASE}/qec_session/v1/{session_id}/round/{round_idx}/correction",
        headers=H, json={"correction_bits": correction},
    )

# 3. End session
stats = requests.post(f"{BASE}/qec_session/v1/{session_id}/end", headers=H).json()
print("Total rounds:", stats["total_rounds"])
print("Corrections received:", stats["stats"]["corrections_received"])
"""


def test_the_reference_session_loop_runs_unchanged(served: Serve, tmp_path: Path):
    script = REFERENCE_LOOP.replace("http://localhost", served.base).replace(
        '"Bearer "+TOKEN', f'"Bearer {served.token}"'
    )
    (tmp_path / "loop.py").write_text(script)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "loop.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Stabilizers: 2"
    assert len([line for line in lines if line.startswith("Round ")]) == 10
    assert lines[-2:] == ["Total rounds: 10", "Corrections received: 10"]


ASYNCAPI = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())


def conforms(message: dict, schema: str) -> None:
    """A data-plane message against its schema in docs/asyncapi.yaml (JSON Schema draft 07,
    AsyncAPI's schema format)."""
    jsonschema.validate(
        message,
        {"$ref": f"#/components/schemas/{schema}", "components": ASYNCAPI["components"]},
        cls=jsonschema.Draft7Validator,
    )


def test_a_measured_round_is_published_as_documented(served: Serve, twin: httpx.Client):
    sid = create(twin, seed=3)["session_id"]

    async def listen() -> tuple[dict, dict]:
        nc = await nats.connect(served.nats_url)
        sub = await nc.subscribe("qledger.twin.ibm_jakarta_like.syndrome")
        got = await asyncio.to_thread(twin.get, f"{QEC}/{sid}/round/0/syndrome")
        message = json.loads((await sub.next_msg(timeout=5)).data)
        await nc.close()
        return got.json(), message

    answered, published = run_bounded(listen())
    conforms(published, "Syndrome")
    assert published["session_id"] == sid and published["round_index"] == 0
    assert published["syndrome_bits"] == answered["syndrome_bits"]
    assert published["project_id"] == "default"


def test_rounds_are_recorded_and_read_back(twin: httpx.Client):
    s = create(twin, seed=7, rounds=20)
    sid = s["session_id"]
    assert s["num_stabilizers"] == 2 and s["num_data_qubits"] == 3 and s["qubits_used"] == 5
    assert [q["type"] for q in s["layout"]["stabilizers"]] == ["Z", "Z"]
    seen = []
    for r in range(4):
        got = twin.get(f"{QEC}/{sid}/round/{r}/syndrome")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["round_index"] == r and len(body["syndrome_bits"]) == 2
        assert body["meas_data_packed"] == body["syndrome_bits"][0] | body["syndrome_bits"][1] << 1
        seen.append(body["syndrome_bits"])
    # a round already measured is returned as recorded, not measured again
    again = twin.get(f"{QEC}/{sid}/round/1/syndrome").json()
    assert again["syndrome_bits"] == seen[1]
    ahead = twin.get(f"{QEC}/{sid}/round/9/syndrome")
    assert ahead.status_code == 409 and "the next round is 4" in ahead.json()["message"]
    # a correction with measure_next answers with the next round
    step = twin.post(f"{QEC}/{sid}/round/3/correction",
                     json={"correction_bits": [1, 0, 0], "measure_next": True})  # fmt: skip
    assert step.status_code == 200, step.text
    assert step.json()["next"]["round_index"] == 4
    key = {"Idempotency-Key": f"bulk-{sid}"}
    bulk = twin.get(f"{QEC}/{sid}/rounds", params={"from": 5, "count": 10}, headers=key)
    assert bulk.status_code == 200, bulk.text
    rows = base64.b64decode(bulk.json()["syndromes_packed"])
    assert len(rows) == 10  # ten rounds of 2 bits: one byte each
    retried = twin.get(f"{QEC}/{sid}/rounds", params={"from": 5, "count": 10}, headers=key)
    assert retried.json()["syndromes_packed"] == bulk.json()["syndromes_packed"]
    status = twin.get(f"{QEC}/{sid}/status").json()
    assert (status["current_round"], status["corrections_received"], status["active"]) == (
        15, 1, True,
    )  # fmt: skip
    limit = twin.get(f"{QEC}/{sid}/rounds", params={"from": 15, "count": 6})
    assert limit.status_code == 409 and limit.json()["code"] == "rounds_limit_reached"
    ended = twin.post(f"{QEC}/{sid}/end")
    assert ended.status_code == 200, ended.text
    result = ended.json()
    assert result["total_rounds"] == 15 and result["stats"]["corrections_received"] == 1
    assert result["logical_outcome"] in (0, 1) and len(result["data_outcomes"]) == 3
    assert isinstance(result["builtin_decoder"]["logical_error"], bool)
    trace = twin.get(f"{QEC}/{sid}/trace").json()
    kinds = [step["kind"] for step in trace["steps"]]
    assert kinds == ["rounds"] * 4 + ["correction", "rounds", "rounds", "end"]
    assert trace["seed"] == 7 and trace["steps"][0]["noise"]["measure"]


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({"code_distance": 1}, 422, "invalid_distance", "at least 2"),
        ({"code_distance": 5}, 422, "code_too_large", "needs 9 qubits; the backend has 7"),
        ({"code_family": "surface", "backend_id": "square_64", "code_distance": 6}, 422,
         "code_too_large", "the largest that fits is d = 5"),
        ({"code_family": "color"}, 422, None, "code_family"),
        ({"backend_id": "nope"}, 404, "unknown_backend", "nope"),
        ({"shots": 100}, 422, "invalid_shots", "autonomous"),
        ({"mode": "autonomous", "shots": 10_000, "rounds": 100_000}, 422, "session_too_large",
         "may run at most 2500 rounds"),
    ],
)  # fmt: skip
def test_bad_sessions_are_refused(twin, body, status, code, says):
    r = twin.post(f"{QEC}/", json={"backend_id": "ibm_jakarta_like", "code_family": "repetition",
                                    "code_distance": 3, **body})  # fmt: skip
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code
    assert says in r.text


def test_a_retried_creation_is_the_same_session(twin: httpx.Client):
    body = {"backend_id": "ibm_jakarta_like", "code_family": "repetition", "code_distance": 3}
    key = {"Idempotency-Key": "qec-create-once"}
    first = twin.post(f"{QEC}/", json=body, headers=key)
    again = twin.post(f"{QEC}/", json=body, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert {k: v for k, v in first.json().items() if k != "position"} == {
        k: v for k, v in again.json().items() if k != "position"
    }
    # no rounds limit given: as many as the built-in decoder allows, at most 100,000
    assert first.json()["rounds_limit"] == 100_000
    wide = create(twin, backend_id="square_64", code_family="surface", code_distance=5)
    assert wide["rounds_limit"] == 250_000 // 24


def test_bad_steps_are_refused_and_change_nothing(twin: httpx.Client):
    missing = twin.get(f"{QEC}/no-such-session/round/0/syndrome")
    assert missing.status_code == 404 and missing.json()["code"] == "session_not_found"
    sid = create(twin)["session_id"]
    early = twin.post(f"{QEC}/{sid}/round/0/correction", json={"correction_bits": [0, 0, 0]})
    assert early.status_code == 409 and "no round has been measured" in early.text
    assert twin.get(f"{QEC}/{sid}/round/0/syndrome").status_code == 200
    wrong = twin.post(f"{QEC}/{sid}/round/0/correction", json={"correction_bits": [1, 0]})
    assert wrong.status_code == 422 and "must be 3 bits" in wrong.text
    stale = twin.post(f"{QEC}/{sid}/round/5/correction", json={"correction_bits": [0, 0, 0]})
    assert stale.status_code == 409 and "the round just measured is 0" in stale.text
    status = twin.get(f"{QEC}/{sid}/status").json()
    assert (status["current_round"], status["corrections_received"]) == (1, 0)
    first = twin.get(f"{QEC}/{sid}/round/0/syndrome").json()["syndrome_bits"]
    assert twin.post(f"{QEC}/{sid}/end").status_code == 200
    assert twin.get(f"{QEC}/{sid}/round/0/syndrome").json()["syndrome_bits"] == first
    after = twin.get(f"{QEC}/{sid}/round/1/syndrome")
    assert after.status_code == 409 and after.json()["code"] == "session_ended"
    assert twin.post(f"{QEC}/{sid}/end").status_code == 409


def test_an_autonomous_session_reports_its_logical_error_rate(twin: httpx.Client):
    s = create(twin, backend_id="square_64", code_family="surface", mode="autonomous",
               shots=4000, seed=3)  # fmt: skip
    sid = s["session_id"]
    assert s["num_stabilizers"] == 8
    big = twin.get(f"{QEC}/{sid}/rounds", params={"from": 0, "count": 100})
    assert big.status_code == 422 and "at most 23 a step" in big.json()["message"], big.text
    r = twin.get(f"{QEC}/{sid}/rounds", params={"from": 0, "count": 10})
    assert r.status_code == 200, r.text
    assert len(r.json()["detection_fraction"]) == 10 and 0 < r.json()["detection_fraction"][5] < 0.5
    # single rounds show the first shot's syndrome, measured or recorded
    one = twin.get(f"{QEC}/{sid}/round/10/syndrome")
    assert one.status_code == 200 and len(one.json()["syndrome_bits"]) == 8, one.text
    assert len(twin.get(f"{QEC}/{sid}/round/3/syndrome").json()["syndrome_bits"]) == 8
    refused = twin.post(f"{QEC}/{sid}/round/10/correction", json={"correction_bits": [0] * 9})
    assert refused.status_code == 409 and refused.json()["code"] == "session_autonomous"
    result = twin.post(f"{QEC}/{sid}/end").json()
    builtin = result["builtin_decoder"]
    assert result["shots"] == 4000 and 0 < builtin["logical_error_rate"] < 0.5
    assert 0 < builtin["logical_error_rate_stderr"] < builtin["logical_error_rate"]
    assert builtin["logical_error_per_round"] < builtin["logical_error_rate"]


def test_the_fpga_bridge_example_closes_the_loop_over_nats(served: Serve, tmp_path: Path):
    key = served.client().post(
        "/api/api-keys", json={"name": "bridge", "scopes": ["read", "twin:write"]}
    )
    assert key.status_code == 201, key.text
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "fpga_bridge.py"), "--url", served.base,
         "--nats", served.nats_url, "--api-key", key.json()["api_key"], "--backend",
         "square_64", "--start", "surface:3", "--rounds", "30", "--seed", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    # a correction after every round, the last one included
    assert "rounds: 30" in lines and "corrections received: 30" in lines
    assert any(line.startswith("logical outcome: ") for line in lines)


def test_a_session_survives_a_kill_bit_for_bit(tmp_path: Path):
    """Steps recorded before a SIGKILL replay from the seed; the session goes on as if
    nothing happened: a twin session with the same seed and inputs on the restarted
    server gives the same syndromes, before and after the kill."""
    serve = Serve(tmp_path, None).start()
    try:
        _kill_and_compare(serve)
    finally:
        if serve.proc is not None and serve.proc.poll() is None:  # a failed assertion
            serve.proc.kill()
            serve.proc.wait(timeout=10)


def _kill_and_compare(serve: Serve) -> None:
    twin = twin_client(serve)
    # Drift follows the clock; without it the noise of every round is the same.
    quiet = twin.post("/controller/ibm_jakarta_like/commands",
                      json={"command_type": "policy_update", "payload": {"drift_multiplier": 0}})  # fmt: skip
    assert quiet.status_code == 200, quiet.text

    def drive(client: httpx.Client, sid: str, rounds: range) -> list[list[int]]:
        out = []
        for r in rounds:
            out.append(client.get(f"{QEC}/{sid}/round/{r}/syndrome").json()["syndrome_bits"])
            fix = [1, 0, 0, 0] if r % 3 == 0 else [0, 0, 0, 0]
            assert client.post(f"{QEC}/{sid}/round/{r}/correction",
                               json={"correction_bits": fix}).status_code == 200  # fmt: skip
        return out

    sid = create(twin, seed=99, code_distance=4)["session_id"]
    before = drive(twin, sid, range(6))
    serve.proc.send_signal(signal.SIGKILL)
    serve.proc.wait(timeout=10)
    serve.start()
    twin = twin_client(serve)
    after = drive(twin, sid, range(6, 12))
    twin_sid = create(twin, seed=99, code_distance=4)["session_id"]
    assert drive(twin, twin_sid, range(12)) == before + after
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


# -- the FPGA controller API and QEC telemetry -------------------------------------------
FPGA = "/controller_api/v1/line_5"


def test_a_pulse_schedule_runs_as_a_circuit_and_its_readouts_are_published(served, twin):
    r = twin.post(f"{FPGA}/pulse_schedule", json={
        "actions": [{"gate": "x", "qubits": [0]}, {"gate": "x", "qubits": [2]}], "n_qubits": 3,
    })  # fmt: skip
    assert r.status_code == 200, r.text
    schedule = r.json()["schedule_id"]

    async def listen() -> list[dict]:
        nc = await nats.connect(served.nats_url)
        sub = await nc.subscribe("qledger.twin.line_5.readout")
        readouts = []
        for i in range(20):
            got = await asyncio.to_thread(
                twin.get, f"{FPGA}/readout", params={"schedule_id": schedule, "round_index": i}
            )
            assert got.status_code == 200, got.text
            readouts.append(got.json())
        published = [json.loads((await sub.next_msg(timeout=5)).data) for _ in range(20)]
        await nc.close()
        for message in published:
            conforms(message, "Readout")
        assert [p["outcomes"] for p in published] == [r["outcomes"] for r in readouts]
        return readouts

    readouts = run_bounded(listen())
    # x on 0 and 2: 0b101 = 5, except for the odd readout error (~3 % a qubit)
    packed = [r["meas_data_packed"] for r in readouts]
    assert packed.count(5) >= 14, packed
    assert readouts[3]["outcomes"] == [(readouts[3]["meas_data_packed"] >> i) & 1 for i in range(3)]
    # without a schedule: every qubit read in |0>, mostly 0
    plain = twin.get(f"{FPGA}/readout").json()
    assert plain["n_qubits"] == 5 and sum(plain["outcomes"]) <= 2


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"actions": [{"gate": "h", "qubits": [0]}, {"gate": "foo", "qubits": [1]}],
          "n_qubits": 2}, "actions[1]: unknown gate 'foo'"),
        ({"actions": [{"gate": "cx", "qubits": [0]}], "n_qubits": 2},
         "actions[0] (cx): qubits must list 2 qubit(s)"),
        ({"actions": [{"gate": "x", "qubits": [3]}], "n_qubits": 2},
         "actions[0] (x): qubit 3 is outside 0..1"),
        ({"actions": [{"gate": "rz", "qubits": [0]}], "n_qubits": 1},
         "actions[0] (rz) needs an angle"),
        ({"actions": [{"gate": "x", "qubits": [0]}], "n_qubits": 9}, "exceeds the backend's 5"),
    ],
)  # fmt: skip
def test_malformed_schedules_are_refused_naming_the_action(twin, body, says):
    r = twin.post(f"{FPGA}/pulse_schedule", json=body)
    assert r.status_code == 422 and says in r.json()["message"], r.text


def test_readout_of_an_unknown_schedule_is_404(twin):
    r = twin.get(f"{FPGA}/readout", params={"schedule_id": "never-stored"})
    assert r.status_code == 404 and r.json()["code"] == "schedule_not_found"


def test_readout_config_and_cryo_are_controller_state(twin):
    before = {q["qubit"]: q for q in twin.get("/telemetry/qubits",
                                               params={"backend_id": "line_5"}).json()["qubits"]}  # fmt: skip
    r = twin.post(f"{FPGA}/readout_config",
                  json={"channels": [1], "integration_time_ns": 250, "thresholds": {"1": 0.5}})  # fmt: skip
    assert r.status_code == 200, r.text
    after = r.json()["readout_errors"]["1"]
    # a quarter of the integration time: blobs twice as wide, errors well up
    assert after["readout_p1_given_0"] > 2 * before[1]["readout_p1_given_0"]
    bad = twin.post(f"{FPGA}/readout_config", json={"integration_time_ns": 1, "channels": [1]})
    assert bad.status_code == 422 and "integration_time_ns" in bad.text
    cold = twin.get(f"{FPGA}/cryo").json()
    assert cold["temperature_mk"] is None and cold["t1_multiplier"] == 1.0
    warm = twin.post(f"{FPGA}/cryo", json={"temperature_mk": 40}).json()
    # halfway between 30 mK (0.85) and 50 mK (0.60) on the reference's curve
    assert warm["t1_multiplier"] == pytest.approx(0.725) and warm["multiplier_source"] == "curve"
    assert all(0 < p < 0.01 for p in warm["excited_state_population"])
    t1_after = twin.get("/telemetry/qubits", params={"backend_id": "line_5"}).json()["qubits"][0]
    assert t1_after["t1_us"] == pytest.approx(before[0]["t1_us"] * 0.725)
    explicit = twin.post(f"{FPGA}/cryo", json={"t1_multiplier": 0.9}).json()
    assert (explicit["t1_multiplier"], explicit["t2_multiplier"]) == (0.9, pytest.approx(0.725))
    assert twin.post(f"{FPGA}/cryo", json={"pressure_bar": 1}).status_code == 422
    state = twin.get("/controller/line_5/state").json()
    assert state["overrides"]["cryo"]["temperature_mk"] == 40
    assert state["overrides"]["readout_config"]["1"]["integration_time_ns"] == 250


def test_qec_telemetry_prefers_the_decoder_and_keeps_every_point(served, twin):
    job = twin.post("/jobs", json={"backend_id": "line_5", "circuits": [
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; measure q -> c;'],
        "shots": 10}).json()  # fmt: skip
    estimate = twin.get("/telemetry/qec", params={"backend_id": "line_5", "job_id": job["job_id"]})
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["metric_source"] == "heuristic" and estimate.json()["persisted"]
    pushed = twin.post(f"/jobs/{job['job_id']}/metadata", json={
        "qec_metrics": {"logical_error_rate": 0.0123, "physical_error_rate": 0.004,
                        "code_distance": 3},
        "decoder_metrics": {"latency_us": 2.5},
    })  # fmt: skip
    assert pushed.status_code == 200, pushed.text
    point = twin.get(
        "/telemetry/qec",
        params={"backend_id": "line_5", "job_id": job["job_id"], "min_position": pushed.json()["position"]},
    ).json()  # fmt: skip
    assert (point["metric_source"], point["logical_error_rate"]) == ("decoder", 0.0123)
    history = twin.get("/telemetry/qec/history",
                       params={"backend_id": "line_5", "job_id": job["job_id"]}).json()  # fmt: skip
    assert [p["metric_source"] for p in history["points"]] == ["heuristic", "decoder"]
    summary = twin.get("/telemetry/qec/summary",
                       params={"backend_id": "line_5", "job_id": job["job_id"]}).json()  # fmt: skip
    assert summary["count"] == 2 and summary["latest"]["logical_error_rate"] == 0.0123
    assert summary["avg_logical_error_rate"] == pytest.approx(
        (0.0123 + estimate.json()["logical_error_rate"]) / 2
    )
    trace = twin.get("/telemetry/trace/export", params={"job_id": job["job_id"]}).json()
    assert len(trace["qec_points"]) == 2
    garbled = twin.post(f"/jobs/{job['job_id']}/metadata",
                        json={"qec_metrics": {"logical_error_rate": "abc"}})  # fmt: skip
    fallback = twin.get("/telemetry/qec", params={
        "backend_id": "line_5", "job_id": job["job_id"], "min_position": garbled.json()["position"]})  # fmt: skip
    assert fallback.status_code == 200 and fallback.json()["metric_source"] == "heuristic"
