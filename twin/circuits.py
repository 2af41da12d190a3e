"""Circuits in, the twin's instruction list out.

OpenQASM 2.0 is parsed by qiskit's parser (maintained, in Rust; its errors name line and
column); circuit dicts are turned into the same QuantumCircuit. The transpiler maps the
circuit to the backend's basis gates and routes it onto the coupling map (inserting
SWAPs as CX triples), so a 2-qubit gate on an uncoupled pair is routed, not refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit, qasm2, transpile
from qiskit.circuit import Measure
from qiskit.transpiler import CouplingMap

from twin.device import Device

MAX_DICT_GATES = 100_000
# Terminal measurements only: no resets, no classically controlled gates.
UNSUPPORTED = frozenset(
    {"reset", "initialize", "delay", "if_else", "while_loop", "for_loop", "switch_case"}
)


class CircuitError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def parse(circuit: str | dict[str, Any]) -> QuantumCircuit:
    if isinstance(circuit, str):
        try:
            return qasm2.loads(circuit)
        except qasm2.QASM2ParseError as err:
            # The parser says '"<input>:4,0: 'foo' is not defined in this scope"'.
            text = str(err)
            where = re.search(r"<input>:(\d+),(\d+): (.*)", text, re.S)
            if where:
                line, column, what = where.groups()
                text = f"line {line}, column {column}: {what.rstrip(chr(34) + chr(39))}"
            raise CircuitError("invalid_qasm", text) from err
    return from_dict(circuit)


def from_dict(spec: dict[str, Any]) -> QuantumCircuit:
    """{"num_qubits": n, "gates": [{"name": "h", "qubits": [0], "params": []}, ...],
    "measure": [[qubit, clbit], ...] (default: every qubit into its own bit)}."""
    n = spec.get("num_qubits")
    if not isinstance(n, int) or n < 1:
        raise CircuitError("invalid_circuit", "a circuit dict needs num_qubits >= 1")
    gates = spec.get("gates", [])
    if not isinstance(gates, list) or len(gates) > MAX_DICT_GATES:
        raise CircuitError("invalid_circuit", f"gates must be a list of at most {MAX_DICT_GATES}")
    qc = QuantumCircuit(n, n)
    for i, gate in enumerate(gates):
        try:
            name, qubits = gate["name"], list(gate["qubits"])
            params = [float(p) for p in gate.get("params", [])]
            getattr(qc, name)(*params, *qubits)
        except Exception as err:
            raise CircuitError("invalid_circuit", f"gates[{i}]: {err}") from err
    measure = spec.get("measure") or [[q, q] for q in range(n)]
    for q, c in measure:
        if not (0 <= q < n and 0 <= c < n):
            raise CircuitError("invalid_circuit", f"measure [{q}, {c}] is outside the circuit")
        qc.measure(q, c)
    return qc


def compile_for(qc: QuantumCircuit, device: Device, seed: int = 0) -> Program:
    """Transpile onto the device and flatten to Ops; only terminal measurements."""
    if qc.num_qubits > device.num_qubits:
        raise CircuitError(
            "too_many_qubits",
            f"the circuit uses {qc.num_qubits} qubits; {device.name} has {device.num_qubits}",
        )
    unsupported = {i.operation.name for i in qc.data} & UNSUPPORTED
    if unsupported:
        raise CircuitError(
            "unsupported_instruction", f"the twin does not run {sorted(unsupported)}"
        )
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
            raise CircuitError(
                "mid_circuit_measurement", "gates after a measurement are not supported"
            )
        angle = float(op.params[0]) if op.name == "rz" else 0.0
        ops.append(Op(op.name, qubits, angle))
    return Program(tuple(ops), tuple(measures), tc.num_clbits)
