"""The twin runner: follows the twin's events in the store's log and runs the jobs.

It consumes the event log like the relay does, reading it in position order, from the
start at every start and then after each commit, folding each backend's controller
commands and each project's config writes. So every JobSubmitted is seen after exactly
the commands accepted before it, and the job runs under that snapshot: a job submitted
after a controller command runs under that command, whatever arrives later. (It runs in
the command process, next to the store: reading the log there saves the ~5 ms hop
through the relay and JetStream on every job.)

Jobs start only once the replay has caught up (a job finished before a restart is seen
finished first). Its outcome goes back as StartJob / CompleteJob / FailJob commands
with qledger's own credential, straight to this node's command writer; the aggregate
decides, so a job cancelled a moment before it would start is skipped. A job simulated
within 50 ms skips StartJob: its CompleteJob records the start too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from adapters.commandbus import CommandWriter
from adapters.eventstore import EventStore, envelope
from adapters.twin.catalog import TwinCatalog, backends_for
from adapters.twin.worker import SimulationWorker, WorkerError
from commands.models import Rejected
from commands.processor import system_submission
from commands.twin import CompleteJob, FailJob, StartJob
from domain.errors import DomainError
from twin.circuits import DEFAULT_OPTIMIZATION_LEVEL
from twin.controller import ControllerState, apply_command
from twin.errors import TwinError
from twin.sampling import DEFAULT_RESULT_FORMAT, RESULT_FORMATS

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 512 * 1024  # an event must fit one NATS message (1 MiB) with its envelope
FAST_JOB_S = 0.05  # a job simulated within this starts and ends in one command


@dataclass
class QueuedJob:
    project_id: str
    job_id: str
    backend_id: str
    files: dict[str, str]
    state: ControllerState
    circuits: list[Any]
    shots: int
    seed: int
    at: float  # submission time: the drift phase
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
    result_format: str = DEFAULT_RESULT_FORMAT
    running: bool = False  # started before a restart
    cancelled: bool = False  # cancelled while it ran


class TwinRunner:
    def __init__(
        self,
        store: EventStore,
        writer: CommandWriter,
        catalog: TwinCatalog,
        *,
        time_limit: float = 60.0,
        memory_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.time_limit = time_limit
        self.writer = writer
        self.catalog = catalog
        self.files: dict[str, dict[str, str]] = {}  # project -> written files
        self.states: dict[tuple[str, str], ControllerState] = {}
        self.queue: deque[QueuedJob] = deque()
        self.current: QueuedJob | None = None  # the job the worker is running
        self.turns: dict[str, int] = {}  # project -> when it last had a job run
        self.finished: set[tuple[str, str]] = set()
        self.wake = asyncio.Event()
        self.caught_up = asyncio.Event()
        self.scanned = 0  # store position up to which the log has been read
        self.committed = asyncio.Event()
        self.worker = SimulationWorker(memory_bytes=memory_bytes, threads=1)

    # -- folding the stream ------------------------------------------------------------
    def state_of(self, project_id: str, backend_id: str) -> ControllerState:
        return self.states.get((project_id, backend_id), ControllerState())

    def project_files(self, project_id: str) -> dict[str, str]:
        return {**self.catalog.base_files(), **self.files.get(project_id, {})}

    def fold(self, env: dict[str, Any]) -> None:
        p, kind, project = env["payload"], env["type"], env["project_id"]
        if kind == "twin.ControllerCommandApplied":
            key = (project, p["backend_id"])
            self.states[key] = apply_command(
                self.state_of(*key), p["command_type"], p["command_payload"]
            )
        elif kind == "twin.ConfigFileWritten":
            self.files.setdefault(project, {})[p["path"]] = p["content"]
        elif kind == "twin.JobSubmitted":
            if (project, p["job_id"]) in self.finished:
                return
            seed = p["metadata"].get("seed")
            # Checked at submission; a job accepted before the check existed ran as counts.
            result_format = p["metadata"].get("result_format", DEFAULT_RESULT_FORMAT)
            self.queue.append(
                QueuedJob(
                    project_id=project,
                    job_id=p["job_id"],
                    backend_id=p["backend_id"],
                    files=self.project_files(project),
                    state=self.state_of(project, p["backend_id"]),
                    circuits=list(p["circuits"]),
                    shots=p["shots"],
                    # No seed given: a random one, recorded with the results.
                    seed=int(seed) if isinstance(seed, int) else secrets.randbits(63),
                    at=datetime.fromisoformat(env["occurred_at"]).timestamp(),
                    optimization_level=p["metadata"].get(
                        "optimization_level", DEFAULT_OPTIMIZATION_LEVEL
                    ),
                    result_format=result_format
                    if result_format in RESULT_FORMATS
                    else DEFAULT_RESULT_FORMAT,
                )
            )
            self.wake.set()
        elif kind == "twin.JobStarted":
            for job in self.queue:
                if (job.project_id, job.job_id) == (project, p["job_id"]):
                    job.running = True
        elif kind in ("twin.JobCompleted", "twin.JobFailed", "twin.JobCancelled"):
            self.finished.add((project, p["job_id"]))
            current = self.current
            if current is not None and (current.project_id, current.job_id) == (
                project,
                p["job_id"],
            ):
                current.cancelled = kind == "twin.JobCancelled"
                if current.cancelled:
                    self.worker.stop()
            self.queue = deque(
                j for j in self.queue if (j.project_id, j.job_id) != (project, p["job_id"])
            )

    def notify(self) -> None:
        """The command writer committed: there may be new twin events."""
        self.committed.set()

    def _read_log(self) -> list:
        """The twin events the log holds beyond what was read (one thread hop)."""
        stop = self.store.max_position()
        notes: list = []
        while True:
            batch = self.store.notifications_after(self.scanned, 1000, stop, topic_prefix="twin.")
            notes += batch
            if len(batch) < 1000:
                break
            self.scanned = batch[-1].id
        self.scanned = stop
        return notes

    async def follow(self) -> None:
        """Fold the twin's events from the store's log: from the start, then after each
        commit of this node's writer (or every second, for other writers)."""
        while True:
            self.committed.clear()
            notes = await asyncio.to_thread(self._read_log)
            for note in notes:
                self.fold(envelope(note))
            if not self.caught_up.is_set():
                self.caught_up.set()
                self.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.committed.wait(), 1.0)

    # -- running jobs ------------------------------------------------------------------
    async def run(self) -> None:
        self.worker.start()
        await asyncio.to_thread(self.worker.call, "warm_up")
        follower = asyncio.create_task(self.follow(), name="twin-follow")
        try:
            await self.caught_up.wait()
            while True:
                if follower.done():
                    follower.result()  # re-raise what stopped it
                if not self.queue:
                    self.wake.clear()
                    await asyncio.wait(
                        [asyncio.ensure_future(self.wake.wait()), follower],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                await self._ensure_worker()
                if not self.queue:  # cancelled while the worker restarted
                    continue
                job = self._next_job()
                self.current = job
                try:
                    await self._run_one(job)
                finally:
                    self.current = None
        finally:
            follower.cancel()
            await asyncio.to_thread(self.worker.close)

    async def _send(self, command) -> Any:
        return await self.writer.submit(system_submission(command, f"twin-job:{command.job_id}"))

    async def _run_one(self, job: QueuedJob) -> None:
        key = dict(project_id=job.project_id, job_id=job.job_id)
        loop = asyncio.get_running_loop()
        try:
            # Parsing a changed config (YAML, pydantic) must not hold up the writer's loop.
            backend = (await asyncio.to_thread(backends_for, job.files))[job.backend_id]
            self.worker.start()  # again if it died: from this (the loop's) thread
            simulation = asyncio.ensure_future(asyncio.to_thread(
                self.worker.call, "run_job", backend, job.state, job.circuits, job.shots,
                job.seed, job.at, job.optimization_level, self.catalog.budget_seconds,
                job.result_format, timeout=self.time_limit,
            ))  # fmt: skip
        except (DomainError, KeyError) as err:
            simulation = loop.create_future()
            simulation.set_exception(err)
        # A job that finishes within FAST_JOB_S starts and ends in one command: one commit
        # fewer on its path (most of a Bell job's latency is commits). A longer one is
        # marked RUNNING first; its outcome is kept only if it really started (a cancel
        # may have won).
        start = not job.running
        if start:
            await asyncio.wait({simulation}, timeout=FAST_JOB_S)
        if start and not simulation.done():
            start = False
            reply = await self._send(StartJob(**key))
            # "job_running": started before a restart, and this runner had not yet seen
            # that on the stream; it is still this runner's to finish.
            if isinstance(reply, Rejected) and reply.code != "job_running":
                # Cancelled (or finished) meanwhile: the stream will say so; drop it here.
                log.info("job %s not started: %s", job.job_id, reply.message)
                with contextlib.suppress(Exception):
                    await simulation
                self._drop(job)
                return
        try:
            results, run_ms = await simulation
            if job.cancelled:  # it ended anyway, a moment after its cancel
                self._drop(job)
                return
            for r in results:
                r["seed"] = job.seed
            if len(orjson.dumps(results)) > MAX_RESULT_BYTES:
                raise TwinError(
                    "result_too_large",
                    f"the counts exceed {MAX_RESULT_BYTES} bytes; use fewer shots, measure"
                    " fewer qubits, or metadata.result_format 'marginals'",
                )
            reply = await self._send(
                CompleteJob(**key, results=results, run_ms=run_ms, start=start)
            )
        except WorkerError as err:
            if job.cancelled:  # stopped on purpose: JobCancelled already ended it
                self._drop(job)
                return
            reply = await self._send(
                FailJob(**key, code=err.code, message=err.message, start=start)
            )
        except (TwinError, DomainError, KeyError) as err:
            code = getattr(err, "code", "unknown_backend")
            message = getattr(err, "message", str(err))
            reply = await self._send(FailJob(**key, code=code, message=message, start=start))
        except Exception as err:
            log.exception("job %s failed", job.job_id)
            reply = await self._send(
                FailJob(**key, code="simulation_error", message=str(err), start=start)
            )
        if isinstance(reply, Rejected):
            log.warning("job %s outcome refused: %s", job.job_id, reply.message)
        self._drop(job)

    async def _ensure_worker(self) -> None:
        """A worker killed by a limit or a cancel is restarted and warmed up between
        jobs: no job's time limit pays for the restart (importing numpy and qiskit)."""
        proc = self.worker.proc
        if proc is not None and proc.poll() is None:
            return
        self.worker.start()  # from the loop's thread (its parent-death signal)
        try:
            await asyncio.to_thread(self.worker.call, "warm_up")
        except WorkerError as err:
            log.error("the simulation worker failed to start: %s", err.message)

    def _next_job(self) -> QueuedJob:
        """Round robin over projects: the oldest job of the project that waited longest
        for its turn (a project that floods the queue runs one job per round)."""
        job = min(enumerate(self.queue), key=lambda e: (self.turns.get(e[1].project_id, -1), e[0]))[
            1
        ]
        self.turns[job.project_id] = max(self.turns.values(), default=0) + 1
        return job

    def _drop(self, job: QueuedJob) -> None:
        self.finished.add((job.project_id, job.job_id))
        with contextlib.suppress(ValueError):
            self.queue.remove(job)
