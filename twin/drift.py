"""Slow, seeded drift of a backend's noise: a function of the drift seed and the clock
alone (no state, no process-dependent hash), so the same seed and time give the same
values in every process, on every run.

- Error rates: a multiplier 1 + a·sin(2πt/period + φ_q) on gate and readout errors.
- Coherent errors: each qubit's detuning and amplitude error wander around their
  configured values: smooth value noise, a seeded value in [-1, 1] every `period_s`,
  cosine-interpolated in between, times the configured peak.
- TLS-like T1 dips: a seeded share of the qubits (`tls_fraction`) each has a two-level
  system that now and then couples in. Time is cut into windows of `tls_window_s` (each
  qubit's shifted by a seeded offset); in a window, with probability `tls_probability`,
  T1 drops to a seeded factor in [`tls_t1_factor_min`, `tls_t1_factor_max`] for
  `tls_dip_s` seconds from a seeded start, then recovers.
"""

from __future__ import annotations

import math
from functools import lru_cache

from twin.device import Drift

_MASK = (1 << 64) - 1
# Streams of seeded values, one per use: a value of one never correlates with another's.
_DETUNING, _AMPLITUDE, _TLS_PICK, _TLS_OFFSET, _TLS_DIP, _TLS_START, _TLS_DEPTH = range(1, 8)


def _mix(x: int) -> int:
    """splitmix64's finalizer: 64 bits in, 64 well-mixed bits out."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def unit(*keys: int) -> float:
    """A uniform value in [0, 1) fixed by the integer keys (negative ones too)."""
    h = 0
    for key in keys:
        h = _mix(h ^ (key & _MASK))
    return (h >> 11) / float(1 << 53)


def error_multipliers(drift: Drift, num_qubits: int, amplitude: float, t: float):
    """Per qubit 1 + amplitude·sin(2πt/period + φ_q), φ_q fixed by the seed (never
    below 0). `amplitude` already carries the scenario and the controller's scale."""
    if amplitude == 0:
        return tuple(1.0 for _ in range(num_qubits))
    out = []
    for q in range(num_qubits):
        phase = ((drift.seed * 7919 + q * 104729) % 10007) / 10007 * 2 * math.pi
        out.append(max(0.0, 1 + amplitude * math.sin(2 * math.pi * t / drift.period_s + phase)))
    return tuple(out)


def wander(seed: int, stream: int, qubit: int, t: float, period_s: float) -> float:
    """Smooth seeded noise in [-1, 1]: knots every `period_s`, cosine-interpolated."""
    x = t / period_s
    k = math.floor(x)
    a = 2 * unit(seed, stream, qubit, k) - 1
    b = 2 * unit(seed, stream, qubit, k + 1) - 1
    w = (1 - math.cos(math.pi * (x - k))) / 2
    return a + (b - a) * w


def coherent_offsets(
    drift: Drift, num_qubits: int, detuning_mhz: float, amplitude_error: float, t: float
) -> tuple[tuple[float, float], ...]:
    """Per qubit (detuning offset in MHz, amplitude-error offset) at time t: the
    configured peaks times each qubit's wander. Zero peaks: zeros."""
    out = []
    for q in range(num_qubits):
        d = (
            detuning_mhz * wander(drift.seed, _DETUNING, q, t, drift.period_s)
            if detuning_mhz
            else 0.0
        )
        e = (
            amplitude_error * wander(drift.seed, _AMPLITUDE, q, t, drift.period_s)
            if amplitude_error
            else 0.0
        )
        out.append((d, e))
    return tuple(out)


@lru_cache(maxsize=256)
def tls_qubits(seed: int, num_qubits: int, fraction: float) -> frozenset[int]:
    """The qubits with a TLS: round(fraction·n) of them, a seeded choice."""
    k = round(fraction * num_qubits)
    order = sorted(range(num_qubits), key=lambda q: unit(seed, _TLS_PICK, q))
    return frozenset(order[:k])


def tls_factor(drift: Drift, qubit: int, t: float) -> float:
    """The T1 factor of a TLS qubit at time t: 1 outside its dips."""
    window, dip = drift.tls_window_s, drift.tls_dip_s
    shifted = t + unit(drift.seed, _TLS_OFFSET, qubit) * window
    k = math.floor(shifted / window)
    if unit(drift.seed, _TLS_DIP, qubit, k) >= drift.tls_probability:
        return 1.0
    start = unit(drift.seed, _TLS_START, qubit, k) * (window - dip)
    into = shifted - k * window
    if not start <= into < start + dip:
        return 1.0
    low, high = drift.tls_t1_factor_min, drift.tls_t1_factor_max
    return low + unit(drift.seed, _TLS_DEPTH, qubit, k) * (high - low)


def tls_factors(drift: Drift, num_qubits: int, fraction: float, t: float) -> tuple[float, ...]:
    """Per qubit, the T1 factor of its TLS at time t (1: no TLS, or no dip now)."""
    if fraction <= 0:
        return tuple(1.0 for _ in range(num_qubits))
    affected = tls_qubits(drift.seed, num_qubits, fraction)
    return tuple(tls_factor(drift, q, t) if q in affected else 1.0 for q in range(num_qubits))
