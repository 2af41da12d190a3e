"""A task backend's config file (`<backend>/backend.yaml`): the tasks the backend offers,
their categories, and their default run parameters.

The defaults are real: `task_defaults` gives, for every task qledger runs, the run
parameters a run starts from (the project's backend config over the task's own), and
run dispatch applies a request's own parameters over them. So a written config is held
to what a run would accept: only tasks qledger runs, only parameters each takes, each
value within its bounds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calibration.params import RunParameterError
from calibration.tasks import TASKS
from commands.task_file_rules import BACKEND_CONFIG, BACKENDS, TWIN, load_yaml
from domain.errors import DomainError, InvalidInput

Label = Annotated[str, Field(min_length=1, max_length=128)]


class BackendConfigFile(BaseModel):
    """The schema of backend.yaml. Unknown keys are refused: a typo must not silently
    leave a default out."""

    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, Field(max_length=2000)] = ""
    # The tasks it offers (a run may ask for them); left out: every task qledger runs.
    tasks: list[Label] | None = Field(None, max_length=256)
    categories: dict[Label, list[Label]] = Field(default_factory=dict, max_length=64)
    defaults: dict[Label, dict[Label, Any]] = Field(default_factory=dict, max_length=256)


def _node_at(root: yaml.Node | None, loc: Sequence[Any]) -> yaml.Node | None:
    """The deepest node along a location (for the line of an error)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                return node
            key, node = match[0]
            if part == loc[-1]:
                return key  # a bad key or value: the key's line names it
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _problems(value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """(location, what is wrong) for every problem of the schema, then of the content."""
    try:
        parsed = BackendConfigFile.model_validate(value)
    except ValidationError as err:
        return [
            (
                tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("["))),
                "unknown key" if e["type"] == "extra_forbidden" else e["msg"],
            )
            for e in err.errors()
        ]
    found: list[tuple[tuple[Any, ...], str]] = []

    def unknown(name: str) -> str:
        return f"{name!r} is not a task qledger runs; it runs {sorted(TASKS)}"

    offered = parsed.tasks or []
    for i, name in enumerate(offered):
        if name not in TASKS:
            found.append((("tasks", i), unknown(name)))
        elif name in offered[:i]:
            found.append((("tasks", i), f"{name} is listed twice"))
    for category, names in parsed.categories.items():
        found += [(("categories", category, i), unknown(n)) for i, n in enumerate(names)
                  if n not in TASKS]  # fmt: skip
    for name, params in parsed.defaults.items():
        task = TASKS.get(name)
        if task is None:
            found.append((("defaults", name), unknown(name)))
            continue
        for param, given in params.items():
            spec = task.parameters.get(param)
            if spec is None:
                found.append((("defaults", name, param),
                              f"{name} takes no run parameter {param!r}; it takes {sorted(task.parameters)}"))  # fmt: skip
                continue
            try:
                spec.check(param, given)
            except RunParameterError as err:
                found.append((("defaults", name, param), str(err)))
            except (ArithmeticError, ValueError, TypeError):  # an integer no float can hold
                found.append((("defaults", name, param), "not a number a run can use"))
    return found


def check_backend_config(path: str, root: yaml.Node | None, value: Any) -> None:
    """422 `invalid_backend_config`, naming the line and key of each problem."""
    problems = _problems(value)
    if not problems:
        return
    lines = []
    for loc, what in problems[:10]:
        node = _node_at(root, loc)
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        lines.append(f"{path}{line}: {'.'.join(map(str, loc)) or '(top level)'}: {what}")
    raise InvalidInput("; ".join(lines), code="invalid_backend_config")


@dataclass(frozen=True)
class BackendConfig:
    """A stored config as runs and reads use it. Shared (cached): do not mutate."""

    description: str
    tasks: list[str] | None  # the tasks it offers; None: it does not say (all of them)
    categories: dict[str, list[str]]
    defaults: dict[str, dict[str, Any]]  # task -> the run parameters it sets

    def offered(self) -> list[str]:
        return list(TASKS) if self.tasks is None else list(self.tasks)


@lru_cache(maxsize=64)
def read_backend_config(text: str) -> BackendConfig:
    """A stored config, read leniently: it was checked when written, but a later qledger
    may have dropped a task or narrowed a bound since, and a stale entry must fall back
    to the task's own default, not stop every run."""
    try:
        _, value = load_yaml(BACKEND_CONFIG, text)
    except DomainError:
        value = None
    if not isinstance(value, dict):
        return BackendConfig("", None, {}, {})
    defaults: dict[str, dict[str, Any]] = {}
    for name, params in _mapping(value.get("defaults")).items():
        task = TASKS.get(name)
        if task is None:
            continue
        usable = {}
        for param, given in _mapping(params).items():
            spec = task.parameters.get(param)
            try:
                if spec is not None:
                    usable[param] = spec.check(param, given)
            except (RunParameterError, ArithmeticError, ValueError, TypeError):
                continue
        defaults[name] = usable
    offered = value.get("tasks")
    categories = {
        str(c): [n for n in names if isinstance(n, str)]
        for c, names in _mapping(value.get("categories")).items()
        if isinstance(names, list)
    }
    return BackendConfig(
        description=str(value.get("description") or ""),
        tasks=[t for t in offered if isinstance(t, str) and t in TASKS]
        if isinstance(offered, list)
        else None,
        categories=categories,
        defaults=defaults,
    )


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def task_defaults(files: Mapping[str, str], backend: str = TWIN) -> dict[str, dict[str, Any]]:
    """For every task qledger runs: its default run parameters, every one of them, with
    the backend config's values over the task's own.

    `files` are the project's written task files, full path -> content, as
    `domain.task_files.TaskFiles.files` holds them; without a written
    `<backend>/backend.yaml` the shipped config applies, whose defaults are the tasks'."""
    written = files.get(f"{backend}/{BACKEND_CONFIG}")
    overrides = read_backend_config(written).defaults if written is not None else {}
    return {
        name: copy.deepcopy(
            {p: spec.default for p, spec in task.parameters.items()} | overrides.get(name, {})
        )
        for name, task in TASKS.items()
    }


def offered_tasks(files: Mapping[str, str], backend: str = TWIN) -> list[str]:
    """The tasks the backend config offers (all of them, in the shipped config)."""
    written = files.get(f"{backend}/{BACKEND_CONFIG}")
    return read_backend_config(written if written is not None else "").offered()


HEADER = """\
# The {backend} backend's config: the tasks it offers, their categories, and their
# default run parameters. A run takes a parameter from its request, else from
# `defaults` here, else from the task itself (GET /api/tasks lists each parameter's
# bounds, which a value here must keep). qledger generates its own copy from its task
# registry; a project writes its own with PUT /api/task-files/content.
"""


def shipped_backend_config(categories: Mapping[str, Sequence[str]], backend: str = TWIN) -> str:
    """The config qledger ships: every task offered, with the tasks' own defaults."""
    document = {
        "description": BACKENDS[backend],
        "tasks": list(TASKS),
        "categories": {c: list(names) for c, names in categories.items()},
        "defaults": {
            name: {p: spec.default for p, spec in task.parameters.items()}
            for name, task in TASKS.items()
        },
    }
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, allow_unicode=True)
    return HEADER.format(backend=backend) + body
