"""Digital-twin jobs and controller (under /api/v1/digital-twin). Writes are bus
commands; reads come from the twin's read models."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.http.deps import (
    IdempotencyKey,
    Position,
    PositionHeader,
    ProjectId,
    ReadAfter,
    ReadModels,
    ReadOwnWrites,
    TwinProject,
    generated_id,
    send_command,
    wait_for_position,
    wait_for_store_head,
)
from adapters.http.errors import ApiError
from adapters.http.twin_fpga import readout_config_view
from commands.twin import ApplyControllerCommand, AttachJobMetadata, CancelJob, SubmitJob
from domain.errors import Kind
from projections import twin as q
from projections.base import QueryError
from twin.controller import ControllerState

PREFIX = "/api/v1/digital-twin"
router = APIRouter(prefix=PREFIX, tags=["twin jobs"])
controller = APIRouter(prefix=PREFIX, tags=["twin controller"])


class JobRequest(BaseModel):
    backend_id: str
    circuits: list[str | dict[str, Any]] = Field(min_length=1)
    shots: int = 1024
    metadata: dict[str, Any] = Field(default_factory=dict)
    job_id: str | None = Field(None, description="generated when omitted")


class ControllerRequest(BaseModel):
    command_type: str
    payload: dict[str, Any] = Field(default_factory=dict)


@router.post("/jobs")
async def submit_job(
    body: JobRequest, request: Request, project: TwinProject, idempotency_key: IdempotencyKey = None
):
    """Queue circuits (OpenQASM 2.0 strings or circuit dicts). `metadata.seed` makes the
    counts reproducible bit for bit; `metadata.optimization_level` (0-3) bounds the
    transpiler; `metadata.result_format` "marginals" returns per classical bit the shots
    that read 1 instead of the count table. Read `/jobs/{job_id}` with `X-Min-Position`
    set to the returned position to see the job at once."""
    job_id = body.job_id or generated_id(project, idempotency_key)
    command = SubmitJob(
        job_id=job_id,
        backend_id=body.backend_id,
        circuits=body.circuits,
        shots=body.shots,
        metadata=body.metadata,
    )
    reply = await send_command(request, command, project, idempotency_key)
    return {
        "job_id": job_id,
        "backend_id": body.backend_id,
        "status": "QUEUED",
        "shots": body.shots,
        "num_circuits": len(body.circuits),
        "position": reply.position,
    }


async def settled_job_row(request: Request, db, project: str, job_id: str) -> dict:
    """The job's row; if the read model has no such job, first wait (bounded) until it
    has caught up with everything the store held when asked, so a job submitted a moment
    ago is found without `min_position`, as the reference's clients expect."""
    try:
        return await asyncio.to_thread(q.job_row, db, project, job_id)
    except QueryError:
        await wait_for_store_head(request)
        return await asyncio.to_thread(q.job_row, db, project, job_id)


@router.get("/jobs/{job_id}", dependencies=[ReadAfter])
async def job_status(job_id: str, request: Request, project: ProjectId, db: ReadModels):
    return q.job_status(await settled_job_row(request, db, project, job_id))


def _row_from_ending(env: dict, row: dict | None) -> dict:
    """A job row as the read model will hold it once it applies this ending event."""
    p = env["payload"]
    results = p.get("results")
    return {
        **(row or {"job_id": p["job_id"], "backend_id": p["backend_id"],
                   "shots": results[0]["shots"] if results else None}),
        "status": q.STATUS_AFTER[env["type"]],
        "finished_at": datetime.fromisoformat(env["occurred_at"]),
        "results_json": orjson.dumps(results).decode() if results is not None else None,
        "run_ms": p.get("run_ms"),
        "error_code": p.get("code"),
        "error_message": p.get("message"),
        "last_position": env["position"],
    }  # fmt: skip


async def _finished_row(
    request: Request, db, project: str, job_id: str, wait: float, min_position: int
) -> dict:
    """The job's row once it ended, or as it is after `wait` seconds (a long poll).

    The job's ending event on the bus answers at once, even before the read model holds
    the job: with `min_position` of the submission, waiting for the projection first
    would add its lag (~15 ms) to every short job."""
    watch = request.app.state.twin_watch
    if watch is None or wait <= 0:
        if min_position:
            await wait_for_position(min_position, request)
        return await settled_job_row(request, db, project, job_id)
    # Listening before anything else, so that no ending slips past.
    ending = asyncio.ensure_future(watch.wait(project, job_id, wait))
    try:
        if min_position:
            projected = asyncio.ensure_future(wait_for_position(min_position, request))
            await asyncio.wait({ending, projected}, return_when=asyncio.FIRST_COMPLETED)
            if ending.done() and ending.result() is not None:
                projected.cancel()
                return _row_from_ending(ending.result(), None)
            await projected
        row = await settled_job_row(request, db, project, job_id)
        if row["status"] not in ("QUEUED", "RUNNING"):
            return row
        env = await ending
        if env is None:
            return await asyncio.to_thread(q.job_row, db, project, job_id)
        return _row_from_ending(env, row)
    finally:
        ending.cancel()


@router.get("/jobs/{job_id}/result")
async def job_result(
    job_id: str,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    wait: Annotated[float, Query(ge=0, le=60, description="long poll: seconds to wait")] = 0,
    min_position: Position = None,
    x_min_position: PositionHeader = None,
):
    """200 with per-circuit counts (or, with `metadata.result_format` "marginals", per
    classical bit the shots that read 1); 202 while queued or running; 410 if cancelled.
    With `wait`, answers as soon as the job ends (qledger's addition)."""
    position = max(min_position or 0, x_min_position or 0)
    row = await _finished_row(request, db, project, job_id, wait, position)
    if row["status"] in ("QUEUED", "RUNNING"):
        return JSONResponse(q.job_status(row), status_code=202)
    if row["status"] == "CANCELLED":
        raise ApiError(
            Kind.GONE, "job_cancelled", f"job '{job_id}' was cancelled; it has no result"
        )
    out = q.job_result(row)
    if row["status"] == "FAILED":
        out["error"] = {"code": row["error_code"], "message": row["error_message"]}
    return out


@router.post("/jobs/{job_id}/metadata")
async def attach_metadata(
    job_id: str,
    body: Annotated[dict[str, Any], Body()],
    request: Request,
    project: TwinProject,
    idempotency_key: IdempotencyKey = None,
):
    """Decoder / QEC metadata for a job (e.g. `decoder_metrics`, `qec_metrics`)."""
    reply = await send_command(
        request, AttachJobMetadata(job_id=job_id, metadata=body), project, idempotency_key
    )
    return {"job_id": job_id, "status": "accepted", "position": reply.position}


@router.delete("/jobs/{job_id}")
async def cancel_job(
    job_id: str, request: Request, project: TwinProject, idempotency_key: IdempotencyKey = None
):
    """Cancel a queued or running job: a running one has its simulation stopped; it
    keeps no result (410 on `/result`)."""
    reply = await send_command(request, CancelJob(job_id=job_id), project, idempotency_key)
    return {"job_id": job_id, "status": "CANCELLED", "position": reply.position}


@controller.post("/controller/{backend_id}/commands")
async def controller_command(
    backend_id: str,
    body: ControllerRequest,
    request: Request,
    project: TwinProject,
    idempotency_key: IdempotencyKey = None,
):
    """One of the nine command types, `set_cryo`, `set_readout_config` or
    `set_drive_correction`; a job submitted after this answer runs under it."""
    command = ApplyControllerCommand(
        backend_id=backend_id, command_type=body.command_type, payload=body.payload
    )
    reply = await send_command(request, command, project, idempotency_key)
    return {
        "status": "applied",
        "backend_id": backend_id,
        "command_type": body.command_type,
        "position": reply.position,
    }


@controller.get("/controller/{backend_id}/state", dependencies=[ReadOwnWrites])
def controller_state(backend_id: str, request: Request, project: ProjectId, db: ReadModels):
    view = request.app.state.twin
    view.backend(db, project, backend_id)  # 404 for an unknown backend
    state, applied, last = view.state(db, project, backend_id)
    return {
        "backend_id": backend_id,
        "status": "active",
        "last_heartbeat": last.isoformat() if last else None,
        "commands_applied": applied,
        "scenario": state.scenario,
        "overrides": {
            "inject_noise_override": vars(state.injected),
            "policy_update": vars(state.policy),
            "pulse_schedule_error_multiplier": state.pulse_error,
            "adc_readout_error_multiplier": state.adc_readout,
            "dac_gate_error_multiplier": state.dac_gate,
            "cryo": {
                "temperature_mk": state.temperature_mk,
                "t1_multiplier": state.cryo_t1,
                "t2_multiplier": state.cryo_t2,
            },
            "readout_config": readout_config_view(state),
        },
        "effective_multipliers": {
            "gate_error": state.gate_multiplier,
            "readout_error": state.readout_multiplier,
            "exec_time": state.exec_time_scale,
            "drift": state.policy.drift,
        },
        "qubit_overrides": {str(k): v for k, v in sorted(state.qubit_overrides.items())},
        "drive_corrections": drive_corrections_view(state),
    }


def drive_corrections_view(state: ControllerState) -> dict[str, dict[str, float]]:
    """set_drive_correction's per-qubit state, by qubit (a qubit without: none)."""
    return {
        str(q): {"amplitude_scale": scale, "frequency_offset_mhz": offset}
        for q, (scale, offset) in sorted(state.drive_corrections.items())
    }
