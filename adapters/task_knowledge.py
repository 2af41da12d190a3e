"""What a lab should know about each calibration task: one markdown page per task in
calibration/knowledge/<task>.md (package data, shipped in the wheel), parsed into the
reference's structured knowledge entry.

calibration/ is pure (no I/O), so the pages are read here, once. A page is found by a
name that is a key of calibration.tasks.TASKS, never by a name a client sent, so no
request can reach any other file.

A page has an H1 with the task's name, a `<!-- category: … -->` comment, a summary
paragraph, and H2 sections: the six in REQUIRED, and optionally those in OPTIONAL.
`Expected result` ends with `- Key: value` bullets (EXPECTED_FIELDS); `Failure modes`
is a list of `- [severity] description` items, each with `Cause:`, `Visual:` and
`Next:` sub-items. tests/adapters/test_task_knowledge.py holds every page to this and
to the thresholds the code applies.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Any

from calibration.tasks import TASKS, Task

REQUIRED = {
    "What it measures": "what_it_measures",
    "Principle": "physical_principle",
    "Expected result": "expected_result",
    "Evaluation criteria": "evaluation_criteria",
    "Failure modes": "failure_modes",
    "Tips": "tips",
}
OPTIONAL = {
    "Check questions": "check_questions",
    "Prerequisites": "prerequisites",
    "Analysis guide": "analysis_guide",
}
CATEGORIES = {"coherence": "Coherence", "gate": "Gate calibration", "readout": "Readout"}
SEVERITIES = ("critical", "warning", "info")
EXPECTED_FIELDS = {
    "Result type": "result_type",
    "X-axis": "x_axis",
    "Y-axis": "y_axis",
    "Z-axis": "z_axis",
    "Fit model": "fit_model",
    "Typical range": "typical_range",
    "Good result": "good_visual",
}
FAILURE_FIELDS = {"Cause": "cause", "Visual": "visual", "Next": "next_action"}

_CATEGORY = re.compile(r"<!--\s*category:\s*([a-z0-9-]+)\s*-->")
_SEVERITY = re.compile(r"^\[(\w+)\]\s+(.+)$")


class KnowledgeError(ValueError):
    """A page that does not follow the format: a bug in the page, found by the tests."""


def page(task_name: str) -> str:
    """The raw markdown of a task's page. `task_name` must be a key of TASKS."""
    if task_name not in TASKS:
        raise KeyError(task_name)
    return (files("calibration") / "knowledge" / f"{task_name}.md").read_text(encoding="utf-8")


def _sections(name: str, text: str) -> tuple[str, str, dict[str, str]]:
    """(category, summary, {H2 title: body})."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != f"# {name}":
        raise KnowledgeError(f"{name}: the page must start with '# {name}'")
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current = head
    for line in lines[1:]:
        if line.startswith("## "):
            title = line[3:].strip()
            if title not in REQUIRED and title not in OPTIONAL:
                raise KnowledgeError(f"{name}: unknown section {title!r}")
            if title in sections:
                raise KnowledgeError(f"{name}: section {title!r} twice")
            current = sections[title] = []
        elif line.startswith("# "):
            raise KnowledgeError(f"{name}: a second H1")
        else:
            current.append(line)
    missing = [t for t in REQUIRED if t not in sections]
    if missing:
        raise KnowledgeError(f"{name}: missing sections {missing}")
    intro = "\n".join(head)
    found = _CATEGORY.search(intro)
    if found is None or found.group(1) not in CATEGORIES:
        raise KnowledgeError(f"{name}: needs <!-- category: … --> with one of {list(CATEGORIES)}")
    summary = " ".join(_CATEGORY.sub("", intro).split())
    if not summary:
        raise KnowledgeError(f"{name}: no summary under the title")
    return found.group(1), summary, {t: "\n".join(b).strip() for t, b in sections.items()}


def _items(body: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(the lines before the first bullet, the top-level `- ` items with their nested
    `  - ` items); a wrapped line continues the item above it."""
    prose: list[str] = []
    items: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        stripped = line.strip()
        if line.startswith("- "):
            items.append((stripped[2:].strip(), []))
        elif items and line.startswith(" ") and stripped.startswith("- "):
            items[-1][1].append(stripped[2:].strip())
        elif items and line.startswith(" ") and stripped:
            text, nested = items[-1]
            if nested:
                nested[-1] = f"{nested[-1]} {stripped}"
            else:
                items[-1] = (f"{text} {stripped}", nested)
        elif items and stripped:
            raise KnowledgeError(f"text after a list: {stripped[:60]!r}")
        elif not items:
            prose.append(line)
    return prose, items


def _list(name: str, title: str, body: str) -> list[str]:
    prose, items = _items(body)
    if "".join(prose).strip() or any(nested for _, nested in items):
        raise KnowledgeError(f"{name}: {title} must be a flat list of '- ' items")
    return [text for text, _ in items]


def _expected(name: str, body: str) -> dict[str, Any]:
    prose, items = _items(body)
    out: dict[str, Any] = {"description": "\n".join(prose).strip()}
    out |= {field: "" for field in EXPECTED_FIELDS.values()}
    for text, _ in items:
        key, _, value = text.partition(":")
        if key not in EXPECTED_FIELDS or not value.strip():
            raise KnowledgeError(f"{name}: expected-result bullet {text[:40]!r}")
        out[EXPECTED_FIELDS[key]] = value.strip()
    if not out["description"]:
        raise KnowledgeError(f"{name}: the expected result needs a description")
    return out


def _failure_modes(name: str, body: str) -> list[dict[str, str]]:
    prose, items = _items(body)
    if "".join(prose).strip():
        raise KnowledgeError(f"{name}: failure modes must be a list")
    modes = []
    for text, nested in items:
        found = _SEVERITY.match(text)
        if found is None or found.group(1) not in SEVERITIES:
            raise KnowledgeError(f"{name}: a failure mode starts with one of {SEVERITIES}")
        mode = {"severity": found.group(1), "description": found.group(2)}
        mode |= {field: "" for field in FAILURE_FIELDS.values()}
        for sub in nested:
            key, _, value = sub.partition(":")
            if key not in FAILURE_FIELDS:
                raise KnowledgeError(f"{name}: failure-mode detail {sub[:40]!r}")
            mode[FAILURE_FIELDS[key]] = value.strip()
        modes.append(mode)
    return modes


def parse(task: Task, text: str) -> dict[str, Any]:
    """The reference's TaskKnowledgeResponse for one task's page. Output parameters come
    from the task itself; cases (reviewed incidents) and images are not kept yet."""
    category, summary, sections = _sections(task.name, text)
    entry: dict[str, Any] = {"name": task.name, "category": category, "summary": summary}
    for title, field in REQUIRED.items():
        body = sections[title]
        if title == "Expected result":
            entry[field] = _expected(task.name, body)
        elif title == "Failure modes":
            entry[field] = _failure_modes(task.name, body)
        elif title == "Tips":
            entry[field] = _list(task.name, title, body)
        else:
            entry[field] = body
        if not entry[field]:
            raise KnowledgeError(f"{task.name}: section {title!r} is empty")
    for title, field in OPTIONAL.items():
        entry[field] = _list(task.name, title, sections.get(title, ""))
    entry["output_parameters_info"] = [
        {"name": o.name, "description": f"{o.description} ({o.unit})" if o.unit else o.description}
        for o in task.outputs
    ]
    entry["images"] = []
    entry["cases"] = []
    entry["prompt_text"] = _CATEGORY.sub("", text).replace("\n\n\n", "\n\n").strip() + "\n"
    return entry


@cache
def entries() -> dict[str, dict[str, Any]]:
    """Every task's entry, by task name, in TASKS' order: read and parsed once."""
    return {name: parse(task, page(name)) for name, task in TASKS.items()}


def summaries() -> dict[str, Any]:
    """The reference's ListTaskKnowledgeResponse."""
    items = [
        {
            "name": e["name"],
            "category": e["category"],
            "summary": e["summary"],
            "failure_mode_count": len(e["failure_modes"]),
            "case_count": len(e["cases"]),
            "image_count": len(e["images"]),
            "has_analysis_guide": bool(e["analysis_guide"]),
        }
        for e in entries().values()
    ]
    return {"items": items, "categories": dict(CATEGORIES)}
