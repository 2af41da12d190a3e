"""The twin's job-cost estimate (twin/job_cost.py) beside the measured simulation time.

Each line: one circuit family, its estimate before acceptance and the time the worker's
own code (transpile + simulate) took in this run; the measured time is the baseline the
estimate must stay above (ratio >= 1 means the budget errs on the safe side).

    cd /work/main && .venv/bin/python bench/job_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# bench/twin.py would shadow the twin package with bench/ first on sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).parent.parent))

from adapters.twin import simulate
from config.twin_files import load_backends, read_dir
from twin.circuit_input import check_circuit
from twin.controller import ControllerState
from twin.job_cost import circuit_seconds

HEAD = 'OPENQASM 2.0; include "qelib1.inc";'


def layered(width: int, layers: int, clifford: bool) -> str:
    lines = [HEAD, f"qreg q[{width}];", f"creg c[{width}];"]
    for layer in range(layers):
        for i in range(width):
            lines.append(f"h q[{i}];" if clifford else f"rx({0.1 + i * 0.01}) q[{i}];")
        lines += [f"cx q[{i}],q[{i + 1}];" for i in range(layer % 2, width - 1, 2)]
    return "\n".join([*lines, "measure q -> c;"])


CASES = [  # (width, layers, clifford, shots)
    (2, 10, False, 1000), (6, 10, False, 1000), (8, 10, False, 1000), (10, 10, False, 1000),
    (10, 40, False, 1000), (12, 5, False, 100), (14, 5, False, 100),
    (30, 10, True, 100_000), (60, 20, True, 100_000), (100, 8, True, 100_000),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 14-qubit case")
    args = parser.parse_args()
    backend = load_backends(read_dir())["square_100"]
    print(f"{'circuit':<34}{'engine':<16}{'estimate s':>11}{'measured s':>11}{'ratio':>7}")
    for width, layers, clifford, shots in CASES:
        if args.quick and width == 14:
            continue
        circuit = layered(width, layers, clifford)
        estimate = circuit_seconds(check_circuit(circuit), shots, backend.limits)
        simulate._PROGRAMS.clear()  # transpiling is part of the cost
        started = time.perf_counter()
        results, _ = simulate.run_job(backend, ControllerState(), [circuit], shots, 1, 0.0)
        measured = time.perf_counter() - started
        name = f"w={width} layers={layers} shots={shots}"
        print(
            f"{name:<34}{results[0]['engine']:<16}{estimate:>11.3f}{measured:>11.3f}"
            f"{estimate / measured:>7.1f}"
        )


if __name__ == "__main__":
    main()
