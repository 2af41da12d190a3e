"""Execution: one calibration run on a chip and the task results recorded in it.

running -> completed | failed | cancelled. Task payloads live in the events; the
aggregate keeps only what its rules need (status, chip, task ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput
from domain.events import CommandContext, DomainEvent, register, stable_id

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


@register
@dataclass(frozen=True, kw_only=True)
class ExecutionFinished(DomainEvent):
    """The execution ended as completed, failed or cancelled."""

    TYPE = "calibration.ExecutionFinished"
    execution_id: str
    status: str
    message: str


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

    def _on_TaskResultRecorded(self, e: TaskResultRecorded) -> None:
        self.task_ids.add(e.task_id)

    def _on_ExecutionFinished(self, e: ExecutionFinished) -> None:
        self.status = e.status
