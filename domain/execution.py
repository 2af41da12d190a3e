"""Execution: one calibration run on a chip and the task results recorded in it.

running -> completed | failed | cancelled. Task payloads live in the events; the
aggregate keeps only what its rules need (status, chip, task ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import UPCASTERS, CommandContext, DomainEvent, register, stable_id

RUNNING = "running"
FINISHED = ("completed", "failed", "cancelled")
TASK_STATUSES = ("completed", "failed", "skipped")


@register
@dataclass(frozen=True, kw_only=True)
class ExecutionStarted(DomainEvent):
    TYPE = "calibration.ExecutionStarted"
    execution_id: str
    chip_id: str
    name: str
    flow_name: str
    tags: tuple[str, ...]
    note: dict[str, Any]


@register
@dataclass(frozen=True, kw_only=True)
class TaskResultRecorded(DomainEvent):
    """One calibration task finished inside an execution."""

    TYPE = "calibration.TaskResultRecorded"
    VERSION = 2  # 2: figure names
    execution_id: str
    chip_id: str
    task_id: str
    task_name: str
    task_type: str
    qid: str
    status: str
    message: str
    input_parameters: dict[str, Any]
    output_parameters: dict[str, Any]
    run_parameters: dict[str, Any]
    start_at: datetime
    end_at: datetime
    used: tuple[str, ...]  # entity ids of the parameter versions this task read
    figure_path: tuple[str, ...] = ()  # uploaded figures (domain/figures.py)
    json_figure_path: tuple[str, ...] = ()


def _task_result_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "figure_path": [], "json_figure_path": []}


UPCASTERS[(TaskResultRecorded.TYPE, 1)] = _task_result_v1_to_v2


@register
@dataclass(frozen=True, kw_only=True)
class CalibrationDispatched(DomainEvent):
    """qledger is to run these tasks on these qubits of the chip's twin backend (the
    calibration runner follows this event). Everything a re-run needs is here: the run
    parameters as resolved, and the twin's seed."""

    TYPE = "calibration.CalibrationDispatched"
    execution_id: str
    chip_id: str
    backend_id: str
    qids: tuple[str, ...]
    tasks: tuple[dict[str, Any], ...]  # {"name", "run_parameters"} in run order
    seed: int
    source_execution_id: str = ""  # a re-execution: the execution it repeats
    source_task_id: str = ""


@register
@dataclass(frozen=True, kw_only=True)
class ExecutionFinished(DomainEvent):
    """The execution ended as completed, failed or cancelled."""

    TYPE = "calibration.ExecutionFinished"
    execution_id: str
    status: str
    message: str


@register
@dataclass(frozen=True, kw_only=True)
class TaskResultExclusionSet(DomainEvent):
    """A person marked a task's result as not to be trusted (or trusted again): best and
    average chip metrics leave its parameter versions out from then on."""

    TYPE = "calibration.TaskResultExclusionSet"
    execution_id: str
    task_id: str
    excluded: bool
    reason: str


def execution_key(project_id: str, execution_id: str):
    return stable_id("execution", project_id, execution_id)


class Execution(Aggregate):
    execution_id: str
    chip_id: str
    status: str
    started_at: datetime

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.task_ids: set[str] = set()
        self.task_targets: dict[str, tuple[str, str]] = {}  # task id -> (task name, qid)
        self.plan: dict[str, Any] | None = None  # what qledger's runner was asked to run

    @classmethod
    def start(
        cls,
        ctx: CommandContext,
        *,
        execution_id: str,
        chip_id: str,
        name: str,
        flow_name: str,
        tags: tuple[str, ...],
        note: dict[str, Any],
        started_at: datetime,
        existing: Execution | None,
    ) -> Execution:
        if existing is not None:
            raise Conflict(f"execution '{execution_id}' already exists", code="execution_exists")
        execution = cls(execution_key(ctx.project_id, execution_id))
        execution._trigger(
            ExecutionStarted,
            ctx,
            occurred_at=started_at,
            execution_id=execution_id,
            chip_id=chip_id,
            name=name,
            flow_name=flow_name,
            tags=tags,
            note=note,
        )
        return execution

    def dispatch(self, ctx: CommandContext, **plan: Any) -> None:
        """Right after start: the run qledger itself carries out."""
        if self.plan is not None or self.status != RUNNING:
            raise Conflict(f"execution '{self.execution_id}' is already dispatched",
                           code="execution_dispatched")  # fmt: skip
        self._trigger(CalibrationDispatched, ctx, execution_id=self.execution_id,
                      chip_id=self.chip_id, **plan)  # fmt: skip

    def check_can_record(self, task_id: str, start_at: datetime, end_at: datetime) -> None:
        if self.status != RUNNING:
            raise Conflict(
                f"execution '{self.execution_id}' is {self.status}; it takes no more task results",
                code="execution_finished",
            )
        if task_id in self.task_ids:
            raise Conflict(f"task '{task_id}' is already recorded", code="duplicate_task")
        if end_at < start_at:
            raise InvalidInput("a task cannot end before it starts", code="invalid_time_range")

    def record_task_result(self, ctx: CommandContext, **task: Any) -> TaskResultRecorded:
        self.check_can_record(task["task_id"], task["start_at"], task["end_at"])
        if task["status"] not in TASK_STATUSES:
            raise InvalidInput(f"task status must be one of {TASK_STATUSES}", code="invalid_status")
        event = self._trigger(
            TaskResultRecorded,
            ctx,
            occurred_at=task["end_at"],
            execution_id=self.execution_id,
            chip_id=self.chip_id,
            **task,
        )
        assert isinstance(event, TaskResultRecorded)
        return event

    def set_exclusion(self, ctx: CommandContext, *, task_id: str, excluded: bool, reason: str):
        """Allowed after the execution ended too: a bad result is often noticed later."""
        if task_id not in self.task_ids:
            raise NotFound(
                f"execution '{self.execution_id}' has no task '{task_id}'", code="task_not_found"
            )
        self._trigger(
            TaskResultExclusionSet,
            ctx,
            occurred_at=ctx.received_at,
            execution_id=self.execution_id,
            task_id=task_id,
            excluded=excluded,
            reason=reason,
        )

    def finish(self, ctx: CommandContext, *, status: str, message: str) -> None:
        if status not in FINISHED:
            raise InvalidInput(f"status must be one of {FINISHED}", code="invalid_status")
        if self.status != RUNNING:
            raise Conflict(
                f"execution '{self.execution_id}' is already {self.status}",
                code="execution_finished",
            )
        self._trigger(
            ExecutionFinished, ctx, execution_id=self.execution_id, status=status, message=message
        )

    def _on_ExecutionStarted(self, e: ExecutionStarted) -> None:
        self.execution_id = e.execution_id
        self.chip_id = e.chip_id
        self.status = RUNNING
        self.started_at = e.occurred_at

    def _on_CalibrationDispatched(self, e: CalibrationDispatched) -> None:
        self.plan = {"backend_id": e.backend_id, "qids": list(e.qids), "seed": e.seed,
                     "tasks": [dict(t) for t in e.tasks]}  # fmt: skip

    def _on_TaskResultRecorded(self, e: TaskResultRecorded) -> None:
        self.task_ids.add(e.task_id)
        self.task_targets[e.task_id] = (e.task_name, e.qid)

    def _on_TaskResultExclusionSet(self, e: TaskResultExclusionSet) -> None:
        pass  # read models act on it; no rule of the aggregate depends on it

    def _on_ExecutionFinished(self, e: ExecutionFinished) -> None:
        self.status = e.status
