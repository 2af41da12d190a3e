from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adapters.http.deps import ProjectId, ReadAfter, ReadModels, not_found
from projections import provenance as q

router = APIRouter(prefix="/api/provenance", tags=["provenance"])


@router.get("/entities/{entity_id}", dependencies=[ReadAfter])
def get_entity(entity_id: str, project: ProjectId, db: ReadModels):
    found = q.get_entity(db, project, entity_id)
    if found is None:
        raise not_found(f"parameter version '{entity_id}'")
    return found


@router.get("/history", dependencies=[ReadAfter])
def parameter_history(
    project: ProjectId,
    db: ReadModels,
    parameter_name: Annotated[str, Query(description="Name of the parameter")],
    qid: Annotated[str, Query(description="Qubit or coupling identifier")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    chip_id: Annotated[str | None, Query(description="restrict to one chip")] = None,
):
    return q.parameter_history(db, project, parameter_name, qid, limit=limit, chip_id=chip_id)
