"""QEC sessions over HTTP and NATS against a running `qledger serve`: the reference's
session loop, re-reading a round, bulk rounds, autonomous runs, the FPGA bridge example,
every kind of bad input, and a session that survives a SIGKILL bit for bit."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running

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


# The reference's "QEC session loop (Python pseudocode)", verbatim from
# ../shared/seeds/003_fdb0deeb80b86aab.txt except the base URL and the token.
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
    bulk = twin.get(f"{QEC}/{sid}/rounds", params={"from": 5, "count": 10})
    assert bulk.status_code == 200, bulk.text
    rows = base64.b64decode(bulk.json()["syndromes_packed"])
    assert len(rows) == 10  # ten rounds of 2 bits: one byte each
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
    ],
)  # fmt: skip
def test_bad_sessions_are_refused(twin, body, status, code, says):
    r = twin.post(f"{QEC}/", json={"backend_id": "ibm_jakarta_like", "code_family": "repetition",
                                    "code_distance": 3, **body})  # fmt: skip
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code
    assert says in r.text


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
    assert twin.post(f"{QEC}/{sid}/end").status_code == 200
    after = twin.get(f"{QEC}/{sid}/round/1/syndrome")
    assert after.status_code == 409 and after.json()["code"] == "session_ended"
    assert twin.post(f"{QEC}/{sid}/end").status_code == 409


def test_an_autonomous_session_reports_its_logical_error_rate(twin: httpx.Client):
    s = create(twin, backend_id="square_64", code_family="surface", mode="autonomous",
               shots=4000, seed=3)  # fmt: skip
    sid = s["session_id"]
    assert s["num_stabilizers"] == 8
    r = twin.get(f"{QEC}/{sid}/rounds", params={"from": 0, "count": 10})
    assert r.status_code == 200, r.text
    assert len(r.json()["detection_fraction"]) == 10 and 0 < r.json()["detection_fraction"][5] < 0.5
    refused = twin.post(f"{QEC}/{sid}/round/9/correction", json={"correction_bits": [0] * 9})
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
