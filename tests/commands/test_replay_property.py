"""Property: replaying the stored events of any command sequence reproduces the live state."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.eventstore import EventStore, envelope, store_location
from commands.models import (
    CancelExecution,
    CompleteExecution,
    InputParameter,
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.processor import process_batch
from domain.aggregate import Aggregate
from tests.conftest import sub

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = ["t1", "t2", "qubit_frequency"]


def task_results():
    return st.builds(
        lambda ex, task, qid, minute, outs, ins, status: RecordTaskResult(
            execution_id=f"e{ex}",
            task=TaskResultIn(
                task_id=f"t{task}",
                task_name="Calib",
                qid=qid,
                status=status,
                input_parameters={p: InputParameter(value=1.0) for p in ins},
                output_parameters={
                    p: OutputParameter(value=float(minute), unit="us") for p in outs
                },
                start_at=T0 + timedelta(minutes=minute),
                end_at=T0 + timedelta(minutes=minute + 1),
            ),
        ),  # fmt: skip
        st.sampled_from([0, 0, 0, 1, 2]),
        st.integers(0, 30),
        st.sampled_from(["0", "1", "3", "0-1", "9"]),
        st.integers(0, 60),
        st.lists(st.sampled_from(PARAMS), unique=True, max_size=3),
        st.lists(st.sampled_from(PARAMS), unique=True, max_size=2),
        st.sampled_from(["completed", "completed", "failed"]),
    )


commands = st.one_of(
    st.builds(
        lambda c, n: RegisterChip(chip_id=f"c{c}", size=n), st.integers(0, 1), st.integers(2, 9)
    ),
    st.builds(
        lambda e, c: StartExecution(execution_id=f"e{e}", chip_id=f"c{c}"),
        st.integers(0, 2),
        st.integers(0, 1),
    ),
    *[task_results()] * 20,
    st.builds(lambda e: CompleteExecution(execution_id=f"e{e}"), st.integers(0, 2)),
    st.builds(lambda e: CancelExecution(execution_id=f"e{e}"), st.integers(0, 2)),
)


def state(aggregate: Aggregate) -> dict:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(commands, min_size=1, max_size=40),
    st.lists(st.integers(1, 8), min_size=1, max_size=40),
    st.lists(st.sampled_from([None] * 6 + ["k1", "k2", "k3"]), min_size=1, max_size=40),
)
def test_replay_of_stored_events_equals_live_state(cmds, batch_sizes, keys):
    with tempfile.TemporaryDirectory() as tmp:
        live = EventStore(store_location(None, Path(tmp)))
        setup = [
            RegisterChip(chip_id="c0", size=9),
            StartExecution(execution_id="e0", chip_id="c0"),
        ]
        subs = [sub(c, keys[i % len(keys)]) for i, c in enumerate(setup + cmds)]
        i = 0
        for size in batch_sizes * len(subs):
            if i >= len(subs):
                break
            replies = process_batch(subs[i : i + size], live)
            assert len(replies) == len(subs[i : i + size])
            i += size
        # A second store with an empty cache rebuilds every aggregate from its events alone.
        cold = EventStore(live.location)
        for aggregate_id, aggregate in live._cache.items():
            if not isinstance(aggregate, Aggregate):
                continue  # an absence remembered
            replayed = cold.load(type(aggregate), aggregate_id)
            assert replayed is not None and state(replayed) == state(aggregate)
        stored_ids = {envelope(n)["aggregate_id"] for n in live.notifications_after(0, 100_000)}
        event(f"aggregates stored: {min(len(stored_ids), 5)}+")
        cold.close()
        live.close()
