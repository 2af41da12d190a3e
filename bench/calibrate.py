"""Calibration against the twin's ground truth (not a test).

Every one-qubit task runs on all qubits of a backend at once (one circuit per sweep point,
the qubits split into groups where a task asks for it), on the twin's engine in this
process at optimization_level 0. Each fitted value is compared with the twin's own
effective value at that moment (what /telemetry/qubits serves):

* within 3σ: the share of qubits whose true value lies within 3 fit-sigmas;
* rel. error: the median and worst |fitted - true| / true (absolute for amplitudes and
  probabilities);
* time per stage: building circuits, compiling them, simulating, fitting.

The run through the API (executions, task results, figures) is not built yet; this is
the science underneath it.

    cd /work/main && .venv/bin/python bench/calibrate.py [--backend square_64]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as bench/calibrate.py, bench/ is first on sys.path, and bench/twin.py would shadow
# the twin package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import time

import numpy as np

from calibration.tasks import TASKS, marginal_p1
from config.twin_files import load_backends, read_dir
from twin import engine
from twin.circuit_input import read_circuit
from twin.circuits import compile_for
from twin.controller import ControllerState, effective_noise
from twin.noise import NoiseModel, describe


def truth_of(row: dict) -> dict[str, float]:
    p10, p01 = row["readout_p1_given_0"], row["readout_p0_given_1"]
    return {
        "t1": row["t1_us"], "t2_star": row["t2_us"], "t2_echo": row["t2_us"],
        "detuning": 0.0, "pi_amplitude": 1.0, "p10": p10, "p01": p01,
        "average_readout_fidelity": 1 - (p10 + p01) / 2, "x90_gate_fidelity": 1 - row["gate_error"],
    }  # fmt: skip


RELATIVE = {"t1", "t2_star", "t2_echo"}
# RB is scored on the error it measures: |fitted - true| / (1 - true fidelity).
UNIT = {**dict.fromkeys(RELATIVE, "rel"), "x90_gate_fidelity": "rel of 1-F"}


def relative_error(name: str, diff: float, true: float) -> float:
    if name == "x90_gate_fidelity":
        return abs(diff) / (1 - true)
    return abs(diff) / true if name in RELATIVE else abs(diff)  # the rest: absolute errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="square_64")
    args = parser.parse_args()
    backend = load_backends(read_dir())[args.backend]
    eff = effective_noise(backend, ControllerState(), 0.0)
    noise, rng = NoiseModel(eff), np.random.default_rng(2026)
    truth = [truth_of(row) for row in describe(eff)["qubits"]]
    qubits = list(range(backend.device.num_qubits))
    print(f"{args.backend}: {len(qubits)} qubits, every one-qubit task, at the tasks' defaults\n")
    print(f"{'task':24} {'output':18} {'ok':>5} {'within 3σ':>9} {'err p50':>9} {'err max':>9}"
          f"  build / compile / simulate / fit (s)")  # fmt: skip
    totals = np.zeros(4)
    for task in (t for t in TASKS.values() if t.task_type == "qubit"):
        params = task.run_params(None)
        stages = np.zeros(4)
        outcomes = []
        step = task.max_qubits_per_circuit
        for start in range(0, len(qubits), step):
            group = qubits[start : start + step]
            t0 = time.perf_counter()
            sweep = task.sweep(backend.device.num_qubits, group, params)
            t1 = time.perf_counter()
            programs = [compile_for(read_circuit(c), backend.device, 0, 0) for c in sweep.circuits]
            t2 = time.perf_counter()
            p1 = np.zeros((len(group), len(programs)))
            for j, program in enumerate(programs):
                counts, _ = engine.run(program, noise, params["shots"], rng, backend.limits)
                p1[:, j] = [marginal_p1(counts, i) for i in range(len(group))]
            t3 = time.perf_counter()
            x = np.array(sweep.x)
            outcomes += [
                task.analyze(q, x, p1[i], params["shots"], params) for i, q in enumerate(group)
            ]
            stages += [t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3]
        totals += stages
        for out in task.outputs:
            if out.name == "error_per_clifford":
                continue  # its truth is the pulse error's: shown as x90_gate_fidelity
            good = [o for o in outcomes if o.ok and out.name in o.values]
            pulls, errs = [], []
            for o in good:
                true = truth[o.qubit][out.name]
                diff = o.values[out.name] - true
                pulls.append(abs(diff) / o.errors[out.name] if o.errors[out.name] > 0 else np.inf)
                errs.append(relative_error(out.name, diff, true))
            within = np.mean(np.array(pulls) <= 3) if pulls else float("nan")
            unit = UNIT.get(out.name, "abs")
            print(f"{task.name:24} {out.name:18} {len(good):>2}/{len(outcomes):<2} {within:9.0%}"
                  f" {np.median(errs):9.4f} {np.max(errs):9.4f}  {unit}"
                  f"  {' / '.join(f'{s:.2f}' for s in stages)}")  # fmt: skip
    print(f"\nall tasks: build {totals[0]:.1f} s, compile {totals[1]:.1f} s,"
          f" simulate {totals[2]:.1f} s, fit {totals[3]:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
