"""What a job will cost to simulate, estimated before it is accepted.

The engines' costs grow differently: the density matrix with 4^w per gate, trajectories
with 2^w per gate and trajectory, stim with gates x shots. The constants were fitted on
a two-core x86-64 machine (bench/job_cost.py prints the estimate beside the measured
time) and rounded up; the worker's wall-clock limit catches what the estimate misses.
"""

from __future__ import annotations

from twin.circuit_input import CircuitSize
from twin.device import SchedulerLimits
from twin.errors import TwinError

BASIS_OPS_PER_GATE = 4  # rz/sx/x/cx after mapping and routing (measured 2.6-3.5)
TRANSPILE_S_PER_GATE = 1e-4  # 100 qubits, 1,500 gates: 0.10 s
DENSITY_S_PER_ENTRY = 2e-9  # per basis op and entry of the 4^w density matrix (measured 1.2e-9)
DENSITY_S_PER_OP = 5e-5  # the fixed part of each superoperator
TRAJECTORY_S_PER_AMPLITUDE = 3e-8  # per basis op, trajectory and amplitude (noise included)
STIM_S_PER_OP_SHOT = 2e-9
SAMPLE_S_PER_SHOT = 2e-7
CIRCUIT_S = 0.03  # parsing, transpiler set-up, result: what even a one-gate circuit costs


def engine_for_size(size: CircuitSize, limits: SchedulerLimits) -> str:
    """The engine the worker will pick (twin.engine.engine_for), from the parsed size."""
    if size.width <= limits.density_matrix_max_qubits:
        return "density_matrix"
    if size.clifford:
        return "stim"
    if size.width <= limits.trajectory_max_qubits:
        return "trajectories"
    raise TwinError(
        "circuit_too_wide",
        f"a non-Clifford circuit on {size.width} qubits is beyond the trajectory engine's"
        f" {limits.trajectory_max_qubits} (trajectory_max_qubits); Clifford circuits run at"
        " any width",
    )


def circuit_seconds(size: CircuitSize, shots: int, limits: SchedulerLimits) -> float:
    """Estimated seconds to transpile and simulate one circuit for `shots` shots."""
    ops = BASIS_OPS_PER_GATE * size.gates + 1
    w = size.width
    engine = engine_for_size(size, limits)
    if engine == "density_matrix":
        run = ops * (4**w * DENSITY_S_PER_ENTRY + DENSITY_S_PER_OP)
    elif engine == "stim":
        run = ops * shots * STIM_S_PER_OP_SHOT
    else:
        run = ops * min(limits.trajectories, shots) * 2**w * TRAJECTORY_S_PER_AMPLITUDE
    return CIRCUIT_S + TRANSPILE_S_PER_GATE * size.gates + run + SAMPLE_S_PER_SHOT * shots


def job_seconds(sizes: list[CircuitSize], shots: int, limits: SchedulerLimits) -> float:
    return sum(circuit_seconds(size, shots, limits) for size in sizes)
