"""Exact density-matrix simulation for circuits on few qubits.

ρ is kept as a tensor with one axis per row bit and one per column bit of the qubits
touched so far: a qubit joins (in |0⟩) at its first gate, so a GHZ chain pays for its
full width only at the end. Each gate is one superoperator (unitary, then the
depolarizing part, then relaxation) applied to its qubits' row and column axes;
consecutive one-qubit gates on a qubit are multiplied into one superoperator first.
"""

from __future__ import annotations

import numpy as np

from twin.circuits import Program
from twin.gates import depolarizing_superop, relaxation_superop, unitary_superop
from twin.noise import NoiseModel
from twin.sampling import measured_qubits, sample_counts


class DensityMatrix:
    """ρ as a tensor whose axes are labelled ("r", i) / ("c", i) for local qubit i; the
    labels say where each axis is, so a gate's result is never transposed back."""

    def __init__(self) -> None:
        self.local: dict[int, int] = {}  # physical qubit -> local index
        self.rho: np.ndarray = np.ones((), dtype=complex)
        self.labels: list[tuple[str, int]] = []

    def apply(self, superop: np.ndarray, qubits: tuple[int, ...]) -> None:
        """A superoperator on `qubits` (rows of the gate's qubits, then columns). A qubit
        not yet in ρ joins in |0><0|: only the superoperator's columns for that input
        are used, so joining costs nothing beyond the gate itself."""
        k = len(qubits)
        new = [q not in self.local for q in qubits]
        for q, is_new in zip(qubits, new, strict=True):
            if is_new:
                self.local[q] = len(self.local)
        old = [self.local[q] for q, is_new in zip(qubits, new, strict=True) if not is_new]
        s = superop.reshape((2,) * (4 * k))
        pick = tuple(0 if is_new else slice(None) for is_new in new)
        s = s[(slice(None),) * (2 * k) + pick + pick].reshape(4**k, 4 ** len(old))
        moved_labels = [("r", i) for i in old] + [("c", i) for i in old]
        src = [self.labels.index(label) for label in moved_labels]
        rest = [label for label in self.labels if label not in moved_labels]
        moved = np.moveaxis(self.rho, src, list(range(len(src))))
        out = (s @ moved.reshape(4 ** len(old), -1)).reshape(
            (2,) * (2 * k) + moved.shape[len(src) :]
        )
        self.labels = (
            [("r", self.local[q]) for q in qubits] + [("c", self.local[q]) for q in qubits] + rest
        )
        self.rho = out

    def probabilities(self, qubits: list[int]) -> np.ndarray:
        """P over `qubits` (axis i = qubits[i]), the other qubits traced out. A measured
        qubit that no gate touched is |0>."""
        m = len(self.local)
        rows = [self.labels.index(("r", i)) for i in range(m)]
        cols = [self.labels.index(("c", i)) for i in range(m)]
        subscripts = [0] * (2 * m)
        for axis in range(m):
            subscripts[rows[axis]] = subscripts[cols[axis]] = axis
        diag = np.real(np.einsum(self.rho, subscripts, list(range(m)))) if m else np.ones(())
        out: list[int | None] = [self.local.get(q) for q in qubits]
        kept = [i for i in out if i is not None]
        drop = tuple(i for i in range(m) if i not in kept)
        p = diag.sum(axis=drop) if drop else diag
        p = np.moveaxis(p, [sorted(kept).index(i) for i in kept], list(range(len(kept))))
        ground = np.array([1.0, 0.0])
        for axis, index in enumerate(out):  # untouched measured qubits: |0>
            if index is None:
                p = np.moveaxis(np.multiply.outer(p, ground), -1, axis)
        return p


def gate_superop(op, noise: NoiseModel) -> np.ndarray:
    """The op's superoperator, built once per NoiseModel (a long sequence repeats a few
    gates thousands of times: building each anew cost more than applying it)."""
    key = (op.name, op.qubits, op.angle, op.duration_ns)
    cached = noise.superops.get(key)
    if cached is None:
        cached = noise.superops[key] = _gate_superop(op, noise)
    return cached


def _gate_superop(op, noise: NoiseModel) -> np.ndarray:
    s = unitary_superop(noise.unitary(op))
    g = noise.gate(op)
    if g is not None:
        if g.depolarizing > 0:
            s = depolarizing_superop(g.depolarizing, len(op.qubits)) @ s
        if g.relaxations:
            s = relaxation_superop(g.relaxations) @ s
    return s


def run(program: Program, noise: NoiseModel, shots: int, rng: np.random.Generator):
    return sample_counts(probabilities(program, noise), program, noise, shots, rng)


def probabilities(program: Program, noise: NoiseModel) -> np.ndarray:
    """Exact P(true outcome) over measured_qubits(program), before readout errors."""
    dm = DensityMatrix()
    pending: dict[int, np.ndarray] = {}  # qubit -> product of its queued 1q superops

    def flush(q: int) -> None:
        if q in pending:
            dm.apply(pending.pop(q), (q,))

    for op in program.ops:
        s = gate_superop(op, noise)
        if len(op.qubits) == 1:
            q = op.qubits[0]
            pending[q] = s @ pending[q] if q in pending else s
            continue
        for q in op.qubits:
            flush(q)
        dm.apply(s, op.qubits)
    for q in list(pending):
        flush(q)
    return dm.probabilities(measured_qubits(program))
