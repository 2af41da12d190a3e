"""The simulation worker's limits, on the real child process: a job past the memory cap
or the time limit fails with the limit named, a stopped call says so, and the next call
gets a fresh worker that works."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from adapters.twin.worker import SimulationWorker, WorkerError
from config.twin_files import load_backends, read_dir
from twin.controller import ControllerState

HEAD = 'OPENQASM 2.0; include "qelib1.inc";'
BELL = f"{HEAD} qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;"


def wide(n: int) -> str:
    gates = "".join(f" rx(0.3) q[{i}]; cx q[{i}],q[{(i + 1) % n}];" for i in range(n))
    return f"{HEAD} qreg q[{n}]; creg c[{n}];{gates} measure q -> c;"


@pytest.fixture(scope="module")
def backend():
    square = load_backends(read_dir())["square_100"]
    # 12 qubits on the density-matrix engine: a 268 MB matrix, plus its temporaries.
    limits = dataclasses.replace(square.limits, density_matrix_max_qubits=12)
    return dataclasses.replace(square, limits=limits)


def run(worker: SimulationWorker, backend, circuit: str, timeout: float | None = None):
    worker.start()
    return worker.call(
        "run_job", backend, ControllerState(), [circuit], 100, 1, 0.0, timeout=timeout
    )


def test_a_job_past_the_memory_cap_fails_named_and_the_worker_goes_on(backend):
    worker = SimulationWorker(memory_bytes=1800 * 2**20, threads=1)  # ~1.35 GB at rest
    try:
        with pytest.raises(WorkerError) as err:
            run(worker, backend, wide(12))
        assert err.value.code in ("job_memory_limit", "simulation_error"), err.value.message
        assert "memory" in err.value.message
        results, _ = run(worker, backend, BELL)
        assert sum(results[0]["counts"].values()) == 100
    finally:
        worker.close()


def test_a_job_past_the_time_limit_is_killed_and_the_next_gets_a_fresh_worker(backend):
    worker = SimulationWorker(threads=1)
    try:
        with pytest.raises(WorkerError) as err:
            run(worker, backend, wide(14), timeout=1.0)  # trajectories: ~10 s
        assert err.value.code == "job_time_limit" and "1 s" in err.value.message
        first = worker.proc
        results, _ = run(worker, backend, BELL)
        assert worker.proc is not first and results[0]["counts"]
    finally:
        worker.close()


def test_stop_interrupts_the_running_call_only(backend):
    worker = SimulationWorker(threads=1)
    try:
        worker.stop()  # nothing running: nothing happens
        assert run(worker, backend, BELL)[0][0]["counts"]
        stopper = threading.Timer(1.0, worker.stop)
        stopper.start()
        with pytest.raises(WorkerError) as err:
            run(worker, backend, wide(14))  # trajectories: ~10 s, interrupted at 1 s
        assert err.value.reason == "stopped"
        assert run(worker, backend, BELL)[0][0]["counts"]
    finally:
        worker.close()
