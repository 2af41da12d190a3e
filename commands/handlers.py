"""Command handlers: load aggregates, let them decide, stage their events.

Each handler checks every rule before it changes any aggregate, so a rejection leaves
the batch's aggregates as they were.
"""

from __future__ import annotations

from collections.abc import Callable

from commands.authorization import Caller
from commands.calibration_run import CALIBRATION_RUN_HANDLERS, backend_layout
from commands.identity_handlers import IDENTITY_HANDLERS
from commands.models import (
    CancelExecution,
    Command,
    CompleteExecution,
    FailExecution,
    RecordTaskResult,
    RegisterChip,
    SetTaskResultExclusion,
    StartExecution,
    TaskResultIn,
)
from commands.refresh import REFRESH_HANDLERS
from commands.seeds import SEED_HANDLERS
from commands.task_files import TASK_FILE_HANDLERS
from commands.twin import TWIN_HANDLERS
from commands.twin_fpga import FPGA_HANDLERS
from commands.twin_qec import QEC_HANDLERS
from commands.unit_of_work import UnitOfWork
from domain.chip import Chip, chip_key
from domain.errors import InvalidInput, NotFound
from domain.events import CommandContext, DomainEvent
from domain.execution import Execution, execution_key
from domain.parameters import ParameterSeries, series_key


def handle_register_chip(cmd: RegisterChip, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    existing = uow.get(Chip, chip_key(ctx.project_id, cmd.chip_id))
    layout, size, topology = None, cmd.size, cmd.topology_id or "square-lattice"
    if cmd.backend_id is not None:
        _, layout = backend_layout(uow, ctx.project_id, cmd.backend_id)
        if size is not None and size != len(layout.qubits):
            raise InvalidInput(
                f"backend '{cmd.backend_id}' has {len(layout.qubits)} qubits, not {size};"
                " leave size out",
                code="chip_size_mismatch",
            )
        size = len(layout.qubits)
        topology = cmd.topology_id or f"twin:{cmd.backend_id}"
    elif size is None:
        raise InvalidInput("size is required for a chip without backend_id", code="size_required")
    chip = Chip.register(
        ctx,
        chip_id=cmd.chip_id,
        size=size,
        topology_id=topology,
        existing=existing,
        backend_id=cmd.backend_id or "",
        layout=layout,
    )
    return uow.stage(chip)


def _require_chip(uow: UnitOfWork, project_id: str, chip_id: str) -> Chip:
    chip = uow.get(Chip, chip_key(project_id, chip_id))
    if chip is None:
        raise NotFound(f"chip '{chip_id}' does not exist", code="chip_not_found")
    return chip


def _require_execution(uow: UnitOfWork, project_id: str, execution_id: str) -> Execution:
    execution = uow.get(Execution, execution_key(project_id, execution_id))
    if execution is None:
        raise NotFound(f"execution '{execution_id}' does not exist", code="execution_not_found")
    return execution


def handle_start_execution(cmd: StartExecution, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    _require_chip(uow, ctx.project_id, cmd.chip_id)
    execution = Execution.start(
        ctx,
        execution_id=cmd.execution_id,
        chip_id=cmd.chip_id,
        name=cmd.name,
        flow_name=cmd.flow_name,
        tags=tuple(cmd.tags),
        note=dict(cmd.note),
        started_at=cmd.started_at or ctx.received_at,
        existing=uow.get(Execution, execution_key(ctx.project_id, cmd.execution_id)),
    )
    return uow.stage(execution)


def _resolve_inputs(uow: UnitOfWork, ctx: CommandContext, chip: Chip, task: TaskResultIn):
    """The entity ids of the exact parameter versions the task read.

    An input naming `entity_id` must exist; otherwise the version valid when the task
    started is used. Inputs with no recorded series (seed values) have no lineage."""
    used: list[str] = []
    for name, param in task.input_parameters.items():
        qid = param.qid or task.qid
        if param.entity_id is not None:
            parts = param.entity_id.split(":")
            series = None
            if len(parts) == 4:
                key = series_key(ctx.project_id, chip.chip_id, parts[1], parts[0])
                series = uow.get(ParameterSeries, key)
            if series is None or param.entity_id not in series.entity_ids:
                raise InvalidInput(
                    f"input '{name}' names unknown parameter version '{param.entity_id}'",
                    code="unknown_input_version",
                )
            if parts[0] != name:
                raise InvalidInput(
                    f"input '{name}' names a version of '{parts[0]}'", code="input_name_mismatch"
                )
            if series.valid_from[series.entity_ids.index(param.entity_id)] > task.start_at:
                raise InvalidInput(
                    f"input '{name}': version '{param.entity_id}' became valid after the task"
                    " started",
                    code="input_from_the_future",
                )
            used.append(param.entity_id)
            continue
        chip.require_target(qid)
        series = uow.get(ParameterSeries, series_key(ctx.project_id, chip.chip_id, qid, name))
        entity = series.entity_at(task.start_at) if series else None
        if entity is not None:
            used.append(entity)
    return tuple(used)


def _require_figures(uow: UnitOfWork, task: TaskResultIn) -> None:
    for name in (*task.figure_path, *task.json_figure_path):
        if uow.figures is None or not uow.figures.exists(name):
            raise InvalidInput(
                f"figure '{name}' was not uploaded; POST it to /api/figures first",
                code="unknown_figure",
            )


def handle_record_task_result(
    cmd: RecordTaskResult, ctx: CommandContext, uow: UnitOfWork, _: Caller
):
    task = cmd.task
    _require_figures(uow, task)
    execution = _require_execution(uow, ctx.project_id, cmd.execution_id)
    execution.check_can_record(task.task_id, task.start_at, task.end_at)
    chip = _require_chip(uow, ctx.project_id, execution.chip_id)
    chip.require_target(task.qid)
    used = _resolve_inputs(uow, ctx, chip, task)

    outputs: list[tuple[str, ParameterSeries]] = []
    if task.status == "completed":
        for name in task.output_parameters:
            key = series_key(ctx.project_id, chip.chip_id, task.qid, name)
            series = uow.get(ParameterSeries, key) or ParameterSeries(key)
            series.check_next(parameter_name=name, qid=task.qid, valid_from=task.end_at)
            outputs.append((name, series))

    # Every rule has been checked: from here on only events are triggered.
    execution.record_task_result(
        ctx,
        task_id=task.task_id,
        task_name=task.task_name,
        task_type=task.task_type,
        qid=task.qid,
        status=task.status,
        message=task.message,
        input_parameters={
            k: v.model_dump(exclude_none=True) for k, v in task.input_parameters.items()
        },
        output_parameters={k: v.model_dump() for k, v in task.output_parameters.items()},
        run_parameters=dict(task.run_parameters),
        figure_path=tuple(task.figure_path),
        json_figure_path=tuple(task.json_figure_path),
        start_at=task.start_at,
        end_at=task.end_at,
        used=used,
    )
    for name, series in outputs:
        out = task.output_parameters[name]
        series.record_version(
            ctx,
            chip_id=chip.chip_id,
            qid=task.qid,
            parameter_name=name,
            value=out.value,
            unit=out.unit,
            error=out.error,
            valid_from=task.end_at,
            execution_id=cmd.execution_id,
            task_id=task.task_id,
            task_name=task.task_name,
            used=used,
        )
    return uow.stage(execution, *(s for _, s in outputs))


def handle_finish_execution(
    cmd: CompleteExecution | FailExecution | CancelExecution,
    ctx: CommandContext,
    uow: UnitOfWork,
    _: Caller,
):
    execution = _require_execution(uow, ctx.project_id, cmd.execution_id)
    execution.finish(ctx, status=cmd.STATUS, message=cmd.message)
    chip = uow.get(Chip, chip_key(ctx.project_id, execution.chip_id))
    if chip is not None and chip.release(ctx, cmd.execution_id):
        return uow.stage(execution, chip)
    return uow.stage(execution)


def handle_set_exclusion(
    cmd: SetTaskResultExclusion, ctx: CommandContext, uow: UnitOfWork, _: Caller
):
    execution = _require_execution(uow, ctx.project_id, cmd.execution_id)
    execution.set_exclusion(ctx, task_id=cmd.task_id, excluded=cmd.excluded, reason=cmd.reason)
    return uow.stage(execution)


Handler = Callable[[Command, CommandContext, UnitOfWork, Caller], list[DomainEvent]]

HANDLERS: dict[type[Command], Handler] = {
    RegisterChip: handle_register_chip,  # type: ignore[dict-item]
    StartExecution: handle_start_execution,  # type: ignore[dict-item]
    RecordTaskResult: handle_record_task_result,  # type: ignore[dict-item]
    SetTaskResultExclusion: handle_set_exclusion,  # type: ignore[dict-item]
    CompleteExecution: handle_finish_execution,  # type: ignore[dict-item]
    FailExecution: handle_finish_execution,  # type: ignore[dict-item]
    CancelExecution: handle_finish_execution,  # type: ignore[dict-item]
    **CALIBRATION_RUN_HANDLERS,  # type: ignore[dict-item]
    **SEED_HANDLERS,  # type: ignore[dict-item]
    **TASK_FILE_HANDLERS,  # type: ignore[dict-item]
    **IDENTITY_HANDLERS,  # type: ignore[dict-item]
    **REFRESH_HANDLERS,  # type: ignore[dict-item]
    **TWIN_HANDLERS,  # type: ignore[dict-item]
    **QEC_HANDLERS,  # type: ignore[dict-item]
    **FPGA_HANDLERS,  # type: ignore[dict-item]
}

# What clients may send on `qledger.cmd.<SUBJECT>` (the bootstrap is qledger's own).
COMMANDS: dict[str, type[Command]] = {c.SUBJECT: c for c in HANDLERS if c.ACCESS != "system"}
