"""Calibration on the twin against a running `qledger serve`: a chip bound to a backend,
a run of CheckT1 and CheckRabi on four qubits, its results scored against the twin's own
ground truth (telemetry), lineage from a new version back to its execution, the chip's
lock, the loop that a Rabi result closes, and the run's bad inputs."""

from __future__ import annotations

import hashlib
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running

pytestmark = pytest.mark.e2e

TWIN = "/api/v1/digital-twin"
BACKEND = "square_64"
QIDS = ["0", "1", "2", "3"]
MISCALIBRATED = 1  # the qubit whose drive over-rotates
AMPLITUDE_ERROR = 0.03
# One budget for a run: the client polls with short requests until it is spent (a loaded
# machine runs the same circuits several times slower).
RUN_BUDGET = 400.0


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("calibration")))


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    client = served.client()
    client.timeout = 30
    return client


def finished(api: httpx.Client, execution_id: str) -> dict:
    deadline = time.monotonic() + RUN_BUDGET
    while time.monotonic() < deadline:
        r = api.get(f"/api/executions/{execution_id}")
        if r.status_code == 200 and r.json()["status"] != "running":
            return r.json() | {"execution_id": execution_id}
        time.sleep(0.5)
    raise AssertionError(f"execution {execution_id} did not end within {RUN_BUDGET} s")


def run(api: httpx.Client, tasks: list[str], qids=QIDS, **extra) -> str:
    r = api.post(
        "/api/calibrations/run",
        json={"chip_id": "twin64", "tasks": tasks, "qids": qids, "seed": 11, **extra},
    )
    assert r.status_code == 202, r.text
    return r.json()["execution_id"]


def outputs(execution: dict, task: str) -> dict[str, dict]:
    """qid -> that task's output parameters, for the task results that completed."""
    found = {}
    for t in execution["task"]:
        if t["name"] == task:
            assert t["status"] == "completed", t["message"]
            found[t["qid"]] = t["output_parameters"]
    return found


@pytest.fixture(scope="module")
def chip(api: httpx.Client) -> dict:
    r = api.post("/api/chips", json={"chip_id": "twin64", "backend_id": BACKEND})
    assert r.status_code == 200, r.text
    command = {"command_type": "set_qubit_noise",
               "payload": {"qubit": MISCALIBRATED, "amplitude_error": AMPLITUDE_ERROR}}  # fmt: skip
    r = api.post(f"{TWIN}/controller/{BACKEND}/commands", json=command)
    assert r.status_code in (200, 202), r.text
    return r.json()


@pytest.fixture(scope="module")
def first_run(api: httpx.Client, chip) -> dict:
    execution_id = run(api, ["CheckT1", "CheckRabi"])
    return finished(api, execution_id)


def test_a_run_locks_its_chip_until_it_is_cancelled(api, chip):
    """The lock is taken when the run is dispatched, before any circuit ran: a second
    run is refused at once. (Randomized benchmarking runs for seconds: long enough to
    be seen running and cancelled.)"""
    execution_id = run(api, ["RandomizedBenchmarking"])
    second = api.post("/api/calibrations/run",
                      json={"chip_id": "twin64", "tasks": ["CheckT1"], "qids": ["5"]})  # fmt: skip
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "chip_locked"
    assert execution_id in second.json()["message"]
    lock = api.get("/api/executions/lock-status", params={"chip_id": "twin64"}).json()
    assert lock["lock"] is True and lock["locks"][0]["execution_id"] == execution_id

    assert api.post(f"/api/executions/{execution_id}/cancel").status_code == 200
    ended = finished(api, execution_id)
    assert ended["status"] == "cancelled"
    assert api.get("/api/executions/lock-status").json() == {"lock": False, "locks": []}
    # Its twin jobs (ids derived from the run: 80 circuits, 20 per job) were cancelled
    # unless they had already run, or were never submitted; none is left queued.
    short = hashlib.sha256(f"default/{execution_id}".encode()).hexdigest()[:12]
    deadline = time.monotonic() + RUN_BUDGET
    ended_states = {"CANCELLED", "COMPLETED", "never submitted"}
    while True:
        statuses = {api.get(f"{TWIN}/jobs/cal-{short}-0-{j}").json().get("status", "never submitted")
                    for j in range(4)}  # fmt: skip
        if statuses <= ended_states or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert statuses <= ended_states, statuses


def test_a_chip_bound_to_a_backend_has_its_qubits_and_couplings(api, chip):
    got = api.get("/api/chips/twin64").json()
    assert got["backend_id"] == BACKEND and got["size"] == 64
    couplings = api.get("/api/chips/twin64/couplings", params={"limit": 500}).json()
    assert couplings["total"] == 112  # 8 x 8 lattice: 2 * 8 * 7


def test_t1_matches_the_twins_own_value(api, first_run):
    assert first_run["status"] == "completed", first_run
    truth = {
        str(row["qubit"]): row
        for row in api.get(f"{TWIN}/telemetry/qubits", params={"backend_id": BACKEND}).json()[
            "qubits"
        ]
    }
    fitted = outputs(first_run, "CheckT1")
    assert sorted(fitted) == QIDS
    for qid, out in fitted.items():
        t1, sigma = out["t1"]["value"], out["t1"]["error"]
        true = truth[qid]["t1_us"]
        assert abs(t1 - true) <= max(4 * sigma, 0.02 * true), (qid, t1, sigma, true)
        assert abs(t1 - true) / true < 0.15, (qid, t1, true)


def test_each_result_has_its_figure_and_raw_data(api, first_run):
    task = next(t for t in first_run["task"] if t["name"] == "CheckT1")
    png = api.get(task["figure_path"][0])  # an API path
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    raw = api.get(task["json_figure_path"][0]).json()
    assert len(raw["data"][0]["x"]) == 24  # the sweep's delays, measured
    assert raw["meta"]["values"]["t1"] == task["output_parameters"]["t1"]["value"]


def test_a_new_t1_version_leads_back_to_its_execution(api, first_run):
    task = next(t for t in first_run["task"] if t["name"] == "CheckT1" and t["qid"] == "2")
    entity = f"t1:2:{first_run['execution_id']}:{task['task_id']}"
    lineage = api.get(f"/api/provenance/lineage/{entity}")
    assert lineage.status_code == 200, lineage.text
    text = lineage.text
    assert first_run["execution_id"] in text and task["task_id"] in text


def test_the_run_ended_and_gave_the_chip_back(api, first_run):
    lock = api.get("/api/executions/lock-status").json()
    assert lock == {"lock": False, "locks": []}


def test_a_rabi_result_corrects_the_drive(api, first_run):
    """The loop closes: the first Rabi sees the over-rotation, the twin applies the new
    π amplitude, and a second Rabi right after finds the drive right."""
    before = outputs(first_run, "CheckRabi")[str(MISCALIBRATED)]["pi_amplitude"]
    assert abs(before["value"] - 1 / (1 + AMPLITUDE_ERROR)) < 0.003, before
    again = finished(api, run(api, ["CheckRabi"], qids=[str(MISCALIBRATED)]))
    after = outputs(again, "CheckRabi")[str(MISCALIBRATED)]["pi_amplitude"]
    assert abs(after["value"] - 1) < abs(before["value"] - 1) / 5, (before, after)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"tasks": ["CheckT9"]}, 422, "unknown_task"),
        ({"qids": ["99"]}, 422, "unknown_qid"),
        ({"qids": ["0-1"]}, 422, "no_targets"),
        ({"qids": ["0-9"]}, 422, "unknown_qid"),
        ({"qids": ["0", "0"]}, 422, "duplicate_qid"),
        ({"run_parameters": {"CheckT1": {"points": 10**9}}}, 422, "invalid_run_parameter"),
        ({"run_parameters": {"CheckT1": {"sweep": 3}}}, 422, "invalid_run_parameter"),
        ({"run_parameters": {"CheckT1": {"shots": True}}}, 422, "invalid_run_parameter"),
        ({"run_parameters": {"CheckRabi": {}}}, 422, "invalid_run_parameter"),
        ({"chip_id": "nochip"}, 404, "chip_not_found"),
        (
            {
                "tasks": ["RandomizedBenchmarking"],
                "qids": [str(q) for q in range(64)],
                "run_parameters": {
                    "RandomizedBenchmarking": {"sequences": 50, "lengths": [1] * 16}
                },
            },
            422,
            "run_too_large",
        ),  # fmt: skip
    ],
)
def test_bad_runs_are_refused_and_change_nothing(api, chip, body, status, code):
    r = api.post(
        "/api/calibrations/run",
        json={"chip_id": "twin64", "tasks": ["CheckT1"], "qids": ["0"], **body},
    )
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


def test_a_chip_without_a_backend_cannot_run(api):
    assert api.post("/api/chips", json={"chip_id": "plain", "size": 4}).status_code == 200
    r = api.post("/api/calibrations/run",
                 json={"chip_id": "plain", "tasks": ["CheckT1"], "qids": ["0"]})  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "chip_not_on_twin"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"chip_id": "c1", "backend_id": "nosuch"}, "invalid_backend"),
        ({"chip_id": "c2", "backend_id": BACKEND, "size": 5}, "chip_size_mismatch"),
        ({"chip_id": "c3"}, "size_required"),
    ],
)
def test_bad_chip_registrations_are_refused(api, body, code):
    r = api.post("/api/chips", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code


def test_a_re_execution_repeats_its_source_bit_for_bit(api, first_run):
    """The same plan and seed on the same twin state give the same numbers (drift is
    frozen: the twin's error rates otherwise move with the clock)."""
    command = {"command_type": "policy_update", "payload": {"drift_multiplier": 0}}
    assert api.post(f"{TWIN}/controller/{BACKEND}/commands", json=command).status_code == 200
    source = finished(api, run(api, ["CheckT1"], qids=["4", "5"]))
    r = api.post(f"/api/executions/{source['execution_id']}/re-execute", json={})
    assert r.status_code == 200, r.text
    again = finished(api, r.json()["execution_id"])
    assert outputs(again, "CheckT1") == outputs(source, "CheckT1")
    assert again["source_execution_id"] == source["execution_id"]
    assert api.get(f"/api/executions/{source['execution_id']}").json()["re_executions"] == [
        r.json()["execution_id"]
    ]
    first = next(t for t in source["task"] if t["qid"] == "4")
    repeated = next(t for t in again["task"] if t["qid"] == "4")
    seen = api.get(f"/api/tasks/{repeated['task_id']}/result").json()
    assert seen["source_task_id"] == first["task_id"]

    # One task result, again, with an override (the reference sends strings).
    r = api.post(f"/api/task-results/{first['task_id']}/re-execute",
                 json={"parameter_overrides": {"shots": "500"}})  # fmt: skip
    assert r.status_code == 200, r.text
    single = finished(api, r.json()["execution_id"])
    [task] = single["task"]
    assert (task["qid"], task["run_parameters"]["shots"]) == ("4", 500)
    assert task["run_parameters"]["source_task_id"] == first["task_id"]
    original = api.get(f"/api/tasks/{first['task_id']}/result").json()
    assert sorted(original["re_executions"]) == sorted([repeated["task_id"], task["task_id"]])


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/executions/nosuch/re-execute", {}, 404, "execution_not_found"),
        ("/api/executions/outside/re-execute", {}, 409, "execution_not_reexecutable"),
        ("/api/task-results/nosuch/re-execute", {}, 404, "not_found"),
        ("/api/executions/{run}/re-execute", {"parameter_overrides": {"gain": 2}}, 422,
         "invalid_run_parameter"),
        ("/api/executions/{run}/re-execute", {"parameter_overrides": {"shots": "many"}}, 422,
         "invalid_run_parameter"),
        ("/api/executions/{run}/re-execute", {"parameter_overrides": {"CheckT9": {}}}, 422,
         "invalid_run_parameter"),
    ],
)  # fmt: skip
def test_bad_re_executions_are_refused(api, first_run, path, body, status, code):
    api.post("/api/executions", json={"chip_id": "twin64", "execution_id": "outside"})
    r = api.post(path.format(run=first_run["execution_id"]), json=body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


def test_a_run_killed_midway_resumes_after_a_restart_with_each_result_once(tmp_path: Path):
    """SIGKILL while a run records its results; on restart the runner reads the log and
    carries on: every task result exactly once, the run completed, the chip free."""
    serve = Serve(tmp_path, None).start()
    try:
        api = serve.client()
        api.timeout = 30
        api.post("/api/chips", json={"chip_id": "k64", "backend_id": BACKEND}).raise_for_status()
        qids = [str(q) for q in range(8)]
        tasks = ["CheckT1", "CheckRabi", "ReadoutFidelity"]
        r = api.post("/api/calibrations/run",
                     json={"chip_id": "k64", "tasks": tasks, "qids": qids, "seed": 5})  # fmt: skip
        execution_id = r.json()["execution_id"]
        deadline = time.monotonic() + RUN_BUDGET
        recorded = 0
        while not recorded and time.monotonic() < deadline:
            seen = api.get(f"/api/executions/{execution_id}")
            recorded = len(seen.json()["task"]) if seen.status_code == 200 else 0
            time.sleep(0.05)
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(timeout=10)
        assert 0 < recorded < len(tasks) * len(qids), "the kill landed mid-run"

        serve.start()
        api = serve.client()
        api.timeout = 30
        done = finished(api, execution_id)
        assert done["status"] == "completed", done["message"]
        pairs = Counter((t["name"], t["qid"]) for t in done["task"])
        assert pairs == Counter({(t, q): 1 for t in tasks for q in qids})
        assert api.get("/api/executions/lock-status").json()["lock"] is False
    finally:
        if serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGTERM)
            serve.proc.wait(timeout=30)


def test_a_bell_state_measures_each_coupling_of_a_run(api, first_run):
    """A coupling task takes the run's couplings; its qubit tasks the plain qubits."""
    execution = finished(api, run(api, ["ReadoutFidelity", "BellStateFidelity"],
                                  qids=["0", "1", "0-1", "2-3"]))  # fmt: skip
    assert execution["status"] == "completed", execution["message"]
    assert sorted(outputs(execution, "ReadoutFidelity")) == ["0", "1"]
    bell = outputs(execution, "BellStateFidelity")
    assert sorted(bell) == ["0-1", "2-3"]
    for out in bell.values():
        f, sigma = out["bell_state_fidelity"]["value"], out["bell_state_fidelity"]["error"]
        assert 0.9 < f < 1 and 0 < sigma < 0.02, out
    task = next(t for t in execution["task"] if t["name"] == "BellStateFidelity")
    assert task["task_type"] == "coupling"
    # Both land in the chip's metrics under the reference's names, as its dashboards ask.
    metrics = api.get("/api/metrics/chips/twin64/metrics").json()
    readout = metrics["qubit_metrics"]["average_readout_fidelity"]
    assert {q: readout[q]["value"] for q in ("0", "1")} == {
        q: out["average_readout_fidelity"]["value"]
        for q, out in outputs(execution, "ReadoutFidelity").items()
    }
    assert set(metrics["coupling_metrics"]["bell_state_fidelity"]) >= {"0-1", "2-3"}
