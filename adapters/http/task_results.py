"""The task-result group of the calibration platform's API (re-execution and figure
downloads are not built yet), and the tags list. Every query also `as_of`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from adapters.http.deps import AsOf, ProjectId, ReadAfter, ReadModels, Zone, fast_json
from projections import task_results as q

router = APIRouter(prefix="/api/task-results", tags=["task-result"])
tags = APIRouter(prefix="/api/tags", tags=["tag"])

ChipId = Annotated[str, Query(description="Chip ID")]
TaskName = Annotated[str, Query(description="Task name")]
Day = Annotated[str, Query(pattern=r"^\d{8}$", description="YYYYMMDD, in `tz`")]


def _latest(kind: str):
    def latest(chip_id: ChipId, task: TaskName, project: ProjectId, db: ReadModels, at: AsOf):
        return fast_json(q.latest_results(db, project, chip_id, task, kind, at=at))

    return latest


def _on_day(kind: str):
    def on_day(
        chip_id: ChipId, task: TaskName, date: Day, project: ProjectId, db: ReadModels,
        tz: Zone, at: AsOf,
    ):  # fmt: skip
        bounds = q.day_bounds(date, tz)
        return fast_json(q.latest_results(db, project, chip_id, task, kind, day=bounds, at=at))

    return on_day


for kind, plural in (("qubit", "qubits"), ("coupling", "couplings")):
    router.add_api_route(
        f"/{plural}/latest", _latest(kind), methods=["GET"], dependencies=[ReadAfter],
        summary=f"The latest result of a task on every {kind} of a chip",
    )  # fmt: skip
    router.add_api_route(
        f"/{plural}/history", _on_day(kind), methods=["GET"], dependencies=[ReadAfter],
        summary=f"The last result of a task on every {kind} on one day",
    )  # fmt: skip


@router.get("/qubits/{qid}/history", dependencies=[ReadAfter])
def qubit_history(
    qid: str, chip_id: ChipId, task: TaskName, project: ProjectId, db: ReadModels, at: AsOf
):
    """Every result of a task on one qubit, newest first."""
    return fast_json(q.target_history(db, project, chip_id, qid, task, at))


@router.get("/couplings/{coupling_id}/history", dependencies=[ReadAfter])
def coupling_history(
    coupling_id: str, chip_id: ChipId, task: TaskName, project: ProjectId, db: ReadModels, at: AsOf
):
    """Every result of a task on one coupling, newest first."""
    return fast_json(q.target_history(db, project, chip_id, coupling_id, task, at))


@router.get("/timeseries", dependencies=[ReadAfter])
def timeseries(
    chip_id: ChipId,
    tag: Annotated[str, Query(description="execution tag")],
    parameter: Annotated[str, Query(description="output parameter")],
    start_at: datetime,
    end_at: datetime,
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    tz: Zone,
    qid: str | None = None,
):
    start, end = (t if t.tzinfo else t.replace(tzinfo=tz) for t in (start_at, end_at))
    return fast_json(
        q.timeseries(
            db,
            project,
            chip_id,
            tag=tag,
            parameter=parameter,
            start_at=start.astimezone(UTC),
            end_at=end.astimezone(UTC),
            qid=qid,
            at=at,
        )  # fmt: skip
    )


@tags.get("", dependencies=[ReadAfter])
def list_tags(project: ProjectId, db: ReadModels):
    return q.list_tags(db, project)
