"""Twin commands: controller commands, jobs and config writes, decided like any other.

What needs the twin's configuration (does the backend exist, is qubit 9 on it, does the
circuit parse, is the YAML valid) is asked of a TwinConfigPort, implemented in adapters/
with twin/ and config/; the rules about order (a running job can't be cancelled) are the
aggregates'.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr

from commands.authorization import Caller
from commands.models import Command, Ident
from commands.ports import TwinPort
from commands.unit_of_work import UnitOfWork
from domain.errors import InvalidInput, NotFound, Unavailable
from domain.events import CommandContext
from domain.twin import (
    TwinBackend,
    TwinConfig,
    TwinJob,
    backend_key,
    config_key,
    job_key,
    require_job,
)

MAX_CIRCUITS_HARD = 1000  # the scheduler's max_circuits_per_job is checked too
MAX_CONFIG_BYTES = 256 * 1024


class _TwinCommand(Command):
    SCOPE: ClassVar[str | None] = "twin:write"


class ApplyControllerCommand(_TwinCommand):
    SUBJECT = "twin.controller_command"
    backend_id: Ident
    command_type: Annotated[str, Field(max_length=64)]
    payload: dict[str, Any] = Field(default_factory=dict, max_length=32)


class SubmitJob(_TwinCommand):
    SUBJECT = "twin.submit_job"
    job_id: Ident
    backend_id: Ident
    circuits: list[str | dict[str, Any]] = Field(min_length=1, max_length=MAX_CIRCUITS_HARD)
    shots: int = 1024  # checked against the backend's max_shots (invalid_shots)
    # Free-form, recorded with the job. Read by the twin: `seed` (an integer: the same
    # counts again), `optimization_level` (0-3, default 1; 0 runs gates as written) and
    # `result_format` ("counts", the default, or "marginals": ones per classical bit).
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The circuits as the checker process sized them (set by the bus adapter, never by
    # a client: a private attribute is neither parsed nor serialised).
    _sizes: list | None = PrivateAttr(default=None)


class CancelJob(_TwinCommand):
    SUBJECT = "twin.cancel_job"
    job_id: Ident


class AttachJobMetadata(_TwinCommand):
    SUBJECT = "twin.attach_job_metadata"
    job_id: Ident
    metadata: dict[str, Any]


class WriteTwinConfig(_TwinCommand):
    SUBJECT = "twin.write_config"
    path: Annotated[str, Field(max_length=200)]
    content: Annotated[str, Field(max_length=MAX_CONFIG_BYTES)]


class _RunnerCommand(Command):
    """Sent by qledger's own twin runner, never by clients."""

    ACCESS: ClassVar[str] = "system"
    SCOPE: ClassVar[str | None] = None
    project_id: Ident
    job_id: Ident


class StartJob(_RunnerCommand):
    SUBJECT = "twin.start_job"


class CompleteJob(_RunnerCommand):
    SUBJECT = "twin.complete_job"
    results: list[dict[str, Any]]
    run_ms: float
    start: bool = False  # a queued job: record its start too (it finished that fast)


class FailJob(_RunnerCommand):
    SUBJECT = "twin.fail_job"
    code: str
    message: str
    start: bool = False


def _port(uow: UnitOfWork) -> TwinPort:
    if uow.twin is None:
        raise Unavailable("this command node has no twin configuration", code="twin_unavailable")
    return uow.twin


def current_files(uow: UnitOfWork, project_id: str) -> dict[str, str]:
    config = uow.get(TwinConfig, config_key(project_id))
    return {**_port(uow).base_files(), **(config.files if config else {})}


def handle_controller(cmd: ApplyControllerCommand, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    _port(uow).check_controller(
        current_files(uow, ctx.project_id), cmd.backend_id, cmd.command_type, cmd.payload
    )
    key = backend_key(ctx.project_id, cmd.backend_id)
    backend = uow.get(TwinBackend, key) or TwinBackend(key)
    backend.apply_command(
        ctx, backend_id=cmd.backend_id, command_type=cmd.command_type, payload=cmd.payload
    )
    return uow.stage(backend)


def handle_submit(cmd: SubmitJob, ctx: CommandContext, uow: UnitOfWork, caller: Caller):
    if cmd.job_id.startswith("cal-") and not caller.principal.is_system:
        # The calibration runner's: a job a client named so would be taken for a run's.
        raise InvalidInput("job ids starting with 'cal-' are qledger's own", code="reserved_job_id")
    _port(uow).check_job(
        current_files(uow, ctx.project_id),
        cmd.backend_id,
        list(cmd.circuits),
        cmd.shots,
        sizes=cmd._sizes,
        metadata=cmd.metadata,
    )
    backend = uow.get(TwinBackend, backend_key(ctx.project_id, cmd.backend_id))
    # Ordering: the job waits for the backend's last accepted controller command.
    after = uow.store.position_of(backend.id, backend.version) if backend else 0
    job = TwinJob.submit(
        ctx,
        existing=uow.get(TwinJob, job_key(ctx.project_id, cmd.job_id)),
        job_id=cmd.job_id,
        backend_id=cmd.backend_id,
        circuits=tuple(cmd.circuits),
        shots=cmd.shots,
        metadata=dict(cmd.metadata),
        after_position=after,
    )
    return uow.stage(job)


def _job(uow: UnitOfWork, project_id: str, job_id: str) -> TwinJob:
    return require_job(uow.get(TwinJob, job_key(project_id, job_id)), job_id)


def handle_cancel(cmd: CancelJob, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    job = _job(uow, ctx.project_id, cmd.job_id)
    job.cancel(ctx)
    return uow.stage(job)


def handle_metadata(cmd: AttachJobMetadata, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    job = _job(uow, ctx.project_id, cmd.job_id)
    job.attach_metadata(ctx, cmd.metadata)
    return uow.stage(job)


def handle_write_config(cmd: WriteTwinConfig, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    files = current_files(uow, ctx.project_id)
    if cmd.path not in files:
        raise NotFound(f"no config file '{cmd.path}'", code="config_file_not_found")
    _port(uow).check_files({**files, cmd.path: cmd.content})
    key = config_key(ctx.project_id)
    config = uow.get(TwinConfig, key) or TwinConfig(key)
    digest = hashlib.sha256(cmd.content.encode()).hexdigest()
    config.write(ctx, path=cmd.path, content=cmd.content, sha256=digest)
    return uow.stage(config)


def _runner_ctx(cmd: _RunnerCommand, ctx: CommandContext) -> CommandContext:
    """The runner is qledger itself, outside any project: its events go to the job's."""
    return dataclasses.replace(ctx, project_id=cmd.project_id)


def handle_start(cmd: StartJob, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    ctx = _runner_ctx(cmd, ctx)
    job = _job(uow, ctx.project_id, cmd.job_id)
    job.start(ctx)
    return uow.stage(job)


def handle_complete(cmd: CompleteJob, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    ctx = _runner_ctx(cmd, ctx)
    job = _job(uow, ctx.project_id, cmd.job_id)
    job.complete(ctx, results=tuple(cmd.results), run_ms=cmd.run_ms, start=cmd.start)
    return uow.stage(job)


def handle_fail(cmd: FailJob, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    ctx = _runner_ctx(cmd, ctx)
    job = _job(uow, ctx.project_id, cmd.job_id)
    job.fail(ctx, code=cmd.code, message=cmd.message, start=cmd.start)
    return uow.stage(job)


TWIN_HANDLERS = {
    ApplyControllerCommand: handle_controller,
    SubmitJob: handle_submit,
    CancelJob: handle_cancel,
    AttachJobMetadata: handle_metadata,
    WriteTwinConfig: handle_write_config,
    StartJob: handle_start,
    CompleteJob: handle_complete,
    FailJob: handle_fail,
}
