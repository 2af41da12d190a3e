"""Circuits in, the twin's instruction list out.

Circuits arrive parsed (twin/circuit_input.py screens and parses what clients send). The
transpiler maps the circuit to the backend's basis gates and routes it onto the coupling
map (inserting SWAPs as CX triples), so a 2-qubit gate on an uncoupled pair is routed,
not refused. A job picks how hard the transpiler optimises (`optimization_level`, as
Qiskit's: 0 maps and routes only, so an experiment runs exactly as written; 1, the
default, also merges and cancels adjacent one-qubit gates; 2 and 3 go further).

Idle time survives at every level: a `delay` is relaxation and dephasing over its
duration, and an `id` gate is an idle of one gate time with the gate's error. The
transpiler would drop `id` at level 1 and up, so it travels through as a zero-length
delay (a client's own zero delay is dropped first: it does nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Delay, Gate, Measure
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.transpiler import CouplingMap

from twin.device import Device
from twin.errors import TwinError

# Terminal measurements only: no resets, no classically controlled gates.
UNSUPPORTED = frozenset({"reset", "initialize", "if_else", "while_loop", "for_loop", "switch_case"})
OPTIMIZATION_LEVELS = (0, 1, 2, 3)
DEFAULT_OPTIMIZATION_LEVEL = 1
_IDLE_MARK = 0.0  # the duration an `id` travels through the transpiler as


@dataclass(frozen=True)
class Op:
    name: str  # a basis gate (rz, sx, x, id, cx) or delay
    qubits: tuple[int, ...]  # physical qubits
    angle: float = 0.0  # rz only
    duration_ns: float = 0.0  # delay only


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


def delay_ns(op: Delay) -> float:
    """A delay's duration in ns. The twin has no pulse clock: its `dt` is 1 ns."""
    scale = {"dt": 1.0, "ps": 1e-3, "ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
    return float(op.params[0]) * scale[op.unit]


def _with_idles_marked(qc: QuantumCircuit) -> QuantumCircuit:
    """Delays in one unit (ns), ids as zero-length delays, zero delays dropped, and the
    client's own gate definitions inlined first, so an idle inside one survives too
    (the transpiler would inline it and then drop its `id`). Inlining is bounded: the
    circuit was sized, definitions expanded, before it got here."""
    out = qc.copy_empty_like()

    def emit(op, qubits, clbits) -> None:
        if op.name == "delay":
            ns = delay_ns(op)
            if ns > 0:
                out.append(Delay(ns, "ns"), qubits, clbits)
        elif op.name == "id":
            out.append(Delay(_IDLE_MARK, "ns"), qubits, clbits)
        elif _user_defined(op):
            definition = op.definition
            for inner in definition.data:
                inner_qubits = [qubits[definition.find_bit(q).index] for q in inner.qubits]
                inner_clbits = [clbits[definition.find_bit(c).index] for c in inner.clbits]
                emit(inner.operation, inner_qubits, inner_clbits)
        else:
            out.append(op, qubits, clbits)

    for inst in qc.data:
        emit(inst.operation, list(inst.qubits), list(inst.clbits))
    return out


_STANDARD = {name: type(gate) for name, gate in get_standard_gate_name_mapping().items()}


def _user_defined(op) -> bool:
    """A gate the client defined (QASM `gate`), not one of Qiskit's own."""
    return (
        isinstance(op, Gate)
        and op.definition is not None
        and type(op) is not _STANDARD.get(op.name)
    )


def compile_for(
    qc: QuantumCircuit,
    device: Device,
    seed: int = 0,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
) -> Program:
    """Transpile onto the device and flatten to Ops; only terminal measurements."""
    if qc.num_qubits > device.num_qubits:
        raise TwinError(
            "too_many_qubits",
            f"the circuit uses {qc.num_qubits} qubits; {device.name} has {device.num_qubits}",
        )
    if isinstance(optimization_level, bool) or optimization_level not in OPTIMIZATION_LEVELS:
        raise TwinError(
            "invalid_optimization_level", f"optimization_level must be one of {OPTIMIZATION_LEVELS}"
        )
    unsupported = {i.operation.name for i in qc.data} & UNSUPPORTED
    if unsupported:
        raise TwinError("unsupported_instruction", f"the twin does not run {sorted(unsupported)}")
    if optimization_level == 0:
        direct = _as_written(qc, device)
        if direct is not None:
            return direct
    coupling = CouplingMap([list(e) for e in device.coupling_map])
    coupling.make_symmetric()
    tc = transpile(
        _with_idles_marked(qc),
        basis_gates=list(device.basis_gates),
        coupling_map=coupling,
        optimization_level=optimization_level,
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
        if isinstance(op, Delay):
            ns = delay_ns(op)
            ops.append(Op("id", qubits) if ns == _IDLE_MARK else Op("delay", qubits, 0.0, ns))
            continue
        angle = float(op.params[0]) if op.name == "rz" else 0.0
        ops.append(Op(op.name, qubits, angle))
    return Program(tuple(ops), tuple(measures), tc.num_clbits)


# Virtual Z turns that level 0 would translate to rz anyway.
_Z_TURNS = {
    "s": math.pi / 2,
    "sdg": -math.pi / 2,
    "z": math.pi,
    "t": math.pi / 4,
    "tdg": -math.pi / 4,
}


def _as_written(qc: QuantumCircuit, device: Device) -> Program | None:
    """Level 0 without the transpiler, when it would only rename: every gate already a
    basis gate (or a Z turn), every two-qubit gate on a coupled pair, qubits as laid out.
    A calibration sweep is thousands of such circuits; transpiling each cost ~20 ms.
    None: the transpiler is needed (definitions, other gates, routing)."""
    basis = set(device.basis_gates)
    edges = device.edges()
    qubit_index = {q: i for i, q in enumerate(qc.qubits)}  # find_bit per use: 30 % of it
    clbit_index = {c: i for i, c in enumerate(qc.clbits)}
    ops: list[Op] = []
    measures: list[tuple[int, int]] = []
    measured: set[int] = set()
    for inst in qc.data:
        op = inst.operation
        qubits = tuple(qubit_index[q] for q in inst.qubits)
        name = op.name
        if name == "measure":
            measures.append((qubits[0], clbit_index[inst.clbits[0]]))
            measured.add(qubits[0])
            continue
        if name == "barrier":
            continue
        if measured & set(qubits):
            raise TwinError(
                "mid_circuit_measurement", "gates after a measurement are not supported"
            )
        if name == "delay":
            ns = delay_ns(op)
            if ns > 0:
                ops.append(Op("delay", qubits, 0.0, ns))
        elif name in _Z_TURNS:
            ops.append(Op("rz", qubits, _Z_TURNS[name]))
        elif name not in basis or _user_defined(op):
            return None
        elif len(qubits) == 2 and frozenset(qubits) not in edges:
            return None
        else:
            ops.append(Op(name, qubits, float(op.params[0]) if name == "rz" else 0.0))
    return Program(tuple(ops), tuple(measures), qc.num_clbits)
