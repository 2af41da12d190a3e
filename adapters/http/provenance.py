"""The provenance group of the calibration platform's API, each query also `as_of`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from adapters.http.deps import AsOf, ProjectId, ReadAfter, ReadModels, fast_json
from adapters.http.errors import not_found
from domain.metrics import Severity
from projections import changes, lineage, quality
from projections import provenance as q

router = APIRouter(prefix="/api/provenance", tags=["provenance"])

Depth = Annotated[int, Query(ge=1, le=20, description="maximum traversal depth")]
ParameterNames = Annotated[list[str] | None, Query(description="only these parameters")]
ChipFilter = Annotated[str | None, Query(description="only this chip")]


@router.get("/entities/{entity_id}", dependencies=[ReadAfter])
def get_entity(entity_id: str, project: ProjectId, db: ReadModels, at: AsOf):
    found = q.get_entity(db, project, entity_id, at)
    if found is None:
        raise not_found(f"parameter version '{entity_id}'")
    return fast_json(found)


@router.get("/lineage/{entity_id}", dependencies=[ReadAfter])
def get_lineage(
    entity_id: str, project: ProjectId, db: ReadModels, at: AsOf, request: Request, max_depth: Depth = 5
):  # fmt: skip
    graph = request.app.state.graph
    return fast_json(lineage.lineage(db, graph, project, entity_id, max_depth=max_depth, at=at))


@router.get("/impact/{entity_id}", dependencies=[ReadAfter])
def get_impact(
    entity_id: str, project: ProjectId, db: ReadModels, at: AsOf, request: Request, max_depth: Depth = 5
):  # fmt: skip
    graph = request.app.state.graph
    return fast_json(lineage.impact(db, graph, project, entity_id, max_depth=max_depth, at=at))


@router.get("/compare", dependencies=[ReadAfter])
def compare_executions(
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    execution_id_before: Annotated[str, Query(description="the earlier execution")],
    execution_id_after: Annotated[str, Query(description="the later execution")],
):
    return fast_json(
        changes.compare_executions(db, project, execution_id_before, execution_id_after, at)
    )


@router.get("/history", dependencies=[ReadAfter])
def parameter_history(
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    parameter_name: Annotated[str, Query(description="Name of the parameter")],
    qid: Annotated[str, Query(description="Qubit or coupling identifier")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    chip_id: Annotated[
        str | None, Query(description="needed when the qid exists on several chips")
    ] = None,
):
    return fast_json(
        q.parameter_history(db, project, parameter_name, qid, limit=limit, chip_id=chip_id, at=at)
    )


@router.get("/stats", dependencies=[ReadAfter])
def provenance_stats(project: ProjectId, db: ReadModels, at: AsOf):
    return fast_json(changes.stats(db, project, at))


@router.get("/executions", dependencies=[ReadAfter])
def recent_executions(
    project: ProjectId, db: ReadModels, at: AsOf, limit: Annotated[int, Query(ge=1, le=50)] = 20
):
    return fast_json(changes.recent_executions(db, project, limit=limit, at=at))


@router.get("/changes", dependencies=[ReadAfter])
def recent_changes(
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    within_hours: Annotated[int, Query(ge=1, le=168)] = 24,
    parameter_names: ParameterNames = None,
):
    return fast_json(
        changes.recent_changes(
            db,
            project,
            limit=limit,
            within_hours=within_hours,
            parameter_names=parameter_names,
            at=at,
        )
    )


@router.get("/degradation-trends", dependencies=[ReadAfter])
def degradation_trends(
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    min_streak: Annotated[int, Query(ge=3, le=20)] = 3,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    parameter_names: ParameterNames = None,
    chip_id: ChipFilter = None,
    significance: Annotated[
        bool, Query(description="ignore steps smaller than the combined measurement errors")
    ] = False,
):
    return fast_json(
        quality.degradation_trends(
            db,
            project,
            request.app.state.catalog,
            min_streak=min_streak,
            limit=limit,
            parameter_names=parameter_names,
            chip_id=chip_id,
            significance=significance,
            at=at,
        )
    )


@router.get("/recommendations/{entity_id}", dependencies=[ReadAfter])
def recommendations(
    entity_id: str, project: ProjectId, db: ReadModels, at: AsOf, request: Request, max_depth: Depth = 5
):  # fmt: skip
    graph = request.app.state.graph
    return fast_json(
        lineage.recommendations(db, graph, project, entity_id, max_depth=max_depth, at=at)
    )


SeverityFilter = Annotated[Severity | None, Query(description="only this severity")]
ViolationLimit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/policy/violations", dependencies=[ReadAfter])
def policy_violations(
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    severity: SeverityFilter = None,
    limit: ViolationLimit = 100,
    parameter_names: ParameterNames = None,
    chip_id: ChipFilter = None,
):
    return fast_json(
        quality.policy_violations(
            db,
            project,
            request.app.state.policy,
            limit=limit,
            severity=severity,
            parameter_names=parameter_names,
            chip_id=chip_id,
            at=at,
        )
    )


@router.get("/policy/impact/{entity_id}", dependencies=[ReadAfter])
def policy_impact(
    entity_id: str,
    project: ProjectId,
    db: ReadModels,
    at: AsOf,
    request: Request,
    max_depth: Depth = 5,
    severity: SeverityFilter = None,
    limit: ViolationLimit = 100,
):
    graph = request.app.state.graph
    affected = lineage.impact_set(db, graph, project, entity_id, max_depth=max_depth, at=at)
    return fast_json(
        quality.policy_violations(
            db,
            project,
            request.app.state.policy,
            limit=limit,
            severity=severity,
            entity_ids=list(affected),
            at=at,
        )
    )
