"""Running calibration tasks on a chip's twin backend: the command that dispatches a run.

The request is checked in full here (tasks, qubits, run parameters, the run's size, the
chip's lock) and, if accepted, becomes an execution that is started, dispatched and
holds the chip's lock, all in one commit: two clicks cannot start two runs. The
calibration runner (adapters/calibration/runner.py) follows the dispatch event, runs
the circuits as twin jobs, and records the task results like any other client.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any

from pydantic import Field

from calibration.params import RunParameterError
from calibration.tasks import TASKS
from commands.authorization import Caller
from commands.models import Command, Ident, Name
from commands.twin import current_files
from commands.unit_of_work import UnitOfWork
from domain.chip import Chip, chip_key
from domain.errors import InvalidInput, NotFound, Unavailable
from domain.events import CommandContext
from domain.execution import Execution, execution_key
from domain.topology import Layout

# Circuits one run may ask of the twin, over all its tasks and qubit groups: a full
# one-qubit calibration of 64 qubits is ~1,040; a run beyond this is a flow's job.
MAX_RUN_CIRCUITS = 10_000
CALIBRATION_FLOW = "qledger.calibration"  # the flow_name of executions qledger runs


class RunCalibration(Command):
    """Run calibration tasks on qubits of a chip bound to a twin backend, now."""

    SUBJECT = "calibration.run"
    execution_id: Ident
    chip_id: Ident
    tasks: list[Name] = Field(min_length=1, max_length=20)
    qids: list[Ident] = Field(min_length=1, max_length=1024)
    # Per task name: run parameters overriding the task's defaults (GET /api/tasks).
    run_parameters: dict[Name, dict[str, Any]] = Field(default_factory=dict, max_length=20)
    # The twin's seed for every job of the run: the same seed on the same twin state
    # gives the same counts. None: derived from the command's id.
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    note: dict[str, Any] = Field(default_factory=dict)
    # Set by the re-execute routes: the execution or task result this run repeats.
    source_execution_id: Ident | None = None
    source_task_id: Ident | None = None


def backend_layout(uow: UnitOfWork, project_id: str, backend_id: str):
    """The twin backend (adapters' twin.device.Backend) and its qubits and couplings as
    a chip layout. A backend that is not configured is a bad field value (422)."""
    if uow.twin is None:
        raise Unavailable("this command node has no twin configuration", code="twin_unavailable")
    try:
        backend = uow.twin.backend(current_files(uow, project_id), backend_id)
    except NotFound as err:
        raise InvalidInput(err.message, code="invalid_backend") from None
    device = backend.device
    couplings = sorted({(min(a, b), max(a, b)) for a, b in device.coupling_map})
    layout = Layout(
        tuple(str(q) for q in range(device.num_qubits)), tuple(f"{a}-{b}" for a, b in couplings)
    )
    return backend, layout


def _resolved_tasks(cmd: RunCalibration) -> list[dict[str, Any]]:
    unknown = [t for t in cmd.tasks if t not in TASKS]
    if unknown:
        raise InvalidInput(f"unknown task {unknown}; known: {sorted(TASKS)}", code="unknown_task")
    if len(set(cmd.tasks)) != len(cmd.tasks):
        raise InvalidInput("a task is named twice", code="duplicate_task_name")
    stray = sorted(set(cmd.run_parameters) - set(cmd.tasks))
    if stray:
        raise InvalidInput(
            f"run_parameters for {stray}, which this run does not include",
            code="invalid_run_parameter",
        )
    tasks = []
    for name in cmd.tasks:
        try:
            params = TASKS[name].run_params(cmd.run_parameters.get(name))
        except RunParameterError as err:
            raise InvalidInput(f"{name}: {err}", code="invalid_run_parameter") from None
        tasks.append({"name": name, "run_parameters": params})
    return tasks


def _check_qids(chip: Chip, qids: list[str]) -> None:
    if len(set(qids)) != len(qids):
        raise InvalidInput("a qubit is named twice", code="duplicate_qid")
    for qid in qids:
        if qid not in chip.qubits:
            raise InvalidInput(
                f"'{qid}' is not a qubit of chip '{chip.chip_id}'"
                + (
                    " (it is a coupling; these tasks run on qubits)"
                    if qid in chip.couplings
                    else ""
                ),
                code="unknown_qid",
            )


def _check_size(backend: Any, tasks: list[dict[str, Any]], qubits: int) -> None:
    total = 0
    for task in tasks:
        spec, params = TASKS[task["name"]], task["run_parameters"]
        if params["shots"] > backend.limits.max_shots:
            raise InvalidInput(
                f"{task['name']}: shots {params['shots']} exceed the backend's limit of"
                f" {backend.limits.max_shots}",
                code="invalid_run_parameter",
            )
        groups = math.ceil(qubits / spec.max_qubits_per_circuit)
        total += spec.circuit_count(params) * groups
    if total > MAX_RUN_CIRCUITS:
        raise InvalidInput(
            f"the run needs {total} circuits; one run may ask for at most {MAX_RUN_CIRCUITS}:"
            " select fewer qubits or tasks, or fewer sweep points",
            code="run_too_large",
        )


def handle_run_calibration(cmd: RunCalibration, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    chip = uow.get(Chip, chip_key(ctx.project_id, cmd.chip_id))
    if chip is None:
        raise NotFound(f"chip '{cmd.chip_id}' does not exist", code="chip_not_found")
    if not chip.backend_id:
        raise InvalidInput(
            f"chip '{cmd.chip_id}' is not bound to a twin backend; register a chip with"
            " backend_id to run calibrations on the twin",
            code="chip_not_on_twin",
        )
    backend, _layout = backend_layout(uow, ctx.project_id, chip.backend_id)
    tasks = _resolved_tasks(cmd)
    _check_qids(chip, cmd.qids)
    _check_size(backend, tasks, len(cmd.qids))
    chip.check_can_lock()
    existing = uow.get(Execution, execution_key(ctx.project_id, cmd.execution_id))
    seed = cmd.seed
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(ctx.command_id.bytes).digest()[:8]) >> 1

    # Every rule has been checked: from here on only events are triggered.
    execution = Execution.start(
        ctx,
        execution_id=cmd.execution_id,
        chip_id=cmd.chip_id,
        name=cmd.name or ", ".join(cmd.tasks),
        flow_name=CALIBRATION_FLOW,
        tags=tuple(cmd.tags),
        note=dict(cmd.note),
        started_at=ctx.received_at,
        existing=existing,
    )
    execution.dispatch(
        ctx,
        backend_id=chip.backend_id,
        qids=tuple(cmd.qids),
        tasks=tuple(tasks),
        seed=seed,
        source_execution_id=cmd.source_execution_id or "",
        source_task_id=cmd.source_task_id or "",
    )
    chip.lock(ctx, cmd.execution_id)
    return uow.stage(execution, chip)


CALIBRATION_RUN_HANDLERS = {RunCalibration: handle_run_calibration}
