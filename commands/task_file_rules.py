"""What a task file write must be, checked before anything is recorded.

A task file lives in a backend's directory and is addressed as
"<backend>/<path in that directory>" ("twin/tasks.py"), as the reference addresses its
calibtasks directory. The path is a name, never a filesystem path: it is refused unless
every segment is a plain name, and nothing is read for a refused one. Content is
checked by what it is: Python must parse and keep its task classes, YAML must load
safely within small limits (and the backend config must match its schema,
commands/backend_config.py).

Python is parsed (ast) and never imported or run: a file written over HTTP is recorded
and reviewable, and qledger runs its built-in task classes only. Running it would hand
every editor of a project the server's process.

These checks are pure: the query side runs them before sending a write (so a bad
input never reaches the command writer) and the handler runs them again (so a bus
client meets the same rules).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from calibration.tasks import TASKS
from domain.errors import DomainError, InvalidInput, Malformed

# The one backend that runs tasks today: qledger's digital twin. Its directory holds the
# calibration package's sources (as shipped, read by adapters/task_files.py) and its
# backend config.
TWIN = "twin"
BACKENDS = {TWIN: "qledger's digital twin runs the built-in calibration tasks"}
BACKEND_CONFIG = "backend.yaml"  # in each backend's directory
EXTENSIONS = (".py", ".yaml")

# Three times the largest shipped source: a valid file is parsed in the command writer,
# which every client shares (a 64 KiB module takes ~0.1 s; 128 KiB took 0.3 s, loaded).
MAX_TASK_FILE_BYTES = 64 * 1024
MAX_PATH_CHARS = 200
MAX_SEGMENTS = 5  # the backend, up to three directories, the file
# A plain name: no leading dot (hidden files, "." and ".."), no separators, no spaces.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

# Modules of the calibration package that define no task class: written over, they only
# have to parse. Listed here, not read from disk (commands do no I/O);
# tests/commands/test_task_file_rules.py holds the list to the installed package.
HELPER_MODULES = frozenset({"__init__.py", "clifford.py", "fits.py", "params.py", "plan.py"})

MAX_YAML_DEPTH = 32  # mappings and sequences, as for JSON bodies
MAX_YAML_EVENTS = 10_000  # parser events: bounds the work before anything is built
MAX_YAML_NODES = 100_000  # after expanding aliases: a few anchors can stand for billions
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: C speed


class TaskFileTooComplex(InvalidInput):
    """Nested or aliased past what the parsers are allowed to build."""

    code = "task_file_too_complex"


@dataclass(frozen=True)
class TaskPath:
    backend: str
    relative: str  # inside the backend's directory: "tasks.py", "experimental/x.py"

    @property
    def full(self) -> str:
        return f"{self.backend}/{self.relative}"

    @property
    def is_backend_config(self) -> bool:
        return self.relative == BACKEND_CONFIG


def require_backend(name: str) -> str:
    if name not in BACKENDS:
        raise Malformed(
            f"no task backend {name[:64]!r}; backends: {sorted(BACKENDS)}",
            code="unknown_task_backend",
        )
    return name


def task_path(raw: str) -> TaskPath:
    """The path refused (400) unless it names a file of a known backend's directory with
    an allowed extension. Checked on the text alone: nothing is looked up first."""
    problem = _path_problem(raw)
    if problem:
        shown = repr(raw[:80]) + ("…" if len(raw) > 80 else "")
        raise Malformed(f"task file path {shown}: {problem}", code="invalid_task_file_path")
    backend, relative = raw.split("/", 1)
    require_backend(backend)
    if not relative.endswith(EXTENSIONS):
        raise Malformed(
            f"task files are {' or '.join(EXTENSIONS)} files, not {relative.rsplit('/', 1)[-1]!r}",
            code="task_file_type_not_allowed",
        )
    return TaskPath(backend, relative)


def _path_problem(raw: str) -> str:
    if "\x00" in raw:
        return "contains a NUL byte"
    if "\\" in raw:
        return "contains a backslash; segments are separated by /"
    if raw.startswith("/"):
        return "is absolute; give <backend>/<path in its directory>"
    if len(raw) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    segments = raw.split("/")
    if "" in segments:
        return "has an empty segment"
    if any(s in (".", "..") for s in segments):
        return "leaves or repeats its directory (. or ..)"
    if len(segments) < 2:
        return "names no file; give <backend>/<path in its directory>"
    if len(segments) > MAX_SEGMENTS:
        return f"has more than {MAX_SEGMENTS} segments"
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        return "segments are letters, digits, _ . - (not starting with a dot)"
    return ""


# -- Python --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskClass:
    """A task class as the source states it (never as running it would make it)."""

    class_name: str
    name: str | None  # its `name` attribute, when that is a string literal
    description: str | None  # its `description` attribute, else its docstring
    task_type: str


def parse_python(path: str, content: str) -> ast.Module:
    try:
        return ast.parse(content, filename=path)
    except SyntaxError as err:
        where = f" line {err.lineno}, column {err.offset}:" if err.lineno else ""
        raise InvalidInput(f"{path}:{where} {err.msg}", code="python_syntax_error") from None
    except ValueError as err:  # a NUL byte, on Pythons that do not call it a SyntaxError
        raise InvalidInput(f"{path}: {err}", code="python_syntax_error") from None
    except (MemoryError, RecursionError):  # the parser's own depth limits
        raise TaskFileTooComplex(f"{path}: nested too deeply for the parser") from None


def _base_name(node: ast.expr) -> str:
    """`Task` for `Task`, `tasks.Task` and `calibration.tasks.Task`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _literal_attributes(node: ast.ClassDef) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in node.body:
        targets: list[ast.expr] = []
        if isinstance(item, ast.Assign):
            targets, value = item.targets, item.value
        elif isinstance(item, ast.AnnAssign) and item.value is not None:
            targets, value = [item.target], item.value
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                if isinstance(value.value, str):
                    found[target.id] = value.value
    return found


MAX_CLASSES = 200  # the shipped tasks.py defines 8; each costs a walk of its bases


def task_classes(tree: ast.Module) -> list[TaskClass]:
    """The module's top-level classes deriving from Task, directly or through another
    class of the same module, in source order."""
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if len(classes) > MAX_CLASSES:
        raise InvalidInput(
            f"the file defines {len(classes)} classes; a task file may define {MAX_CLASSES}",
            code="too_many_classes",
        )
    # From Task down through the module's subclasses, once each (a base may be defined
    # after its subclass): linear, where a fixed-point loop was quadratic.
    subclasses: dict[str, list[str]] = {}
    for node in classes:
        for base in node.bases:
            subclasses.setdefault(_base_name(base) or "", []).append(node.name)
    derived: set[str] = set()
    todo = list(subclasses.get("Task", []))
    while todo:
        name = todo.pop()
        if name not in derived:
            derived.add(name)
            todo.extend(subclasses.get(name, []))
    attributes = {n.name: _literal_attributes(n) for n in classes}
    bases = {n.name: [_base_name(b) for b in n.bases] for n in classes}

    def inherited(name: str, key: str) -> str | None:
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop(0)
            if current in seen or current not in attributes:
                continue
            seen.add(current)
            if key in attributes[current]:
                return attributes[current][key]
            todo.extend(bases[current])
        return None

    return [
        TaskClass(
            class_name=n.name,
            name=attributes[n.name].get("name"),
            description=attributes[n.name].get("description") or ast.get_docstring(n),
            task_type=inherited(n.name, "task_type") or "qubit",
        )
        for n in classes
        if n.name in derived
    ]


def shipped_task_classes(relative: str) -> frozenset[str]:
    """The classes of the tasks qledger runs that the shipped file `relative` defines
    (from the imported registry, not from the file)."""
    module = "calibration." + relative.removesuffix(".py").replace("/", ".")
    return frozenset(type(t).__name__ for t in TASKS.values() if type(t).__module__ == module)


def check_python(target: TaskPath, content: str) -> None:
    tree = parse_python(target.full, content)
    defined = {c.class_name for c in task_classes(tree)}
    kept = shipped_task_classes(target.relative) if target.backend == TWIN else frozenset()
    missing = sorted(kept - defined)
    if missing:
        raise InvalidInput(
            f"{target.full} no longer defines task class{'es' * (len(missing) > 1)}"
            f" {', '.join(missing)} (deriving from Task); a write may not drop a task",
            code="task_class_removed",
        )
    if not defined and target.relative not in HELPER_MODULES:
        raise InvalidInput(
            f"{target.full} defines no task class (a class deriving from Task)",
            code="no_task_class",
        )


# -- YAML ----------------------------------------------------------------------------


def _yaml_error(path: str, err: yaml.YAMLError) -> DomainError:
    """What is wrong and where, without the library's excerpt of the document."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
    problem = "; ".join(
        p for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p
    )
    return InvalidInput(
        f"{path}:{where} not valid YAML: {problem or type(err).__name__}",
        code="invalid_task_file_yaml",
    )


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _expanded(root: yaml.Node) -> tuple[int, int]:
    """(nodes, depth) of the document with its aliases expanded, per node memoised and
    without recursion: an alias chain must not turn into a deep Python stack."""
    done: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in done:
            continue
        if children_done:
            kids = [done[id(k)] for k in _children(node)]
            size = min(1 + sum(k[0] for k in kids), MAX_YAML_NODES + 1)
            done[id(node)] = (size, 1 + max((k[1] for k in kids), default=0))
            open_.discard(id(node))
            continue
        if id(node) in open_:  # a node that contains itself
            return MAX_YAML_NODES + 1, MAX_YAML_DEPTH + 1
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in done)
    return done[id(root)]


def load_yaml(path: str, text: str) -> tuple[yaml.Node | None, Any]:
    """(composed root, plain value) of safe YAML within the limits; 422 otherwise."""
    try:
        depth = events = 0
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            events += 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if depth > MAX_YAML_DEPTH or events > MAX_YAML_EVENTS:
                raise TaskFileTooComplex(
                    f"{path}: YAML nested deeper than {MAX_YAML_DEPTH} levels or longer than"
                    f" {MAX_YAML_EVENTS} parser events"
                )
        root = yaml.compose(text, Loader=_YAML_LOADER)
        if root is None:
            return None, None
        nodes, depth = _expanded(root)
        if nodes > MAX_YAML_NODES or depth > MAX_YAML_DEPTH:
            raise TaskFileTooComplex(
                f"{path}: the YAML expands (aliases) past {MAX_YAML_NODES} nodes or"
                f" {MAX_YAML_DEPTH} levels"
            )
        return root, yaml.constructor.SafeConstructor().construct_document(root)
    except yaml.YAMLError as err:  # a syntax error, or a tag outside the safe schema
        raise _yaml_error(path, err) from None
    except (ValueError, ArithmeticError, TypeError) as err:
        # A scalar the safe constructors cannot build: an integer of 5,000 digits, the
        # 31st of February as a timestamp.
        raise InvalidInput(
            f"{path}: not valid YAML: a value cannot be read ({type(err).__name__})",
            code="invalid_task_file_yaml",
        ) from None
