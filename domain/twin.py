"""The digital twin's write model: a backend's controller commands, its jobs, and the
project's twin configuration files. Physics lives in twin/; these aggregates only keep
the rules about what may happen when (a job runs once, a running job can't be cancelled)
and record what happened, so the twin's state at any moment can be rebuilt."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from domain.aggregate import Aggregate
from domain.errors import Conflict, NotFound
from domain.events import CommandContext, DomainEvent, register, stable_id

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED",
)  # fmt: skip
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})


@register
@dataclass(frozen=True, kw_only=True)
class ControllerCommandApplied(DomainEvent):
    """A controller command was accepted for a backend: the only way its noise changes."""

    TYPE = "twin.ControllerCommandApplied"
    backend_id: str
    command_type: str
    command_payload: dict[str, Any]  # the command's "payload" (a DomainEvent has payload())


@register
@dataclass(frozen=True, kw_only=True)
class PulseScheduleStored(DomainEvent):
    """A gate-like action list for the FPGA readout loop (controller_api/v1)."""

    TYPE = "twin.PulseScheduleStored"
    backend_id: str
    schedule_id: str
    n_qubits: int
    actions: tuple[dict[str, Any], ...]


@register
@dataclass(frozen=True, kw_only=True)
class ReadoutTaken(DomainEvent):
    """One readout: a stored schedule run as a circuit (one shot), or, without one, every
    qubit read in |0> through its assignment errors."""

    TYPE = "twin.ReadoutTaken"
    backend_id: str
    schedule_id: str | None
    round_index: int | None
    outcomes: tuple[int, ...]  # bit i = qubit i
    seed: int


@register
@dataclass(frozen=True, kw_only=True)
class QecMetricCaptured(DomainEvent):
    """A QEC telemetry point: pushed by a decoder (job metadata) or the twin's estimate."""

    TYPE = "twin.QecMetricCaptured"
    backend_id: str
    job_id: str | None
    circuit_index: int
    metric_source: str  # decoder | heuristic
    logical_error_rate: float
    physical_error_rate: float
    code_distance: int | None
    details: dict[str, Any]


@register
@dataclass(frozen=True, kw_only=True)
class JobSubmitted(DomainEvent):
    TYPE = "twin.JobSubmitted"
    job_id: str
    backend_id: str
    circuits: tuple[Any, ...]  # OpenQASM 2.0 strings or circuit dicts, as submitted
    shots: int
    metadata: dict[str, Any]
    # The store position of the backend's last controller command when the job was
    # accepted: the twin runs the job only after it has applied that command.
    after_position: int


@register
@dataclass(frozen=True, kw_only=True)
class JobStarted(DomainEvent):
    TYPE = "twin.JobStarted"
    job_id: str
    backend_id: str


@register
@dataclass(frozen=True, kw_only=True)
class JobCompleted(DomainEvent):
    TYPE = "twin.JobCompleted"
    job_id: str
    backend_id: str
    results: tuple[dict[str, Any], ...]  # per circuit: circuit_index, shots, counts, engine
    run_ms: float


@register
@dataclass(frozen=True, kw_only=True)
class JobFailed(DomainEvent):
    TYPE = "twin.JobFailed"
    job_id: str
    backend_id: str
    code: str
    message: str


@register
@dataclass(frozen=True, kw_only=True)
class JobCancelled(DomainEvent):
    TYPE = "twin.JobCancelled"
    job_id: str
    backend_id: str


@register
@dataclass(frozen=True, kw_only=True)
class JobMetadataAttached(DomainEvent):
    """Decoder or QEC metadata pushed for a job (by an FPGA decoder, for instance)."""

    TYPE = "twin.JobMetadataAttached"
    job_id: str
    backend_id: str
    metadata: dict[str, Any]


@register
@dataclass(frozen=True, kw_only=True)
class ConfigFileWritten(DomainEvent):
    """A twin YAML file's new content: every configuration the twin ever had can be
    rebuilt from the shipped files plus these events."""

    TYPE = "twin.ConfigFileWritten"
    path: str
    content: str
    sha256: str


def backend_key(project_id: str, backend_id: str):
    return stable_id("twin-backend", project_id, backend_id)


def job_key(project_id: str, job_id: str):
    return stable_id("twin-job", project_id, job_id)


def config_key(project_id: str):
    return stable_id("twin-config", project_id)


class TwinBackend(Aggregate):
    """One backend's controller history in a project (created by its first command)."""

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        # (command_type, payload) in order: QEC sessions and readouts fold them
        # (twin/controller.py) into the noise; jobs get them from the store's log instead.
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.schedules: dict[str, tuple[int, tuple[dict[str, Any], ...]]] = {}

    def store_schedule(self, ctx: CommandContext, *, backend_id: str, schedule_id: str,
                       n_qubits: int, actions: tuple[dict[str, Any], ...]) -> None:  # fmt: skip
        if schedule_id in self.schedules:
            raise Conflict(f"schedule '{schedule_id}' already exists", code="schedule_exists")
        self._trigger(PulseScheduleStored, ctx, backend_id=backend_id, schedule_id=schedule_id,
                      n_qubits=n_qubits, actions=actions)  # fmt: skip

    def schedule(self, schedule_id: str) -> tuple[int, tuple[dict[str, Any], ...]]:
        if schedule_id not in self.schedules:
            raise NotFound(f"no pulse schedule '{schedule_id}' on this backend",
                           code="schedule_not_found")  # fmt: skip
        return self.schedules[schedule_id]

    def _on_PulseScheduleStored(self, e: PulseScheduleStored) -> None:
        self.schedules[e.schedule_id] = (e.n_qubits, e.actions)

    def apply_command(self, ctx: CommandContext, *, backend_id: str, command_type: str, payload):
        self._trigger(
            ControllerCommandApplied,
            ctx,
            backend_id=backend_id,
            command_type=command_type,
            command_payload=dict(payload),
        )

    def _on_ControllerCommandApplied(self, e: ControllerCommandApplied) -> None:
        self.commands.append((e.command_type, e.command_payload))


class TwinObservation(Aggregate):
    """One readout or one QEC telemetry point: an aggregate of a single event, so that a
    backend's controller history does not grow at the data plane's rate (nothing
    decides on these; they are records)."""

    CACHED = False

    @classmethod
    def readout(cls, ctx: CommandContext, **fields: Any) -> TwinObservation:
        observation = cls(uuid.UUID(int=random.getrandbits(128), version=4))
        observation._trigger(ReadoutTaken, ctx, **fields)
        return observation

    @classmethod
    def qec_metric(cls, ctx: CommandContext, **fields: Any) -> TwinObservation:
        observation = cls(uuid.UUID(int=random.getrandbits(128), version=4))
        observation._trigger(QecMetricCaptured, ctx, **fields)
        return observation

    def _on_ReadoutTaken(self, e: ReadoutTaken) -> None:
        pass

    def _on_QecMetricCaptured(self, e: QecMetricCaptured) -> None:
        pass


class TwinJob(Aggregate):
    job_id: str
    backend_id: str
    status: str

    @classmethod
    def submit(
        cls, ctx: CommandContext, *, existing: TwinJob | None, job_id: str, **fields: Any
    ) -> TwinJob:
        if existing is not None:
            raise Conflict(f"job '{job_id}' already exists", code="job_exists")
        job = cls(job_key(ctx.project_id, job_id))
        job._trigger(JobSubmitted, ctx, job_id=job_id, **fields)
        return job

    def start(self, ctx: CommandContext) -> None:
        if self.status == RUNNING:
            raise Conflict(f"job '{self.job_id}' is already running", code="job_running")
        if self.status != QUEUED:
            raise Conflict(f"job '{self.job_id}' is {self.status}", code="job_finished")
        self._trigger(JobStarted, ctx, job_id=self.job_id, backend_id=self.backend_id)

    def complete(
        self, ctx: CommandContext, *, results: tuple[dict, ...], run_ms: float, start: bool = False
    ) -> None:
        self._require_running(ctx, start)
        self._trigger(
            JobCompleted, ctx, job_id=self.job_id, backend_id=self.backend_id,
            results=results, run_ms=run_ms,
        )  # fmt: skip

    def fail(self, ctx: CommandContext, *, code: str, message: str, start: bool = False) -> None:
        self._require_running(ctx, start)
        self._trigger(
            JobFailed, ctx, job_id=self.job_id, backend_id=self.backend_id, code=code,
            message=message,
        )  # fmt: skip

    def cancel(self, ctx: CommandContext) -> None:
        """A queued job never runs; a running one is stopped (the runner kills its
        simulation when it sees this event) and keeps no result."""
        if self.status in FINISHED:
            raise Conflict(f"job '{self.job_id}' is already {self.status}", code="job_finished")
        self._trigger(JobCancelled, ctx, job_id=self.job_id, backend_id=self.backend_id)

    def attach_metadata(self, ctx: CommandContext, metadata: dict[str, Any]) -> None:
        self._trigger(
            JobMetadataAttached, ctx, job_id=self.job_id, backend_id=self.backend_id,
            metadata=dict(metadata),
        )  # fmt: skip

    def _require_running(self, ctx: CommandContext | None = None, start: bool = False) -> None:
        """`start`: a job short enough to finish before it was marked running starts and
        ends in one command (one commit fewer on a job's path); a cancel still wins."""
        if start and ctx is not None and self.status == QUEUED:
            self._trigger(JobStarted, ctx, job_id=self.job_id, backend_id=self.backend_id)
            return
        if self.status != RUNNING:
            raise Conflict(f"job '{self.job_id}' is {self.status}", code="job_not_running")

    def _on_JobSubmitted(self, e: JobSubmitted) -> None:
        self.job_id, self.backend_id, self.status = e.job_id, e.backend_id, QUEUED

    def _on_JobStarted(self, e: JobStarted) -> None:
        self.status = RUNNING

    def _on_JobCompleted(self, e: JobCompleted) -> None:
        self.status = COMPLETED

    def _on_JobFailed(self, e: JobFailed) -> None:
        self.status = FAILED

    def _on_JobCancelled(self, e: JobCancelled) -> None:
        self.status = CANCELLED

    def _on_JobMetadataAttached(self, e: JobMetadataAttached) -> None:
        pass


class TwinConfig(Aggregate):
    """The project's written twin config files (path -> content), over the shipped ones."""

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.files: dict[str, str] = {}

    def write(self, ctx: CommandContext, *, path: str, content: str, sha256: str) -> None:
        self._trigger(ConfigFileWritten, ctx, path=path, content=content, sha256=sha256)

    def _on_ConfigFileWritten(self, e: ConfigFileWritten) -> None:
        self.files[e.path] = e.content


def require_job(job: TwinJob | None, job_id: str) -> TwinJob:
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist", code="job_not_found")
    return job
