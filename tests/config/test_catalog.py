"""metrics.yaml and policy.yaml: the shipped files load; a typo stops the start, naming
the file and line, before any process is started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from config.catalog import ConfigFileError, load_metrics, load_policy
from domain.metrics import EvaluationMode
from tests.e2e.serving import QLEDGER

ISSUE_METRICS = {
    "qubit": {"t1", "t2_echo", "t2_star", "qubit_frequency", "anharmonicity",
              "average_readout_fidelity", "x90_gate_fidelity", "x180_gate_fidelity"},
    "coupling": {"zx90_gate_fidelity", "bell_state_fidelity", "static_zz_interaction"},
}  # fmt: skip


def test_the_shipped_files_define_every_dashboard_metric():
    catalog = load_metrics()
    for target, names in ISSUE_METRICS.items():
        assert set(catalog.of(target)) == names
    assert catalog.mode("t1") is EvaluationMode.MAXIMIZE
    assert catalog.mode("static_zz_interaction") is EvaluationMode.MINIMIZE
    assert catalog.mode("qubit_frequency") is EvaluationMode.NONE
    assert {r.parameter for r in load_policy()} <= set(catalog.metrics)


@pytest.mark.parametrize(
    ("loader", "text", "expected"),
    [
        (load_metrics, "qubit_metrics:\n  t1:\n    title: T1\n    evalution: {mode: maximize}\n", ":4: qubit_metrics.t1.evalution: unknown key"),
        (load_metrics, "qubit_metrics:\n  t1:\n    title: T1\n    evaluation: {mode: best}\n", ":4: qubit_metrics.t1.evaluation.mode: Input should be"),
        (load_metrics, "qubit_metrics: {}\ncolour_scale: {}\n", ":2: colour_scale: unknown key"),
        (load_policy, "rules:\n  - parameter: t1\n    min: 20\n  - parameter: t2\n    mn: 3\n", ":5: rules.1.mn: unknown key"),
        (load_policy, "rules:\n  - parameter: t1\n    min: 30\n    max: 20\n", ":2: rules.0: Value error, min 30.0 is above max 20.0"),
        (load_policy, "rules: [\n", "not valid YAML"),
        (load_policy, "", ":1: the file is empty"),
    ],
)  # fmt: skip
def test_a_bad_file_names_its_line(tmp_path: Path, loader, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as err:
        loader(path)
    assert f"{path}" in str(err.value) and expected in str(err.value), str(err.value)


def test_serve_refuses_to_start_with_a_bad_file(tmp_path: Path):
    bad = tmp_path / "metrics.yaml"
    bad.write_text("qubit_metrics:\n  t1:\n    title: T1\n    thresholds: {good: 1, ugly: 2}\n")
    env = {**os.environ, "QLEDGER_DATA_DIR": str(tmp_path / "var"), "QLEDGER_METRICS_CONFIG": str(bad)}  # fmt: skip
    done = subprocess.run([QLEDGER, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"{bad}:4: qubit_metrics.t1.thresholds.ugly" in done.stderr, done.stderr
    assert not (tmp_path / "var" / "nats.url").exists()  # nothing was started
