"""Writing a project's calibration task files: the bus command `task_files.write`.

A write is checked in full before it is recorded (commands/task_file_rules.py,
commands/backend_config.py), then recorded as an event carrying the whole content, per
project, over the files qledger ships. Python written here is never imported or run;
the backend config's default run parameters are applied to runs (`task_defaults`).
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import Field

from commands.authorization import Caller
from commands.backend_config import check_backend_config, task_defaults
from commands.models import Command
from commands.task_file_rules import (
    MAX_PATH_CHARS,
    MAX_TASK_FILE_BYTES,
    TaskPath,
    check_python,
    load_yaml,
    task_path,
)
from commands.unit_of_work import UnitOfWork
from domain.errors import InvalidInput, TooLarge
from domain.events import CommandContext
from domain.task_files import TaskFiles, task_files_key

__all__ = ["TASK_FILE_HANDLERS", "WriteTaskFile", "task_defaults", "written_task_files"]


class WriteTaskFile(Command):
    """Write one file of the project's task directory (a new one, or over the shipped or
    last written content)."""

    SUBJECT = "task_files.write"
    # "<backend>/<path in its directory>", e.g. "twin/tasks.py" or "twin/backend.yaml"
    path: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
    # Bounded in bytes by the handler (413 task_file_too_large), not here: a bound on
    # characters would answer 422 for what HTTP answers 413.
    content: str


def check_content(target: TaskPath, content: str) -> None:
    """Refuse content that must not be recorded at `target` (413 or 422)."""
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{target.full}: the content is not Unicode text (a lone surrogate)",
            code="invalid_task_file_text",
        ) from None
    if size > MAX_TASK_FILE_BYTES:
        raise TooLarge(
            f"{target.full} is {size} bytes; a task file may have at most {MAX_TASK_FILE_BYTES}",
            code="task_file_too_large",
        )
    if target.relative.endswith(".py"):
        check_python(target, content)
        return
    root, value = load_yaml(target.full, content)
    if target.is_backend_config:
        check_backend_config(target.full, root, value)


def written_task_files(uow: UnitOfWork, project_id: str) -> dict[str, str]:
    """The project's written task files (full path -> content) as the command side
    knows them; the input of `task_defaults` in a handler."""
    files = uow.get(TaskFiles, task_files_key(project_id))
    return dict(files.files) if files is not None else {}


def handle_write_task_file(cmd: WriteTaskFile, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    target = task_path(cmd.path)  # before anything is loaded: a bad path reads nothing
    check_content(target, cmd.content)
    key = task_files_key(ctx.project_id)
    files = uow.get(TaskFiles, key) or TaskFiles(key)
    digest = hashlib.sha256(cmd.content.encode()).hexdigest()
    files.write(ctx, path=target.full, content=cmd.content, sha256=digest)
    return uow.stage(files)


TASK_FILE_HANDLERS = {WriteTaskFile: handle_write_task_file}
