"""qledger digital-twin benchmark (not part of the test suite).

Engines, in this process (compiled circuits; the noise of the shipped config):
* Bell, 1,024 shots, on ibm_jakarta_like (exact density matrix);
* GHZ-10, 10,000 shots, on square_64 (density matrix: 10 active qubits);
* a 50-qubit Clifford circuit (GHZ-50), 10,000 shots, on square_64 (stim).
Next to each: the raw engine on the same circuit in the same run: stim's own sampler on
the same stim circuit (noise included), and Qiskit Aer's density-matrix simulator with
the same device noise (Aer is a dev dependency; its time includes its own setup).

Over HTTP against a fresh `qledger serve` (temp data dir, embedded NATS, SQLite):
* Bell job latency: POST /jobs -> the result (long poll `wait`), one client, p50/p99;
* the same for GHZ-10 on square_64 (1,024 shots);
* jobs/s with 8 concurrent clients doing the same for --seconds;
* raw baseline from the same run: GET /api/v1/digital-twin/health round trip.

    cd /work/main && .venv/bin/python bench/twin.py [--jobs 200] [--seconds 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/twin.py: with bench/ first on sys.path, `import twin` would find it
# instead of the twin package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).parent.parent))  # the repo, for tests.twin's Aer model

import argparse
import functools
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from bench.harness import pct, start
from config.twin_files import load_backends, read_dir
from twin import clifford, engine
from twin.circuit_input import read_circuit as parse
from twin.circuits import compile_for
from twin.controller import ControllerState, effective_noise
from twin.noise import NoiseModel

PASSWORD = "bench-twin-admin-1"
TWIN = "/api/v1/digital-twin"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


def ghz(n: int) -> str:
    cx = "".join(f"cx q[{i}],q[{i + 1}];" for i in range(n - 1))
    return f'OPENQASM 2.0; include "qelib1.inc"; qreg q[{n}]; creg c[{n}]; h q[0]; {cx} measure q -> c;'


def timed(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def engines(reps: int) -> None:
    backends = load_backends(read_dir())
    print(f"{'engine (in-process), p50 / p99 ms':44s} {'twin':>19s} {'raw engine':>19s}")
    cases = [
        ("Bell, 1,024 shots (density matrix)", "ibm_jakarta_like", BELL, 1024, "dm"),
        ("GHZ-10, 10,000 shots (density matrix)", "square_64", ghz(10), 10_000, "dm"),
        ("Clifford GHZ-50, 10,000 shots (stim)", "square_64", ghz(50), 10_000, "stim"),
    ]
    for label, backend_id, qasm, shots, kind in cases:
        backend = backends[backend_id]
        noise = NoiseModel(effective_noise(backend, ControllerState()))
        program = compile_for(parse(qasm), backend.device, seed=0)
        rng = np.random.default_rng(1)
        # The twin's column includes its planning (light cone, parts, engine choice).
        ours = timed(
            functools.partial(engine.run, program, noise, shots, rng, backend.limits), reps
        )
        if kind == "dm":
            raw = aer_time(program, noise, backend.device.num_qubits, shots, reps)
            raw_label = "Aer density matrix"
        else:
            circuit = clifford.build(program, noise)
            raw = timed(functools.partial(_stim_sample, circuit, shots), reps)
            raw_label = "stim compile+sample"
        print(f"{label:44s} {pct(ours)}   {pct(raw)}  ({raw_label})")


def _stim_sample(circuit, shots: int):
    return circuit.compile_sampler(seed=1).sample(shots)


def aer_time(program, noise, num_qubits: int, shots: int, reps: int) -> list[float]:
    try:
        from qiskit_aer import AerSimulator

        from tests.twin.test_accuracy import aer_model, as_qiskit
    except ImportError:
        return [float("nan")]
    sim = AerSimulator(method="density_matrix", noise_model=aer_model(noise, num_qubits))
    qc = as_qiskit(program, num_qubits)
    return timed(lambda: sim.run(qc, shots=shots).result(), max(3, reps // 5))


def one_job(client: httpx.Client, backend: str = "ibm_jakarta_like", circuit: str = BELL) -> float:
    t = time.perf_counter()
    r = client.post("/jobs", json={"backend_id": backend, "circuits": [circuit], "shots": 1024})
    job = r.json()
    r = client.get(
        f"/jobs/{job['job_id']}/result", params={"wait": 30, "min_position": job["position"]}
    )
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    return time.perf_counter() - t


def http_part(base: str, token: str, jobs: int, seconds: float) -> None:
    def client() -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=base + TWIN, headers=headers, timeout=60)

    with client() as c:
        health = []
        for _ in range(jobs):
            t = time.perf_counter()
            c.get("/health")
            health.append(time.perf_counter() - t)
        for _ in range(10):
            one_job(c)  # warm the worker process and the caches
        latency = [one_job(c) for _ in range(jobs)]
        ghz10 = [one_job(c, "square_64", ghz(10)) for _ in range(max(20, jobs // 4))]
    print(f"\n{'over HTTP, p50 / p99 ms':44s} {'twin':>19s} {'raw baseline':>19s}")
    print(f"{'Bell job, submit -> COMPLETED':44s} {pct(latency)}   {pct(health)}  (GET /health)")
    print(f"{'GHZ-10 job (square_64, 1,024 shots)':44s} {pct(ghz10)}")

    stop = time.perf_counter() + seconds

    def worker() -> int:
        done = 0
        with client() as c:
            while time.perf_counter() < stop:
                one_job(c)
                done += 1
        return done

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        done = sum(pool.map(lambda _: worker(), range(8)))
    rate = done / (time.perf_counter() - t0)
    print(f"{'Bell jobs/s, 8 concurrent clients':44s} {rate:19.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="qledger-bench-twin-"))
    proc, base, token = start(data_dir, PASSWORD)
    try:
        http_part(base, token, args.jobs, args.seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    # After the HTTP part: Aer's OpenMP threads keep spinning for a while after it ran,
    # which would take CPU from the server.
    print()
    engines(args.reps)


if __name__ == "__main__":
    main()
