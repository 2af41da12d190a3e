"""QEC sessions (under /api/v1/digital-twin/qec_session/v1). Every step is a bus command;
a measured round's syndrome comes back in the command's reply (its event)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from adapters.http.deps import (
    MAX_INDEX,
    IdempotencyKey,
    ProjectId,
    ReadModels,
    TwinProject,
    generated_id,
    send_command,
    wait_for_position,
    wait_for_store_head,
)
from adapters.http.errors import ApiError
from commands.twin_qec import (
    MAX_ROUNDS_PER_STEP,
    CreateQecSession,
    EndQecSession,
    MeasureQecRounds,
    SubmitQecCorrection,
)
from domain.errors import Kind
from projections import twin_qec as q
from projections.base import QueryError
from twin.qec_code import build

PREFIX = "/api/v1/digital-twin/qec_session/v1"
RoundIndex = Annotated[int, PathParam(ge=0, le=MAX_INDEX)]

router = APIRouter(prefix=PREFIX, tags=["twin QEC sessions"])


class SessionRequest(BaseModel):
    backend_id: str
    code_family: Literal["repetition", "surface"]
    code_distance: int
    basis: Literal["Z", "X"] = "Z"
    rounds: int | None = Field(
        None, description="the most rounds this session may run (default: as many as allowed)"
    )
    seed: int | None = Field(None, description="makes the session reproducible bit for bit")
    mode: Literal["interactive", "autonomous"] = "interactive"
    shots: int = Field(1, description="autonomous sessions: shots run in lockstep")
    session_id: str | None = Field(None, description="generated when omitted")


class CorrectionRequest(BaseModel):
    correction_bits: list[int] = Field(description="one bit per data qubit (layout order)")
    measure_next: bool = Field(False, description="also measure the next round, in one step")


@router.post("/")
@router.post("", include_in_schema=False)
async def create_session(
    body: SessionRequest,
    request: Request,
    project: TwinProject,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
):
    """Start a memory experiment of a repetition or rotated surface code on a backend's
    qubits (code qubit i on backend qubit i), under the backend's effective noise."""
    session_id = body.session_id or generated_id(project, idempotency_key)
    fields = body.model_dump(exclude_none=True, exclude={"session_id"})
    command = CreateQecSession(session_id=session_id, **fields)
    reply = await send_command(request, command, project, idempotency_key)
    created = reply.event
    if created is None:  # a retry answered by its Idempotency-Key: read the session
        created = await _settled_session(request, db, project, session_id)
    code = build(body.code_family, body.code_distance, body.basis)
    return {
        "session_id": session_id,
        "backend_id": body.backend_id,
        "code_family": body.code_family,
        "code_distance": body.code_distance,
        "basis": body.basis,
        "mode": body.mode,
        "shots": body.shots if body.mode == "autonomous" else 1,
        "rounds_limit": created["rounds_limit"],
        "seed": created["seed"],
        "num_stabilizers": code.num_stabilizers,
        "num_data_qubits": len(code.data),
        "qubits_used": code.num_qubits,
        "layout": code.layout(),
        "position": reply.position,
    }


async def _settled_session(request: Request, db, project: str, session_id: str) -> dict:
    """The session's row once the read model holds everything the store held when asked
    (its rounds are counted from its steps: a read right after a step sees it)."""
    await wait_for_store_head(request)
    try:
        return await asyncio.to_thread(q.session_row, db, project, session_id)
    except QueryError as err:
        raise ApiError(Kind.NOT_FOUND, err.code, err.message) from None


@router.get("/{session_id}/round/{round_index}/syndrome")
async def syndrome(
    session_id: str, round_index: RoundIndex, request: Request, project: TwinProject, db: ReadModels
):
    """Measure round `round_index` (the next one) and return its syndrome; a round
    already measured is returned as recorded. Later rounds: 409 with the expected one."""
    try:
        reply = await send_command(
            request, MeasureQecRounds(session_id=session_id, round_index=round_index), project,
            None,
        )  # fmt: skip
    except ApiError as err:
        if err.detail["code"] not in ("round_out_of_order", "session_ended"):  # type: ignore[index]
            raise
        return await _recorded_round(request, db, project, session_id, round_index, err)
    assert reply.event is not None  # no Idempotency-Key: never a replayed reply
    return q.round_view(session_id, reply.event, reply.position)


async def _recorded_round(request, db, project, session_id, round_index, err) -> dict:
    row = await _settled_session(request, db, project, session_id)
    if round_index >= row["rounds"]:
        raise err or ApiError(
            Kind.CONFLICT, "round_out_of_order", f"the next round is {row['rounds']}"
        )
    bits = await asyncio.to_thread(
        q.measured_round, db, project, session_id, round_index, row["num_stabilizers"]
    )
    if bits is None:  # measured, but not yet in the read model
        raise ApiError(
            Kind.UNAVAILABLE, "projection_lagging", f"round {round_index} is not projected yet"
        )
    return {
        "session_id": session_id,
        "round_index": round_index,
        "syndrome_bits": bits,
        "meas_data_packed": q.packed_word(bits),
        "position": row["last_position"],
    }


@router.post("/{session_id}/round/{round_index}/correction")
async def correction(
    session_id: str,
    round_index: RoundIndex,
    body: CorrectionRequest,
    request: Request,
    project: TwinProject,
    idempotency_key: IdempotencyKey = None,
):
    """The decoder's correction for the round just measured: one bit per data qubit, an X
    (Z for an X-basis code) on the frame. With `measure_next`, the reply also holds the
    next round's syndrome."""
    command = SubmitQecCorrection(
        session_id=session_id, round_index=round_index, correction_bits=body.correction_bits,
        measure_next=body.measure_next,
    )  # fmt: skip
    reply = await send_command(request, command, project, idempotency_key)
    out: dict[str, Any] = {
        "session_id": session_id,
        "round_index": round_index,
        "accepted": True,
        "next_round": round_index + 1,
        "position": reply.position,
    }
    if body.measure_next and reply.event is not None:
        out["next"] = q.round_view(session_id, reply.event, reply.position)
    return out


@router.get("/{session_id}/rounds")
async def rounds(
    session_id: str,
    request: Request,
    project: TwinProject,
    db: ReadModels,
    first_round: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)],
    count: Annotated[int, Query(ge=1, le=MAX_ROUNDS_PER_STEP)] = 100,
    idempotency_key: IdempotencyKey = None,
):
    """Bulk: measure `count` rounds from `from` in one step. Syndromes and detection
    events come packed (base64; one row per round, little-endian bits; an autonomous
    session's first shot), with the fraction of detectors that fired per round."""
    reply = await send_command(
        request, MeasureQecRounds(session_id=session_id, round_index=first_round, count=count),
        project, idempotency_key,
    )  # fmt: skip
    event = reply.event
    if event is None:  # a retry answered by its Idempotency-Key: the step as recorded
        await wait_for_position(reply.position, request)
        event = await asyncio.to_thread(q.rounds_step, db, project, session_id, first_round)
        if event is None:
            raise ApiError(
                Kind.CONFLICT, "round_out_of_order", f"no step starts at round {first_round}"
            )
    return {
        "session_id": session_id,
        "first_round": first_round,
        "count": count,
        "encoding": "base64; per round one row of bits packed little-endian, rows in order",
        "syndromes_packed": event["syndromes"],
        "detection_events_packed": event["detection_events"],
        "detection_fraction": event["detection_fraction"],
        "position": reply.position,
    }


@router.get("/{session_id}/status")
async def status(session_id: str, request: Request, project: ProjectId, db: ReadModels):
    row = await _settled_session(request, db, project, session_id)
    layout = build(row["code_family"], row["code_distance"], row["basis"]).layout()
    return {**q.session_status(row), "layout": layout}


@router.post("/{session_id}/end")
async def end(
    session_id: str, request: Request, project: TwinProject, idempotency_key: IdempotencyKey = None
):
    """Measure the data qubits and decide the logical outcome, under the corrections
    received and as the built-in decoder (pymatching) would have corrected it."""
    reply = await send_command(request, EndQecSession(session_id=session_id), project,
                               idempotency_key)  # fmt: skip
    event = reply.event
    if event is None:  # a retry answered by its Idempotency-Key: the result is recorded
        raise ApiError(Kind.CONFLICT, "session_ended", f"QEC session '{session_id}' has ended; its"
                       " result is in /status")  # fmt: skip
    return {
        "session_id": session_id,
        "total_rounds": event["total_rounds"],
        "stats": {"corrections_received": event["corrections_received"]},
        **event["result"],
        "position": reply.position,
    }


@router.get("/{session_id}/trace")
async def trace(session_id: str, request: Request, project: ProjectId, db: ReadModels):
    """Every recorded step of the session, in order: enough to replay it."""
    row = await _settled_session(request, db, project, session_id)
    return {
        "session": q.session_status(row),
        "seed": row["seed"],
        "steps": await asyncio.to_thread(q.trace, db, project, session_id),
    }
