"""Running calibrations on the twin: qledger's addition to the reference, which starts
runs only through its workflow engine. The run is the bus command RunCalibration; the
route answers as soon as it is dispatched (the chip's lock taken), with the execution's
id to follow at GET /api/executions/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import (
    AcceptedResponse,
    IdempotencyKey,
    ReadAfter,
    ReadModels,
    WritableProject,
    accepted_body,
    generated_id,
    send_command,
)
from adapters.http.errors import not_found
from commands.calibration_run import ReExecuteCalibration, RunCalibration
from commands.models import Ident, Name
from projections import executions

router = APIRouter(tags=["calibration"])


class RunCalibrationRequest(RunCalibration):
    execution_id: Ident | None = Field(None, description="generated when omitted")  # type: ignore[assignment]
    source_execution_id: None = Field(None, exclude=True)  # type: ignore[assignment]
    source_task_id: None = Field(None, exclude=True)  # type: ignore[assignment]


class RunAccepted(AcceptedResponse):
    execution_id: str
    message: str


@router.post("/api/calibrations/run", response_model=RunAccepted, status_code=202)
async def run_calibration(
    body: RunCalibrationRequest,
    request: Request,
    project: WritableProject,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Run calibration tasks (GET /api/tasks) on qubits of a chip bound to a twin
    backend. 409 `chip_locked` while another run holds the chip."""
    fields = body.model_dump(exclude={"source_execution_id", "source_task_id"})
    fields["execution_id"] = body.execution_id or generated_id(project, idempotency_key)
    command = RunCalibration(**fields)
    reply = await send_command(request, command, project, idempotency_key)
    return accepted_body(
        reply,
        execution_id=command.execution_id,
        message=f"dispatched {', '.join(command.tasks)} on {len(command.qids)} targets",
    )


class ReExecuteRequest(BaseModel):
    """The reference's body, and qledger's additions (`seed`, `execution_id`)."""

    model_config = ConfigDict(extra="forbid")
    flow_name: Annotated[str, Field(max_length=200)] = ""  # the reference's; runs keep theirs
    parameter_overrides: dict[Name, Any] = Field(default_factory=dict, max_length=50)
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    execution_id: Ident | None = Field(None, description="the new run's; generated when omitted")
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)


class ExecuteFlowResponse(AcceptedResponse):
    execution_id: str
    flow_run_url: str  # the reference's (a workflow engine's page); empty here
    qdash_ui_url: str
    message: str


async def _re_execute(request, project, idempotency_key, body, source_execution_id, task_id):
    command = ReExecuteCalibration(
        execution_id=body.execution_id or generated_id(project, idempotency_key),
        source_execution_id=source_execution_id,
        source_task_id=task_id,
        parameter_overrides=body.parameter_overrides,
        seed=body.seed,
        tags=body.tags,
    )
    reply = await send_command(request, command, project, idempotency_key)
    what = f"task '{task_id}'" if task_id else f"execution '{source_execution_id}'"
    return accepted_body(
        reply,
        execution_id=command.execution_id,
        flow_run_url="",
        qdash_ui_url="",
        message=f"re-executing {what} from its recorded plan",
    )


@router.post(
    "/api/executions/{execution_id}/re-execute",
    response_model=ExecuteFlowResponse,
    tags=["execution"],
)
async def re_execute_execution(
    execution_id: Ident,
    request: Request,
    project: WritableProject,
    body: ReExecuteRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Run a calibration run again: its tasks, qubits, run parameters and twin seed as
    recorded, with `parameter_overrides`. On the same twin state the numbers repeat bit
    for bit. 409 `execution_not_reexecutable` for an execution recorded from outside."""
    body = body or ReExecuteRequest()
    return await _re_execute(request, project, idempotency_key, body, execution_id, None)


@router.post(
    "/api/task-results/{task_id}/re-execute",
    response_model=ExecuteFlowResponse,
    tags=["task-result"],
    dependencies=[ReadAfter],
)
async def re_execute_task(
    task_id: Ident,
    request: Request,
    project: WritableProject,
    db: ReadModels,
    body: ReExecuteRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Run one task result's task again on its qubit, from its run's recorded plan."""
    found = await run_in_threadpool(executions.get_task_result, db, project, task_id)
    if found is None:
        raise not_found(f"task result '{task_id}'")
    body = body or ReExecuteRequest()
    return await _re_execute(
        request, project, idempotency_key, body, found["execution_id"], task_id
    )
