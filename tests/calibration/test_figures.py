"""Every task's result renders as a PNG the figure store accepts, a failed one too (with
its reason), and the same result renders to the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.calibration.figures import render
from calibration.tasks import TASKS
from domain.figures import figure_name


def bell(task, params):
    """One coupling's five circuits as count tables: parities +0.9, +0.9, -0.9 and a
    readout flipping 2 % of bits."""
    n = params["shots"]
    even, odd = int(n * 0.95), n - int(n * 0.95)
    counts = [{"00": even // 2, "11": even - even // 2, "01": odd}] * 2
    counts.append({"01": even // 2, "10": even - even // 2, "00": odd})
    counts += [{"00": int(n * 0.96), "01": n - int(n * 0.96)},
               {"11": int(n * 0.96), "10": n - int(n * 0.96)}]  # fmt: skip
    sweep = task.build(2, ["0-1"], params)
    results = [[{"counts": c, "shots": n} for c in counts]]
    return task, sweep, task.analyze_group(["0-1"], sweep, results, params)[0]


def synthetic(name: str):
    """A task's own sweep with P(1) from its own model at plausible values."""
    task = TASKS[name]
    params = task.run_params(None)
    if task.task_type == "coupling":
        return bell(task, params)
    sweep = task.sweep(2, [0], params)
    x = np.array(sweep.x)
    p1 = {
        "CheckT1": 0.95 * np.exp(-x / 100) + 0.02,
        "CheckRamsey": 0.5 - 0.45 * np.exp(-x / 40) * np.cos(2 * np.pi * 0.04 * x),
        "CheckT2Echo": 0.5 - 0.45 * np.exp(-x / 60),
        "CheckRabi": 0.5 - 0.48 * np.cos(x * np.pi / 2 * 1.01),
        "ReadoutFidelity": np.array([0.02, 0.96]),
        # +m ends in |0> (reads 1 rarely), -m in |1>; survival decays with m
        "RandomizedBenchmarking": np.where(x > 0, 0.03, 0.97)
        + np.sign(x) * 0.45 * (1 - 0.999 ** np.abs(x)),
    }[name]
    return task, sweep, task.analyze(0, x, p1, params["shots"], params)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_renders_a_png_the_figure_store_takes(name):
    task, sweep, outcome = synthetic(name)
    png = render(task, outcome, sweep.x_label, chip="64Q")
    assert figure_name(png, "image/png").endswith(".png")
    assert render(task, outcome, sweep.x_label, chip="64Q") == png  # reproducible


def test_a_failed_result_renders_with_its_reason():
    task = TASKS["CheckT1"]
    params = task.run_params(None)
    x = np.array(task.sweep(1, [0], params).x)
    outcome = task.analyze(0, x, np.full(len(x), 0.02), params["shots"], params)
    assert not outcome.ok
    assert figure_name(render(task, outcome, "delay (µs)"), "image/png")
