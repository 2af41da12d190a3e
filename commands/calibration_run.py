"""Running calibration tasks on a chip's twin backend: the command that dispatches a run.

The request is checked in full here (tasks, qubits, run parameters, the run's size, the
chip's lock) and, if accepted, becomes an execution that is started, dispatched and
holds the chip's lock, all in one commit: two clicks cannot start two runs. The
calibration runner (adapters/calibration/runner.py) follows the dispatch event, runs
the circuits as twin jobs, and records the task results like any other client.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import Field

from calibration.params import RunParameterError
from calibration.tasks import TASKS, targets_of
from commands.authorization import Caller
from commands.backend_config import offered_tasks, task_defaults
from commands.models import Command, Ident, Name
from commands.task_files import written_task_files
from commands.twin import current_files
from commands.unit_of_work import UnitOfWork
from domain.chip import Chip, chip_key
from domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from domain.events import CommandContext
from domain.execution import Execution, execution_key
from domain.parameters import ParameterSeries, series_key
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


def _resolved_tasks(
    names: list[str], given: dict[str, dict[str, Any]], defaults: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each task's run parameters: the request's, else the project's backend config's
    (task files), else the task's own."""
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise InvalidInput(f"unknown task {unknown}; known: {sorted(TASKS)}", code="unknown_task")
    if len(set(names)) != len(names):
        raise InvalidInput("a task is named twice", code="duplicate_task_name")
    stray = sorted(set(given) - set(names))
    if stray:
        raise InvalidInput(
            f"run_parameters for {stray}, which this run does not include",
            code="invalid_run_parameter",
        )
    tasks = []
    for name in names:
        try:
            params = TASKS[name].run_params({**defaults.get(name, {}), **given.get(name, {})})
        except RunParameterError as err:
            raise InvalidInput(f"{name}: {err}", code="invalid_run_parameter") from None
        tasks.append({"name": name, "run_parameters": params})
    return tasks


def _current_guesses(uow: UnitOfWork, project_id: str, chip_id: str, task, qids: list[str]):
    """Per qubit, the current value of the parameter the task's sweep is laid around,
    where it has one within the run parameter's bounds (a wild value would lay the sweep
    where nothing happens: the default is the better guess then)."""
    if task.guess_from is None:
        return {}
    key, parameter = task.guess_from
    bounds = task.parameters[key]
    found = {}
    for qid in targets_of(task, qids):
        series = uow.get(ParameterSeries, series_key(project_id, chip_id, qid, parameter))
        value = series.latest_value if series is not None else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if bounds.low <= value <= bounds.high:
                found[qid] = float(value)
    return found


def _check_qids(chip: Chip, qids: list[str], tasks: list[dict[str, Any]]) -> None:
    """Every qid is a qubit or a coupling of the chip, and every task has some of the
    kind it runs on (qubit tasks the qubits, coupling tasks the couplings)."""
    if len(set(qids)) != len(qids):
        raise InvalidInput("a qubit is named twice", code="duplicate_qid")
    for qid in qids:
        if qid not in chip.qubits and qid not in chip.couplings:
            raise InvalidInput(
                f"'{qid}' is neither a qubit nor a coupling of chip '{chip.chip_id}'",
                code="unknown_qid",
            )
    for task in tasks:
        spec = TASKS[task["name"]]
        if not targets_of(spec, qids):
            raise InvalidInput(
                f"{spec.name} runs on {spec.task_type}s; none of the qids is one"
                " (a qubit is named '3', a coupling '3-4')",
                code="no_targets",
            )


def _check_size(backend: Any, tasks: list[dict[str, Any]], qids: list[str]) -> None:
    total = 0
    for task in tasks:
        spec, params = TASKS[task["name"]], task["run_parameters"]
        if params["shots"] > backend.limits.max_shots:
            raise InvalidInput(
                f"{task['name']}: shots {params['shots']} exceed the backend's limit of"
                f" {backend.limits.max_shots}",
                code="invalid_run_parameter",
            )
        try:
            per_circuit = spec.qubits_per_circuit(params, backend.device.num_qubits)
        except RunParameterError as err:
            raise InvalidInput(str(err), code="invalid_run_parameter") from None
        groups = len(spec.groups(targets_of(spec, qids), per_circuit))
        total += spec.circuit_count(params) * groups
    if total > MAX_RUN_CIRCUITS:
        raise InvalidInput(
            f"the run needs {total} circuits; one run may ask for at most {MAX_RUN_CIRCUITS}:"
            " select fewer qubits or tasks, or fewer sweep points",
            code="run_too_large",
        )


def handle_run_calibration(cmd: RunCalibration, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    return _dispatch(
        ctx,
        uow,
        cmd,
        chip_id=cmd.chip_id,
        tasks=cmd.tasks,
        qids=cmd.qids,
        given=cmd.run_parameters,
        seed=cmd.seed,
    )


def _dispatch(
    ctx: CommandContext,
    uow: UnitOfWork,
    cmd: RunCalibration | ReExecuteCalibration,
    *,
    chip_id: str,
    tasks: list[str],
    qids: list[str],
    given: dict[str, dict[str, Any]],
    seed: int | None,
    source_execution_id: str = "",
    source_task_id: str = "",
    guesses: dict[str, dict[str, float]] | None = None,
):
    """Check a run in full, then start, dispatch and lock in one commit. `guesses`: per
    task, the per-qubit guesses to lay sweeps around (a re-execution repeats its
    source's); None: each qubit's current value of the task's `guess_from` parameter."""
    chip = uow.get(Chip, chip_key(ctx.project_id, chip_id))
    if chip is None:
        raise NotFound(f"chip '{chip_id}' does not exist", code="chip_not_found")
    if not chip.backend_id:
        raise InvalidInput(
            f"chip '{chip_id}' is not bound to a twin backend; register a chip with"
            " backend_id to run calibrations on the twin",
            code="chip_not_on_twin",
        )
    backend, _layout = backend_layout(uow, ctx.project_id, chip.backend_id)
    files = written_task_files(uow, ctx.project_id)
    resolved = _resolved_tasks(tasks, given, task_defaults(files))
    offered = offered_tasks(files)
    not_offered = [t for t in tasks if t not in offered]
    if not_offered:
        raise InvalidInput(
            f"the project's backend config (twin/backend.yaml) does not offer {not_offered}",
            code="task_not_offered",
        )
    _check_qids(chip, qids, resolved)
    _check_size(backend, resolved, qids)
    chip.check_can_lock()
    for task in resolved:
        task["guesses"] = (
            guesses.get(task["name"], {})
            if guesses is not None
            else _current_guesses(uow, ctx.project_id, chip_id, TASKS[task["name"]], qids)
        )
    existing = uow.get(Execution, execution_key(ctx.project_id, cmd.execution_id))
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(ctx.command_id.bytes).digest()[:8]) >> 1

    # Every rule has been checked: from here on only events are triggered.
    execution = Execution.start(
        ctx,
        execution_id=cmd.execution_id,
        chip_id=chip_id,
        name=cmd.name or ", ".join(tasks),
        flow_name=CALIBRATION_FLOW,
        tags=tuple(cmd.tags),
        note=dict(cmd.note),
        started_at=ctx.received_at,
        existing=existing,
    )
    execution.dispatch(
        ctx,
        backend_id=chip.backend_id,
        qids=tuple(qids),
        tasks=tuple(resolved),
        seed=seed,
        source_execution_id=source_execution_id,
        source_task_id=source_task_id,
    )
    chip.lock(ctx, cmd.execution_id)
    return uow.stage(execution, chip)


class ReExecuteCalibration(Command):
    """Run again what a calibration run (or one of its task results) ran: the same tasks,
    qubits, run parameters and twin seed, from the source's recorded plan, with
    overrides. The new run names its source."""

    SUBJECT = "calibration.re_execute"
    execution_id: Ident  # the new run's
    source_execution_id: Ident
    source_task_id: Ident | None = None  # just this task result's task, on its qubit
    # A run parameter for every task that takes it ({"shots": 500}), or per task
    # ({"CheckT1": {"points": 30}}). Strings holding numbers or lists are read as JSON
    # (the reference sends strings).
    parameter_overrides: dict[Name, Any] = Field(default_factory=dict, max_length=50)
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None  # None: the source's seed
    name: Annotated[str, Field(max_length=200)] = ""
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    note: dict[str, Any] = Field(default_factory=dict)


def _as_value(value: Any) -> Any:
    """A string holding a number or a list of numbers, read as JSON (short strings only:
    the body's own limits on depth and size do not reach into a string)."""
    if isinstance(value, str) and len(value) <= 1000:
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _overridden(plan_tasks: list[dict[str, Any]], overrides: dict[str, Any]):
    """Each task's run parameters: the source's, with the overrides that apply to it."""
    names = {t["name"] for t in plan_tasks}
    for key, value in overrides.items():
        if key in TASKS and key not in names:
            raise InvalidInput(
                f"parameter_overrides for {key}, which the source did not run",
                code="invalid_run_parameter",
            )
        if key in TASKS and not isinstance(value, dict):
            raise InvalidInput(f"parameter_overrides.{key} must be an object",
                               code="invalid_run_parameter")  # fmt: skip
    flat = {k: _as_value(v) for k, v in overrides.items() if k not in TASKS}
    takers = {k for t in plan_tasks for k in TASKS[t["name"]].parameters if k in flat}
    if set(flat) - takers:
        raise InvalidInput(
            f"no task of the source takes {sorted(set(flat) - takers)}",
            code="invalid_run_parameter",
        )
    given = {}
    for task in plan_tasks:
        params = dict(task["run_parameters"])
        params |= {k: v for k, v in flat.items() if k in TASKS[task["name"]].parameters}
        params |= {k: _as_value(v) for k, v in overrides.get(task["name"], {}).items()}
        given[task["name"]] = params
    return given


def _only(guesses: dict[str, float], qids: list[str]) -> dict[str, float]:
    return {q: v for q, v in guesses.items() if q in qids}


def handle_re_execute(cmd: ReExecuteCalibration, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    source = uow.get(Execution, execution_key(ctx.project_id, cmd.source_execution_id))
    if source is None:
        raise NotFound(
            f"execution '{cmd.source_execution_id}' does not exist", code="execution_not_found"
        )
    if source.plan is None:
        raise Conflict(
            f"execution '{cmd.source_execution_id}' was recorded from outside qledger: there"
            " is no plan of it to run again",
            code="execution_not_reexecutable",
        )
    plan_tasks, qids = source.plan["tasks"], source.plan["qids"]
    if cmd.source_task_id is not None:
        if cmd.source_task_id not in source.task_targets:
            raise NotFound(
                f"execution '{cmd.source_execution_id}' has no task '{cmd.source_task_id}'",
                code="task_not_found",
            )
        task_name, qid = source.task_targets[cmd.source_task_id]
        plan_tasks = [t for t in plan_tasks if t["name"] == task_name]
        qids = [qid]
        if not plan_tasks:
            raise Conflict(
                f"task '{cmd.source_task_id}' ({task_name}) was recorded from outside the"
                " run's plan: there is nothing of it to run again",
                code="task_not_reexecutable",
            )
    return _dispatch(
        ctx,
        uow,
        cmd,
        chip_id=source.chip_id,
        tasks=[t["name"] for t in plan_tasks],
        qids=list(qids),
        given=_overridden(plan_tasks, cmd.parameter_overrides),
        seed=cmd.seed if cmd.seed is not None else source.plan["seed"],
        guesses={t["name"]: _only(t.get("guesses", {}), qids) for t in plan_tasks},
        source_execution_id=cmd.source_execution_id,
        source_task_id=cmd.source_task_id or "",
    )


CALIBRATION_RUN_HANDLERS = {
    RunCalibration: handle_run_calibration,
    ReExecuteCalibration: handle_re_execute,
}
