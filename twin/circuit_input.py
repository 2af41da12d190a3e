"""Untrusted circuits in: bounded before they are parsed, then parsed and sized.

A client sends OpenQASM 2.0 text or a circuit dict. Before the parser sees a byte, a cheap
scan reads the text's size, its includes (only the built-in `qelib1.inc`: the parser's
default include path would read any file the server can), its register sizes and its
statement count. Only then is the text parsed (qiskit's parser, no include path), and the
result sized: gates after expanding every gate definition (a few nested definitions can
stand for 2^39 gates), the qubits it touches, and whether it is Clifford (stim runs those
at any width). A dict is built gate by gate from qiskit's standard gates only.

Every message names what the request sent, never anything else: a parser error that does
not point into the request's own text is replaced by a generic one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit, qasm2
from qiskit.circuit import Barrier, Delay, Gate, Instruction
from qiskit.circuit.exceptions import CircuitError
from qiskit.circuit.library import get_standard_gate_name_mapping

from twin.circuits import delay_ns
from twin.errors import TwinError
from twin.groups import QubitGroups


@dataclass(frozen=True)
class CircuitLimits:
    """What one circuit may be before it is parsed or simulated."""

    max_qasm_bytes: int = 64 * 1024
    max_qubits: int = 1024  # declared quantum bits; the backend's own size is checked later
    max_clbits: int = 1024
    max_statements: int = 20_000  # ';' in the text: bounds the parse
    max_gates: int = 100_000  # after expanding gate definitions
    max_definitions_walked: int = 10_000  # work bound of the expansion itself
    max_delay_ns: float = 1e9  # one delay: a second is far beyond any T1


DEFAULT_LIMITS = CircuitLimits()


@dataclass(frozen=True)
class CircuitSize:
    """What the cost estimate needs of a parsed circuit."""

    num_qubits: int  # declared
    width: int  # qubits some gate or measurement touches
    gates: int  # after expanding definitions (barriers and measurements not counted)
    two_qubit_gates: int  # of `gates`, those on two or more qubits
    clifford: bool  # every gate Clifford (angles multiples of pi/2): stim can run it
    largest_group: int = 0  # qubits joined by multi-qubit gates: the widest part to run


# --- OpenQASM text ----------------------------------------------------------------------

_COMMENT = re.compile(r"//[^\n]*")
_INCLUDE_WORD = re.compile(r"\binclude\b")
_INCLUDE = re.compile(r'\binclude\s*"([^"\n]*)"\s*;')
_REGISTER_WORD = re.compile(r"\b([qc]reg)\b")
_REGISTER = re.compile(r"\b([qc]reg)\s+[A-Za-z_][A-Za-z0-9_]*\s*\[\s*([0-9]+)\s*\]\s*;")
_CLASSICAL_IF = re.compile(r"\bif\s*\(")
_RESET = re.compile(r"\breset\b")
_OPAQUE = re.compile(r"\bopaque\b")
# Qiskit's exporter declares the delays it writes: the one opaque gate that is allowed.
_OPAQUE_DELAY = re.compile(
    r"\bopaque\s+delay\s*\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*[A-Za-z_][A-Za-z0-9_]*\s*;"
)
# delay(2us): QASM 2 has no units, so a unit is read here and the text given the parser
# in ns (the twin's dt is 1 ns: a bare number is ns, as Qiskit's `dt` delays export).
_DELAY_WITH_UNIT = re.compile(
    r"\bdelay\s*\(\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*"
    r"(ns|us|µs|μs|ms|s|dt)\s*\)"
)
_NS_PER = {"dt": 1.0, "ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}
ALLOWED_INCLUDE = "qelib1.inc"
# The parser's legacy instructions: sx, sxdg, u, p, rzz… are known without a definition,
# as the Qiskit exporter assumes; delay is too (declared or not).
_CUSTOM = tuple(c for c in qasm2.LEGACY_CUSTOM_INSTRUCTIONS if c.name != "delay") + (
    # The parser's number is ns: Delay's default unit (dt) would demand an integer.
    qasm2.CustomInstruction("delay", 1, 1, lambda t: Delay(t, "ns"), builtin=True),
)


def _shown(text: str, limit: int = 60) -> str:
    """A piece of the request, quoted for a message (bounded)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def screen_qasm(text: str, limits: CircuitLimits = DEFAULT_LIMITS) -> None:
    """Refuse what must not reach the parser: checks that cost microseconds per kB."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_qasm_bytes:
        raise TwinError(
            "qasm_too_large",
            f"the circuit is {size} bytes; at most {limits.max_qasm_bytes} (max_qasm_bytes)",
        )
    if "\0" in text:
        raise TwinError("invalid_qasm", "the circuit contains a NUL character")
    code = _COMMENT.sub("", text)
    includes = _INCLUDE.findall(code)
    if len(includes) != len(_INCLUDE_WORD.findall(code)):
        raise TwinError("invalid_qasm", 'include must be written include "qelib1.inc";')
    for name in includes:
        if name != ALLOWED_INCLUDE:
            raise TwinError(
                "include_not_allowed",
                f"include {_shown(name)} is not allowed; only {ALLOWED_INCLUDE!r} (built in)"
                " may be included",
            )
    registers = _REGISTER.findall(code)
    if len(registers) != len(_REGISTER_WORD.findall(code)):
        raise TwinError(
            "invalid_qasm",
            "every register must be declared as qreg NAME[SIZE]; or creg NAME[SIZE];",
        )
    # Beyond 9 digits, any size is too many (and int() of a 5,000-digit string refuses).
    qubits = sum(int(n) if len(n) <= 9 else 10**9 for kind, n in registers if kind == "qreg")
    clbits = sum(int(n) if len(n) <= 9 else 10**9 for kind, n in registers if kind == "creg")
    if qubits > limits.max_qubits:
        raise TwinError(
            "too_many_qubits",
            f"the circuit declares {qubits} qubits; at most {limits.max_qubits}",
        )
    if clbits > limits.max_clbits:
        raise TwinError(
            "too_many_clbits",
            f"the circuit declares {clbits} classical bits; at most {limits.max_clbits}",
        )
    if _CLASSICAL_IF.search(code):
        raise TwinError(
            "unsupported_instruction",
            "classically controlled gates (if) are not supported: measurements are terminal",
        )
    if _RESET.search(code):
        raise TwinError("unsupported_instruction", "the twin does not run reset")
    if _OPAQUE.search(_OPAQUE_DELAY.sub("", code)):
        raise TwinError("unsupported_instruction", "opaque gates have no definition to run")
    statements = code.count(";")
    if statements > limits.max_statements:
        raise TwinError(
            "too_many_gates",
            f"the circuit has {statements} statements; at most {limits.max_statements}"
            " (max_statements)",
        )


_PARSER_AT = re.compile(r"^<input>:(\d+),(\d+): (.*)$", re.S)


def _delays_in_ns(text: str, limits: CircuitLimits) -> str:
    def in_ns(m: re.Match) -> str:
        ns = float(m.group(1)) * _NS_PER[m.group(2)]
        if not ns <= limits.max_delay_ns:  # also inf: never written back as text
            raise TwinError(
                "invalid_circuit",
                f"{_shown(m.group(0))}: a delay lasts at most {limits.max_delay_ns:g} ns",
            )
        return f"delay({ns!r})"

    return _DELAY_WITH_UNIT.sub(in_ns, text)


def parse_qasm(text: str, limits: CircuitLimits = DEFAULT_LIMITS) -> QuantumCircuit:
    screen_qasm(text, limits)
    try:
        return qasm2.loads(
            _delays_in_ns(text, limits), include_path=(), custom_instructions=_CUSTOM
        )
    except qasm2.QASM2ParseError as err:
        raise TwinError("invalid_qasm", _parser_message(str(err))) from None
    except CircuitError as err:  # an instruction refused its arguments (a negative delay)
        raise TwinError("invalid_qasm", str(err.message)[:300]) from None
    except OverflowError:  # a number the parser could not hold (delay(1e400))
        raise TwinError("invalid_qasm", "a number in the circuit is out of range") from None


def _parser_message(text: str) -> str:
    """The parser's message when it points into the request ("<input>:4,0: ..."); else a
    generic one: anything else could quote a file the request never contained."""
    where = _PARSER_AT.match(text.strip().strip("\"'"))
    if where is None:
        return "the OpenQASM 2.0 text could not be parsed"
    line, column, what = where.groups()
    return f"line {line}, column {column}: {what.strip()[:300]}"


# --- circuit dicts ----------------------------------------------------------------------

_STANDARD = get_standard_gate_name_mapping()
STANDARD_GATES: dict[str, type[Gate]] = {
    name: type(gate)
    for name, gate in _STANDARD.items()
    if isinstance(gate, Gate) and name != "global_phase"
}


def from_dict(spec: Any, limits: CircuitLimits = DEFAULT_LIMITS) -> QuantumCircuit:
    """{"num_qubits": n, "gates": [{"name": "h", "qubits": [0], "params": []}, ...],
    "measure": [[qubit, clbit], ...] (default: every qubit into its own bit)}.
    Gate names are qiskit's standard gates, "barrier", and "delay" ({"name": "delay",
    "qubits": [q], "params": [t], "unit": "ns"}; units ns, us, ms, s, dt = ns)."""
    if not isinstance(spec, dict):
        raise TwinError("invalid_circuit", "a circuit is an OpenQASM 2.0 string or a dict")
    unknown = set(spec) - {"num_qubits", "gates", "measure"}
    if unknown:
        raise TwinError("invalid_circuit", f"unknown circuit keys {sorted(unknown)[:5]}")
    n = spec.get("num_qubits")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= limits.max_qubits:
        raise TwinError(
            "invalid_circuit", f"num_qubits must be an integer from 1 to {limits.max_qubits}"
        )
    gates = spec.get("gates", [])
    if not isinstance(gates, list) or len(gates) > limits.max_gates:
        raise TwinError("invalid_circuit", f"gates must be a list of at most {limits.max_gates}")
    qc = QuantumCircuit(n, n)
    for i, gate in enumerate(gates):
        qc.append(*_dict_gate(i, gate, n))
    measure = spec.get("measure") or [[q, q] for q in range(n)]
    if not isinstance(measure, list) or len(measure) > n:
        raise TwinError("invalid_circuit", f"measure must be a list of at most {n} pairs")
    for pair in measure:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_index(v, n) for v in pair)):
            raise TwinError(
                "invalid_circuit",
                f"measure {_shown(str(pair))} is not a [qubit, clbit] pair"
                f" inside the circuit's {n} qubits",
            )
        qc.measure(pair[0], pair[1])
    return qc


def _is_index(value: Any, n: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n


def _dict_gate(i: int, gate: Any, n: int) -> tuple[Instruction, list[int]]:
    where = f"gates[{i}]"
    if not isinstance(gate, dict) or not isinstance(gate.get("name"), str):
        raise TwinError("invalid_circuit", f"{where}: a gate is {{name, qubits, params}}")
    name, qubits, params = gate["name"], gate.get("qubits"), gate.get("params", [])
    if set(gate) - {"name", "qubits", "params", "unit"} or ("unit" in gate and name != "delay"):
        raise TwinError(
            "invalid_circuit", f"{where}: a gate is {{name, qubits, params}} (a delay: + unit)"
        )
    if not isinstance(qubits, list) or not all(_is_index(q, n) for q in qubits):
        raise TwinError("invalid_circuit", f"{where}: qubits must be a list of indices below {n}")
    if len(set(qubits)) != len(qubits):
        raise TwinError("invalid_circuit", f"{where}: a gate's qubits must be distinct")
    if name == "barrier":
        return Barrier(len(qubits)), qubits
    if name == "delay":
        return _dict_delay(where, qubits, params, gate.get("unit", "ns")), qubits
    cls = STANDARD_GATES.get(name)
    if cls is None:
        raise TwinError(
            "unsupported_instruction",
            f"{where}: unknown gate {_shown(name, 30)}; known: {sorted(STANDARD_GATES)}",
        )
    if not isinstance(params, list) or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in params
    ):
        raise TwinError("invalid_circuit", f"{where}: params must be finite numbers")
    expected = _STANDARD[name]
    if len(params) != len(expected.params) or len(qubits) != expected.num_qubits:
        raise TwinError(
            "invalid_circuit",
            f"{where}: {name} takes {len(expected.params)} params and {expected.num_qubits} qubits",
        )
    instance = cls(*[float(p) for p in params])
    return instance, qubits


def _dict_delay(where: str, qubits: list, params: Any, unit: Any) -> Delay:
    if len(qubits) != 1 or not isinstance(params, list) or len(params) != 1:
        raise TwinError("invalid_circuit", f"{where}: a delay takes 1 qubit and 1 param")
    value = params[0]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or unit not in _NS_PER:
        raise TwinError(
            "invalid_circuit", f"{where}: a delay is a number with a unit in {sorted(_NS_PER)}"
        )
    if not (math.isfinite(value) and value >= 0):
        raise TwinError("invalid_circuit", f"{where}: a delay's duration must be 0 or more")
    return Delay(float(value) * _NS_PER[unit], "ns")


# --- sizing -----------------------------------------------------------------------------

_CLIFFORD_FIXED = frozenset(
    {"id", "x", "y", "z", "h", "s", "sdg", "sx", "sxdg", "cx", "cy", "cz", "swap", "iswap",
     "dcx", "ecr"}
)  # fmt: skip
# Rotations that are Clifford when every angle is a multiple of pi/2.
_CLIFFORD_AT_QUARTER_TURNS = frozenset(
    {"rx", "ry", "rz", "p", "u1", "u2", "u3", "u", "r", "rxx", "ryy", "rzz", "rzx"}
)
_SKIPPED = frozenset({"barrier", "measure"})


def _quarter_turns(params) -> bool:
    for p in params:
        try:
            k = float(p) / (math.pi / 2)
        except TypeError:
            return False
        if abs(k - round(k)) > 1e-9:
            return False
    return True


def size_of(qc: QuantumCircuit, limits: CircuitLimits = DEFAULT_LIMITS) -> CircuitSize:
    """Gates after expanding every definition, memoised per defined gate so the walk
    costs what the text does, not what it expands to; refused past `max_gates`."""
    memo: dict[str, tuple[int, int, bool]] = {}
    walked = [0]

    def expand(op: Instruction) -> tuple[int, int, bool]:
        if op.name in _SKIPPED:
            return 0, 0, True
        if isinstance(op, Delay):
            _check_delay(op, limits)
            return 1, 0, True  # relaxation only: stim runs it as a Pauli channel
        if op.name in STANDARD_GATES and type(op) is STANDARD_GATES[op.name]:
            clifford = op.name in _CLIFFORD_FIXED or (
                op.name in _CLIFFORD_AT_QUARTER_TURNS and _quarter_turns(op.params)
            )
            return 1, int(op.num_qubits >= 2), clifford
        if op.name in memo:
            return memo[op.name]
        definition = op.definition
        if definition is None:
            raise TwinError(
                "unsupported_instruction", f"{_shown(op.name, 30)} has no definition to run"
            )
        walked[0] += 1
        if walked[0] > limits.max_definitions_walked:
            raise TwinError("too_many_gates", "the gate definitions are nested too deeply")
        total = two = 0
        clifford = not op.params  # a parameterised definition: Clifford-ness unknown
        for inst in definition.data:
            g, t, c = expand(inst.operation)
            total, two, clifford = total + g, two + t, clifford and c
            if total > limits.max_gates:
                break
        memo[op.name] = (total, two, clifford)
        return memo[op.name]

    gates = two = 0
    clifford = True
    touched: set[int] = set()
    groups = QubitGroups()  # parts that never interact

    for inst in qc.data:
        g, t, c = expand(inst.operation)
        gates, two, clifford = gates + g, two + t, clifford and c
        if gates > limits.max_gates:
            raise TwinError(
                "too_many_gates",
                f"the circuit expands to more than {limits.max_gates} gates (max_gates)",
            )
        if inst.operation.name != "barrier":
            indices = [qc.find_bit(q).index for q in inst.qubits]
            touched.update(indices)
            groups.join(indices)
    return CircuitSize(
        num_qubits=qc.num_qubits,
        width=len(touched),
        gates=gates,
        two_qubit_gates=two,
        clifford=clifford,
        largest_group=max(groups.sizes().values(), default=0),
    )


def _check_delay(op: Delay, limits: CircuitLimits) -> None:
    try:
        ns = delay_ns(op)
    except (KeyError, TypeError, ValueError):
        raise TwinError("invalid_circuit", "a delay's duration must be a number") from None
    if not (math.isfinite(ns) and 0 <= ns <= limits.max_delay_ns):
        raise TwinError(
            "invalid_circuit",
            f"a delay must last from 0 to {limits.max_delay_ns:g} ns (max_delay_ns)",
        )


def read_circuit(circuit: Any, limits: CircuitLimits = DEFAULT_LIMITS) -> QuantumCircuit:
    """A client's circuit (QASM text or dict), screened and parsed."""
    if isinstance(circuit, str):
        return parse_qasm(circuit, limits)
    return from_dict(circuit, limits)


def check_circuit(circuit: Any, limits: CircuitLimits = DEFAULT_LIMITS) -> CircuitSize:
    return size_of(read_circuit(circuit, limits), limits)


def check_circuits(
    circuits: list[Any], limits: CircuitLimits = DEFAULT_LIMITS
) -> list[CircuitSize]:
    """Each of a job's circuits screened, parsed and sized; a refusal names its index."""
    sizes = []
    for i, circuit in enumerate(circuits):
        try:
            sizes.append(check_circuit(circuit, limits))
        except TwinError as err:
            raise TwinError(err.code, f"circuits[{i}]: {err.message}") from None
    return sizes
