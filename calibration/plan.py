"""How a task's circuits become twin jobs.

A task runs on its targets in groups (Task.groups), one sweep per group; each sweep is
cut into jobs that keep within the backend's circuits per job and the bus's message
size.
"""

from __future__ import annotations

from dataclasses import dataclass

from calibration.tasks import Sweep

# A job's command must fit one bus message (1 MiB, of which the gateway takes 256 KiB
# per command) with its envelope: the circuits' text is kept well below that.
MAX_JOB_TEXT_BYTES = 192 * 1024


@dataclass(frozen=True)
class Job:
    group: int  # index of the qubit group
    first: int  # index of the job's first circuit in the group's sweep
    circuits: list[str]


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
