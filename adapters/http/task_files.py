"""The reference's task-file group: a project's calibration task directories, read and
written over HTTP (under /api).

A backend's directory ("twin") holds the calibration package's sources as qledger ships
them and the backend's config (backend.yaml), with the project's written versions over
them. A write is the bus command `task_files.write`: checked in full first, then
recorded as an event with the whole content. Python written here is recorded, versioned
and reviewable, and never imported or run: runs use qledger's built-in task classes.
The backend config's default run parameters do apply to runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from adapters import task_files as directory_of
from adapters.http.deps import (
    MAX_POSITION,
    IdempotencyKey,
    ProjectId,
    ReadAfter,
    ReadModels,
    WritableProject,
    accepted_body,
    read_own_writes,
    send_command,
)
from adapters.http.errors import ApiError
from commands.backend_config import read_backend_config, task_defaults
from commands.task_file_rules import (
    BACKEND_CONFIG,
    BACKENDS,
    MAX_PATH_CHARS,
    TWIN,
    TaskPath,
    require_backend,
    task_path,
)
from commands.task_files import WriteTaskFile, check_content
from domain.errors import Kind
from projections import task_files as q

router = APIRouter(prefix="/api", tags=["task-file"])

# Reads wait for the store's head as it was when asked (bounded): an editor reloading
# the file just saved must see it. Declared after the path's check in each route, so a
# refused path reads nothing, not even the store's head.
Fresh = Annotated[None, Depends(read_own_writes)]

RECORDED_ONLY = (
    "File saved successfully: recorded and versioned, never imported or run"
    " (runs use qledger's built-in task classes)"
)
APPLIED = (
    "File saved successfully: runs dispatched from now on start from its default run parameters"
)


def _target(
    path: Annotated[
        str,
        Query(
            max_length=MAX_PATH_CHARS,
            description='"<backend>/<path in its directory>", e.g. twin/tasks.py',
        ),
    ],
) -> TaskPath:
    return task_path(path)


def _backend(backend: Annotated[str, Query(max_length=64, description="e.g. twin")]) -> str:
    return require_backend(backend)


Target = Annotated[TaskPath, Depends(_target)]
Backend = Annotated[str, Depends(_backend)]


class TaskFileSettings(BaseModel):
    default_backend: str | None = None
    default_view_mode: str | None = None  # "tasks" or "files"
    sort_order: str | None = None  # "type_then_name", "name_only", "file_path", "category"


class TaskFileBackend(BaseModel):
    name: str
    path: str


class ListTaskFileBackendsResponse(BaseModel):
    backends: list[TaskFileBackend]


class TaskFileTreeNode(BaseModel):
    name: str
    path: str  # relative to the backend's directory
    type: Literal["file", "directory"]
    children: list[TaskFileTreeNode] | None = None


class TaskInfo(BaseModel):
    name: str
    class_name: str
    task_type: str | None = None
    description: str | None = None
    file_path: str  # relative to the backend's directory
    category: str | None = None
    enabled: bool = False  # offered by the backend config, so a run may ask for it


class ListTaskInfoResponse(BaseModel):
    tasks: list[TaskInfo]


class BackendConfigResponse(BaseModel):
    default_backend: str | None = None
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(default_factory=dict)


class SaveTaskFileRequest(BaseModel):
    path: str = Field(max_length=MAX_PATH_CHARS, description="e.g. twin/tasks.py")
    content: str


@router.get("/task-files/settings", dependencies=[ReadAfter], response_model=TaskFileSettings)
def get_task_file_settings(_project: ProjectId):
    """The task-file view's defaults (qledger's are fixed: one backend, the twin)."""
    return TaskFileSettings(
        default_backend=TWIN, default_view_mode="tasks", sort_order="type_then_name"
    )


@router.get(
    "/task-files/backends", dependencies=[ReadAfter], response_model=ListTaskFileBackendsResponse
)
def list_task_file_backends(_project: ProjectId):
    """The task backends: directories of task files (the twin's, today)."""
    return {"backends": [{"name": name, "path": name} for name in sorted(BACKENDS)]}


@router.get("/task-files/tree", response_model=list[TaskFileTreeNode])
def get_task_file_tree(project: ProjectId, backend: Backend, _fresh: Fresh, db: ReadModels):
    """The backend directory's files (.py and .yaml), directories first; `path` is
    relative to the directory (GET /task-files/content takes "<backend>/<path>")."""
    return directory_of.tree(list(directory_of.directory(db, project, backend)))


def _content_body(target: TaskPath, f: directory_of.TaskFile) -> dict[str, Any]:
    return {
        "content": f.content,
        "path": target.full,
        "name": target.relative.rsplit("/", 1)[-1],
        "size": f.size,
        "modified": f.modified,
        "sha256": f.sha256,
        "source": f.source,
        "position": f.position,
        "written_by": f.actor,
        "executable": False,  # qledger never imports or runs a task file
    }


@router.get("/task-files/content")
def get_task_file_content(
    project: ProjectId,
    target: Target,
    _fresh: Fresh,
    db: ReadModels,
    version: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_POSITION,
            description="the store position of an earlier write"
            " (GET /task-files/history); default: the current file",
        ),
    ] = None,
) -> dict[str, Any]:
    """A task file's content and metadata: the project's latest write, else the shipped
    file; with `version`, the write made at that store position."""
    if version is not None:
        row = q.version(db, project, target.full, version)
        if row is None:
            raise ApiError(
                Kind.NOT_FOUND, "task_file_not_found",
                f"{target.full} has no version written at position {version}",
            )  # fmt: skip
        return _content_body(target, directory_of.written_file(row))
    found = directory_of.read(db, project, target.backend, target.relative)
    if found is None:
        raise ApiError(Kind.NOT_FOUND, "task_file_not_found", f"no task file {target.full}")
    return _content_body(target, found)


@router.get("/task-files/history")
def get_task_file_history(
    project: ProjectId, target: Target, _fresh: Fresh, db: ReadModels
) -> dict[str, Any]:
    """qledger's: every version the project wrote of a file, newest first (read one with
    GET /task-files/content?version=), and the shipped file's digest if there is one."""
    shipped = directory_of.shipped(target.backend).get(target.relative)
    versions = q.history(db, project, target.full)
    if shipped is None and not versions:
        raise ApiError(Kind.NOT_FOUND, "task_file_not_found", f"no task file {target.full}")
    return {
        "path": target.full,
        "versions": [
            {
                "version": v["position"],
                "sha256": v["sha256"],
                "size": v["size"],
                "written_by": v["actor"],
                "modified": v["recorded_at"],
            }
            for v in versions
        ],
        "shipped": {"sha256": shipped.sha256, "size": shipped.size} if shipped else None,
    }


@router.put("/task-files/content")
async def save_task_file_content(
    body: SaveTaskFileRequest,
    request: Request,
    project: WritableProject,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Write a task file (a new one, or over the current content), checked in full
    first; a refused write changes nothing. Python must parse and keep every task class
    of the shipped file; it is recorded, never run. backend.yaml must match its schema;
    its default run parameters apply to runs dispatched after it."""
    target = task_path(body.path)
    # The same checks the command side makes, here first: a bad file is refused by the
    # query node without reaching the command writer, which every client shares.
    await run_in_threadpool(check_content, target, body.content)
    command = WriteTaskFile(path=target.full, content=body.content)
    reply = await send_command(request, command, project, idempotency_key)
    applied = target.is_backend_config
    return accepted_body(
        reply,
        message=APPLIED if applied else RECORDED_ONLY,
        path=target.full,
        applied_to_runs=applied,
    )


@router.get("/task-files/backend-config", response_model=BackendConfigResponse)
def get_backend_config(
    project: ProjectId,
    _fresh: Fresh,
    db: ReadModels,
    backend: Annotated[
        str | None, Query(max_length=64, description="only this backend (default: all)")
    ] = None,
):
    """Each backend's config (backend.yaml, the project's or the shipped one): the tasks
    it offers, their categories, and the default run parameters a run starts from
    (`defaults`: every parameter of every task, the config's values over the task's)."""
    names = [require_backend(backend)] if backend else sorted(BACKENDS)
    backends: dict[str, dict[str, Any]] = {}
    categories: dict[str, list[str]] = {}
    for name in names:
        config_file = directory_of.read(db, project, name, BACKEND_CONFIG)
        text = config_file.content if config_file else ""
        config = read_backend_config(text)
        backends[name] = {
            "description": config.description,
            "tasks": config.offered(),
            "defaults": task_defaults({f"{name}/{BACKEND_CONFIG}": text}, name),
            "path": f"{name}/{BACKEND_CONFIG}",
            "source": config_file.source if config_file else None,
        }
        for category, tasks in config.categories.items():
            categories.setdefault(category, []).extend(tasks)
    return {"default_backend": TWIN, "backends": backends, "categories": categories}


SORTS = {
    "name_only": lambda t: (t["name"],),
    "file_path": lambda t: (t["file_path"], t["name"]),
    "category": lambda t: (t["category"] or "\U0010ffff", t["name"]),
}


@router.get("/task-files/tasks", response_model=ListTaskInfoResponse)
def list_task_info(
    project: ProjectId,
    backend: Backend,
    _fresh: Fresh,
    db: ReadModels,
    sort_order: Annotated[
        str | None, Query(max_length=64, description="name_only, file_path, category")
    ] = None,
    enabled_only: bool = False,
):
    """Every task class the backend's sources define, found by reading the source as
    written (ast), never by importing it. `enabled`: the backend config offers the task,
    so a run may ask for it (a task class written here is listed, but qledger runs only
    its built-in ones)."""
    files = directory_of.directory(db, project, backend)
    config_file = files.get(BACKEND_CONFIG)
    config = read_backend_config(config_file.content if config_file else "")
    category_of = {t: c for c, tasks in config.categories.items() for t in tasks}
    offered = set(config.offered())
    tasks = [
        {**t, "category": category_of.get(t["name"]), "enabled": t["name"] in offered}
        for t in directory_of.task_infos(files, backend)
    ]
    if enabled_only:
        tasks = [t for t in tasks if t["enabled"]]
    key = SORTS.get(sort_order or "", lambda t: (t["task_type"] or "", t["name"]))
    return {"tasks": sorted(tasks, key=key)}
