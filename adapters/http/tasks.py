"""The task group of the calibration platform's API: the tasks qledger can run (from
calibration.tasks.TASKS), their knowledge pages (adapters/task_knowledge.py), and the
backends a project runs them on (its digital-twin backends)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from adapters import task_knowledge
from adapters.http.deps import ProjectId, ReadAfter, ReadModels
from adapters.http.errors import ApiError
from adapters.http.security import auth_of, current_principal
from calibration.tasks import TASKS, Task
from domain.errors import Kind

# One router for the app, its routes tagged one by one: the reference's `task` group, and
# its `backend` group of one route.
router = APIRouter(prefix="/api")
TASK, BACKEND_GROUP = ["task"], ["backend"]

# The one backend that runs tasks today: the digital twin (any of its devices).
BACKEND = "twin"
# The reference's tasks are qubit or coupling tasks; every task here is a one-qubit task.
TASK_TYPE = "qubit"
# A run parameter's unit, from its name (t1_guess_us, artificial_detuning_mhz).
UNIT_SUFFIXES = {"_us": "us", "_mhz": "MHz"}

Signed = Depends(current_principal)  # any credential: knowledge is the same for everyone
TaskName = Annotated[str, Path(max_length=128, description="a task name, e.g. CheckT1")]


def _units() -> dict[str, str]:
    return {o.name: o.unit for t in TASKS.values() for o in t.outputs}


def _run_unit(name: str) -> str:
    return next((u for suffix, u in UNIT_SUFFIXES.items() if name.endswith(suffix)), "")


def definition(task: Task) -> dict[str, Any]:
    """One task as the reference lists it. `input_parameters` holds the run parameters
    with their defaults (qledger adds `kind` "run" and the bounds `min` and `max` a
    request must keep) and the parameters whose current versions the task reads (`kind`
    "read", no value)."""
    units = _units()
    inputs: dict[str, dict[str, Any]] = {
        name: {
            "unit": _run_unit(name),
            "value_type": p.kind,
            "value": p.default,
            "description": p.description,
            "kind": "run",
            "min": p.low,
            "max": p.high,
        }
        for name, p in task.parameters.items()
    }
    for name in task.inputs:
        inputs[name] = {
            "unit": units.get(name, ""),
            "value_type": "float",
            "value": None,
            "description": f"{name} as of the run's start, recorded as the result's input",
            "kind": "read",
        }
    outputs = {
        o.name: {"unit": o.unit, "value_type": "float", "value": None, "description": o.description}
        for o in task.outputs
    }
    return {
        "name": task.name,
        "description": task.description,
        "backend": BACKEND,
        "task_type": TASK_TYPE,
        "input_parameters": inputs,
        "output_parameters": outputs,
    }


def _task(name: str) -> Task:
    task = TASKS.get(name)
    if task is None:
        shown = repr(name[:64]) + ("…" if len(name) > 64 else "")
        raise ApiError(
            Kind.NOT_FOUND, "task_not_found", f"no task {shown}; known tasks: {sorted(TASKS)}"
        )
    return task


@router.get("/tasks", tags=TASK, dependencies=[ReadAfter])
def list_tasks(
    _project: ProjectId,
    backend: Annotated[
        str | None, Query(max_length=200, description="only the tasks of this backend")
    ] = None,
):
    """Every task qledger can run. `backend` filters by the task's backend, as the
    reference's stored definitions are filtered: one that runs none gives an empty list
    (and an empty `backend`, as there, no filter)."""
    if backend and backend != BACKEND:
        return {"tasks": []}
    return {"tasks": [definition(t) for t in TASKS.values()]}


@router.get("/task-knowledge", tags=TASK, dependencies=[Signed, ReadAfter])
def list_task_knowledge():
    """Every task's knowledge page, summarised."""
    return task_knowledge.summaries()


@router.get(
    "/tasks/{task_name}/knowledge/markdown",
    tags=TASK,
    dependencies=[Signed, ReadAfter],
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}}},
)
def get_task_knowledge_markdown(task_name: TaskName):
    """The task's knowledge page as markdown."""
    task = _task(task_name)
    return Response(task_knowledge.page(task.name), media_type="text/markdown; charset=utf-8")


@router.get("/tasks/{task_name}/knowledge", tags=TASK, dependencies=[Signed, ReadAfter])
def get_task_knowledge(task_name: TaskName):
    """What the task measures, its principle, the result to expect, the verdict's
    criteria, its failure modes and tips, structured. `cases` stays empty for now."""
    return task_knowledge.entries()[_task(task_name).name]


async def _project_owner(request: Request, project: ProjectId) -> str:
    directory = await auth_of(request).directory()
    row = directory.projects.get(project)
    return row.owner_username if row is not None else ""


@router.get("/backends", tags=BACKEND_GROUP, dependencies=[ReadAfter])
def list_backends(
    request: Request,
    project: ProjectId,
    db: ReadModels,
    owner: Annotated[str, Depends(_project_owner)],
):
    """The project's digital-twin backends (the shipped ones and any its config adds).
    A backend belongs to the project: `username` is the project's owner."""
    twin = request.app.state.twin.backends(db, project)
    return {"backends": [{"name": name, "username": owner} for name in twin]}
