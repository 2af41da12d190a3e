"""Runs one compiled circuit under a noise model and returns counts.

twin/plan.py splits the circuit into independent parts and picks each part's engine;
this module runs the parts and combines their outcomes shot by shot. The common case
(one part on the density matrix) keeps its direct path: exact probabilities, readout
applied to them, one multinomial draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin import clifford, density, trajectories
from twin.circuits import Program
from twin.device import SchedulerLimits
from twin.noise import NoiseModel
from twin.plan import ENGINES, Part, plan
from twin.sampling import (
    bits_of,
    counts_from_bits,
    measured_qubits,
    shuffled_outcomes,
    with_readout_flips,
)


@dataclass(frozen=True)
class Run:
    """How a circuit ran: what a result reports beside its counts."""

    engine: str  # the engine, or several joined by "+" when parts ran differently
    approximation: str | None  # None: the counts are exact samples of the noisy circuit
    parts: tuple[tuple[tuple[int, ...], str], ...]  # (measured qubits, engine) per part


def engine_for(program: Program, limits: SchedulerLimits, shots: int = 1) -> str:
    """The engine(s) the circuit will run on; TwinError if a part is too wide."""
    return _label(plan(program, shots, limits))


def _label(parts: list[Part]) -> str:
    used = {p.engine for p in parts} or {"density_matrix"}
    return "+".join(e for e in ENGINES if e in used)


def run(
    program: Program,
    noise: NoiseModel,
    shots: int,
    rng: np.random.Generator,
    limits: SchedulerLimits,
    engine: str | None = None,
) -> tuple[dict[str, int], Run]:
    parts = plan(program, shots, limits, engine, noise.coherent_qubits)
    notes = [note for p in parts if (note := p.approximation)]
    ran = Run(
        _label(parts),
        "; ".join(dict.fromkeys(notes)) or None,
        tuple((tuple(measured_qubits(p.program)), p.engine) for p in parts),
    )
    if not parts:  # nothing measured
        return {"0" * program.num_clbits: shots} if program.num_clbits else {"": shots}, ran
    if len(parts) == 1 and parts[0].engine == "density_matrix":
        return density.run(parts[0].program, noise, shots, rng), ran
    columns = np.concatenate([_true_bits(p, noise, rng) for p in parts], axis=1)
    order = [q for p in parts for q in measured_qubits(p.program)]
    qubits = measured_qubits(program)
    bits = columns[:, [order.index(q) for q in qubits]]
    return counts_from_bits(with_readout_flips(bits, qubits, noise, rng), program), ran


def _true_bits(part: Part, noise: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """(shots, the part's measured qubits) outcomes before readout errors."""
    width = len(measured_qubits(part.program))
    if part.engine == "stim":
        return clifford.true_bits(part.program, noise, part.shots, rng)
    if part.engine == "density_matrix":
        p = density.probabilities(part.program, noise).reshape(-1)
        counts = rng.multinomial(part.shots, np.clip(p, 0, None) / np.clip(p, 0, None).sum())
    else:
        counts = trajectories.sample(part.program, noise, part.shots, rng, part.trajectories)
    return bits_of(shuffled_outcomes(counts, rng), width)
