"""What happens to each gate and each readout under an EffectiveNoise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.channels import (
    Relaxation,
    average_fidelity,
    depolarizing_parameter,
    excited_population,
    relaxation,
)
from twin.circuits import Op
from twin.controller import EffectiveNoise
from twin.gates import PULSE_ANGLES, rx, rz, unitary

NOISELESS = frozenset({"rz"})  # virtual Z: a frame change, no duration, no error


@dataclass(frozen=True)
class GateNoise:
    depolarizing: float  # p of (1-p)ρ + p·I/d on the gate's qubits
    relaxations: tuple[Relaxation, ...]  # one per gate qubit, in the gate's order


class NoiseModel:
    def __init__(self, noise: EffectiveNoise, temperature_mk: float | None = None) -> None:
        self.noise = noise
        self.temperature_mk = noise.temperature_mk if temperature_mk is None else temperature_mk
        self._gates: dict[tuple[str, tuple[int, ...], float], GateNoise | None] = {}
        self.superops: dict[tuple, np.ndarray] = {}  # twin/density.py's, per op
        self._unitaries: dict[tuple, np.ndarray] = {}
        # Qubits with a coherent error: their gates are no longer Clifford (stim can't).
        self.coherent_qubits = frozenset(
            i for i, q in enumerate(noise.qubits) if q.detuning_mhz or q.amplitude_error
        )

    def unitary(self, op: Op) -> np.ndarray:
        """The op's unitary as the qubit really does it: a pulse over- or under-rotated
        by the qubit's amplitude error, then, over the op's duration, the Z turn of its
        detuning (2π·MHz·µs). Without coherent errors: the ideal gate."""
        key = (op.name, op.qubits, op.angle, op.duration_ns)
        if key not in self._unitaries:
            self._unitaries[key] = self._unitary(op)
        return self._unitaries[key]

    def _unitary(self, op: Op) -> np.ndarray:
        qubits = [self.noise.qubits[i] for i in op.qubits]
        if op.name in PULSE_ANGLES and qubits[0].amplitude_error:
            u = rx(PULSE_ANGLES[op.name] * (1 + qubits[0].amplitude_error))
        else:
            u = unitary(op.name, op.angle)
        duration = self._duration(op)
        if duration <= 0 or not any(q.detuning_mhz for q in qubits):
            return u
        turns = [rz(2 * np.pi * q.detuning_mhz * duration * 1e-3) for q in qubits]
        z = turns[0] if len(turns) == 1 else np.kron(turns[0], turns[1])
        return z @ u

    def _duration(self, op: Op) -> float:
        if op.name in NOISELESS:
            return 0.0
        if op.name == "delay":
            return op.duration_ns
        if len(op.qubits) == 1:
            return self.noise.qubits[op.qubits[0]].gate_time_ns
        edge = self.noise.edges.get(frozenset(op.qubits))
        return edge.gate_time_ns if edge else 0.0

    def gate(self, op: Op) -> GateNoise | None:
        key = (op.name, op.qubits, op.duration_ns)
        if key not in self._gates:
            self._gates[key] = self._gate(op)
        return self._gates[key]

    def _gate(self, op: Op) -> GateNoise | None:
        if op.name in NOISELESS:
            return None
        if op.name == "delay":  # idle: relaxation and dephasing only, no gate error
            error, duration = 0.0, op.duration_ns
        elif len(op.qubits) == 1:
            q = self.noise.qubits[op.qubits[0]]
            error, duration = q.gate_error, q.gate_time_ns
        else:
            edge = self.noise.edges.get(frozenset(op.qubits))
            if edge is None:  # the transpiler routes onto the coupling map
                raise ValueError(f"{op.name} on uncoupled qubits {op.qubits}")
            error, duration = edge.gate_error, edge.gate_time_ns
        relaxations = tuple(
            relaxation(
                self.noise.qubits[i].t1_us,
                self.noise.qubits[i].t2_us,
                duration,
                excited_population(self.noise.qubits[i].frequency_ghz, self.temperature_mk),
            )
            for i in op.qubits
        ) if duration > 0 else ()  # fmt: skip
        p = depolarizing_parameter(error, relaxations) if error > 0 else 0.0
        if p == 0 and not relaxations:
            return None
        return GateNoise(p, relaxations)

    def readout(self, qubit: int) -> np.ndarray:
        """Assignment matrix A[read, prepared]."""
        q = self.noise.qubits[qubit]
        return np.array(
            [
                [1 - q.readout_p1_given_0, q.readout_p0_given_1],
                [q.readout_p1_given_0, 1 - q.readout_p0_given_1],
            ]
        )


def applied_error(configured: float, relaxations: tuple[Relaxation, ...]) -> float:
    """The average gate infidelity the twin really applies: the configured error, or
    relaxation's over the gate time when that alone is larger (then no depolarizing)."""
    relax = 1 - average_fidelity(relaxations) if relaxations else 0.0
    return max(configured, relax)


def describe(noise: EffectiveNoise, temperature_mk: float | None = None) -> dict:
    """The noise a circuit runs under, per qubit and per coupling, as the API shows it:
    every multiplier, override, drift, TLS dip, drive correction and relaxation limit
    applied. Per qubit also the T1 factor of a TLS dip now and the detuning and
    amplitude error before the drive's correction (the qubit's own)."""
    model = NoiseModel(noise, temperature_mk)
    qubits = []
    for i, q in enumerate(noise.qubits):
        sx = model.gate(Op("sx", (i,)))
        tls = noise.tls_t1_factors[i] if noise.tls_t1_factors else 1.0
        own = noise.uncorrected[i] if noise.uncorrected else (q.detuning_mhz, q.amplitude_error)
        qubits.append({
            "qubit": i,
            "t1_us": q.t1_us,
            "t2_us": min(q.t2_us, 2 * q.t1_us),
            "frequency_ghz": q.frequency_ghz,
            "excited_population": excited_population(q.frequency_ghz, model.temperature_mk),
            "readout_p1_given_0": q.readout_p1_given_0,
            "readout_p0_given_1": q.readout_p0_given_1,
            "gate_error_configured": q.gate_error,
            "gate_error": applied_error(q.gate_error, sx.relaxations if sx else ()),
            "gate_time_ns": q.gate_time_ns,
            "detuning_mhz": q.detuning_mhz,
            "amplitude_error": q.amplitude_error,
            "uncorrected_detuning_mhz": own[0],
            "uncorrected_amplitude_error": own[1],
            "tls_t1_factor": tls,
        })  # fmt: skip
    edges = []
    for edge, e in sorted(noise.edges.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(edge)
        cx = model.gate(Op("cx", (a, b)))
        edges.append({
            "qubits": [a, b],
            "gate_error_configured": e.gate_error,
            "gate_error": applied_error(e.gate_error, cx.relaxations if cx else ()),
            "gate_time_ns": e.gate_time_ns,
        })  # fmt: skip
    return {"qubits": qubits, "edges": edges}
