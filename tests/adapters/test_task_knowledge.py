"""The task knowledge pages (calibration/knowledge/<task>.md) against the code they
describe: every task has a complete page, and each page states the verdict's
thresholds, the verdict's own messages, the run parameters' defaults and the outputs
exactly as calibration/tasks.py has them, so docs and code cannot drift apart."""

from __future__ import annotations

import json
import math
import re
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from adapters import task_knowledge as k
from adapters.http.tasks import definition
from calibration import clifford
from calibration.fits import Fit
from calibration.tasks import TASKS, ReadoutFidelity, Task

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(TASKS)


def criteria(name: str) -> str:
    return k.entries()[name]["evaluation_criteria"]


def stated(name: str, threshold: str) -> float:
    """A threshold as the page states it: "- `min_r_squared`: 0.8" ("none": no bound)."""
    found = re.search(rf"^- `{threshold}`: (\S+)", criteria(name), re.MULTILINE)
    assert found, f"{name}: the evaluation criteria must state `{threshold}`"
    if found.group(1) == "none":
        return -math.inf if threshold == "min_r_squared" else math.inf
    return float(found.group(1))


def test_every_task_has_a_page_and_every_page_a_task():
    pages = {p.name[:-3] for p in (files("calibration") / "knowledge").iterdir() if p.name.endswith(".md")}  # fmt: skip
    assert pages == set(TASKS)


@pytest.mark.parametrize("name", NAMES)
def test_each_page_has_every_section_filled_in(name: str):
    entry = k.entries()[name]  # parse() refuses a page without one of REQUIRED
    for field in ("what_it_measures", "physical_principle", "evaluation_criteria"):
        assert len(entry[field]) > 80, (name, field)
    expected = entry["expected_result"]
    for field in ("description", "result_type", "x_axis", "y_axis", "fit_model",
                  "typical_range", "good_visual"):  # fmt: skip
        assert expected[field], (name, field)
    assert len(entry["failure_modes"]) >= 3
    for mode in entry["failure_modes"]:
        assert mode["cause"] and mode["visual"] and mode["next_action"], (name, mode)
    assert len(entry["tips"]) >= 3 and entry["check_questions"]
    assert set(entry["prerequisites"]) <= set(TASKS) - {name}
    assert entry["cases"] == [] and entry["images"] == []
    assert entry["category"] in k.CATEGORIES
    assert [o["name"] for o in entry["output_parameters_info"]] == [o.name for o in TASKS[name].outputs]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_each_page_states_the_thresholds_the_code_applies(name: str):
    task = TASKS[name]
    assert stated(name, "min_r_squared") == task.min_r_squared
    assert stated(name, "max_reduced_chi2") == task.max_reduced_chi2


def _fit(r_squared: float, reduced_chi2: float) -> Fit:
    return Fit("m", {"tau": 1.0}, {"tau": 0.1}, r_squared, reduced_chi2)


def _gate_reason(task: Task, r_squared: float, reduced_chi2: float) -> str:
    values = {o.name: 1.0 for o in task.outputs}
    errors = {o.name: 0.1 for o in task.outputs}
    outcome = task._gate(0, _fit(r_squared, reduced_chi2), [0.0], [0.0], [0.1], values, errors)
    return outcome.reason


@pytest.mark.parametrize("name", [n for n in NAMES if TASKS[n].min_r_squared > 0])
def test_the_r_squared_refusal_is_quoted_as_the_code_words_it(name: str):
    task = TASKS[name]
    low = task.min_r_squared - 0.1
    reason = _gate_reason(task, low, 1.0)
    assert reason.startswith("R²"), reason
    assert reason.replace(f"{low:.3f}", "…") in " ".join(criteria(name).split())
    assert _gate_reason(task, task.min_r_squared, 1.0) == ""  # the bound itself passes


@pytest.mark.parametrize("name", [n for n in NAMES if math.isfinite(TASKS[n].max_reduced_chi2)])
def test_the_chi_squared_refusal_is_quoted_as_the_code_words_it(name: str):
    task = TASKS[name]
    high = task.max_reduced_chi2 + 1
    reason = _gate_reason(task, 1.0, high)
    assert reason.startswith("reduced χ²"), reason
    assert reason.replace(f"{high:.2f}", "…") in " ".join(criteria(name).split())
    assert _gate_reason(task, 1.0, task.max_reduced_chi2) == ""


def test_readout_states_its_own_verdict_and_its_bound():
    task, params = ReadoutFidelity(), ReadoutFidelity().run_params({})

    def verdict(p10: float, p01: float):
        return task.analyze(0, np.array([0.0, 1.0]), np.array([p10, 1 - p01]), 10_000, params)

    assert verdict(0.49, 0.49).ok and not verdict(0.5, 0.1).ok and not verdict(0.1, 0.5).ok
    text = " ".join(criteria("ReadoutFidelity").split())
    assert "p10 < 0.5 and p01 < 0.5" in text
    assert verdict(0.6, 0.6).reason in text


@pytest.mark.parametrize("name", NAMES)
def test_each_page_names_the_run_parameters_with_their_defaults_and_the_outputs(name: str):
    task = TASKS[name]
    text = " ".join(k.page(name).split())
    for param, spec in task.parameters.items():
        assert f"`{param}` (default {json.dumps(spec.default)})" in text, (name, param)
    for output in task.outputs:
        assert f"`{output.name}`" in text, (name, output.name)
    if task.max_qubits_per_circuit != Task.max_qubits_per_circuit:
        assert f"at most {task.max_qubits_per_circuit} qubits per circuit" in text


def test_rb_states_the_mean_pulses_per_clifford_it_divides_by():
    text = " ".join(k.page("RandomizedBenchmarking").split())
    assert f"{clifford.mean_pulses():.1f} `sx` pulse per Clifford" in text


def test_the_pages_ship_in_the_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "knowledge/*.md" in project["tool"]["setuptools"]["package-data"]["calibration"]


def test_the_list_summarises_every_entry():
    listed = k.summaries()
    assert [i["name"] for i in listed["items"]] == list(TASKS)
    assert set(listed["categories"]) == set(k.CATEGORIES)
    for item in listed["items"]:
        entry = k.entries()[item["name"]]
        assert item["failure_mode_count"] == len(entry["failure_modes"])
        assert item["case_count"] == 0 and item["has_analysis_guide"] is False


PAGE = """# CheckT1
<!-- category: coherence -->

Summary.

## What it measures
x
## Principle
x
## Expected result
Prose.

- Fit model: y = 1
## Evaluation criteria
x
## Failure modes
- [critical] Broken.
  - Cause: a cause that wraps
    onto a second line.
## Tips
- one
"""


def test_the_parser_reads_the_format_and_refuses_what_breaks_it():
    entry = k.parse(TASKS["CheckT1"], PAGE)
    assert entry["failure_modes"][0]["cause"] == "a cause that wraps onto a second line."
    assert entry["expected_result"]["fit_model"] == "y = 1"
    assert entry["prompt_text"].startswith("# CheckT1\n\nSummary.")
    broken = {
        "no title": PAGE.replace("# CheckT1", "# CheckT2"),
        "no category": PAGE.replace("<!-- category: coherence -->", ""),
        "unknown category": PAGE.replace("coherence", "vibes"),
        "missing section": PAGE.replace("## Tips\n- one\n", ""),
        "unknown section": PAGE + "## Gossip\n- x\n",
        "unknown severity": PAGE.replace("[critical]", "[meh]"),
        "unknown detail": PAGE.replace("Cause:", "Blame:"),
        "unknown result field": PAGE.replace("Fit model:", "Vibe:"),
        "prose in a list": PAGE.replace("- one", "- one\nstray text"),
    }
    for what, text in broken.items():
        with pytest.raises(k.KnowledgeError):
            k.parse(TASKS["CheckT1"], text)
            pytest.fail(what)


def test_a_page_is_only_ever_read_by_a_task_name():
    for name in ("../tasks", "CheckT1/../../pyproject", "__init__", ""):
        with pytest.raises(KeyError):
            k.page(name)


@pytest.mark.parametrize("name", NAMES)
def test_each_definition_lists_run_and_read_parameters_apart(name: str):
    task = TASKS[name]
    d = definition(task)
    assert (d["backend"], d["task_type"]) == ("twin", "qubit")
    inputs = d["input_parameters"]
    assert len(inputs) == len(task.parameters) + len(task.inputs), "a name used twice"
    for param, spec in task.parameters.items():
        assert inputs[param]["value"] == spec.default and inputs[param]["kind"] == "run"
        assert inputs[param]["description"], (name, param)
    for read in task.inputs:
        assert inputs[read]["kind"] == "read" and inputs[read]["value"] is None
    assert {n: o["unit"] for n, o in d["output_parameters"].items()} == {
        o.name: o.unit for o in task.outputs
    }
