"""The twin's controls a calibration relies on, over HTTP against a running `qledger
serve`: jobs answering per-bit marginals, the drive correction that closes the
calibration loop, and drift as telemetry shows it at a given instant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running
from tests.e2e.test_twin import BELL, CLIENT_TIMEOUT, TWIN, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("twin-drive")))


@pytest.fixture(scope="module")
def twin(served: Serve) -> httpx.Client:
    client = served.client()
    client.base_url = served.base + TWIN
    client.timeout = CLIENT_TIMEOUT
    return client


def command(twin: httpx.Client, backend: str, kind: str, **payload) -> httpx.Response:
    r = twin.post(f"/controller/{backend}/commands",
                  json={"command_type": kind, "payload": payload})  # fmt: skip
    assert r.status_code == 200, r.text
    return r


def test_a_marginals_job_has_the_marginals_of_the_same_job_in_counts(twin: httpx.Client):
    """metadata.result_format "marginals": per clbit (0 first) the shots that read 1, and
    no count table; the same seed gives the marginals of the counts job (drift frozen:
    two jobs submitted a moment apart would otherwise run under different errors)."""
    command(twin, "square_100", "policy_update", drift_multiplier=0)
    circuits = [
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3];'
        " x q[0]; h q[1]; cx q[1],q[2]; measure q -> c;",
        BELL,
    ]
    counts = run(twin, circuits, backend="square_100", seed=21)["results"]
    shaped = run(twin, circuits, backend="square_100", seed=21, result_format="marginals")
    for c, m in zip(counts, shaped["results"], strict=True):
        width = len(next(iter(c["counts"])))
        expected = [sum(n for key, n in c["counts"].items() if key[width - 1 - bit] == "1")
                    for bit in range(width)]  # fmt: skip
        assert m["marginals"] == expected and m["counts"] == {}
        assert {k: v for k, v in m.items() if k not in ("counts", "marginals")} == {
            k: v for k, v in c.items() if k != "counts"
        }
    assert shaped["results"][0]["marginals"][0] > 1800  # clbit 0 holds the x'ed qubit
    status = twin.get(f"/jobs/{shaped['job_id']}", params={"min_position": shaped["position"]})
    assert status.json()["metadata"]["result_format"] == "marginals"
    bad = twin.post("/jobs", json={"backend_id": "square_100", "circuits": [BELL],
                                   "metadata": {"result_format": "histogram"}})  # fmt: skip
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_result_format")
    command(twin, "square_100", "reset")


def test_a_drive_correction_closes_the_loop(twin: httpx.Client, served: Serve):
    """A qubit over-rotates by 3 %: twenty x pulses leave it far from |0>. The correction
    a calibration would send (amplitude_scale 1/1.03) brings it back; telemetry shows
    the error as the qubit has it, as the circuit sees it, and the correction."""
    backend = "square_100"
    train = ('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1];'
             + " x q[0];" * 20 + " measure q[0] -> c[0];")  # fmt: skip

    def p1() -> float:
        result = run(twin, [train], backend=backend, seed=8, optimization_level=0)["results"][0]
        assert result["qubits_used"] == [0]
        return result["counts"].get("1", 0) / 2000

    def qubit0() -> dict:
        return twin.get("/telemetry/qubits", params={"backend_id": backend}).json()["qubits"][0]

    command(twin, backend, "set_qubit_noise", qubit=0, amplitude_error=0.03)
    assert p1() > 0.5  # sin²(0.3π) = 0.65
    command(twin, backend, "set_drive_correction", qubit=0, amplitude_scale=1 / 1.03,
            frequency_offset_mhz=0.0)  # fmt: skip
    seen = qubit0()
    assert abs(seen["amplitude_error"]) < 1e-9 and seen["uncorrected_amplitude_error"] == 0.03
    assert seen["drive_correction"] == {"amplitude_scale": 1 / 1.03, "frequency_offset_mhz": 0.0}
    state = twin.get(f"/controller/{backend}/state").json()
    assert state["drive_corrections"] == {"0": seen["drive_correction"]}
    assert p1() < 0.1
    before = served.health()["store_position"]
    for payload, code in (
        ({"qubit": 0, "amplitude_scale": 3}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": "1"}, "invalid_payload"),
        ({"qubit": 0, "frequency_offset_mhz": 51}, "invalid_payload"),
        ({"qubit": 100, "amplitude_scale": 1}, "qubit_out_of_range"),
        ({"qubit": 0, "gain": 1}, "unknown_payload_field"),
        ({"amplitude_scale": 1}, "invalid_payload"),
    ):
        r = twin.post(f"/controller/{backend}/commands",
                      json={"command_type": "set_drive_correction", "payload": payload})  # fmt: skip
        assert (r.status_code, r.json()["code"]) == (422, code), (payload, r.text)
    assert served.health()["store_position"] == before
    command(twin, backend, "reset")
    back = qubit0()
    assert back["drive_correction"] == {"amplitude_scale": 1.0, "frequency_offset_mhz": 0.0}
    assert back["amplitude_error"] == 0


def test_telemetry_shows_the_drift_at_the_instant_asked(twin: httpx.Client):
    """Under the drifting_lab scenario the detunings wander: the same instant answers
    the same values, another instant others."""
    command(twin, "square_100", "set_scenario", scenario_name="drifting_lab")

    def detunings(at: str) -> list[float]:
        seen = twin.get("/telemetry/qubits", params={"backend_id": "square_100", "at": at}).json()
        assert seen["at"].startswith(at[:19])
        return [q["detuning_mhz"] for q in seen["qubits"]]

    first = detunings("2026-03-01T10:00:00+00:00")
    assert first == detunings("2026-03-01T10:00:00+00:00")
    assert all(0 < abs(d) <= 0.1 for d in first)
    later = detunings("2026-03-01T10:40:00+00:00")
    assert all(a != b for a, b in zip(first, later, strict=True))
    command(twin, "square_100", "reset")
