"""The metrics group of the calibration platform's API (all but the PDF report), and the
chip group's metric views: summary, heatmap and dates. Every query also `as_of`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from adapters.http.deps import AsOf, ProjectId, ReadAfter, ReadModels, Zone, fast_json
from domain.errors import Kind
from projections import metrics as q
from projections.base import QueryError

router = APIRouter(prefix="/api/metrics", tags=["metrics"])
chip_views = APIRouter(prefix="/api/chips", tags=["chip"])


@router.get("/config")
def metrics_config(request: Request, _: ProjectId):
    return fast_json(q.metrics_config(request.app.state.catalog))


@router.get("/chips/{chip_id}/metrics", dependencies=[ReadAfter])
def chip_metrics(
    chip_id: str,
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    within_hours: Annotated[int | None, Query(ge=1, le=24 * 366)] = None,
    selection_mode: Literal["latest", "best", "average"] = "latest",
):
    return fast_json(
        q.chip_metrics(
            db,
            project,
            chip_id,
            request.app.state.catalog,
            selection_mode=selection_mode,
            within_hours=within_hours,
            at=at,
        )
    )


HistoryLimit = Annotated[int | None, Query(ge=1, le=10_000, description="newest first")]
WithinDays = Annotated[int | None, Query(ge=1, le=3660)]


def _history(request, db, project, chip_id, target_id, metric, target, limit, within_days, at):
    definition = q.metric_or_404(request.app.state.catalog, metric)
    if definition.target != target:
        raise QueryError(
            Kind.NOT_FOUND,
            "unknown_metric",
            f"'{metric}' is a {definition.target} metric, not a {target} one",
        )
    return q.metric_history(
        db, project, chip_id, target_id, definition, limit=limit, within_days=within_days, at=at
    )


@router.get("/chips/{chip_id}/qubits/{qid}/history", dependencies=[ReadAfter])
def qubit_metric_history(
    chip_id: str,
    qid: str,
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    metric: Annotated[str, Query(description="e.g. t1, qubit_frequency")],
    limit: HistoryLimit = None,
    within_days: WithinDays = None,
):
    return fast_json(
        _history(request, db, project, chip_id, qid, metric, "qubit", limit, within_days, at)
    )


@router.get("/chips/{chip_id}/couplings/{coupling_id}/history", dependencies=[ReadAfter])
def coupling_metric_history(
    chip_id: str,
    coupling_id: str,
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    metric: Annotated[str, Query(description="e.g. zx90_gate_fidelity")],
    limit: HistoryLimit = None,
    within_days: WithinDays = None,
):
    return fast_json(
        _history(
            request, db, project, chip_id, coupling_id, metric, "coupling", limit, within_days, at
        )
    )


@chip_views.get("/{chip_id}/metrics/summary", dependencies=[ReadAfter])
def metrics_summary(chip_id: str, project: ProjectId, db: ReadModels, at: AsOf, request: Request):
    return fast_json(q.summary(db, project, chip_id, request.app.state.catalog, at))


@chip_views.get("/{chip_id}/metrics/heatmap/{metric}", dependencies=[ReadAfter])
def metric_heatmap(
    chip_id: str, metric: str, project: ProjectId, db: ReadModels, at: AsOf, request: Request
):
    definition = q.metric_or_404(request.app.state.catalog, metric)
    return fast_json(q.heatmap(db, project, chip_id, definition, at))


@chip_views.get("/{chip_id}/dates", dependencies=[ReadAfter])
def chip_dates(chip_id: str, project: ProjectId, db: ReadModels, tz: Zone):
    return fast_json(q.chip_dates(db, project, chip_id, tz))
