"""Which engine runs which part of a circuit.

Two facts make most circuits cheaper, and more exact, than their width suggests:

- The light cone. Walking the circuit backwards from the measured qubits, an operation is
  kept when it touches a qubit that still influences a measurement. Every gate's noise
  acts on the gate's own qubits and preserves the trace, so an operation outside the
  cone changes no measured distribution: dropping it is exact. (Before this, `x` on nine
  unmeasured qubits made a circuit "wide" and changed the engine, and the answer.)
- Independence. Qubits that never share a kept two-qubit gate stay in a product state,
  so each group of interacting qubits is simulated alone, and the groups' outcomes are
  combined shot by shot: also exact.

Each part then gets the most exact engine that fits: the density matrix up to
`density_matrix_max_qubits`; noisy trajectories (exact in distribution) while one
trajectory per shot fits TRAJECTORY_WORK; stim for a wider Clifford part, which
Pauli-twirls relaxation and so under-estimates decay from |1⟩ (stated in the result);
trajectories shared between shots for a wider non-Clifford part (also stated).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.circuits import Op, Program
from twin.device import SchedulerLimits
from twin.errors import TwinError
from twin.groups import QubitGroups
from twin.sampling import measured_qubits

# Amplitude updates (2^width per op and trajectory) a part may cost: 3-9 s at the 30-90
# ns each measured at 11-14 qubits on two cores (bench/accuracy.py's machine, idle to
# loaded). Below it every shot has its own trajectory.
TRAJECTORY_WORK = 1e8
ENGINES = ("density_matrix", "trajectories", "stim")
STIM_APPROXIMATION = (
    "stim: relaxation is Pauli-twirled, so decay from |1> is under-estimated (T1 acts"
    " about half as strongly; see the twin's docs for the measured bias)"
)


@dataclass(frozen=True)
class Part:
    """One independent group of qubits, its operations, and how it runs."""

    program: Program
    engine: str
    shots: int
    trajectories: int = 0  # the trajectories engine: how many (one per shot: exact)

    @property
    def approximation(self) -> str | None:
        if self.engine == "stim" and any(op.name != "rz" for op in self.program.ops):
            return STIM_APPROXIMATION
        if self.engine == "trajectories" and self.trajectories < self.shots:
            return (
                f"trajectories: {self.trajectories} noise trajectories shared by"
                f" {self.shots} shots (the spread of ~{self.trajectories} shots)"
            )
        return None


def light_cone(program: Program) -> Program:
    """The operations that can influence a measured qubit, in order."""
    live = {q for q, _ in program.measures}
    kept: list[Op] = []
    for op in reversed(program.ops):
        if live.intersection(op.qubits):
            kept.append(op)
            live.update(op.qubits)
    return Program(tuple(reversed(kept)), program.measures, program.num_clbits)


def split(program: Program) -> list[Program]:
    """The program as independent groups of qubits (joined by multi-qubit gates), each
    with its own operations and measurements, ordered by first measured qubit."""
    groups = QubitGroups()
    for op in program.ops:
        groups.join(op.qubits)
    by_root: dict[int, list[int]] = {}
    for q in measured_qubits(program):
        by_root.setdefault(groups.root(q), []).append(q)
    parts = []
    for measured in by_root.values():
        inside = groups.members(measured[0])
        ops = tuple(op for op in program.ops if op.qubits[0] in inside)
        measures = tuple((q, c) for q, c in program.measures if q in inside)
        parts.append(Program(ops, measures, program.num_clbits))
    return parts


def trajectories_affordable(width: int, ops: int) -> int:
    """How many trajectories of `ops` operations on `width` qubits fit TRAJECTORY_WORK."""
    return int(TRAJECTORY_WORK // (2**width * (ops + 1)))


def choose(
    width: int, ops: int, clifford: bool, shots: int, limits: SchedulerLimits
) -> tuple[str, int]:
    """(engine, trajectories) for a part; also the cost estimate's (twin/job_cost.py)."""
    if width <= limits.density_matrix_max_qubits:
        return "density_matrix", 0
    affordable = trajectories_affordable(width, ops) if width <= limits.trajectory_max_qubits else 0
    if affordable >= shots:
        return "trajectories", shots
    if clifford:
        return "stim", 0
    if width <= limits.trajectory_max_qubits:
        return "trajectories", min(shots, max(limits.trajectories, affordable))
    raise TwinError(
        "circuit_too_wide",
        f"a non-Clifford part of the circuit entangles {width} qubits, beyond the trajectory"
        f" engine's {limits.trajectory_max_qubits} (trajectory_max_qubits); Clifford"
        " circuits run at any width",
    )


def engine_for_part(
    part: Program, shots: int, limits: SchedulerLimits, coherent: frozenset[int] = frozenset()
) -> Part:
    width = len(part.active_qubits)
    clifford = part.is_clifford and not coherent.intersection(part.active_qubits)
    engine, trajectories = choose(width, len(part.ops), clifford, shots, limits)
    return Part(part, engine, shots, trajectories)


def plan(
    program: Program,
    shots: int,
    limits: SchedulerLimits,
    engine: str | None = None,
    coherent: frozenset[int] = frozenset(),
) -> list[Part]:
    """The parts of the circuit and the engine of each (`engine` forces one: tests).
    A part on a qubit with a coherent error (`coherent`) is not Clifford: stim can't
    turn a pulse by π/2·(1+ε)."""
    parts = split(light_cone(program))
    if engine is not None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}")
        return [Part(p, engine, shots, shots if engine == "trajectories" else 0) for p in parts]
    return [engine_for_part(p, shots, limits, coherent) for p in parts]
