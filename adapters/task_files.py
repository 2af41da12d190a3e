"""A project's task directories as the query side serves them: the files qledger ships
(the calibration package's sources, read from the installed package, and the backend
config generated from its task registry), with the project's written versions over
them (projections/task_files.py).

calibration/ does no I/O, so its sources are read here, once per process, by walking
the installed package: only .py and .yaml files, nothing hidden, no __pycache__. No
client-given name is ever joined to a filesystem path; a request names a key of the
mapping built here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from adapters import task_knowledge
from commands.backend_config import shipped_backend_config
from commands.task_file_rules import (
    BACKEND_CONFIG,
    BACKENDS,
    EXTENSIONS,
    TWIN,
    TaskClass,
    parse_python,
    task_classes,
)
from domain.errors import DomainError
from projections import task_files as q

PACKAGE = "calibration"  # the twin backend's directory


@dataclass(frozen=True)
class TaskFile:
    """One file as a project sees it: shipped, or its latest written version."""

    content: str
    sha256: str
    size: int
    source: str  # "shipped" | "written"
    modified: str | None = None  # when it was written (a shipped file: None)
    position: int | None = None  # store position of the write
    actor: str | None = None


def _shipped(content: str) -> TaskFile:
    data = content.encode()
    return TaskFile(content, hashlib.sha256(data).hexdigest(), len(data), "shipped")


def _walk(directory: Traversable, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in directory.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(EXTENSIONS):
            found[prefix + entry.name] = entry.read_text(encoding="utf-8")
    return found


def shipped_sources() -> dict[str, str]:
    """The calibration package's sources as installed: path in the package -> text."""
    return _walk(files(PACKAGE))


def _categories() -> dict[str, list[str]]:
    """Each task under its knowledge page's category (calibration/knowledge/*.md)."""
    grouped: dict[str, list[str]] = {}
    for name, entry in task_knowledge.entries().items():
        label = task_knowledge.CATEGORIES.get(entry["category"], entry["category"])
        grouped.setdefault(label, []).append(name)
    return grouped


@cache
def shipped(backend: str) -> dict[str, TaskFile]:
    """The backend's directory as qledger ships it: path in the directory -> file."""
    assert backend == TWIN, backend  # the only backend today (BACKENDS)
    texts = {**shipped_sources(), BACKEND_CONFIG: shipped_backend_config(_categories())}
    return {path: _shipped(text) for path, text in sorted(texts.items())}


def written_file(row: dict[str, Any]) -> TaskFile:
    return TaskFile(
        content=row["content"],
        sha256=row["sha256"],
        size=row["size"],
        source="written",
        modified=row["recorded_at"],
        position=row["position"],
        actor=row["actor"],
    )


def directory(db, project_id: str, backend: str) -> dict[str, TaskFile]:
    """The project's view of a backend's directory: shipped files, written over."""
    merged = dict(shipped(backend))
    prefix = f"{backend}/"
    for path, row in q.latest(db, project_id).items():
        if path.startswith(prefix):
            merged[path.removeprefix(prefix)] = written_file(row)
    return dict(sorted(merged.items()))


def read(db, project_id: str, backend: str, relative: str) -> TaskFile | None:
    return directory(db, project_id, backend).get(relative)


def tree(paths: list[str]) -> list[dict[str, Any]]:
    """The reference's tree: directories first, then files, each by name; `path` is
    relative to the backend's directory."""
    nested: dict[str, Any] = {}
    for path in paths:
        node = nested
        *dirs, name = path.split("/")
        for d in dirs:
            node = node.setdefault(d + "/", {})
        node[name] = None

    def build(node: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
        dirs = sorted(k for k in node if k.endswith("/"))
        names = sorted(k for k in node if not k.endswith("/"))
        out = []
        for d in dirs:
            children = build(node[d], prefix + d)
            out.append({"name": d[:-1], "path": prefix + d[:-1], "type": "directory",
                        "children": children or None})  # fmt: skip
        out += [{"name": n, "path": prefix + n, "type": "file", "children": None} for n in names]
        return out

    return build(nested, "")


@lru_cache(maxsize=256)
def _classes(path: str, sha256: str, content: str) -> tuple[TaskClass, ...]:
    """A file's task classes, by static analysis (cached per content)."""
    try:
        return tuple(task_classes(parse_python(path, content)))
    except DomainError:  # every written file parsed when written; a shipped one always does
        return ()


def task_infos(directory_files: dict[str, TaskFile], backend: str) -> list[dict[str, Any]]:
    """Every task class the backend's Python sources define, as the reference lists
    them (without `category` and `enabled`, which the backend config decides)."""
    found = []
    for path, f in directory_files.items():
        if not path.endswith(".py") or path.rsplit("/", 1)[-1] == "__init__.py":
            continue
        for c in _classes(f"{backend}/{path}", f.sha256, f.content):
            if c.name:  # the reference's rule: a task class states its name
                found.append({"name": c.name, "class_name": c.class_name,
                              "task_type": c.task_type, "description": c.description,
                              "file_path": path})  # fmt: skip
    return found


__all__ = [
    "BACKENDS", "TaskFile", "directory", "read", "shipped", "task_infos", "tree", "written_file",
]  # fmt: skip
