"""Executions and task results. The reference serves reads only (its writes come from a
workflow engine); qledger adds the write endpoints as gateways to the same bus commands."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from adapters.http.deps import (
    AcceptedResponse,
    IdempotencyKey,
    Offset,
    ProjectId,
    ReadAfter,
    ReadModels,
    ReadOwnWrites,
    WritableProject,
    accepted_body,
    generated_id,
    send_command,
)
from adapters.http.errors import not_found
from commands.models import (
    CancelExecution,
    CompleteExecution,
    FailExecution,
    Ident,
    RecordTaskResult,
    SetTaskResultExclusion,
    StartExecution,
    TaskResultIn,
)
from projections import chips
from projections import executions as q

router = APIRouter(tags=["execution"])


class StartExecutionRequest(StartExecution):
    execution_id: Ident | None = Field(None, description="generated when omitted")  # type: ignore[assignment]


class TaskResultRequest(TaskResultIn):
    task_id: Ident | None = Field(None, description="generated when omitted")  # type: ignore[assignment]


class FinishRequest(BaseModel):
    message: str = ""


class ExecutionAccepted(AcceptedResponse):
    execution_id: str


class FinishAccepted(AcceptedResponse):
    execution_id: str
    message: str


class TaskAccepted(AcceptedResponse):
    task_id: str


@router.get("/api/executions", dependencies=[ReadAfter])
def list_executions(
    project: ProjectId,
    db: ReadModels,
    chip_id: Annotated[str, Query(description="Chip ID to filter executions")],
    skip: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    return q.list_executions(db, project, chip_id, skip=skip, limit=limit)


class ChipLock(BaseModel):
    chip_id: str
    execution_id: str
    since: str | None


class LockStatusResponse(BaseModel):
    lock: bool  # the reference's field: a run holds a chip (the one asked, or any)
    locks: list[ChipLock]  # qledger's: which chips, held by which execution, since when


@router.get(
    "/api/executions/lock-status", response_model=LockStatusResponse, dependencies=[ReadOwnWrites]
)
def get_lock_status(
    project: ProjectId,
    db: ReadModels,
    chip_id: Annotated[Ident | None, Query(description="only this chip's lock")] = None,
):
    """A calibration run takes its chip's lock when it is dispatched and gives it back
    when it ends (completed, failed or cancelled)."""
    return chips.lock_status(db, project, chip_id)


@router.get("/api/executions/{execution_id}", dependencies=[ReadAfter])
def get_execution(execution_id: str, project: ProjectId, db: ReadModels):
    found = q.get_execution(db, project, execution_id)
    if found is None:
        raise not_found(f"execution '{execution_id}'")
    return found


@router.get("/api/tasks/{task_id}/result", tags=["task"], dependencies=[ReadAfter])
def get_task_result(task_id: str, project: ProjectId, db: ReadModels):
    found = q.get_task_result(db, project, task_id)
    if found is None:
        raise not_found(f"task result '{task_id}'")
    return found


@router.post("/api/executions", response_model=ExecutionAccepted)
async def start_execution(
    body: StartExecutionRequest,
    request: Request,
    project: WritableProject,
    idempotency_key: IdempotencyKey = None,
):
    fields = body.model_dump()
    fields["execution_id"] = body.execution_id or generated_id(project, idempotency_key)
    reply = await send_command(request, StartExecution(**fields), project, idempotency_key)
    return accepted_body(reply, execution_id=fields["execution_id"])


@router.post("/api/executions/{execution_id}/tasks", response_model=TaskAccepted)
async def record_task_result(
    execution_id: str,
    body: TaskResultRequest,
    request: Request,
    project: WritableProject,
    idempotency_key: IdempotencyKey = None,
):
    fields = body.model_dump()
    fields["task_id"] = body.task_id or generated_id(project, idempotency_key)
    command = RecordTaskResult(execution_id=execution_id, task=TaskResultIn(**fields))
    reply = await send_command(request, command, project, idempotency_key)
    return accepted_body(reply, task_id=fields["task_id"])


class ExclusionRequest(BaseModel):
    excluded: bool = True
    reason: str = Field("", max_length=2000)


@router.put("/api/executions/{execution_id}/tasks/{task_id}/exclusion", response_model=TaskAccepted)
async def set_task_result_exclusion(
    execution_id: str,
    task_id: str,
    body: ExclusionRequest,
    request: Request,
    project: WritableProject,
    idempotency_key: IdempotencyKey = None,
):
    """qledger's: leave a task's results out of best and average chip metrics from now
    on (`excluded: false` takes them back). The mark is an event; `as_of` queries from
    before it still count the results."""
    command = SetTaskResultExclusion(
        execution_id=execution_id, task_id=task_id, excluded=body.excluded, reason=body.reason
    )
    reply = await send_command(request, command, project, idempotency_key)
    return accepted_body(reply, task_id=task_id)


def _finish_route(
    path: str, command_cls: type[CompleteExecution | FailExecution | CancelExecution]
):
    """complete / fail / cancel differ only in the command they send. (This module keeps
    annotations eager, so the path parameter's alias below is resolved per route.)"""
    param = path.split("{")[1].split("}")[0]

    async def finish(
        request: Request,
        project: WritableProject,
        execution_id: Annotated[str, PathParam(alias=param)],
        body: FinishRequest | None = None,
        idempotency_key: IdempotencyKey = None,
    ):
        command = command_cls(execution_id=execution_id, message=body.message if body else "")
        reply = await send_command(request, command, project, idempotency_key)
        # The reference's cancel answers {execution_id, status, message}; the position
        # and event ids are what qledger adds.
        return accepted_body(reply, execution_id=execution_id, message=command.message)

    finish.__name__ = f"{command_cls.STATUS}_execution"
    router.post(
        path, response_model=FinishAccepted, summary=f"Mark an execution {command_cls.STATUS}"
    )(finish)


_finish_route("/api/executions/{execution_id}/complete", CompleteExecution)
_finish_route("/api/executions/{execution_id}/fail", FailExecution)
# The reference names this one's parameter flow_run_id; it is the execution id.
_finish_route("/api/executions/{flow_run_id}/cancel", CancelExecution)
