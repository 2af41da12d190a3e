"""Two-qubit tasks: they run on couplings ("3-4"), several disjoint couplings per circuit.

BellStateFidelity prepares |Φ+> = (|00> + |11>)/√2 with h and cx on each coupling and
measures the three correlators that fix its fidelity, F = (1 + <XX> − <YY> + <ZZ>)/4.
Two more circuits (every qubit in |0>, every qubit in |1>) give each qubit's readout
flip rate, and the correlators are corrected for it, so F is the state's fidelity and
not the readout's. Parities need both bits of a pair in the same shot, so these jobs
ask the twin for count tables ("counts"), kept small by at most four couplings (eight
classical bits) per circuit.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from calibration.params import shots
from calibration.tasks import HEAD, TASKS, Outcome, Output, Sweep, Task

# The circuits: measured as written (ZZ), after a basis change to X (h) or to Y (sdg, h),
# and the two readout references. x is the index of the circuit.
BASES = ("ZZ", "XX", "YY", "all 0", "all 1")
TURN = {"ZZ": [], "XX": ["h {q};"], "YY": ["sdg {q};", "h {q};"]}
MAX_COUPLINGS_PER_CIRCUIT = 4  # eight classical bits: at most 256 count keys a circuit


def _pair(coupling: str) -> tuple[int, int]:
    a, b = coupling.split("-")
    return int(a), int(b)


def parity(counts: dict[str, int], first: int, second: int) -> float:
    """<Z⊗Z> of two classical bits (bit 0 rightmost in the keys, as Qiskit prints)."""
    shots_ = sum(counts.values())
    total = 0
    for key, n in counts.items():
        bits = key.replace(" ", "")
        odd = (bits[-1 - first] == "1") != (bits[-1 - second] == "1")
        total += -n if odd else n
    return total / shots_ if shots_ else float("nan")


def ones(counts: dict[str, int], bit: int) -> float:
    shots_ = sum(counts.values())
    return sum(n for key, n in counts.items() if key.replace(" ", "")[-1 - bit] == "1") / shots_


class BellStateFidelity(Task):
    name = "BellStateFidelity"
    description = (
        "Entangling gate quality on a coupling: h and cx make |Φ+>, and <ZZ>, <XX>, <YY>"
        " measured on it (corrected for each qubit's readout flips) give its fidelity"
        " F = (1 + <XX> − <YY> + <ZZ>)/4."
    )
    task_type = "coupling"
    result_format = "counts"
    outputs = (Output("bell_state_fidelity", "", "fidelity of the prepared |Φ+> with the ideal"),)
    parameters = {"shots": shots(4000)}
    min_r_squared = -math.inf  # no curve: the binomial errors are the quality
    x_label: ClassVar[str] = "measured correlator"

    def qubits_per_circuit(self, params: dict[str, Any], num_qubits: int) -> int:
        return 2 * MAX_COUPLINGS_PER_CIRCUIT  # five short circuits: never near the limit

    def groups(self, targets: list[str], per_circuit: int | None = None) -> list[list[str]]:
        """Couplings sharing no qubit, at most four to a circuit (greedy, in order)."""
        groups: list[list[str]] = []
        for coupling in targets:
            a, b = _pair(coupling)
            for group in groups:
                used = {q for c in group for q in _pair(c)}
                if len(group) < MAX_COUPLINGS_PER_CIRCUIT and not used & {a, b}:
                    group.append(coupling)
                    break
            else:
                groups.append([coupling])
        return groups

    def circuit_count(self, params: dict[str, Any]) -> int:
        return len(BASES)

    def build(
        self,
        num_qubits: int,
        group: list[str],
        params: dict[str, Any],
        guesses: dict[str, float] | None = None,
    ) -> Sweep:
        pairs = [_pair(c) for c in group]
        qubits = [q for pair in pairs for q in pair]
        circuits = []
        for basis in BASES:
            lines = [HEAD, f"qreg q[{num_qubits}];", f"creg c[{len(qubits)}];"]
            for a, b in pairs:
                if basis == "all 1":
                    lines += [f"x q[{a}];", f"x q[{b}];"]
                elif basis != "all 0":
                    lines += [f"h q[{a}];", f"cx q[{a}],q[{b}];"]
                    lines += [t.format(q=f"q[{q}]") for q in (a, b) for t in TURN[basis]]
            lines += [f"measure q[{q}] -> c[{i}];" for i, q in enumerate(qubits)]
            circuits.append(" ".join(lines))
        return Sweep([float(i) for i in range(len(BASES))], circuits, self.x_label)

    def analyze_group(
        self, group: list[str], sweep: Sweep, results: list[list[dict]], params: dict[str, Any]
    ) -> list[Outcome]:
        counts = [r["counts"] for job in results for r in job]
        n = params["shots"]
        return [self._one(coupling, 2 * i, counts, n) for i, coupling in enumerate(group)]

    def _one(self, coupling: str, bit: int, counts: list[dict[str, int]], n: int) -> Outcome:
        a, _ = _pair(coupling)
        # Each qubit's flip rate: the mean of P(1 | prepared 0) and P(0 | prepared 1).
        flips = [(ones(counts[3], b) + 1 - ones(counts[4], b)) / 2 for b in (bit, bit + 1)]
        raw = np.array([parity(counts[k], bit, bit + 1) for k in range(3)])  # ZZ, XX, YY
        sigma = np.sqrt(np.maximum(1 - raw**2, 1.0 / n) / n)
        contrast = (1 - 2 * flips[0]) * (1 - 2 * flips[1])
        data = dict(x=[0.0, 1.0, 2.0], y=raw.tolist(), y_err=sigma.tolist(), target=coupling)
        if not contrast > 0.1:
            reason = "the readout cannot tell the states apart (a flip rate of 1/2 or more)"
            return Outcome(a, {}, {}, False, reason, None, **data)
        zz, xx, yy = raw / contrast
        fidelity = (1 + xx - yy + zz) / 4
        # The contrast is measured too: F = 1/4 + S/(4c) with S = ZZ + XX - YY raw, so
        # dF/dc = -S/(4c²); each flip rate is the mean of two binomial estimates.
        flip_var = [
            (ones(counts[3], b) * (1 - ones(counts[3], b))
             + ones(counts[4], b) * (1 - ones(counts[4], b))) / (4 * n)
            for b in (bit, bit + 1)
        ]  # fmt: skip
        contrast_var = (2 * (1 - 2 * flips[1])) ** 2 * flip_var[0] + (
            2 * (1 - 2 * flips[0])
        ) ** 2 * flip_var[1]
        total = raw[0] + raw[1] - raw[2]
        error = float(
            np.sqrt(
                np.sum((sigma / contrast) ** 2) / 16
                + (total / (4 * contrast**2)) ** 2 * contrast_var
            )
        )
        values, errors = {"bell_state_fidelity": float(fidelity)}, {"bell_state_fidelity": error}
        if not fidelity > 0.5:
            reason = f"F {fidelity:.3f} is not above 1/2: the pair is not entangled"
            return Outcome(a, {}, {}, False, reason, None, **data)
        return Outcome(a, values, errors, True, "", None, **data)


TASKS[BellStateFidelity.name] = BellStateFidelity()
