"""How close the twin's counts are to the exact model of its own noise (not a test).

For each circuit: the total variation distance (TVD) between the twin's counts, as a job
would get them (default engine choice), and a sample of the exact distribution at the
same shots, median of --repeats runs (one for a forced engine); beside it the statistical floor: the TVD between two independent samples of
the exact distribution, median and 95th percentile over --floor-draws pairs. A row
within the floor's 95th percentile cannot be told from exact at that many shots.

"Exact" is the twin's density-matrix engine with every qubit of the circuit in one
matrix (it agrees with Qiskit Aer's density matrix to ~1e-15 on the gates:
tests/twin/test_accuracy.py; a delay's decay is checked against e^(-t/T1) in
tests/twin/test_idle_and_engines.py). For GHZ-20 no exact model fits on this machine
(2^20 amplitudes per trajectory, 4^20 for the density matrix): its row reports the
engine, the time and the approximation only; the size of stim's bias is measured on the
12-qubit row, which the density matrix still holds.

    cd /work/main && .venv/bin/python bench/accuracy.py [--shots 200000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as bench/accuracy.py, bench/ is first on sys.path, and bench/twin.py would shadow
# the twin package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import time

import numpy as np

from config.twin_files import load_backends, read_dir
from twin import density, engine
from twin.circuit_input import read_circuit
from twin.circuits import Program, compile_for
from twin.controller import ControllerState, effective_noise
from twin.noise import NoiseModel
from twin.sampling import keys_for, measured_qubits, with_readout

BACKENDS = load_backends(read_dir())
HEAD = 'OPENQASM 2.0; include "qelib1.inc";'


def ghz(n: int, extra: str = "") -> str:
    cx = "".join(f"cx q[{i}],q[{i + 1}];" for i in range(n - 1))
    return f"{HEAD} qreg q[{n}]; creg c[{n}]; h q[0]; {cx} {extra} measure q -> c;"


def random_circuit(n: int, depth: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    body = []
    for _ in range(depth):
        for q in range(n):
            a, b, c = rng.uniform(0, 2 * np.pi, 3)
            body.append(f"u({a:.6f},{b:.6f},{c:.6f}) q[{q}];")
        pairs = rng.permutation(n)
        body += [f"cx q[{pairs[i]}],q[{pairs[i + 1]}];" for i in range(0, n - 1, 2)]
    return f"{HEAD} qreg q[{n}]; creg c[{n}]; {' '.join(body)} measure q -> c;"


ONE_X_THEN_CX = (
    f"{HEAD} qreg q[12]; creg c[1]; x q[0]; "
    + "".join(f"cx q[0],q[{i}];" for i in range(1, 11))
    + " measure q[0] -> c[0];"
)
DELAY_2US = ghz(3, "delay(2us) q[0]; delay(2us) q[1]; delay(2us) q[2];")
X20 = f"{HEAD} qreg q[1]; creg c[1]; " + "x q[0]; " * 20 + "measure q[0] -> c[0];"

# (name, backend, circuit, optimization level, forced engine, exact reference or None)
ROWS = [
    ("Bell", "ibm_jakarta_like", ghz(2), 1, None, "density"),
    ("GHZ-3", "ibm_jakarta_like", ghz(3), 1, None, "density"),
    ("GHZ-5", "ibm_jakarta_like", ghz(5), 1, None, "density"),
    ("GHZ-3, 2 us delay", "ibm_jakarta_like", DELAY_2US, 1, None, "density"),
    ("X x20, level 0", "ibm_jakarta_like", X20, 0, None, "density"),
    ("random 4q (trajectories)", "ibm_jakarta_like", random_circuit(4, 4, 7), 1,
     "trajectories", "density"),
    ("x, 10 CX, q0 read (12q)", "square_64", ONE_X_THEN_CX, 1, None, "density"),
    ("GHZ-20 heavy hex", "heavy_hex_27", ghz(20), 1, None, None),
]  # fmt: skip


def exact_distribution(program: Program, noise: NoiseModel) -> dict[str, float]:
    qubits = measured_qubits(program)
    p = with_readout(density.probabilities(program, noise), qubits, noise).reshape(-1)
    keys = keys_for(program, qubits, np.arange(len(p)))
    return dict(zip(keys, p / p.sum(), strict=True))


def sample(p: dict[str, float], shots: int, rng: np.random.Generator) -> dict[str, int]:
    keys = list(p)
    drawn = rng.multinomial(shots, np.array([p[k] for k in keys]))
    return {k: int(n) for k, n in zip(keys, drawn, strict=True) if n}


def tvd(a: dict[str, int], b: dict[str, int], shots: int) -> float:
    return 0.5 * sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / shots


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=200_000)
    parser.add_argument("--floor-draws", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="twin runs per row (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print(f"shots {args.shots}; floor: TVD of two exact samples, {args.floor_draws} pairs\n")
    print(f"{'circuit':28} {'engine':15} {'TVD':>7} {'floor p50':>9} {'floor p95':>9}  verdict")
    for name, backend_id, qasm, level, forced, reference in ROWS:
        backend = BACKENDS[backend_id]
        noise = NoiseModel(effective_noise(backend, ControllerState(), 0.0))
        program = compile_for(read_circuit(qasm), backend.device, 0, level)
        runs, took = [], []
        for _ in range(1 if reference is None or forced else args.repeats):
            t0 = time.perf_counter()
            runs.append(engine.run(program, noise, args.shots, rng, backend.limits, forced))
            took.append(time.perf_counter() - t0)
        ours, ran = runs[0]
        if reference is None:
            print(f"{name:28} {ran.engine:15} {'n/a':>7} {'':9} {'':9}  no exact model"
                  f"  ({np.median(took) * 1e3:.0f} ms)")  # fmt: skip
        else:
            exact = exact_distribution(program, noise)
            distance = float(np.median(
                [tvd(counts, sample(exact, args.shots, rng), args.shots) for counts, _ in runs]
            ))  # fmt: skip
            floor = [
                tvd(sample(exact, args.shots, rng), sample(exact, args.shots, rng), args.shots)
                for _ in range(args.floor_draws)
            ]
            p50, p95 = np.percentile(floor, [50, 95])
            verdict = "within floor" if distance <= p95 else f"{distance / p50:.1f}x floor p50"
            print(f"{name:28} {ran.engine:15} {distance:7.4f} {p50:9.4f} {p95:9.4f}  {verdict}"
                  f"  ({np.median(took) * 1e3:.0f} ms)")  # fmt: skip
        if ran.approximation:
            print(f"{'':28} approximation: {ran.approximation}")
        if name.startswith("x, 10 CX"):
            print(f"{'':28} P(q0 reads 0): twin {ours.get('0', 0) / args.shots:.4f},"
                  f" exact {exact.get('0', 0.0):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
