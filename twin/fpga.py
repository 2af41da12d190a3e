"""The FPGA controller's physics: cryostat temperature, readout configuration, and pulse
schedules (gate-like action lists) run as circuits.

Cryostat: T1 and T2 follow the reference's transmon curve of the mixing-chamber
temperature (15 mK → 1.0, 30 → 0.85, 50 → 0.60, 100 → 0.20; linear in between, flat
outside), and each qubit's thermal excited-state population follows Boltzmann at its
frequency (twin/channels.excited_population). Explicit multipliers override the curve.

Readout: a Gaussian discriminator. The configured assignment errors are taken to hold at
the reference point (1,000 ns integration, threshold 0.5 between the two blobs). Each
error fixes its blob's width there: p(1|0) = Q(θ/σ₀), p(0|1) = Q((1-θ)/σ₁) with
Q(x) = 1 - Φ(x). Integrating for τ narrows the blobs as σ ∝ 1/√τ; a threshold θ moves
the boundary toward one blob. A longer integration also lets an excited qubit decay
before the end: half of those decays read wrong, adding (1 - e^(-(τ-τ₀)/T1))/2 to
p(0|1) for τ > τ₀. Both errors are capped at 0.5.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from twin.errors import TwinError

CRYO_CURVE = ((15.0, 1.0), (30.0, 0.85), (50.0, 0.60), (100.0, 0.20))
REFERENCE_INTEGRATION_NS = 1000.0
REFERENCE_THRESHOLD = 0.5
STAGES_MK = {"still_mk": 800.0, "cold_plate_mk": 100.0, "four_k_stage_mk": 4000.0}
SCHEDULE_GATES = {  # name -> qubits it takes
    "id": 1, "x": 1, "y": 1, "z": 1, "h": 1, "s": 1, "sdg": 1, "t": 1, "tdg": 1, "sx": 1,
    "rx": 1, "ry": 1, "rz": 1, "cx": 2, "cz": 2, "swap": 2, "measure": 1,
}  # fmt: skip
ROTATIONS = frozenset({"rx", "ry", "rz"})
MAX_ACTIONS = 10_000
_N = NormalDist()


def coherence_multiplier(temperature_mk: float) -> float:
    """The reference's transmon curve: T1/T2 multiplier at a mixing-chamber temperature."""
    points = CRYO_CURVE
    if temperature_mk <= points[0][0]:
        return points[0][1]
    for (t0, m0), (t1, m1) in zip(points, points[1:], strict=False):
        if temperature_mk <= t1:
            return m0 + (m1 - m0) * (temperature_mk - t0) / (t1 - t0)
    return points[-1][1]


def readout_errors(
    p1_given_0: float, p0_given_1: float, t1_us: float, integration_ns: float, threshold: float
) -> tuple[float, float]:
    """(p(1|0), p(0|1)) under a readout configuration; see the module docstring."""
    if integration_ns == REFERENCE_INTEGRATION_NS and threshold == REFERENCE_THRESHOLD:
        return p1_given_0, p0_given_1
    scale = math.sqrt(REFERENCE_INTEGRATION_NS / integration_ns)

    def moved(p: float, distance: float) -> float:
        if p < 1e-12:  # 1 - p rounds to 1: no blob width to infer; the error stays ~0
            return p
        sigma = REFERENCE_THRESHOLD / _N.inv_cdf(1 - min(p, 0.4999)) * scale
        return 1 - _N.cdf(distance / sigma) if distance > 0 else 0.5

    p10 = moved(p1_given_0, threshold)
    p01 = moved(p0_given_1, 1 - threshold)
    extra = integration_ns - REFERENCE_INTEGRATION_NS
    if extra > 0 and t1_us > 0:
        p01 += (1 - math.exp(-extra / (t1_us * 1000))) / 2
    return min(0.5, p10), min(0.5, p01)


def check_readout_config(payload: dict[str, Any], num_qubits: int) -> None:
    channels = payload.get("channels")
    if channels is not None and (
        not isinstance(channels, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels)
    ):
        raise TwinError("invalid_payload", "channels must be a list of qubit indices")
    for c in channels or []:
        if not 0 <= c < num_qubits:
            raise TwinError("qubit_out_of_range", f"channel {c} is outside 0..{num_qubits - 1}")
    tau = payload.get("integration_time_ns", REFERENCE_INTEGRATION_NS)
    if not isinstance(tau, int | float) or isinstance(tau, bool) or not 10 <= tau <= 100_000:
        raise TwinError("invalid_payload", "integration_time_ns must lie in [10, 100000]")
    thresholds = payload.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise TwinError("invalid_payload", "thresholds must map a channel to a number")
    for key, value in thresholds.items():
        if not (str(key).isascii() and str(key).isdigit()) or not 0 <= int(key) < num_qubits:
            raise TwinError("qubit_out_of_range", f"threshold for unknown channel '{key}'")
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1:
            raise TwinError("invalid_payload", f"threshold '{key}' must lie in (0, 1)")


def check_cryo(payload: dict[str, Any]) -> None:
    for key, value in payload.items():
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise TwinError("invalid_payload", f"{key} must be a finite number")
        if value <= 0:
            raise TwinError("invalid_payload", f"{key} must be positive")


def check_schedule(actions: Any, n_qubits: Any, num_qubits: int) -> list[dict[str, Any]]:
    """The schedule's actions, normalised; TwinError names the first bad action."""
    if not isinstance(n_qubits, int) or isinstance(n_qubits, bool) or not 1 <= n_qubits:
        raise TwinError("invalid_schedule", "n_qubits must be a positive integer")
    if n_qubits > num_qubits:
        raise TwinError(
            "too_many_qubits", f"n_qubits {n_qubits} exceeds the backend's {num_qubits} qubits"
        )
    if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_ACTIONS:
        raise TwinError("invalid_schedule", f"actions must be a list of 1..{MAX_ACTIONS}")
    out = []
    for i, action in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(action, dict):
            raise TwinError("invalid_schedule", f"{where} must be an object")
        gate, qubits = action.get("gate"), action.get("qubits")
        if gate not in SCHEDULE_GATES:
            raise TwinError(
                "invalid_schedule",
                f"{where}: unknown gate {gate!r}; allowed: {sorted(SCHEDULE_GATES)}",
            )
        extra = sorted(set(action) - {"gate", "qubits", "angle"})
        if extra:
            raise TwinError("invalid_schedule", f"{where} ({gate}): unknown fields {extra}")
        if not isinstance(qubits, list) or len(qubits) != SCHEDULE_GATES[gate]:
            raise TwinError(
                "invalid_schedule",
                f"{where} ({gate}): qubits must list {SCHEDULE_GATES[gate]} qubit(s)",
            )
        for q in qubits:
            if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q < n_qubits:
                raise TwinError(
                    "invalid_schedule",
                    f"{where} ({gate}): qubit {q!r} is outside 0..{n_qubits - 1}",
                )
        if len(set(qubits)) != len(qubits):
            raise TwinError("invalid_schedule", f"{where} ({gate}): repeated qubit")
        angle = action.get("angle")
        if (gate in ROTATIONS) != (angle is not None):
            need = "needs an angle" if gate in ROTATIONS else "takes no angle"
            raise TwinError("invalid_schedule", f"{where} ({gate}) {need}")
        if angle is not None and (
            not isinstance(angle, int | float)
            or isinstance(angle, bool)
            or not math.isfinite(angle)
        ):
            raise TwinError("invalid_schedule", f"{where} ({gate}): angle must be a number")
        out.append(
            {"gate": gate, "qubits": qubits, **({"angle": angle} if angle is not None else {})}
        )
    return out


def schedule_qasm(actions: list[dict[str, Any]], n_qubits: int) -> str:
    """The schedule as OpenQASM 2.0; every qubit is measured at the end unless the
    schedule measures some itself (then those, in their order)."""
    lines = ['OPENQASM 2.0; include "qelib1.inc";', f"qreg q[{n_qubits}]; creg c[{n_qubits}];"]
    measured = []
    for a in actions:
        q = a["qubits"]
        if a["gate"] == "measure":
            measured.append(q[0])
            continue
        args = f"({a['angle']!r})" if "angle" in a else ""
        lines.append(f"{a['gate']}{args} " + ",".join(f"q[{i}]" for i in q) + ";")
    for i in measured or range(n_qubits):
        lines.append(f"measure q[{i}] -> c[{i}];")
    return "\n".join(lines)
