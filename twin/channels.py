"""Gate noise per the standard device construction (as Qiskit Aer's device models).

For a gate of duration t on qubits with (T1, T2): thermal relaxation on each qubit
(T2 clamped to 2·T1, ground-state reset with the excited population `p_exc`), then a
depolarizing part sized so that the channel's average gate infidelity equals the
configured gate error. If relaxation alone already exceeds it, no depolarizing part.
The composite is applied depolarizing first, then relaxation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Relaxation:
    """One qubit's relaxation over one gate: the populations move toward the thermal
    state by `reset`, coherences shrink by `coherence`."""

    reset: float  # 1 - exp(-t/T1)
    coherence: float  # exp(-t/T2)
    excited: float = 0.0  # thermal excited-state population

    @property
    def trace_of_superop(self) -> float:
        # diag of the superoperator: (1 - p_e r) + (1 - (1 - p_e) r) + 2 e^{-t/T2}
        return 2 - self.reset + 2 * self.coherence


def relaxation(t1_us: float, t2_us: float, time_ns: float, excited: float = 0.0) -> Relaxation:
    t1 = t1_us * 1e3
    t2 = min(t2_us * 1e3, 2 * t1)
    return Relaxation(
        reset=1 - math.exp(-time_ns / t1) if t1 > 0 else 1.0,
        coherence=math.exp(-time_ns / t2) if t2 > 0 else 0.0,
        excited=excited,
    )


def average_fidelity(relaxations: tuple[Relaxation, ...]) -> float:
    """Average gate fidelity of a tensor product of relaxations: (d·F_pro + 1)/(d + 1)."""
    d = 2 ** len(relaxations)
    process = math.prod(r.trace_of_superop for r in relaxations) / d**2
    return (d * process + 1) / (d + 1)


def depolarizing_parameter(gate_error: float, relaxations: tuple[Relaxation, ...]) -> float:
    """p of the n-qubit depolarizing channel (1-p)ρ + p·I/d that, composed with the
    relaxations, has average gate infidelity `gate_error` (0 if relaxation exceeds it)."""
    n = len(relaxations)
    d = 2**n
    relax_fid = average_fidelity(relaxations) if relaxations else 1.0
    relax_infid = 1 - relax_fid
    if gate_error <= relax_infid:
        return 0.0
    error = min(gate_error, d / (d + 1))
    p = d * (error - relax_infid) / (d * relax_fid - 1)
    return min(p, 4**n / (4**n - 1))


def excited_population(frequency_ghz: float, temperature_mk: float) -> float:
    """Maxwell-Boltzmann population of |1> for a qubit at `frequency_ghz`."""
    if temperature_mk <= 0:
        return 0.0
    return 1 / (1 + math.exp(47.99243 * frequency_ghz / temperature_mk))
