from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import (
    IdempotencyKey,
    Offset,
    ProjectId,
    ReadAfter,
    ReadModels,
    WritableProject,
    accepted_body,
    send_command,
    wait_for_position,
)
from adapters.http.errors import ApiError, not_found
from commands.models import RegisterChip
from projections import chips as q

router = APIRouter(prefix="/api/chips", tags=["chip"])


class CreateChipRequest(RegisterChip):
    """The bus command itself: validated here exactly as the command side will."""


class ChipResponse(BaseModel):
    chip_id: str
    size: int
    topology_id: str
    qubit_count: int
    coupling_count: int
    installed_at: str | None
    backend_id: str = ""  # the twin backend whose qubits these are (qledger's addition)


class ListChipsResponse(BaseModel):
    chips: list[ChipResponse]
    total: int


class TargetResponse(BaseModel):
    qid: str
    chip_id: str
    status: str
    data: dict


class ListQubitsResponse(BaseModel):
    qubits: list[TargetResponse]
    total: int
    limit: int
    offset: int


class ListCouplingsResponse(BaseModel):
    couplings: list[TargetResponse]
    total: int
    limit: int
    offset: int


@router.get("", response_model=ListChipsResponse, dependencies=[ReadAfter])
def list_chips(project: ProjectId, db: ReadModels):
    return q.list_chips(db, project)


@router.post("", response_model=ChipResponse)
async def create_chip(
    body: CreateChipRequest,
    request: Request,
    response: Response,
    project: WritableProject,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
):
    reply = await send_command(request, body, project, idempotency_key)
    response.headers["X-Position"] = str(reply.position)
    try:
        await wait_for_position(reply.position, request)
    except ApiError:
        # Recorded, but not yet readable: say so instead of failing a write that happened.
        location = f"/api/chips/{body.chip_id}?min_position={reply.position}"
        return JSONResponse(
            accepted_body(reply, chip_id=body.chip_id),
            status_code=202,
            headers={"X-Position": str(reply.position), "Location": location},
        )
    return await run_in_threadpool(q.get_chip, db, project, body.chip_id)


def _chip_or_404(db, project: str, chip_id: str):
    chip = q.get_chip(db, project, chip_id)
    if chip is None:
        raise not_found(f"chip '{chip_id}'")
    return chip


@router.get("/{chip_id}", response_model=ChipResponse, dependencies=[ReadAfter])
def get_chip(chip_id: str, project: ProjectId, db: ReadModels):
    return _chip_or_404(db, project, chip_id)


@router.get("/{chip_id}/qubits", response_model=ListQubitsResponse, dependencies=[ReadAfter])
def list_qubits(
    chip_id: str,
    project: ProjectId,
    db: ReadModels,
    limit: Annotated[int, Query(ge=1, le=256)] = 50,
    offset: Offset = 0,
    qids: Annotated[list[str] | None, Query()] = None,
):
    _chip_or_404(db, project, chip_id)
    page = q.list_targets(db, project, chip_id, "qubit", limit=limit, offset=offset, ids=qids)
    return {"qubits": page.pop("items"), **page}


@router.get("/{chip_id}/qubits/{qid}", response_model=TargetResponse, dependencies=[ReadAfter])
def get_qubit(chip_id: str, qid: str, project: ProjectId, db: ReadModels):
    qubit = q.get_target(db, project, chip_id, "qubit", qid)
    if qubit is None:
        raise not_found(f"qubit '{qid}' of chip '{chip_id}'")
    return qubit


@router.get("/{chip_id}/couplings", response_model=ListCouplingsResponse, dependencies=[ReadAfter])
def list_couplings(
    chip_id: str,
    project: ProjectId,
    db: ReadModels,
    limit: Annotated[int, Query(ge=1, le=512)] = 100,
    offset: Offset = 0,
):
    _chip_or_404(db, project, chip_id)
    page = q.list_targets(db, project, chip_id, "coupling", limit=limit, offset=offset)
    return {"couplings": page.pop("items"), **page}


@router.get(
    "/{chip_id}/couplings/{coupling_id}", response_model=TargetResponse, dependencies=[ReadAfter]
)
def get_coupling(chip_id: str, coupling_id: str, project: ProjectId, db: ReadModels):
    coupling = q.get_target(db, project, chip_id, "coupling", coupling_id)
    if coupling is None:
        raise not_found(f"coupling '{coupling_id}' of chip '{chip_id}'")
    return coupling
