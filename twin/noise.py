"""What happens to each gate and each readout under an EffectiveNoise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.channels import Relaxation, depolarizing_parameter, excited_population, relaxation
from twin.circuits import Op
from twin.controller import EffectiveNoise

NOISELESS = frozenset({"rz"})  # virtual Z: a frame change, no duration, no error


@dataclass(frozen=True)
class GateNoise:
    depolarizing: float  # p of (1-p)ρ + p·I/d on the gate's qubits
    relaxations: tuple[Relaxation, ...]  # one per gate qubit, in the gate's order


class NoiseModel:
    def __init__(self, noise: EffectiveNoise, temperature_mk: float | None = None) -> None:
        self.noise = noise
        self.temperature_mk = noise.temperature_mk if temperature_mk is None else temperature_mk
        self._gates: dict[tuple[str, tuple[int, ...]], GateNoise | None] = {}

    def gate(self, op: Op) -> GateNoise | None:
        key = (op.name, op.qubits)
        if key not in self._gates:
            self._gates[key] = self._gate(op)
        return self._gates[key]

    def _gate(self, op: Op) -> GateNoise | None:
        if op.name in NOISELESS:
            return None
        if len(op.qubits) == 1:
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
