"""Cutting a task's sweep into twin jobs, and reading the jobs' marginal counts back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calibration.plan import jobs_for
from calibration.tasks import MAX_CIRCUIT_BYTES, TASKS, Sweep, p1_table


@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=80),
    max_circuits=st.integers(1, 30),
    max_bytes=st.integers(5000, 40_000),
)
def test_jobs_cover_the_sweep_in_order_within_both_limits(sizes, max_circuits, max_bytes):
    sweep = Sweep([float(i) for i in range(len(sizes))], ["x" * n for n in sizes], "x")
    jobs = jobs_for(sweep, 0, max_circuits, max_bytes)
    assert [c for job in jobs for c in job.circuits] == sweep.circuits
    assert [job.first for job in jobs] == list(
        np.cumsum([0] + [len(j.circuits) for j in jobs[:-1]])
    )
    for job in jobs:
        assert 1 <= len(job.circuits) <= max_circuits
        assert sum(len(c) for c in job.circuits) <= max_bytes


def test_groups_follow_what_each_task_can_share_in_a_circuit():
    qubits = [str(q) for q in range(64)]
    assert [len(g) for g in TASKS["RandomizedBenchmarking"].groups(qubits)] == [6] * 10 + [4]
    assert TASKS["CheckT1"].groups(qubits) == [qubits]
    # Couplings: disjoint pairs, at most four to a circuit.
    couplings = [f"{q}-{q + 1}" for q in range(11)]
    groups = TASKS["BellStateFidelity"].groups(couplings)
    assert sorted(c for g in groups for c in g) == sorted(couplings)
    for group in groups:
        used = [int(q) for c in group for q in c.split("-")]
        assert len(group) <= 4 and len(used) == len(set(used))


def test_p1_is_the_share_of_shots_reading_one_per_clbit_in_sweep_order():
    jobs = [
        [{"circuit_index": 0, "shots": 100, "marginals": [10, 90]}],
        [{"circuit_index": 0, "shots": 100, "marginals": [20, 80]},
         {"circuit_index": 1, "shots": 100, "marginals": [30, 70]}],
    ]  # fmt: skip
    assert p1_table(jobs, 2).tolist() == [[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]]


def test_every_task_counts_its_circuits_before_building_them():
    for task in TASKS.values():
        params = task.run_params(None)
        group = task.groups(["0-1", "2-3"] if task.task_type == "coupling" else ["0", "1"])[0]
        assert task.circuit_count(params) == len(task.build(8, group, params).circuits)


@pytest.mark.parametrize(
    ("name", "given"),
    [("CheckRabi", {"max_pulses": 400}), ("RandomizedBenchmarking", {"lengths": [300]}),
     ("CheckT1", {"points": 200}), ("CheckT2Echo", {})],
)  # fmt: skip
def test_groups_keep_every_circuit_within_what_the_twin_takes(name, given):
    """However long a qubit's sequence, a group's circuits stay under the QASM limit
    (the twin refuses a circuit over 64 KiB, which failed a run after its dispatch)."""
    task = TASKS[name]
    params = task.run_params({**given, "seed": 3} if name == "RandomizedBenchmarking" else given)
    qubits = [str(q) for q in range(64)]
    per_circuit = task.qubits_per_circuit(params, 64)
    for group in task.groups(qubits, per_circuit)[-2:]:  # the widest qubit indices
        longest = max(len(c) for c in task.build(64, group, params).circuits)
        assert longest <= MAX_CIRCUIT_BYTES, (name, len(group), longest)
