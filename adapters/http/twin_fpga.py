"""The FPGA controller API (under /api/v1/digital-twin/controller_api/v1/{backend_id}):
pulse schedules, readouts, readout configuration and the cryostat. Writes are bus
commands; the cryostat and readout configuration are controller commands (`set_cryo`,
`set_readout_config`), so they shape the noise like any other."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http.deps import (
    MAX_INDEX,
    IdempotencyKey,
    ProjectId,
    ReadModels,
    ReadOwnWrites,
    TwinProject,
    generated_id,
    send_command,
    wait_for_position,
)
from commands.twin import ApplyControllerCommand
from commands.twin_fpga import StorePulseSchedule, TakeReadout
from projections.twin import readout_view
from twin import fpga
from twin.channels import excited_population
from twin.controller import ControllerState, effective_noise

PREFIX = "/api/v1/digital-twin/controller_api/v1/{backend_id}"
router = APIRouter(prefix=PREFIX, tags=["twin FPGA controller"])


class ScheduleRequest(BaseModel):
    actions: list[Any] = Field(description='[{"gate": "h", "qubits": [0]}, ...]')
    n_qubits: int
    schedule_id: str | None = Field(None, description="generated when omitted")


class ReadoutConfigRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[int] | None = Field(None, description="qubits it applies to")
    integration_time_ns: float = fpga.REFERENCE_INTEGRATION_NS
    thresholds: dict[str, float] = Field(default_factory=dict, description="per channel")


class CryoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature_mk: float | None = None
    still_mk: float | None = None
    t1_multiplier: float | None = None
    t2_multiplier: float | None = None


@router.post("/pulse_schedule")
async def store_schedule(
    backend_id: str,
    body: ScheduleRequest,
    request: Request,
    project: TwinProject,
    idempotency_key: IdempotencyKey = None,
):
    """Store a gate-like action list; `readout?schedule_id=` runs it."""
    schedule_id = body.schedule_id or generated_id(project, idempotency_key)
    command = StorePulseSchedule(
        backend_id=backend_id, schedule_id=schedule_id, actions=body.actions,
        n_qubits=body.n_qubits,
    )  # fmt: skip
    reply = await send_command(request, command, project, idempotency_key)
    return {
        "schedule_id": schedule_id,
        "backend_id": backend_id,
        "n_qubits": body.n_qubits,
        "num_actions": len(body.actions),
        "position": reply.position,
    }


@router.get("/readout")
async def readout(
    backend_id: str,
    request: Request,
    project: TwinProject,
    schedule_id: str | None = None,
    round_index: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
):
    """Run the stored schedule as a circuit (one shot) and return each qubit's outcome,
    also packed (bit i = qubit i; wider than 32 qubits: a list of 32-bit words). Without
    a schedule: every qubit read in |0>, each 1 with its own p(1|0)."""
    command = TakeReadout(backend_id=backend_id, schedule_id=schedule_id, round_index=round_index)
    reply = await send_command(request, command, project, None)
    assert reply.event is not None
    return readout_view(reply.event, reply.position)


def readout_config_view(state: ControllerState) -> dict[str, Any]:
    return {
        str(q): {"integration_time_ns": tau, "threshold": threshold}
        for q, (tau, threshold) in sorted(state.readout_config.items())
    }


@router.post("/readout_config")
async def readout_config(
    backend_id: str,
    body: ReadoutConfigRequest,
    request: Request,
    project: TwinProject,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
):
    """Integration time and thresholds per channel; they change the readout errors the
    twin applies (a Gaussian discriminator: see the README)."""
    payload = body.model_dump(exclude_none=True)
    command = ApplyControllerCommand(
        backend_id=backend_id, command_type="set_readout_config", payload=payload
    )
    reply = await send_command(request, command, project, idempotency_key)
    await wait_for_position(reply.position, request)
    return {
        "backend_id": backend_id,
        **await asyncio.to_thread(_config_answer, request.app.state.twin, db, project, backend_id),
        "position": reply.position,
    }


def _config_answer(view, db, project: str, backend_id: str) -> dict[str, Any]:
    """The readout configuration and the errors it gives (DuckDB reads: in a thread)."""
    state, _, _ = view.state(db, project, backend_id)
    qubits = {q["qubit"]: q for q in view.qubits(db, project, backend_id)}
    return {
        "readout_config": readout_config_view(state),
        "readout_errors": {
            str(q): {k: qubits[q][k] for k in ("readout_p1_given_0", "readout_p0_given_1")}
            for q in sorted(state.readout_config)
        },
    }


def _cryo_view(request: Request, db, project: str, backend_id: str) -> dict[str, Any]:
    view = request.app.state.twin
    backend = view.backend(db, project, backend_id)
    state, _, _ = view.state(db, project, backend_id)
    eff = effective_noise(backend, state, datetime.now(UTC).timestamp())
    temperature = state.temperature_mk
    curve = fpga.coherence_multiplier(temperature) if temperature is not None else 1.0
    return {
        "backend_id": backend_id,
        "stage": "mixing_chamber",
        "temperature_mk": temperature,
        "mixing_chamber_mk": temperature,
        "still_mk": state.still_mk if state.still_mk is not None else fpga.STAGES_MK["still_mk"],
        "cold_plate_mk": fpga.STAGES_MK["cold_plate_mk"],
        "four_k_stage_mk": fpga.STAGES_MK["four_k_stage_mk"],
        "t1_multiplier": state.cryo_t1,
        "t2_multiplier": state.cryo_t2,
        "multiplier_source": "explicit" if (state.cryo_t1, state.cryo_t2) != (curve, curve)
        else "curve",
        "excited_state_population": [
            excited_population(q.frequency_ghz, temperature or 0.0) for q in eff.qubits
        ],
    }  # fmt: skip


@router.get("/cryo", dependencies=[ReadOwnWrites])
def cryo(backend_id: str, request: Request, project: ProjectId, db: ReadModels):
    """Cryostat state: temperatures, T1/T2 multipliers, thermal excited populations.
    `temperature_mk` is null until set (no thermal population is modelled before)."""
    return _cryo_view(request, db, project, backend_id)


@router.post("/cryo")
async def set_cryo(
    backend_id: str,
    body: CryoRequest,
    request: Request,
    project: TwinProject,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
):
    """`temperature_mk` sets T1/T2 multipliers from the transmon curve (15 mK → 1.0,
    30 → 0.85, 50 → 0.60, 100 → 0.20); explicit multipliers win over the curve."""
    command = ApplyControllerCommand(
        backend_id=backend_id, command_type="set_cryo", payload=body.model_dump(exclude_none=True)
    )
    reply = await send_command(request, command, project, idempotency_key)
    await wait_for_position(reply.position, request)
    view = await asyncio.to_thread(_cryo_view, request, db, project, backend_id)
    return {**view, "position": reply.position}
