"""Noisy state-vector trajectories, for non-Clifford circuits too wide for ρ.

Each trajectory is a state vector; after every gate a Pauli is drawn for the
depolarizing part and one Kraus operator of each qubit's relaxation, with its Born
probability. Trajectories run in chunks (as a leading array axis) to bound memory; each
contributes shots/trajectories samples from its final outcome distribution.
"""

from __future__ import annotations

import numpy as np

from twin.circuits import Program
from twin.gates import relaxation_kraus
from twin.noise import NoiseModel
from twin.sampling import measured_qubits

PAULIS = [
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]], dtype=complex),
    np.array([[1, 0], [0, -1]], dtype=complex),
]
MAX_AMPLITUDES = 2**24  # per chunk: 256 MiB of complex128


def _apply(psi: np.ndarray, u: np.ndarray, axes: list[int]) -> np.ndarray:
    """u (2^k × 2^k) on the given axes of psi (axis 0 is the trajectory)."""
    k = len(axes)
    out = np.tensordot(u.reshape((2,) * (2 * k)), psi, axes=(list(range(k, 2 * k)), axes))
    return np.moveaxis(out, list(range(k)), axes)


def _noise(psi, op, noise: NoiseModel, local, rng):
    g = noise.gate(op)
    if g is None:
        return psi
    axes = [local[q] + 1 for q in op.qubits]
    n = len(axes)
    t, m = psi.shape[0], psi.ndim - 1
    if g.depolarizing > 0:
        hit = rng.random(t) < g.depolarizing * (4**n - 1) / 4**n
        if hit.any():
            which = rng.integers(1, 4**n, size=t)
            for idx in np.unique(which[hit]):
                sel = hit & (which == idx)
                pauli = PAULIS[idx % 4] if n == 1 else np.kron(PAULIS[idx // 4], PAULIS[idx % 4])
                psi[sel] = _apply(psi[sel], pauli, axes)
    for axis, r in zip(axes, g.relaxations, strict=True):
        kraus = relaxation_kraus(r)
        moved = np.moveaxis(psi, axis, 1).reshape(t, 2, -1)
        rho = np.einsum("tar,tbr->tab", moved, moved.conj())  # the qubit's reduced state
        probs = np.stack([np.real(np.einsum("ab,tba->t", k.conj().T @ k, rho)) for k in kraus])
        probs = np.clip(probs, 0, None)
        probs /= probs.sum(axis=0)
        cumulative = np.cumsum(probs, axis=0)
        choice = (rng.random(t)[None, :] > cumulative).sum(axis=0)
        choice = np.minimum(choice, len(kraus) - 1)  # rounding at the top of the cumsum
        for i in np.unique(choice):
            sel = choice == i
            norm = np.sqrt(np.maximum(probs[i, sel], 1e-300))
            psi[sel] = _apply(psi[sel], kraus[i], [axis]) / norm.reshape((-1,) + (1,) * m)
    return psi


def sample(
    program: Program,
    noise: NoiseModel,
    shots: int,
    rng: np.random.Generator,
    trajectories: int,
) -> np.ndarray:
    """Counts of each true outcome (before readout errors) over
    measured_qubits(program), as a flat array (qubits[0] most significant)."""
    active = program.active_qubits
    local = {q: i for i, q in enumerate(active)}
    m = len(active)
    total = max(1, min(trajectories, shots))
    chunk = max(1, min(total, MAX_AMPLITUDES // 2**m))
    measured = measured_qubits(program)
    counts = np.zeros(2 ** len(measured), dtype=np.int64)
    # Shots per trajectory: as equal as they can be, the first trajectories one more.
    per = np.full(total, shots // total, dtype=np.int64)
    per[: shots % total] += 1
    done = 0
    while done < total:
        t = min(chunk, total - done)
        psi = np.zeros((t,) + (2,) * m, dtype=complex)
        psi[(slice(None),) + (0,) * m] = 1
        for op in program.ops:
            psi = _apply(psi, noise.unitary(op), [local[q] + 1 for q in op.qubits])
            psi = _noise(psi, op, noise, local, rng)
        probs = np.abs(psi) ** 2
        keep = [local[q] + 1 for q in measured]
        drop = tuple(a for a in range(1, m + 1) if a not in keep)
        p = probs.sum(axis=drop) if drop else probs
        order = sorted(keep)
        p = np.moveaxis(p, [order.index(a) + 1 for a in keep], list(range(1, len(keep) + 1)))
        p = p.reshape(t, -1)
        p /= p.sum(axis=1, keepdims=True)
        counts += rng.multinomial(per[done : done + t], p).sum(axis=0)
        done += t
    return counts
