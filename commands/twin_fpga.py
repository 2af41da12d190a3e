"""The FPGA controller API's writes: pulse schedules and readouts, events of the
backend's aggregate. (Its cryostat and readout configuration are controller commands,
`set_cryo` and `set_readout_config`, sent by the HTTP layer as such.)"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from commands.authorization import Caller
from commands.models import Ident
from commands.twin import _port, _TwinCommand, current_files
from commands.unit_of_work import UnitOfWork
from domain.errors import NotFound
from domain.events import CommandContext
from domain.twin import TwinBackend, TwinObservation, backend_key


class StorePulseSchedule(_TwinCommand):
    SUBJECT = "twin.store_pulse_schedule"
    backend_id: Ident
    schedule_id: Ident
    actions: list[Any] = Field(max_length=10_000)
    n_qubits: int


class TakeReadout(_TwinCommand):
    SUBJECT = "twin.take_readout"
    REPLY_WITH_EVENT: ClassVar[bool] = True
    backend_id: Ident
    schedule_id: Ident | None = None
    round_index: Annotated[int, Field(ge=0)] | None = None


def _backend(uow: UnitOfWork, ctx: CommandContext, backend_id: str) -> TwinBackend:
    key = backend_key(ctx.project_id, backend_id)
    return uow.get(TwinBackend, key) or TwinBackend(key)


def handle_store_schedule(cmd: StorePulseSchedule, ctx, uow: UnitOfWork, _: Caller):
    actions = _port(uow).check_schedule(
        current_files(uow, ctx.project_id), cmd.backend_id, cmd.actions, cmd.n_qubits
    )
    backend = _backend(uow, ctx, cmd.backend_id)
    backend.store_schedule(
        ctx, backend_id=cmd.backend_id, schedule_id=cmd.schedule_id, n_qubits=cmd.n_qubits,
        actions=tuple(actions),
    )  # fmt: skip
    return uow.stage(backend)


def handle_readout(cmd: TakeReadout, ctx, uow: UnitOfWork, _: Caller):
    files = current_files(uow, ctx.project_id)
    backend = uow.get(TwinBackend, backend_key(ctx.project_id, cmd.backend_id))
    schedule = None
    if cmd.schedule_id is not None:
        if backend is None:
            raise NotFound(f"no pulse schedule '{cmd.schedule_id}' on this backend",
                           code="schedule_not_found")  # fmt: skip
        schedule = backend.schedule(cmd.schedule_id)
    seed = secrets.randbits(63)
    outcomes = _port(uow).readout(files, cmd.backend_id, backend, schedule, seed, ctx.received_at)
    readout = TwinObservation.readout(
        ctx, backend_id=cmd.backend_id, schedule_id=cmd.schedule_id, round_index=cmd.round_index,
        outcomes=tuple(outcomes), seed=seed,
    )  # fmt: skip
    return uow.stage(readout)


class RecordQecMetric(_TwinCommand):
    """A QEC telemetry point, as GET /telemetry/qec computed it (decoder metadata first,
    else the twin's estimate): every captured point is kept."""

    SUBJECT = "twin.record_qec_metric"
    backend_id: Ident
    job_id: Ident | None = None
    circuit_index: Annotated[int, Field(ge=0)] = 0
    metric_source: Literal["decoder", "heuristic"]
    logical_error_rate: Annotated[float, Field(ge=0, le=1)]
    physical_error_rate: Annotated[float, Field(ge=0, le=1)]
    code_distance: Annotated[int, Field(ge=1)] | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def handle_qec_metric(cmd: RecordQecMetric, ctx, uow: UnitOfWork, _: Caller):
    _port(uow).backend(current_files(uow, ctx.project_id), cmd.backend_id)
    return uow.stage(TwinObservation.qec_metric(ctx, **cmd.model_dump()))


FPGA_HANDLERS = {
    RecordQecMetric: handle_qec_metric,
    StorePulseSchedule: handle_store_schedule,
    TakeReadout: handle_readout,
}
