"""Properties of lineage and impact over generated calibration DAGs, through the real
command side (SQLite store) and a real DuckDB read model:

- Y is in the lineage of X exactly when X is in the impact of Y;
- lineage equals the transitive closure of the inputs each task was given (computed here);
- asking `as_of` the newest instant answers exactly what the current query answers.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from config.catalog import load_metrics, load_policy
from projections import changes, lineage, quality
from projections import provenance as q
from projections.provenance import Moment
from projections.registry import all_projectors
from tests.conftest import sub

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("t1", "t2_echo", "qubit_frequency", "x90_gate_fidelity")


@st.composite
def dags(draw):
    """Tasks in time order; each reads some earlier outputs (one per parameter name)."""
    tasks = []
    produced: list[str] = []
    for i in range(draw(st.integers(2, 14))):
        qid = draw(st.sampled_from(["0", "1", "2"]))
        outputs = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
        picked = draw(st.lists(st.sampled_from(produced), max_size=3, unique=True)) if produced else []  # fmt: skip
        inputs = {}
        for entity in picked:
            inputs.setdefault(entity.split(":")[0], entity)
        values = {n: draw(st.floats(1, 100, allow_nan=False)) for n in outputs}
        tasks.append((f"t{i}", qid, inputs, values))
        produced += [f"{n}:{qid}:e1:t{i}" for n in outputs]
    return tasks


def record(tmp: Path, tasks) -> tuple[ReadStore, dict[str, set[str]]]:
    store = EventStore(store_location(None, tmp))
    cmds = [RegisterChip(chip_id="c1", size=4), StartExecution(execution_id="e1", chip_id="c1")]
    used: dict[str, set[str]] = {}
    for i, (task_id, qid, inputs, values) in enumerate(tasks):
        cmds.append(
            RecordTaskResult(
                execution_id="e1",
                task=TaskResultIn(
                    task_id=task_id, task_name=f"Task{i % 3}", qid=qid,
                    input_parameters={n: InputParameter(entity_id=e) for n, e in inputs.items()},
                    output_parameters={n: OutputParameter(value=v, error=0.5) for n, v in values.items()},
                    start_at=T0 + timedelta(minutes=i), end_at=T0 + timedelta(minutes=i, seconds=30),
                ),
            )
        )  # fmt: skip
        for n in values:
            used[f"{n}:{qid}:e1:{task_id}"] = set(inputs.values())
    replies = process_batch([sub(c) for c in cmds], store)
    assert all(r.status == "accepted" for r in replies), replies
    read = ReadStore(tmp / "read.duckdb", all_projectors())
    read.apply([envelope(n) for n in store.notifications_after(0, 10_000)])
    store.close()
    return read, used


def entities(answer: dict) -> set[str]:
    return {n["node_id"] for n in answer["nodes"] if n["node_type"] == "entity"}


def closure(used: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for parent in used[todo.pop()]:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_lineage_and_impact_mirror_each_other_and_the_recorded_inputs(tasks):
    with tempfile.TemporaryDirectory() as tmp:
        read, used = record(Path(tmp), tasks)
        graph = lineage.ProvenanceGraph()
        try:
            ups = {
                x: entities(lineage.lineage(read, graph, "default", x, max_depth=20)) for x in used
            }
            downs = {y: entities(lineage.impact(read, graph, "default", y, max_depth=20)) for y in used}  # fmt: skip
            for x in used:
                assert ups[x] == closure(used, x)
                for y in used:
                    assert (y in ups[x]) == (x in downs[y])
        finally:
            read.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_as_of_the_newest_instant_is_the_current_answer(tasks):
    catalog, policy = load_metrics(), load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        read, used = record(Path(tmp), tasks)
        graph = lineage.ProvenanceGraph()
        newest = Moment(datetime.now(UTC))
        try:
            for moment_fn in (
                lambda at: changes.stats(read, "default", at),
                lambda at: changes.recent_executions(read, "default", limit=50, at=at),
                lambda at: quality.degradation_trends(
                    read, "default", catalog, min_streak=3, limit=100, at=at
                ),
                lambda at: quality.policy_violations(
                    # staleness is measured from the moment asked about: pin it
                    read,
                    "default",
                    tuple(r for r in policy if r.staleness_hours is None),
                    limit=1000,
                    at=at,
                ),  # fmt: skip
                lambda at: [
                    q.parameter_history(read, "default", n, qid, limit=50, chip_id=None, at=at)
                    for n in NAMES
                    for qid in "012"
                ],
                lambda at: [
                    lineage.impact(read, graph, "default", e, max_depth=20, at=at) for e in used
                ],  # fmt: skip
                lambda at: [
                    lineage.lineage(read, graph, "default", e, max_depth=20, at=at) for e in used
                ],  # fmt: skip
            ):
                assert moment_fn(newest) == moment_fn(Moment())
        finally:
            read.close()
