"""Unitaries of the basis gates and the channels the twin applies with them.

Two-qubit matrices are in the order of the gate's qubits: the first listed qubit is the
more significant index (|q_a q_b>), so CX(a, b) has a as control."""

from __future__ import annotations

import math

import numpy as np

from twin.channels import Relaxation

SX = 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])
X = np.array([[0, 1], [1, 0]], dtype=complex)
ID = np.eye(2, dtype=complex)
CX = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)


def rz(angle: float) -> np.ndarray:
    return np.diag([np.exp(-0.5j * angle), np.exp(0.5j * angle)])


def rx(angle: float) -> np.ndarray:
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


PULSE_ANGLES = {"sx": math.pi / 2, "x": math.pi}  # the drive's rotations about X


def unitary(name: str, angle: float = 0.0) -> np.ndarray:
    if name == "rz":
        return rz(angle)
    return {"sx": SX, "x": X, "id": ID, "delay": ID, "cx": CX}[name]


def unitary_superop(u: np.ndarray) -> np.ndarray:
    """vec(UρU†) = (U ⊗ U*) vec(ρ), vec row-major (row bits, then column bits)."""
    return np.kron(u, u.conj())


def depolarizing_superop(p: float, n: int) -> np.ndarray:
    d = 2**n
    identity = np.eye(d).reshape(-1)
    return (1 - p) * np.eye(d * d) + p * np.outer(identity / d, identity)


def relaxation_superop_1q(r: Relaxation) -> np.ndarray:
    """On vec(ρ) = (ρ00, ρ01, ρ10, ρ11)."""
    pe, g, e2 = r.excited, r.reset, r.coherence
    return np.array(
        [
            [1 - pe * g, 0, 0, (1 - pe) * g],
            [0, e2, 0, 0],
            [0, 0, e2, 0],
            [pe * g, 0, 0, 1 - (1 - pe) * g],
        ],
        dtype=complex,
    )


def relaxation_superop(relaxations: tuple[Relaxation, ...]) -> np.ndarray:
    """The tensor product of per-qubit relaxations, in (rows..., columns...) order."""
    if len(relaxations) == 1:
        return relaxation_superop_1q(relaxations[0])
    a = relaxation_superop_1q(relaxations[0]).reshape(2, 2, 2, 2)  # (r, c, r', c')
    b = relaxation_superop_1q(relaxations[1]).reshape(2, 2, 2, 2)
    return np.einsum("acxz,bdyw->abcdxyzw", a, b).reshape(16, 16)


def relaxation_kraus(r: Relaxation) -> list[np.ndarray]:
    """Kraus operators of the same channel, for trajectories: generalized amplitude
    damping, then the pure dephasing that brings coherence down to e^{-t/T2}."""
    g, pe = r.reset, r.excited
    keep = math.sqrt(1 - g)
    ops = [
        math.sqrt(1 - pe) * np.array([[1, 0], [0, keep]]),
        math.sqrt(1 - pe) * np.array([[0, math.sqrt(g)], [0, 0]]),
    ]
    if pe > 0:
        ops += [
            math.sqrt(pe) * np.array([[keep, 0], [0, 1]]),
            math.sqrt(pe) * np.array([[0, 0], [math.sqrt(g), 0]]),
        ]
    f = r.coherence / keep if keep > 0 else 0.0  # <= 1 because T2 <= 2 T1
    flip = max(0.0, (1 - min(f, 1.0)) / 2)
    z = np.diag([1.0, -1.0])
    out = [math.sqrt(1 - flip) * k for k in ops] + [math.sqrt(flip) * z @ k for k in ops]
    return [k.astype(complex) for k in out if np.any(k)]
