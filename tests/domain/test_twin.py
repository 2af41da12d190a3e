"""The twin job's life: queued -> running -> one ending; what may not happen, doesn't."""

from __future__ import annotations

import pytest

from domain.errors import Conflict
from domain.twin import CANCELLED, COMPLETED, RUNNING, JobCancelled, TwinJob
from tests.conftest import ctx


def queued() -> TwinJob:
    return TwinJob.submit(
        ctx(), existing=None, job_id="j1", backend_id="b", circuits=("c",), shots=10,
        metadata={}, after_position=0,
    )  # fmt: skip


def test_a_job_runs_once_and_ends_once():
    job = queued()
    job.start(ctx())
    assert job.status == RUNNING
    with pytest.raises(Conflict) as err:
        job.start(ctx())
    assert err.value.code == "job_running"
    job.complete(ctx(), results=({"counts": {}},), run_ms=1.0)
    assert job.status == COMPLETED
    for again in (lambda: job.fail(ctx(), code="x", message="y"), lambda: job.start(ctx())):
        with pytest.raises(Conflict):
            again()


def test_a_queued_or_running_job_can_be_cancelled_and_then_never_ends_otherwise():
    job = queued()
    job.cancel(ctx())
    assert job.status == CANCELLED and isinstance(job.collect_events()[-1], JobCancelled)
    running = queued()
    running.start(ctx())
    running.cancel(ctx())
    assert running.status == CANCELLED
    with pytest.raises(Conflict) as err:
        running.complete(ctx(), results=(), run_ms=1.0)  # the simulation's late result
    assert err.value.code == "job_not_running"
    with pytest.raises(Conflict) as err:
        job.start(ctx())
    assert err.value.code == "job_finished"
    with pytest.raises(Conflict) as err:
        job.cancel(ctx())
    assert err.value.code == "job_finished"


def test_a_job_id_is_used_once():
    with pytest.raises(Conflict):
        TwinJob.submit(ctx(), existing=queued(), job_id="j1", backend_id="b", circuits=(),
                       shots=1, metadata={}, after_position=0)  # fmt: skip


def test_a_fast_job_starts_and_ends_in_one_command_unless_cancelled():
    job = queued()
    job.collect_events()
    with pytest.raises(Conflict) as err:  # without `start`, a queued job can't end
        job.complete(ctx(), results=(), run_ms=1.0)
    assert err.value.code == "job_not_running"
    job.complete(ctx(), results=({"counts": {}},), run_ms=1.0, start=True)
    assert job.status == COMPLETED
    assert [type(e).__name__ for e in job.collect_events()] == ["JobStarted", "JobCompleted"]
    cancelled = queued()
    cancelled.cancel(ctx())
    with pytest.raises(Conflict) as err:
        cancelled.fail(ctx(), code="x", message="y", start=True)
    assert err.value.code == "job_not_running" and cancelled.status == CANCELLED
