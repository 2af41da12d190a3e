"""What the calibration runner keeps of a run: its plan as dispatched, what the log says
was recorded, the ids it derives, and the time each stage took."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from calibration.plan import Job
from calibration.tasks import Sweep, Task


@dataclass
class Timings:
    """Seconds per stage of one run, told in its execution's closing message."""

    build: float = 0.0
    submit: float = 0.0  # the jobs' commands, each checked and recorded
    twin: float = 0.0  # waiting for the twin beyond that: its jobs' outcomes in the log
    fit: float = 0.0
    figures: float = 0.0
    record: float = 0.0

    def describe(self) -> str:
        return (
            f"build {self.build:.1f} s, submit {self.submit:.1f} s, twin {self.twin:.1f} s,"
            f" fit {self.fit:.1f} s,"
            f" figures {self.figures:.1f} s, record {self.record:.1f} s"
        )


@dataclass
class Run:
    project_id: str
    execution_id: str
    chip_id: str
    backend_id: str
    qids: list[str]
    tasks: list[dict[str, Any]]
    seed: int
    recorded: set[str] = field(default_factory=set)  # task ids already recorded
    source_execution_id: str = ""  # a re-execution: the run it repeats
    source_task_id: str = ""  # ... or the one task result it repeats
    finished: str | None = None  # completed | failed | cancelled, once the log says so
    timings: Timings = field(default_factory=Timings)

    @property
    def short(self) -> str:
        """A short, stable name of the run for the ids it derives (ids are ≤ 128 chars)."""
        return hashlib.sha256(f"{self.project_id}/{self.execution_id}".encode()).hexdigest()[:12]

    def task_id(self, index: int, qid: str) -> str:
        return f"{self.short}-{index}-{qid}"

    def source_of(self, index: int, qid: str) -> str | None:
        """The task result this one repeats, if the run is a re-execution. A repeated
        run keeps its source's task order, so the source's id follows as ours does."""
        if self.source_task_id:
            return self.source_task_id
        if self.source_execution_id:
            source = f"{self.project_id}/{self.source_execution_id}".encode()
            return f"{hashlib.sha256(source).hexdigest()[:12]}-{index}-{qid}"
        return None

    def job_id(self, index: int, job: int) -> str:
        return f"cal-{self.short}-{index}-{job}"


@dataclass
class TaskPlan:
    """One task of a run: its qubit groups, their sweeps, and the jobs that carry them."""

    index: int
    task: Task
    params: dict[str, Any]
    todo: list[str]  # qids with no task result yet
    groups: list[list[int]]
    sweeps: list[Sweep]
    jobs: list[Job]
    ids: list[str]  # the jobs' ids
    guesses: dict[str, float] | None = None  # per qid: the guess its sweep was laid around

    def guess_of(self, qid: str) -> dict[str, float]:
        """The run parameter as this qubit's sweep used it (its own guess, if it had one)."""
        spec = self.task.guess_from
        if spec is None or not self.guesses or qid not in self.guesses:
            return {}
        return {spec[0]: self.guesses[qid]}


def source_of_task(task_id: str | None) -> dict[str, str]:
    return {"source_task_id": task_id} if task_id else {}


def figure_name(blob: bytes, kind: str) -> str:
    """A figure's name in the store: its content's SHA-256."""
    return f"{hashlib.sha256(blob).hexdigest()}.{kind}"
