"""Property: a projection fed the same events with duplicates, reordering within batches,
and restarts ends identical to one fed each event once."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eventstore import EventStore, envelope, store_location
from adapters.readstore import ReadStore
from commands.models import (
    CompleteExecution,
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


def make_history(tmp: Path) -> list[dict]:
    store = EventStore(store_location(None, tmp))
    cmds = [RegisterChip(chip_id="c1", size=9), StartExecution(execution_id="e1", chip_id="c1")]
    for i in range(30):
        cmds.append(
            RecordTaskResult(
                execution_id="e1",
                task=TaskResultIn(
                    task_id=f"t{i}",
                    task_name="Calib",
                    qid=str(i % 4),
                    input_parameters={"qubit_frequency": InputParameter(value=1.0)},
                    output_parameters={
                        "qubit_frequency": OutputParameter(value=5.0 + i, unit="GHz"),
                        "t1": OutputParameter(value=40.0 + i, unit="us", error=0.5),
                    },
                    start_at=T0 + timedelta(minutes=i),
                    end_at=T0 + timedelta(minutes=i, seconds=30),
                ),
            )  # fmt: skip
        )
    cmds.append(CompleteExecution(execution_id="e1"))
    process_batch([sub(c) for c in cmds], store)
    envs = [envelope(n) for n in store.notifications_after(0, 10_000)]
    store.close()
    return envs


def dump(read: ReadStore) -> dict[str, list]:
    tables = [t.name for p in read.projectors for t in p.tables] + ["projector_position"]
    return {t: sorted(map(repr, read.rows(f"SELECT * FROM {t}"))) for t in tables}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_duplicates_reordering_and_restarts_change_nothing(data):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        envs = make_history(tmp)
        once = ReadStore(tmp / "once.duckdb", all_projectors())
        once.apply(envs)
        expected = dump(once)
        once.close()

        path = tmp / "messy.duckdb"
        read = ReadStore(path, all_projectors())
        i = 0
        while i < len(envs):
            size = data.draw(st.integers(1, 25))
            replay_back = data.draw(st.integers(0, 10))  # redelivery of already-applied events
            batch = envs[max(0, i - replay_back) : i + size]
            batch = batch + data.draw(st.lists(st.sampled_from(batch), max_size=5))
            batch = data.draw(st.permutations(batch))
            read.apply(batch)
            i += size
            if data.draw(st.booleans()):  # restart: reopen the file
                read.close()
                read = ReadStore(path, all_projectors())
        assert dump(read) == expected
        read.close()
