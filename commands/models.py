"""Command models: what a client may ask for, validated at the edge (pydantic).

Every command travels as JSON on `qledger.cmd.<SUBJECT>`; the HTTP gateway builds the
same models. Context (project, actor, idempotency key) travels in message headers.
"""

from __future__ import annotations

import math
from datetime import UTC
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from domain.errors import DomainError, Kind

# No ":" in ids: entity ids are "parameter:qid:execution_id:task_id".
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def _utc(value):
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


ParamValue = Annotated[bool | int | float | str, AfterValidator(_finite)]
# Names of uploaded figures (domain/figures.py): the SHA-256 of the content and its kind.
PngFigure = Annotated[str, Field(pattern=r"^[0-9a-f]{64}\.png$")]
JsonFigure = Annotated[str, Field(pattern=r"^[0-9a-f]{64}\.json$")]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    SUBJECT: ClassVar[str]
    # Who may send it. A project role ("viewer" | "editor" | "owner") needed in the
    # command's project (X-Project-Id, else the caller's default project), or, for
    # commands outside any project: "user" (any signed-in person), "admin", "system".
    ACCESS: ClassVar[str] = "editor"
    # The scope an API key needs for it; None: API keys may not send it.
    SCOPE: ClassVar[str | None] = "calibration:write"

    @classmethod
    def project_scoped(cls) -> bool:
        return cls.ACCESS in ("viewer", "editor", "owner")


class RegisterChip(Command):
    """Install a chip; its qubits and couplings follow from the topology, or, for a chip
    bound to a twin backend (`backend_id`), are the backend's own."""

    SUBJECT = "chip.register"
    chip_id: Ident
    size: Annotated[int, Field(ge=1, le=1024)] | None = None  # required without backend_id
    # Default: the backend's own ("twin:<backend_id>"), else "square-lattice".
    topology_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    backend_id: Ident | None = None


class StartExecution(Command):
    SUBJECT = "calibration.start_execution"
    execution_id: Ident
    chip_id: Ident
    name: Annotated[str, Field(max_length=200)] = ""
    flow_name: Annotated[str, Field(max_length=200)] = ""
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    note: dict[str, Any] = Field(default_factory=dict)
    started_at: UtcDatetime | None = None


class OutputParameter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: ParamValue
    unit: Annotated[str, Field(max_length=32)] = ""
    error: Annotated[float, AfterValidator(_finite)] | None = None


class InputParameter(BaseModel):
    """A value the task read. Its version is resolved from the series at the task's start,
    or named exactly with `entity_id`. `qid` names another qubit's parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: ParamValue | None = None
    unit: Annotated[str, Field(max_length=32)] = ""
    error: float | None = None
    qid: Ident | None = None
    entity_id: Annotated[str, Field(max_length=400)] | None = None


class TaskResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    task_id: Ident
    task_name: Name
    task_type: Literal["qubit", "coupling", "global", "system"] = "qubit"
    qid: Ident
    status: Literal["completed", "failed", "skipped"] = "completed"
    message: Annotated[str, Field(max_length=4000)] = ""
    input_parameters: dict[str, InputParameter] = Field(default_factory=dict, max_length=200)
    output_parameters: dict[Ident, OutputParameter] = Field(default_factory=dict, max_length=200)
    run_parameters: dict[str, Any] = Field(default_factory=dict)
    # Uploaded first (POST /api/figures); the command is rejected if one is missing.
    figure_path: list[PngFigure] = Field(default_factory=list, max_length=50)
    json_figure_path: list[JsonFigure] = Field(default_factory=list, max_length=50)
    start_at: UtcDatetime
    end_at: UtcDatetime


class RecordTaskResult(Command):
    SUBJECT = "calibration.record_task_result"
    execution_id: Ident
    task: TaskResultIn


class _Finish(Command):
    execution_id: Ident
    message: Annotated[str, Field(max_length=4000)] = ""
    STATUS: ClassVar[str]


class CompleteExecution(_Finish):
    SUBJECT = "calibration.complete_execution"
    STATUS = "completed"


class FailExecution(_Finish):
    SUBJECT = "calibration.fail_execution"
    STATUS = "failed"


class CancelExecution(_Finish):
    SUBJECT = "calibration.cancel_execution"
    STATUS = "cancelled"


class SetTaskResultExclusion(Command):
    """Leave a task's results out of best and average chip metrics (or take them back)."""

    SUBJECT = "calibration.set_task_result_exclusion"
    execution_id: Ident
    task_id: Ident
    excluded: bool = True
    reason: Annotated[str, Field(max_length=2000)] = ""


CALIBRATION_COMMANDS: tuple[type[Command], ...] = (
    RegisterChip,
    StartExecution,
    RecordTaskResult,
    SetTaskResultExclusion,
    CompleteExecution,
    FailExecution,
    CancelExecution,
)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_ids: list[str]
    position: int
    event: dict[str, Any] | None = None  # the event itself, for commands that return data


class Rejected(BaseModel):
    """A refusal: `kind` says what sort (and so the HTTP status), `code` exactly which."""

    status: Literal["rejected"] = "rejected"
    kind: Kind
    code: str
    message: str

    @classmethod
    def of(cls, err: DomainError) -> Rejected:
        return cls(kind=err.kind, code=err.code, message=err.message)


Reply = Accepted | Rejected
