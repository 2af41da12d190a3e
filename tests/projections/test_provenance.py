"""The PROV relations a task result leaves in the read model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.eventstore import EventStore, envelope, store_location
from adapters.readstore import ReadStore
from commands.models import (
    InputParameter,
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.processor import process_batch
from projections.registry import all_projectors
from tests.conftest import sub

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def result(task_id: str, minute: int, inputs: dict, outputs: dict) -> RecordTaskResult:
    return RecordTaskResult(
        execution_id="e1",
        task=TaskResultIn(
            task_id=task_id, task_name="Calib", qid="0",
            input_parameters={k: InputParameter(value=v) for k, v in inputs.items()},
            output_parameters={k: OutputParameter(value=v) for k, v in outputs.items()},
            start_at=T0 + timedelta(minutes=minute), end_at=T0 + timedelta(minutes=minute, seconds=30),
        ),
    )  # fmt: skip


def test_task_results_leave_used_generated_and_derived_relations(tmp_path: Path):
    store = EventStore(store_location(None, tmp_path))
    commands = [
        RegisterChip(chip_id="c1", size=4),
        StartExecution(execution_id="e1", chip_id="c1"),
        result("f", 1, {}, {"freq": 5.0, "amp": 0.1}),
        result("t", 2, {"freq": 5.0, "amp": 0.1, "seed_only": 1.0}, {"t1": 40.0, "t2": 30.0}),
    ]
    replies = process_batch([sub(c) for c in commands], store)
    assert all(r.status == "accepted" for r in replies)
    read = ReadStore(tmp_path / "read.duckdb", all_projectors())
    read.apply([envelope(n) for n in store.notifications_after(0, 1000)])

    rows = read.rows("SELECT relation, subject, object FROM prov_relation ORDER BY ALL")
    relations = {(r["relation"], r["subject"], r["object"]) for r in rows}
    inputs = {"freq:0:e1:f", "amp:0:e1:f"}  # seed_only has no recorded version: no link
    assert {(s, o) for rel, s, o in relations if rel == "used"} == {("e1:t", i) for i in inputs}
    for out in ("t1:0:e1:t", "t2:0:e1:t"):
        assert ("wasGeneratedBy", out, "e1:t") in relations
        assert {o for rel, s, o in relations if rel == "wasDerivedFrom" and s == out} == inputs
    assert ("wasGeneratedBy", "freq:0:e1:f", "e1:f") in relations
    assert len(rows) == len(relations) == 2 + 2 + 2 * (1 + 2)  # no duplicates
    read.close()
    store.close()
