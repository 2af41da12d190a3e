"""Every error code qledger can answer with, and its kind, read from the source.

A code is raised in many ways: a domain error class with a fixed `code`, a domain error
raised with `code="…"`, a command reply `Rejected(kind=…, code=…)`, a `QueryError` or an
`ApiError` of the HTTP side, and the twin's `TwinError` (bad input, turned into
InvalidInput by the adapters). Reading the source's syntax tree finds all of them
without running anything, so the catalogue cannot miss a code that only a rare path
raises. It feeds docs/errors.md and the tests that hold every code to one kind.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from domain.errors import DomainError, Kind

PACKAGES = ("domain", "commands", "projections", "adapters", "config", "twin")
ROOT = Path(__file__).resolve().parent.parent

# Answers of the HTTP framework itself (adapters/http/app.py), raised by no code above.
FRAMEWORK = {
    "not_found": Kind.NOT_FOUND,  # no such route
    "method_not_allowed": Kind.METHOD_NOT_ALLOWED,
    "invalid_request": Kind.INVALID,  # a path, query or body that fails its schema
    "internal_error": Kind.INTERNAL,
}
# Raised with a code but not a refusal: a failed job records it (its `error.code`).
NOT_REFUSALS = frozenset({"FailJob"})


@dataclass(frozen=True)
class Site:
    code: str
    kind: Kind
    where: str  # path:line


def domain_error_classes() -> dict[str, type[DomainError]]:
    """Every DomainError subclass, by name (all modules imported to find them)."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    found: dict[str, type[DomainError]] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kind(node: ast.expr | None) -> Kind | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "Kind":
            return Kind[node.attr]
    return None


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _call_site(call: ast.Call, classes: dict[str, type[DomainError]]) -> tuple[str, Kind] | None:
    name = _name(call.func)
    keywords = {k.arg: k.value for k in call.keywords}
    args = list(call.args)
    if name in classes:
        code = _literal(keywords.get("code"))
        if code is None and name == "BodyRefused" and args:
            code = _literal(args[0])  # BodyRefused(code, message)
        return (code, classes[name].kind) if code else None
    if name == "TwinError" and args and (code := _literal(args[0])):
        return code, Kind.INVALID
    if name == "Rejected":
        code, kind = _literal(keywords.get("code")), _kind(keywords.get("kind"))
        return (code, kind) if code and kind else None
    # QueryError(kind, code, …), ApiError(kind, code, …), and any helper called the
    # same way (a middleware's refusal): a Kind followed by a literal code.
    for first, second in zip(args, args[1:], strict=False):
        kind, code = _kind(first), _literal(second)
        if kind and code:
            return code, kind
    return None


def sites() -> list[Site]:
    """Every place a literal code is raised, with the kind it is raised as."""
    classes = domain_error_classes()
    found = [
        Site(cls.code, cls.kind, cls.__module__.replace(".", "/") + ".py")
        for cls in classes.values()
        if "code" in vars(cls)
    ]
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _name(node.func) not in NOT_REFUSALS:
                    hit = _call_site(node, classes)
                    if hit:
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        found.append(Site(hit[0], hit[1], where))
    return found


def catalogue() -> dict[str, set[Kind]]:
    """code -> the kinds it is raised as (one, unless something is wrong)."""
    kinds: dict[str, set[Kind]] = defaultdict(set)
    for site in sites():
        kinds[site.code].add(site.kind)
    for code, kind in FRAMEWORK.items():
        kinds[code].add(kind)
    return dict(kinds)


def render() -> str:
    """docs/errors.md: every code, its kind, its HTTP status and where it is raised."""
    from adapters.http.errors import STATUS_BY_KIND  # the HTTP side's table, read-only

    where: dict[str, set[str]] = defaultdict(set)
    for site in sites():  # files, not lines: the page changes when a code moves
        where[site.code].add(site.where.split(":")[0])
    rows = sorted(
        (STATUS_BY_KIND[kind], kind.value, code, ", ".join(sorted(where[code])) or "framework")
        for code, kinds in catalogue().items()
        for kind in kinds
    )
    lines = [
        "# Error codes",
        "",
        "<!-- generated by `qledger docs` from the source (adapters/error_catalogue.py);"
        " do not edit -->",
        "",
        'Every refusal is `{"code", "message"}`. Over HTTP its status follows from the'
        " code's kind, in one table (adapters/http/errors.py); on the bus the rejected"
        " reply carries `kind` and `code`. A code keeps one meaning and one kind wherever"
        " it is raised (tests/adapters/test_error_model.py).",
        "",
        "| status | kind | code | raised in |",
        "|---|---|---|---|",
        *(f"| {st} | {kind} | `{code}` | {files} |" for st, kind, code, files in rows),
        "",
    ]
    return "\n".join(lines)
