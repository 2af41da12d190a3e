"""Seed imports through the real SQLite store and the twin's real config: each import is
one execution whose task results record the seeds as parameter versions, and every
refusal is decided before anything is recorded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.twin.catalog import TwinCatalog
from commands.handlers import COMMANDS, HANDLERS
from commands.models import RecordTaskResult, RegisterChip, StartExecution, TaskResultIn
from commands.processor import process_batch
from commands.seeds import SEED_FLOW, SEED_HANDLERS, SEED_TASK, ImportSeeds, seed_task_id
from domain.execution import Execution, ExecutionStarted, TaskResultRecorded, execution_key
from domain.parameters import ParameterVersionRecorded, series_key
from tests.conftest import sub


@pytest.fixture(scope="module")
def catalog() -> TwinCatalog:
    return TwinCatalog()


def send(store, catalog, *commands, key=None):
    return process_batch([sub(c, key) for c in commands], store, twin=catalog)


def versions(store, chip: str, qid: str, name: str) -> list[ParameterVersionRecorded]:
    found = store.aggregate_events(series_key("default", chip, qid, name))
    return [e for e in found if isinstance(e, ParameterVersionRecorded)]


def manual(execution_id: str = "s1", chip_id: str = "c4", **extra) -> ImportSeeds:
    data = {"qubit_frequency": {"Q00": 7.9, "1": {"value": 8.6, "unit": "GHz", "error": 0.01}},
            "t1": {"0": 55, "1": None}}  # fmt: skip
    fields = {"source": "manual", "manual_data": data, **extra}
    return ImportSeeds(execution_id=execution_id, chip_id=chip_id, **fields)


@pytest.fixture
def chips(sqlite_store, catalog):
    replies = send(
        sqlite_store,
        catalog,
        RegisterChip(chip_id="c4", size=4),
        RegisterChip(chip_id="c64", backend_id="square_64"),
    )
    assert all(r.status == "accepted" for r in replies), replies
    return sqlite_store


def test_the_import_is_a_registered_bus_command():
    assert all(HANDLERS.get(c) is h for c, h in SEED_HANDLERS.items()), (
        "register SEED_HANDLERS in commands/handlers.py (HANDLERS)"
    )
    assert COMMANDS.get("calibration.import_seeds") is ImportSeeds


def test_a_manual_import_is_one_completed_execution_of_versions(chips, catalog):
    (reply,) = send(chips, catalog, manual())
    assert reply.status == "accepted", reply
    execution = chips.load(Execution, execution_key("default", "s1"))
    assert execution.status == "completed"
    events = chips.aggregate_events(execution_key("default", "s1"))
    started = events[0]
    assert isinstance(started, ExecutionStarted) and started.flow_name == SEED_FLOW
    tasks = [e for e in events if isinstance(e, TaskResultRecorded)]
    assert [(t.qid, t.task_name, t.status) for t in tasks] == [
        ("0", SEED_TASK, "completed"),
        ("1", SEED_TASK, "completed"),
    ]
    assert tasks[0].output_parameters == {
        "qubit_frequency": {"value": 7.9, "unit": "GHz", "error": None},
        "t1": {"value": 55, "unit": "us", "error": None},  # the unit t1 is recorded in
    }
    assert tasks[0].run_parameters == {"source": "manual"}
    # "Q00" is qubit "0"; the null t1 of qubit 1 is skipped, not recorded.
    (frequency,) = versions(chips, "c4", "0", "qubit_frequency")
    assert (frequency.value, frequency.unit, frequency.used) == (7.9, "GHz", ())
    assert frequency.execution_id == "s1" and frequency.task_id == tasks[0].task_id
    assert frequency.entity_id == f"qubit_frequency:0:s1:{tasks[0].task_id}"
    assert versions(chips, "c4", "1", "qubit_frequency")[0].error == 0.01
    assert versions(chips, "c4", "1", "t1") == []
    # start, two task results, three versions, finish
    assert len(reply.event_ids) == 7


def test_a_backend_import_seeds_every_qubit_from_the_config(chips, catalog):
    (reply,) = send(chips, catalog, ImportSeeds(execution_id="b1", chip_id="c64"))
    assert reply.status == "accepted", reply
    configured = catalog.backend(catalog.base_files(), "square_64").noise.qubits
    for qid in ("0", "37", "63"):
        q = configured[int(qid)]
        expected = {
            "qubit_frequency": q.frequency_ghz,
            "t1": q.t1_us,
            "t2_star": q.t2_us,
            "t2_echo": q.t2_us,
            "p10": q.readout_p1_given_0,
            "p01": q.readout_p0_given_1,
            "average_readout_fidelity": 1 - (q.readout_p1_given_0 + q.readout_p0_given_1) / 2,
            "x90_gate_fidelity": 1 - q.gate_error,
        }
        for name, value in expected.items():
            (version,) = versions(chips, "c64", qid, name)
            assert version.value == pytest.approx(value), (qid, name)
            assert version.task_id == seed_task_id("default", "b1", qid)
    tasks = [
        e
        for e in chips.aggregate_events(execution_key("default", "b1"))
        if isinstance(e, TaskResultRecorded)
    ]
    assert len(tasks) == 64
    assert tasks[0].run_parameters == {"source": "backend", "backend_id": "square_64"}
    assert len(reply.event_ids) == 2 + 64 + 64 * 8


def test_the_references_source_name_and_filters(chips, catalog):
    command = ImportSeeds(
        execution_id="b2", chip_id="c64", source="qubex_params", parameters=["t1"], qids=["Q07"]
    )
    assert command.source == "backend"
    (reply,) = send(chips, catalog, command)
    assert reply.status == "accepted" and len(reply.event_ids) == 4  # start, task, t1, finish
    assert len(versions(chips, "c64", "7", "t1")) == 1
    assert versions(chips, "c64", "6", "t1") == []


def test_a_seed_is_superseded_by_the_next_calibration(chips, catalog):
    send(chips, catalog, manual())
    later = TaskResultIn(
        task_id="t1-0",
        task_name="CheckT1",
        qid="0",
        output_parameters={"t1": {"value": 61.0, "unit": "us"}},
        input_parameters={"t1": {}},
        start_at="2099-01-01T00:00:00Z",
        end_at="2099-01-01T00:01:00Z",
    )
    replies = send(
        chips,
        catalog,
        StartExecution(execution_id="cal", chip_id="c4"),
        RecordTaskResult(execution_id="cal", task=later),
    )
    assert all(r.status == "accepted" for r in replies), replies
    seed, measured = versions(chips, "c4", "0", "t1")
    assert (seed.version, measured.version) == (1, 2)
    assert measured.used == (seed.entity_id,)  # the calibration read the seed
    # A seed now would be older than the current version (measured in the future).
    (reply,) = send(chips, catalog, manual("s2"))
    assert (reply.status, reply.code) == ("rejected", "stale_measurement")


def test_a_repeated_import_with_its_key_records_nothing_more(chips, catalog):
    (first,) = send(chips, catalog, manual(), key="k1")
    before = chips.max_position()
    (again,) = send(chips, catalog, manual(), key="k1")
    assert again.status == "accepted" and again.event_ids == first.event_ids
    assert chips.max_position() == before


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (manual(chip_id="nochip"), "chip_not_found"),
        (manual(qids=["9"]), "unknown_qid"),
        (manual(manual_data={"t1": {"0-1": 50.0}}), "unknown_qid"),
        (manual(manual_data={"t1": {"0": 50.0, "Q00": 51.0}}), "duplicate_qid"),
        (manual(qids=["0", "Q0"]), "duplicate_qid"),
        (manual(manual_data={"t1": {"0": {"value": 50.0, "unit": "ns"}}}), "seed_unit_mismatch"),
        (manual(parameters=["t2_echo"]), "unknown_seed_parameter"),
        (manual(manual_data={"t1": {"0": None}}), "no_seed_values"),
        (manual(qids=["3"]), "no_seed_values"),
        (ImportSeeds(execution_id="b", chip_id="c4"), "chip_not_on_twin"),
        (ImportSeeds(execution_id="b", chip_id="c64", parameters=["anharmonicity"]),
         "unknown_seed_parameter"),
        (manual("taken"), "execution_exists"),
    ],
)  # fmt: skip
def test_bad_imports_are_refused_before_anything_is_recorded(chips, catalog, command, code):
    send(chips, catalog, StartExecution(execution_id="taken", chip_id="c4"))
    before = chips.max_position()
    (reply,) = send(chips, catalog, command)
    assert (reply.status, reply.code) == ("rejected", code), reply
    assert chips.max_position() == before


def test_an_import_of_more_than_8192_values_is_refused(sqlite_store, catalog):
    send(sqlite_store, catalog, RegisterChip(chip_id="big", size=1024))
    data = {f"p{i}": {str(q): 1.0 for q in range(1024)} for i in range(9)}
    before = sqlite_store.max_position()
    command = ImportSeeds(execution_id="x", chip_id="big", source="manual", manual_data=data)
    (reply,) = send(sqlite_store, catalog, command)
    assert (reply.status, reply.code) == ("rejected", "seed_import_too_large")
    assert sqlite_store.max_position() == before


@pytest.mark.parametrize(
    "fields",
    [
        {"source": "manual", "manual_data": {"t1": {"0": float("nan")}}},
        {"source": "manual", "manual_data": {"t1": {"0": float("inf")}}},
        {"source": "manual", "manual_data": {"t1": {"0": 1e13}}},
        {"source": "manual", "manual_data": {"t1": {"0": -(10**13)}}},
        {"source": "manual", "manual_data": {"t1": {"0": True}}},
        {"source": "manual", "manual_data": {"t1": {"0": "55"}}},
        {"source": "manual", "manual_data": {"t1": {"0": {"value": 5, "error": -1}}}},
        {"source": "manual", "manual_data": {"t1:x": {"0": 5}}},
        {"source": "manual"},
        {"source": "backend", "manual_data": {"t1": {"0": 5}}},
        {"source": "files"},
        {"qids": [str(q) for q in range(1025)]},
        {"parameters": [f"p{i}" for i in range(65)]},
    ],
)
def test_bad_values_and_shapes_are_refused_by_the_model(fields):
    with pytest.raises(ValidationError):
        ImportSeeds(execution_id="e", chip_id="c4", **fields)
