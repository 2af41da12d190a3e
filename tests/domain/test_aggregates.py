"""Given events -> when a command -> then events or an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.chip import Chip, ChipRegistered
from domain.errors import Conflict, InvalidInput
from domain.execution import Execution, ExecutionFinished, TaskResultRecorded
from domain.parameters import ParameterSeries, series_key
from domain.topology import layout_for, square_lattice
from tests.conftest import ctx

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def given(cls, *events):
    return cls.replay(events)


def started(execution_id: str = "e1") -> Execution:
    return Execution.start(
        ctx(), execution_id=execution_id, chip_id="c1", name="n", flow_name="f", tags=(), note={},
        started_at=T0, existing=None,
    )  # fmt: skip


def task(**over):
    fields = dict(
        task_id="t1", task_name="CheckT1", task_type="qubit", qid="0", status="completed",
        message="", input_parameters={}, output_parameters={}, run_parameters={},
        start_at=T0, end_at=T0 + timedelta(seconds=1), used=(),
    )  # fmt: skip
    return {**fields, **over}


def test_square_lattice_couples_nearest_neighbours_only():
    layout = square_lattice(9)  # 3 x 3
    assert layout.qubits == tuple(str(i) for i in range(9))
    assert set(layout.couplings) == {
        "0-1", "1-2", "3-4", "4-5", "6-7", "7-8", "0-3", "1-4", "2-5", "3-6", "4-7", "5-8",
    }  # fmt: skip
    assert len(square_lattice(64).couplings) == 2 * 8 * 7
    # 5 qubits fill a 3-wide grid: row 0 = 0 1 2, row 1 = 3 4
    assert set(square_lattice(5).couplings) == {"0-1", "1-2", "3-4", "0-3", "1-4"}


def test_unknown_topology_and_bad_size_are_refused():
    with pytest.raises(InvalidInput) as err:
        layout_for("heavy-hex", 27)
    assert err.value.code == "unknown_topology"
    with pytest.raises(InvalidInput):
        layout_for("square-lattice", 0)


def test_register_chip_then_duplicate_is_a_conflict():
    chip = Chip.register(ctx(), chip_id="c1", size=4, topology_id="square-lattice", existing=None)
    (event,) = chip.collect_events()
    assert isinstance(event, ChipRegistered) and event.couplings == ("0-1", "0-2", "1-3", "2-3")
    existing = given(Chip, event)
    with pytest.raises(Conflict) as err:
        Chip.register(ctx(), chip_id="c1", size=4, topology_id="square-lattice", existing=existing)
    assert err.value.code == "chip_exists"


def test_chip_knows_its_qubits_and_couplings():
    chip = Chip.register(ctx(), chip_id="c1", size=4, topology_id="square-lattice", existing=None)
    chip.require_target("3")
    chip.require_target("0-1")
    with pytest.raises(InvalidInput) as err:
        chip.require_target("0-3")  # diagonal: not coupled
    assert err.value.code == "unknown_qid"


def test_task_results_then_finish_then_no_more_results():
    execution = started()
    execution.record_task_result(ctx(), **task())
    execution.finish(ctx(), status="completed", message="")
    events = execution.collect_events()
    assert [type(e) for e in events[1:]] == [TaskResultRecorded, ExecutionFinished]

    replayed = given(Execution, *events)
    assert replayed.status == "completed" and replayed.version == 3
    with pytest.raises(Conflict) as err:
        replayed.record_task_result(ctx(), **task(task_id="t2"))
    assert err.value.code == "execution_finished"
    assert replayed.collect_events() == []  # the refusal triggered nothing
    with pytest.raises(Conflict):
        replayed.finish(ctx(), status="cancelled", message="")


def test_duplicate_task_and_backwards_time_are_refused_without_change():
    execution = started()
    execution.record_task_result(ctx(), **task())
    version = execution.version
    with pytest.raises(Conflict) as err:
        execution.record_task_result(ctx(), **task())
    assert err.value.code == "duplicate_task"
    with pytest.raises(InvalidInput):
        execution.record_task_result(ctx(), **task(task_id="t2", end_at=T0 - timedelta(seconds=1)))
    assert execution.version == version


def test_series_versions_count_up_and_know_what_was_valid_when():
    series = ParameterSeries(series_key("default", "c1", "0", "t1"))
    for i, minute in enumerate((10, 20, 30)):
        series.record_version(
            ctx(), chip_id="c1", qid="0", parameter_name="t1", value=50.0 + i, unit="us",
            error=None, valid_from=T0 + timedelta(minutes=minute), execution_id="e1",
            task_id=f"t{i}", task_name="CheckT1", used=(),
        )  # fmt: skip
    events = series.collect_events()
    assert [e.version for e in events] == [1, 2, 3]
    assert events[1].entity_id == "t1:0:e1:t1"
    replayed = given(ParameterSeries, *events)
    assert replayed.entity_at(T0) is None
    assert replayed.entity_at(T0 + timedelta(minutes=25)) == "t1:0:e1:t1"
    assert replayed.entity_at(T0 + timedelta(days=1)) == "t1:0:e1:t2"
    with pytest.raises(Conflict) as err:
        replayed.check_next(parameter_name="t1", qid="0", valid_from=T0)
    assert err.value.code == "stale_measurement"
