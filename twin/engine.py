"""Runs one compiled circuit under a noise model: picks the engine and returns counts.

Exact density matrix while the circuit touches at most `density_matrix_max_qubits`
qubits; beyond, stim for Clifford circuits (any width) and noisy trajectories for the
rest, up to `trajectory_max_qubits`.
"""

from __future__ import annotations

import numpy as np

from twin import clifford, density, trajectories
from twin.circuits import Program
from twin.device import SchedulerLimits
from twin.errors import TwinError
from twin.noise import NoiseModel
from twin.sampling import counts_from_bits, sample_counts


def engine_for(program: Program, limits: SchedulerLimits) -> str:
    width = len(program.active_qubits)
    if width <= limits.density_matrix_max_qubits:
        return "density_matrix"
    if program.is_clifford:
        return "stim"
    if width <= limits.trajectory_max_qubits:
        return "trajectories"
    raise TwinError(
        "circuit_too_wide",
        f"a non-Clifford circuit on {width} qubits is beyond the trajectory engine's"
        f" {limits.trajectory_max_qubits}; Clifford circuits run at any width",
    )


def run(
    program: Program,
    noise: NoiseModel,
    shots: int,
    rng: np.random.Generator,
    limits: SchedulerLimits,
    engine: str | None = None,
) -> tuple[dict[str, int], str]:
    engine = engine or engine_for(program, limits)
    if engine == "density_matrix":
        return density.run(program, noise, shots, rng), engine
    if engine == "stim":
        return counts_from_bits(clifford.sample_bits(program, noise, shots, rng), program), engine
    p_true = trajectories.run(program, noise, shots, rng, limits.trajectories)
    return sample_counts(p_true, program, noise, shots, rng), engine
