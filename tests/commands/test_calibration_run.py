"""Dispatching calibration runs through the real SQLite store and the twin's real config:
chips bound to backends, the chip's run lock, and the requests that are refused."""

from __future__ import annotations

import pytest

from adapters.twin.catalog import TwinCatalog
from commands.calibration_run import RunCalibration
from commands.models import CancelExecution, CompleteExecution, RegisterChip
from commands.processor import process_batch
from domain.chip import Chip, chip_key
from domain.execution import Execution, execution_key
from tests.conftest import sub


@pytest.fixture(scope="module")
def catalog() -> TwinCatalog:
    return TwinCatalog()


def send(store, catalog, *commands):
    return process_batch([sub(c) for c in commands], store, twin=catalog)


def run(execution_id: str, **extra) -> RunCalibration:
    fields = {"chip_id": "c64", "tasks": ["CheckT1"], "qids": ["0", "1"], **extra}
    return RunCalibration(execution_id=execution_id, **fields)


def test_a_chip_bound_to_a_backend_has_the_backends_qubits_and_couplings(sqlite_store, catalog):
    (reply,) = send(sqlite_store, catalog, RegisterChip(chip_id="c5", backend_id="line_5"))
    assert reply.status == "accepted"
    chip = sqlite_store.load(Chip, chip_key("default", "c5"))
    assert chip.backend_id == "line_5"
    assert chip.qubits == {"0", "1", "2", "3", "4"}
    assert chip.couplings == {"0-1", "1-2", "2-3", "3-4"}


def test_two_runs_in_one_batch_cannot_both_take_the_chip(sqlite_store, catalog):
    """Two clicks arrive together: the first run locks the chip, the second is refused
    with the holder's id, and nothing of it is recorded."""
    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"))
    first, second = send(sqlite_store, catalog, run("e1"), run("e2"))
    assert first.status == "accepted" and len(first.event_ids) == 3  # start, dispatch, lock
    assert (second.status, second.code) == ("rejected", "chip_locked")
    assert "e1" in second.message
    assert sqlite_store.load(Execution, execution_key("default", "e2")) is None


@pytest.mark.parametrize("end", [CompleteExecution, CancelExecution])
def test_the_lock_is_given_back_when_the_run_ends(sqlite_store, catalog, end):
    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"), run("e1"))
    (ended,) = send(sqlite_store, catalog, end(execution_id="e1"))
    assert ended.status == "accepted" and len(ended.event_ids) == 2  # finished, unlocked
    (again,) = send(sqlite_store, catalog, run("e2"))
    assert again.status == "accepted"


def test_an_execution_recorded_from_outside_neither_takes_nor_frees_the_lock(sqlite_store, catalog):
    from commands.models import StartExecution

    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"), run("e1"))
    send(sqlite_store, catalog, StartExecution(execution_id="x1", chip_id="c64"))
    send(sqlite_store, catalog, CompleteExecution(execution_id="x1"))
    assert sqlite_store.load(Chip, chip_key("default", "c64")).locked_by == "e1"


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"tasks": ["CheckT1", "CheckT1"]}, "duplicate_task_name"),
        ({"run_parameters": {"CheckT1": {"t1_guess_us": float("inf")}}}, "invalid_run_parameter"),
        ({"run_parameters": {"CheckT1": {"points": 2.5}}}, "invalid_run_parameter"),
        ({"run_parameters": {"CheckT1": {"shots": 200_000}}}, "invalid_run_parameter"),
        ({"run_parameters": {"RandomizedBenchmarking": {"lengths": []}},
          "tasks": ["RandomizedBenchmarking"]}, "invalid_run_parameter"),
        ({"run_parameters": {"RandomizedBenchmarking": {"lengths": [1] * 17}},
          "tasks": ["RandomizedBenchmarking"]}, "invalid_run_parameter"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_before_anything_is_recorded(sqlite_store, catalog, extra, code):
    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"))
    before = sqlite_store.max_position()
    (reply,) = send(sqlite_store, catalog, run("e1", **extra))
    assert (reply.status, reply.code) == ("rejected", code), reply
    assert sqlite_store.max_position() == before


def test_a_run_lays_each_qubits_sweep_around_its_current_value(sqlite_store, catalog):
    """Qubit 0 has a T1 on record: its delays follow it. Qubit 1 has none, and qubit 2's
    is out of the guess's bounds: both keep the run parameter's guess."""
    from datetime import UTC, datetime

    from commands.models import OutputParameter, RecordTaskResult, StartExecution, TaskResultIn

    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"),
         StartExecution(execution_id="seed", chip_id="c64"))  # fmt: skip
    now = datetime.now(UTC)
    for qid, value in (("0", 42.0), ("2", 10**6)):
        task = TaskResultIn(task_id=f"s{qid}", task_name="Seed", qid=qid, start_at=now,
                            end_at=now, output_parameters={"t1": OutputParameter(value=value)})  # fmt: skip
        send(sqlite_store, catalog, RecordTaskResult(execution_id="seed", task=task))
    (reply,) = send(sqlite_store, catalog, run("e1", qids=["0", "1", "2"]))
    assert reply.status == "accepted", reply
    execution = sqlite_store.load(Execution, execution_key("default", "e1"))
    assert execution.plan["tasks"][0]["guesses"] == {"0": 42.0}


def test_the_projects_backend_config_sets_a_runs_defaults(sqlite_store, catalog):
    """backend.yaml's defaults apply to runs dispatched after it was written; what a
    request names still wins."""
    from commands.task_files import WriteTaskFile

    config = "defaults:\n  CheckT1: {shots: 500, points: 12}\n"
    send(sqlite_store, catalog, RegisterChip(chip_id="c64", backend_id="square_64"),
         WriteTaskFile(path="twin/backend.yaml", content=config))  # fmt: skip
    send(sqlite_store, catalog, run("e1", run_parameters={"CheckT1": {"points": 30}}))
    params = sqlite_store.load(Execution, execution_key("default", "e1")).plan["tasks"][0]
    assert (params["run_parameters"]["shots"], params["run_parameters"]["points"]) == (500, 30)
