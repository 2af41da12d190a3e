"""A project's calibration task files: the sources and backend config it wrote over the
ones qledger ships. Each write is an event carrying the whole new content, so every
version of every file can be read back. What a file may contain is checked before it is
written (commands/task_file_rules.py); nothing here, or anywhere in qledger, runs it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Conflict
from domain.events import CommandContext, DomainEvent, register, stable_id

# Distinct paths a project may write (shipped files it overwrote included): bounds the
# aggregate kept in memory (at most this many files of at most 64 KiB) and the tree.
MAX_WRITTEN_TASK_FILES = 64


@register
@dataclass(frozen=True, kw_only=True)
class TaskFileWritten(DomainEvent):
    """A task file's new content. `path` is "<backend>/<path in its directory>"."""

    TYPE = "task_files.TaskFileWritten"
    path: str
    content: str
    sha256: str


def task_files_key(project_id: str):
    return stable_id("task-files", project_id)


class TaskFiles(Aggregate):
    """The project's written task files: full path -> latest content."""

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.files: dict[str, str] = {}

    def write(self, ctx: CommandContext, *, path: str, content: str, sha256: str) -> None:
        if path not in self.files and len(self.files) >= MAX_WRITTEN_TASK_FILES:
            raise Conflict(
                f"the project has written {len(self.files)} task files, the most it may;"
                " write over one of them instead",
                code="too_many_task_files",
            )
        self._trigger(TaskFileWritten, ctx, path=path, content=content, sha256=sha256)

    def _on_TaskFileWritten(self, e: TaskFileWritten) -> None:
        self.files[e.path] = e.content
