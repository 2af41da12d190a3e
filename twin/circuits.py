"""Circuits in, the twin's instruction list out.

Circuits arrive parsed (twin/circuit_input.py screens and parses what clients send). The
transpiler maps the
circuit to the backend's basis gates and routes it onto the coupling map (inserting
SWAPs as CX triples), so a 2-qubit gate on an uncoupled pair is routed, not refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Measure
from qiskit.transpiler import CouplingMap

from twin.device import Device
from twin.errors import TwinError

# Terminal measurements only: no resets, no classically controlled gates.
UNSUPPORTED = frozenset(
    {"reset", "initialize", "delay", "if_else", "while_loop", "for_loop", "switch_case"}
)


@dataclass(frozen=True)
class Op:
    name: str  # a basis gate: rz, sx, x, id, cx
    qubits: tuple[int, ...]  # physical qubits
    angle: float = 0.0  # rz only


@dataclass(frozen=True)
class Program:
    """A transpiled circuit: gates on physical qubits, then terminal measurements."""

    ops: tuple[Op, ...]
    measures: tuple[tuple[int, int], ...]  # (physical qubit, classical bit)
    num_clbits: int

    @property
    def active_qubits(self) -> tuple[int, ...]:
        seen: dict[int, None] = {}
        for op in self.ops:
            for q in op.qubits:
                seen.setdefault(q)
        for q, _ in self.measures:
            seen.setdefault(q)
        return tuple(seen)

    @property
    def is_clifford(self) -> bool:
        return all(op.name != "rz" or _quarter_turns(op.angle) is not None for op in self.ops)


def _quarter_turns(angle: float) -> int | None:
    k = angle / (math.pi / 2)
    return round(k) % 4 if abs(k - round(k)) < 1e-9 else None


def compile_for(qc: QuantumCircuit, device: Device, seed: int = 0) -> Program:
    """Transpile onto the device and flatten to Ops; only terminal measurements."""
    if qc.num_qubits > device.num_qubits:
        raise TwinError(
            "too_many_qubits",
            f"the circuit uses {qc.num_qubits} qubits; {device.name} has {device.num_qubits}",
        )
    unsupported = {i.operation.name for i in qc.data} & UNSUPPORTED
    if unsupported:
        raise TwinError("unsupported_instruction", f"the twin does not run {sorted(unsupported)}")
    coupling = CouplingMap([list(e) for e in device.coupling_map])
    coupling.make_symmetric()
    tc = transpile(
        qc,
        basis_gates=list(device.basis_gates),
        coupling_map=coupling,
        optimization_level=1,
        seed_transpiler=seed,
    )
    ops: list[Op] = []
    measures: list[tuple[int, int]] = []
    measured: set[int] = set()
    for inst in tc.data:
        qubits = tuple(tc.find_bit(q).index for q in inst.qubits)
        op = inst.operation
        if isinstance(op, Measure):
            measures.append((qubits[0], tc.find_bit(inst.clbits[0]).index))
            measured.add(qubits[0])
            continue
        if op.name == "barrier":
            continue
        if measured & set(qubits):
            raise TwinError(
                "mid_circuit_measurement", "gates after a measurement are not supported"
            )
        angle = float(op.params[0]) if op.name == "rz" else 0.0
        ops.append(Op(op.name, qubits, angle))
    return Program(tuple(ops), tuple(measures), tc.num_clbits)
