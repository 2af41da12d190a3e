"""The calibration runner: carries out the calibration runs that were dispatched.

Like the twin runner it follows the event log (from the start at every start, then
after each commit), so it sees every CalibrationDispatched, the task results already
recorded, and the twin jobs' outcomes. A run is carried out task by task:

  build the sweeps -> submit them as twin jobs (level 0, marginal counts, the run's
  seed) -> wait for the jobs' outcomes in the log -> fit each qubit -> upload its
  figure and raw data -> record its task result -> (Rabi, Ramsey) correct the drive.

Everything it sends is a command decided by the command side with qledger's own
identity, and every id it sends is derived from the run (job ids, task ids), so a
runner killed at any moment resumes where the log says it was: a job submitted twice is
refused as existing, a task result recorded twice as a duplicate. A cancelled run stops
at once; its queued jobs are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from adapters.calibration.runs import Run, TaskPlan, figure_name, source_of_task
from adapters.commandbus import CommandWriter, prepared
from adapters.eventstore import EventStore, envelope
from adapters.figures import FigureStore
from adapters.twin.catalog import TwinCatalog, backends_for
from adapters.twin.checker import CircuitChecker
from calibration.plan import jobs_for
from calibration.tasks import TASKS, Outcome, Task, targets_of
from commands.models import (
    CompleteExecution,
    FailExecution,
    InputParameter,
    OutputParameter,
    RecordTaskResult,
    Rejected,
    TaskResultIn,
)
from commands.processor import system_submission
from commands.twin import ApplyControllerCommand, CancelJob, SubmitJob

log = logging.getLogger(__name__)
JOB_DONE = ("twin.JobCompleted", "twin.JobFailed", "twin.JobCancelled")
# What the runner reads of the log: not the jobs' submissions (their circuits are
# megabytes per run) nor the parameter versions.
FOLLOWED = (
    "calibration.CalibrationDispatched", "calibration.TaskResultRecorded",
    "calibration.ExecutionFinished", *JOB_DONE, "twin.ConfigFileWritten",
    "twin.ControllerCommandApplied",
)  # fmt: skip
SIGNIFICANT = 3.0  # a drive is corrected only for an error beyond this many fit sigmas


class RunFailed(Exception):
    """The run cannot go on (a job failed, the backend is gone): the execution fails."""


class CalibrationRunner:
    def __init__(
        self,
        store: EventStore,
        writer: CommandWriter,
        figures: FigureStore,
        catalog: TwinCatalog,
        checker: CircuitChecker | None = None,
    ) -> None:
        self.store, self.writer, self.figures, self.catalog = store, writer, figures, catalog
        # Jobs' circuits are sized in the checker's child process, as the bus's are: in
        # the writer, parsing a 64-qubit RB run's circuits held every command for a minute.
        self.checker = checker
        self.runs: dict[tuple[str, str], Run] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}  # outcomes of the runner's jobs
        self.files: dict[str, dict[str, str]] = defaultdict(dict)  # project -> config writes
        self.drive: dict[tuple[str, str, int], dict[str, float]] = {}  # corrections applied
        self.changed = asyncio.Event()  # the log said something a run may wait for
        self.committed = asyncio.Event()
        self.caught_up = asyncio.Event()
        self.scanned = 0

    # -- following the log -------------------------------------------------------------
    def fold(self, env: dict[str, Any]) -> None:
        p, kind, project = env["payload"], env["type"], env["project_id"]
        if kind == "calibration.CalibrationDispatched":
            self.runs[(project, p["execution_id"])] = Run(
                project, p["execution_id"], p["chip_id"], p["backend_id"], list(p["qids"]),
                list(p["tasks"]), int(p["seed"]),
                source_execution_id=p.get("source_execution_id", ""),
                source_task_id=p.get("source_task_id", ""),
            )  # fmt: skip
        elif kind == "calibration.TaskResultRecorded":
            run = self.runs.get((project, p["execution_id"]))
            if run is not None:
                run.recorded.add(p["task_id"])
        elif kind == "calibration.ExecutionFinished":
            run = self.runs.pop((project, p["execution_id"]), None)
            if run is not None:  # done with: its jobs' results are not kept
                run.finished = p["status"]
                ours = f"cal-{run.short}-"
                self.jobs = {k: v for k, v in self.jobs.items() if not k[1].startswith(ours)}
        elif kind in JOB_DONE and self._is_ours(project, p["job_id"]):
            self.jobs[(project, p["job_id"])] = {"type": kind, **p}
        elif kind == "twin.ConfigFileWritten":
            self.files[project][p["path"]] = p["content"]
        elif kind == "twin.ControllerCommandApplied":
            self._fold_controller(project, p)
        else:
            return
        self.changed.set()

    def _is_ours(self, project: str, job_id: str) -> bool:
        """A job of a run still going (others' results, and finished runs', are not
        kept: memory stays bounded by the runs in progress)."""
        if not job_id.startswith("cal-"):
            return False
        short = job_id.split("-")[1]
        return any(r.short == short for (p, _), r in self.runs.items() if p == project)

    def _fold_controller(self, project: str, p: dict[str, Any]) -> None:
        if p["command_type"] == "set_drive_correction":
            c = p["command_payload"]
            key = (project, p["backend_id"], int(c["qubit"]))
            now = self.drive.get(key, {"amplitude_scale": 1.0, "frequency_offset_mhz": 0.0})
            self.drive[key] = {**now, **{k: float(v) for k, v in c.items() if k != "qubit"}}
        elif p["command_type"] == "reset":
            self.drive = {
                k: v for k, v in self.drive.items() if k[:2] != (project, p["backend_id"])
            }

    def notify(self) -> None:
        self.committed.set()

    def _read_log(self) -> list:
        stop = self.store.max_position()
        notes: list = []
        for prefix in FOLLOWED:
            after = self.scanned
            while True:
                batch = self.store.notifications_after(after, 1000, stop, topic_prefix=prefix)
                notes += batch
                if len(batch) < 1000:
                    break
                after = batch[-1].id
        self.scanned = stop
        notes.sort(key=lambda n: n.id)
        return notes

    async def follow(self) -> None:
        """Fold the log, for as long as the process runs: a store that fails a read (a
        PostgreSQL restart) is read again after a pause, never the end of the runner."""
        pause = 1.0
        while True:
            self.committed.clear()
            try:
                notes = await asyncio.to_thread(self._read_log)
            except Exception as err:  # noqa: BLE001 - any store error: retry, say so
                log.warning("calibration runner: reading the log failed (%s); retrying", err)
                await asyncio.sleep(pause)
                pause = min(2 * pause, 30.0)
                continue
            pause = 1.0
            for note in notes:
                self.fold(envelope(note))
            self.caught_up.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.committed.wait(), 1.0)

    # -- carrying out runs -------------------------------------------------------------
    async def run(self) -> None:
        follower = asyncio.create_task(self.follow(), name="calibration-follow")
        try:
            await self.caught_up.wait()
            while True:
                if follower.done():
                    follower.result()
                todo = next((r for r in self.runs.values() if r.finished is None), None)
                if todo is None:
                    self.changed.clear()
                    await asyncio.wait(
                        [asyncio.ensure_future(self.changed.wait()), follower],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                await self._carry_out(todo)
        finally:
            follower.cancel()

    async def _carry_out(self, run: Run) -> None:
        """Every task's jobs are submitted first, so the twin simulates the next task
        while this process fits and draws the one before."""
        try:
            plans = await self._plan(run)
            t0 = time.perf_counter()
            for plan in plans:
                await self._submit(run, plan)
            run.timings.submit += time.perf_counter() - t0
            summary = [await self._finish_task(run, plan, plans) for plan in plans]
            if run.finished is None:
                message = f"{'; '.join(summary)} ({run.timings.describe()})"
                await self._send(run, CompleteExecution(execution_id=run.execution_id,
                                                        message=message))  # fmt: skip
        except RunFailed as err:
            if run.finished is None:
                await self._send(
                    run, FailExecution(execution_id=run.execution_id, message=str(err)[:4000])
                )
        except Exception as err:
            log.exception("calibration run %s failed", run.execution_id)
            await self._send(run, FailExecution(execution_id=run.execution_id,
                                                message=f"internal error: {err}"[:4000]))  # fmt: skip
        await self._settle(run)

    async def _settle(self, run: Run, seconds: float = 10.0) -> None:
        """Wait until the log shows the run finished. If it does not (the store refused
        the last command), the run is picked up again: its recorded tasks are skipped and
        its end is sent once more."""
        deadline = time.monotonic() + seconds
        while run.finished is None and time.monotonic() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())

    async def _plan(self, run: Run) -> list[TaskPlan]:
        t0 = time.perf_counter()
        backend = self._backend(run)

        def build(index: int, spec: dict[str, Any]) -> TaskPlan:
            task, params = TASKS[spec["name"]], spec["run_parameters"]
            targets = targets_of(task, run.qids)
            todo = [q for q in targets if run.task_id(index, q) not in run.recorded]
            per_circuit = task.qubits_per_circuit(params, backend.device.num_qubits)
            groups = task.groups(targets, per_circuit) if todo else []
            guesses = spec.get("guesses") or None
            sweeps = [task.build(backend.device.num_qubits, g, params, guesses) for g in groups]
            jobs = [job for g, sw in enumerate(sweeps)
                    for job in jobs_for(sw, g, backend.limits.max_circuits_per_job)]  # fmt: skip
            ids = [run.job_id(index, j) for j in range(len(jobs))]
            return TaskPlan(index, task, params, todo, groups, sweeps, jobs, ids, guesses)

        plans = await asyncio.to_thread(
            lambda: [build(i, spec) for i, spec in enumerate(run.tasks)]
        )
        run.timings.build += time.perf_counter() - t0
        return plans

    def _backend(self, run: Run):
        files = {**self.catalog.base_files(), **self.files[run.project_id]}
        backends = backends_for(files)
        if run.backend_id not in backends:
            raise RunFailed(f"backend '{run.backend_id}' is no longer configured")
        return backends[run.backend_id]

    async def _submit(self, run: Run, plan: TaskPlan) -> None:
        shots = plan.params["shots"]
        metadata = {"seed": run.seed, "optimization_level": 0,
                    "result_format": plan.task.result_format}  # fmt: skip
        for job_id, job in zip(plan.ids, plan.jobs, strict=True):
            if (run.project_id, job_id) in self.jobs or run.finished is not None:
                continue
            reply = await self._send(run, SubmitJob(job_id=job_id, backend_id=run.backend_id,
                                                    circuits=job.circuits, shots=shots,
                                                    metadata=metadata))  # fmt: skip
            if isinstance(reply, Rejected) and reply.code != "job_exists":
                raise RunFailed(f"the twin refused job {job_id}: {reply.message}")

    async def _outcomes(self, run: Run, plan: TaskPlan, plans: list[TaskPlan]):
        """The plan's job results (each sorted by circuit), or None if the run was
        cancelled. A cancelled run, or a failed job, cancels every job still queued."""
        every = [i for p in plans for i in p.ids]
        while True:
            if run.finished is not None:
                await self._cancel_jobs(run, every)
                return None
            done = [self.jobs.get((run.project_id, i)) for i in plan.ids]
            failed = next((d for d in done if d and d["type"] != "twin.JobCompleted"), None)
            if failed is not None:
                await self._cancel_jobs(run, every)
                reason = failed.get("message", "cancelled")
                raise RunFailed(f"twin job {failed['job_id']} did not complete: {reason}")
            if all(done):
                return [sorted(d["results"], key=lambda r: r["circuit_index"]) for d in done]  # type: ignore[index]
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 5.0)

    async def _cancel_jobs(self, run: Run, ids: list[str]) -> None:
        for job_id in ids:
            if (run.project_id, job_id) not in self.jobs:
                await self._send(run, CancelJob(job_id=job_id))

    async def _finish_task(self, run: Run, plan: TaskPlan, plans: list[TaskPlan]) -> str:
        """Wait for the task's jobs, fit each qubit, draw it, record it."""
        task, params = plan.task, plan.params
        if not plan.todo:
            return f"{task.name}: recorded before"
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        outcomes = await self._outcomes(run, plan, plans)
        run.timings.twin += time.perf_counter() - t0
        if outcomes is None:
            return f"{task.name}: cancelled"
        t0 = time.perf_counter()

        def fit() -> list[Outcome]:
            results = []
            for g, (group, sweep) in enumerate(zip(plan.groups, plan.sweeps, strict=True)):
                ours = [outcomes[j] for j, job in enumerate(plan.jobs) if job.group == g]
                results += [o for o in task.analyze_group(group, sweep, ours, params)
                            if o.qid in plan.todo]  # fmt: skip
            return results

        results = await asyncio.to_thread(fit)
        run.timings.fit += time.perf_counter() - t0
        t0 = time.perf_counter()
        x_label = plan.sweeps[0].x_label
        # matplotlib takes a second to import: only a process that runs calibrations pays.
        from adapters.calibration.figures import raw_data, render

        # One thread draws them all in turn: drawing holds the GIL, and several threads
        # drawing at once would only take turns while starving the command writer.
        drawn = await asyncio.to_thread(
            lambda: [(render(task, o, x_label, chip=run.chip_id),
                      raw_data(task, o, x_label, chip=run.chip_id)) for o in results]
        )  # fmt: skip
        names = [(figure_name(png, "png"), figure_name(raw, "json")) for png, raw in drawn]
        await asyncio.gather(*(
            self.figures.put(name, data)
            for pair, blobs in zip(names, drawn, strict=True)
            for name, data in zip(pair, blobs, strict=True)
        ))  # fmt: skip
        run.timings.figures += time.perf_counter() - t0
        t0 = time.perf_counter()
        await asyncio.gather(*(
            self._record(run, plan, outcome, figures, started)
            for outcome, figures in zip(results, names, strict=True)
        ))  # fmt: skip
        run.timings.record += time.perf_counter() - t0
        passed = sum(o.ok for o in results)
        return f"{task.name}: {passed}/{len(results)} qubits passed"

    async def _record(
        self, run: Run, plan: TaskPlan, outcome: Outcome, figures: tuple[str, str], started
    ) -> None:
        task, qid = plan.task, outcome.qid
        units = {o.name: o.unit for o in task.outputs}
        result = TaskResultIn(
            task_id=run.task_id(plan.index, qid),
            task_name=task.name,
            task_type=task.task_type,  # type: ignore[arg-type]
            qid=qid,
            status="completed" if outcome.ok else "failed",
            message=outcome.reason,
            input_parameters={name: InputParameter() for name in task.inputs},
            output_parameters={
                name: OutputParameter(value=v, unit=units.get(name, ""), error=outcome.errors[name])
                for name, v in outcome.values.items()
            },
            run_parameters={**plan.params, **plan.guess_of(qid),
                            "seed": run.seed, "backend_id": run.backend_id,
                            **source_of_task(run.source_of(plan.index, qid)),
                            "quality": {k: v for k, v in outcome.quality.items() if np.isfinite(v)}},
            figure_path=[figures[0]],
            json_figure_path=[figures[1]],
            start_at=started,
            end_at=datetime.now(UTC),
        )  # fmt: skip
        reply = await self._send(run, RecordTaskResult(execution_id=run.execution_id, task=result))
        if isinstance(reply, Rejected) and reply.code not in (
            "duplicate_task",
            "execution_finished",
        ):
            raise RunFailed(f"task result {result.task_id} refused: {reply.message}")
        if outcome.ok and not isinstance(reply, Rejected):
            await self._correct_drive(run, task, outcome)

    async def _correct_drive(self, run: Run, task: Task, outcome: Outcome) -> None:
        """Close the loop: a new π amplitude or a measured detuning is applied to the
        qubit's drive at once (a controller command, recorded like any other)."""
        key = (run.project_id, run.backend_id, outcome.qubit)
        now = self.drive.get(key, {"amplitude_scale": 1.0, "frequency_offset_mhz": 0.0})
        if task.name == "CheckRabi":
            off, sigma = outcome.values["pi_amplitude"] - 1, outcome.errors["pi_amplitude"]
            change = {"amplitude_scale": now["amplitude_scale"] * outcome.values["pi_amplitude"]}
        elif task.name == "CheckRamsey":
            if not outcome.quality.get("detuning_unambiguous"):
                return  # possibly aliased or of the wrong sign: acting on it could diverge
            off, sigma = outcome.values["detuning"], outcome.errors["detuning"]
            change = {"frequency_offset_mhz": now["frequency_offset_mhz"] + off}
        else:
            return
        if abs(off) <= SIGNIFICANT * sigma:
            return  # within the fit's own noise: a correction would only add noise
        reply = await self._send(run, ApplyControllerCommand(
            backend_id=run.backend_id, command_type="set_drive_correction",
            payload={"qubit": outcome.qubit, **now, **change},
        ))  # fmt: skip
        if isinstance(reply, Rejected):
            log.warning("drive correction of qubit %s refused: %s", outcome.qubit, reply.message)
        else:
            self.drive[key] = {**now, **change}

    async def _send(self, run: Run, command) -> Any:
        sub = system_submission(command, f"execution:{run.execution_id}", run.project_id)
        return await prepared(sub, self.checker) or await self.writer.submit(sub)
