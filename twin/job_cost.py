"""What a job will cost to simulate, estimated before it is accepted.

The engines' costs grow differently: the density matrix with 4^w per gate, trajectories
with 2^w per gate and trajectory (bounded by twin/plan.py's TRAJECTORY_WORK), stim with
gates x shots. The constants were fitted on
a two-core x86-64 machine (bench/job_cost.py prints the estimate beside the measured
time) and rounded up; the worker's wall-clock limit catches what the estimate misses.
"""

from __future__ import annotations

from twin.circuit_input import CircuitSize
from twin.device import SchedulerLimits
from twin.plan import Part, choose

BASIS_OPS_PER_GATE = 4  # rz/sx/x/cx after mapping and routing (measured 2.6-3.5)
TRANSPILE_S_PER_GATE = 1e-4  # 100 qubits, 1,500 gates: 0.10 s
DENSITY_S_PER_ENTRY = 2e-9  # per basis op and entry of the 4^w density matrix (measured 1.2e-9)
DENSITY_S_PER_OP = 5e-5  # the fixed part of each superoperator
TRAJECTORY_S_PER_AMPLITUDE = 3e-8  # per basis op, trajectory and amplitude (noise included)
STIM_S_PER_OP_SHOT = 2e-9
SAMPLE_S_PER_SHOT = 2e-7
CIRCUIT_S = 0.03  # parsing, transpiler set-up, result: what even a one-gate circuit costs


def circuit_seconds(size: CircuitSize, shots: int, limits: SchedulerLimits) -> float:
    """Estimated seconds to transpile and simulate one circuit for `shots` shots. The
    engine is chosen as twin/plan.py will, for the widest group of interacting qubits
    with all of the circuit's gates (an upper bound: the light cone may drop some)."""
    ops = BASIS_OPS_PER_GATE * size.gates + 1
    w = size.largest_group or size.width
    engine, trajectories = choose(w, ops, size.clifford, shots, limits)
    if engine == "density_matrix":
        run = ops * (4**w * DENSITY_S_PER_ENTRY + DENSITY_S_PER_OP)
    elif engine == "stim":
        run = ops * shots * STIM_S_PER_OP_SHOT
    else:
        run = ops * trajectories * 2**w * TRAJECTORY_S_PER_AMPLITUDE
    return CIRCUIT_S + TRANSPILE_S_PER_GATE * size.gates + run + SAMPLE_S_PER_SHOT * shots


def job_seconds(sizes: list[CircuitSize], shots: int, limits: SchedulerLimits) -> float:
    return sum(circuit_seconds(size, shots, limits) for size in sizes)


def planned_seconds(parts: list[Part], shots: int) -> float:
    """The same model on the circuit as it will run: after mapping and routing (which can
    join qubits into a wider part than the written circuit had), after the light cone."""
    total = SAMPLE_S_PER_SHOT * shots
    for part in parts:
        ops = len(part.program.ops) + 1
        w = len(part.program.active_qubits)
        if part.engine == "density_matrix":
            total += ops * (4**w * DENSITY_S_PER_ENTRY + DENSITY_S_PER_OP)
        elif part.engine == "stim":
            total += ops * shots * STIM_S_PER_OP_SHOT
        else:
            total += ops * part.trajectories * 2**w * TRAJECTORY_S_PER_AMPLITUDE
    return total
