"""How a task's circuits become twin jobs, and the jobs' answers become P(1) per qubit.

A task runs on its qubits in groups (at most `max_qubits_per_circuit` per circuit), one
sweep per group; each sweep is cut into jobs that keep within the backend's circuits per
job and the bus's message size. The answers come back per circuit as the number of
shots in which each classical bit read 1 (the twin's "marginals" results): clbit i is
the i-th qubit of the group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.tasks import Sweep, Task

# A job's command must fit one bus message (1 MiB, of which the gateway takes 256 KiB
# per command) with its envelope: the circuits' text is kept well below that.
MAX_JOB_TEXT_BYTES = 192 * 1024


@dataclass(frozen=True)
class Job:
    group: int  # index of the qubit group
    first: int  # index of the job's first circuit in the group's sweep
    circuits: list[str]


def qubit_groups(task: Task, qubits: list[int]) -> list[list[int]]:
    step = task.max_qubits_per_circuit
    return [qubits[i : i + step] for i in range(0, len(qubits), step)]


def jobs_for(sweep: Sweep, group: int, max_circuits: int, max_bytes: int = MAX_JOB_TEXT_BYTES):
    """Consecutive runs of the sweep's circuits, each within both limits."""
    jobs: list[Job] = []
    first, size = 0, 0
    for i, text in enumerate(sweep.circuits):
        n = len(text.encode())
        if n > max_bytes:
            raise ValueError(f"circuit {i} alone is {n} bytes; a job may carry {max_bytes}")
        if i > first and (i - first >= max_circuits or size + n > max_bytes):
            jobs.append(Job(group, first, sweep.circuits[first:i]))
            first, size = i, 0
        size += n
    if first < len(sweep.circuits):
        jobs.append(Job(group, first, sweep.circuits[first:]))
    return jobs


def p1_of(results: list[list[dict]], clbits: int) -> np.ndarray:
    """(clbits, circuits) P(1), from the jobs' results in sweep order."""
    columns = [np.asarray(r["marginals"], dtype=float) / r["shots"] for job in results for r in job]
    table = np.stack(columns, axis=1)
    if table.shape[0] != clbits:
        raise ValueError(f"results carry {table.shape[0]} clbits, expected {clbits}")
    return table
