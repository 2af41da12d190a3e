"""Running calibrations on the twin: qledger's addition to the reference, which starts
runs only through its workflow engine. The run is the bus command RunCalibration; the
route answers as soon as it is dispatched (the chip's lock taken), with the execution's
id to follow at GET /api/executions/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from adapters.http.deps import (
    AcceptedResponse,
    IdempotencyKey,
    WritableProject,
    accepted_body,
    generated_id,
    send_command,
)
from commands.calibration_run import RunCalibration
from commands.models import Ident

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
        message=f"dispatched {', '.join(command.tasks)} on {len(command.qids)} qubits",
    )
