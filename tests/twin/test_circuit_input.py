"""Untrusted circuits: screened before the parser, parsed without touching the disk,
sized before they are accepted."""

from __future__ import annotations

import time

import pytest

from twin.circuit_input import CircuitLimits, check_circuit, read_circuit
from twin.device import SchedulerLimits
from twin.errors import TwinError
from twin.job_cost import circuit_seconds

HEAD = 'OPENQASM 2.0; include "qelib1.inc";'


def refused(circuit, limits: CircuitLimits | None = None) -> TwinError:
    with pytest.raises(TwinError) as err:
        check_circuit(circuit, *([limits] if limits else []))
    return err.value


@pytest.mark.parametrize(
    "include",
    ["/etc/passwd", "../../jwt.secret", "var/jwt.secret", "/proc/self/environ", "qelib1.inc/.."],
)
def test_no_include_but_the_built_in_one_is_read(include, tmp_path, monkeypatch):
    # A readable file next to the process: the parser's default include path is ".".
    (tmp_path / "secret.inc").write_text("leaked_token_abc123;\n")
    monkeypatch.chdir(tmp_path)
    for name in (include, "secret.inc"):
        err = refused(f'OPENQASM 2.0; include "{name}"; qreg q[1];')
        assert err.code == "include_not_allowed"
        assert name[:20] in err.message and "leaked" not in err.message


def test_an_include_written_any_other_way_is_refused_not_parsed():
    for text in ['OPENQASM 2.0; include\n"/etc/passwd"\n;', "OPENQASM 2.0; include '/etc/passwd';"]:
        assert refused(text).code in ("include_not_allowed", "invalid_qasm")
    # In a comment, an include is nothing.
    assert check_circuit(HEAD + '// include "/etc/passwd";\nqreg q[1]; h q[0];').gates == 1


def test_register_sizes_are_read_before_parsing():
    started = time.perf_counter()
    for size in ("2147483648", "5000000", "1025"):
        assert refused(f"{HEAD} qreg q[{size}];").code == "too_many_qubits"
    assert refused(f"{HEAD} creg c[100000];").code == "too_many_clbits"
    assert refused(f"{HEAD} qreg q[{'9' * 5000}];").code == "too_many_qubits"
    assert refused(f"{HEAD} qreg q[-1];").code == "invalid_qasm"
    assert refused(f"{HEAD} qreg q [ 2 ] ; qreg\nr\n[\n3000\n]\n;").code == "too_many_qubits"
    assert time.perf_counter() - started < 1.0  # no parse of a huge register


def test_nested_gate_definitions_are_sized_without_expanding_them():
    lines = [HEAD, "gate g0 a { x a; x a; x a; x a; x a; x a; x a; x a; }"]
    lines += [f"gate g{i} a {{ " + f"g{i - 1} a; " * 8 + "}" for i in range(1, 13)]
    lines += ["qreg q[1];", "g12 q[0];"]
    started = time.perf_counter()
    err = refused("\n".join(lines))
    assert err.code == "too_many_gates" and "100000" in err.message
    assert time.perf_counter() - started < 1.0
    ok = check_circuit("\n".join(lines[:4] + ["qreg q[1];", "g2 q[0];"]))
    assert ok.gates == 8**3 and ok.clifford


def test_classical_control_reset_and_opaque_are_refused_at_submission():
    assert refused(f"{HEAD} qreg q[1]; creg c[1]; if(c==1) x q[0];").code == (
        "unsupported_instruction"
    )
    assert refused(f"{HEAD} qreg q[1]; reset q[0];").code == "unsupported_instruction"
    assert refused(f"{HEAD} opaque magic a; qreg q[1]; magic q[0];").code == (
        "unsupported_instruction"
    )


def test_size_and_statement_limits():
    assert refused("x" * 70_000, CircuitLimits(max_qasm_bytes=65_536)).code == "qasm_too_large"
    many = HEAD + " qreg q[1];" + " x q[0];" * 30
    assert refused(many, CircuitLimits(max_statements=10)).code == "too_many_gates"


def test_parser_errors_point_into_the_request_only():
    err = refused(f"{HEAD} qreg q[1]; nosuchgate q[0];")
    assert err.code == "invalid_qasm" and err.message.startswith("line 1, column")


@pytest.mark.parametrize(
    "spec, code",
    [
        ({"num_qubits": 1_000_000_000}, "invalid_circuit"),
        ({"num_qubits": True}, "invalid_circuit"),
        ({"num_qubits": 2, "gates": [{"name": "add_register", "qubits": [1]}]}, (
            "unsupported_instruction")),
        ({"num_qubits": 2, "gates": [{"name": "__class__", "qubits": []}]}, (
            "unsupported_instruction")),
        ({"num_qubits": 2, "gates": [{"name": "cx", "qubits": [0, 0]}]}, "invalid_circuit"),
        ({"num_qubits": 2, "gates": [{"name": "cx", "qubits": [0, 7]}]}, "invalid_circuit"),
        ({"num_qubits": 2, "gates": [{"name": "rz", "qubits": [0], "params": [1e999]}]},
         "invalid_circuit"),
        ({"num_qubits": 2, "gates": [{"name": "rz", "qubits": [0]}]}, "invalid_circuit"),
        ({"num_qubits": 2, "gates": [{"name": "x", "qubits": [0], "params": [0.3]}]}, (
            "invalid_circuit")),
        ({"num_qubits": 2, "measure": [[0, 5]]}, "invalid_circuit"),
        ({"num_qubits": 2, "extra": 1}, "invalid_circuit"),
        ([1, 2], "invalid_circuit"),
    ],
)  # fmt: skip
def test_circuit_dicts_take_standard_gates_only(spec, code):
    assert refused(spec).code == code


def test_a_circuit_dict_builds_the_circuit_it_describes():
    qc = read_circuit(
        {"num_qubits": 2, "gates": [{"name": "h", "qubits": [0]}, {"name": "cx", "qubits": [0, 1]},
                                    {"name": "rz", "qubits": [1], "params": [0.25]}]}
    )  # fmt: skip
    assert [i.operation.name for i in qc.data] == ["h", "cx", "rz", "measure", "measure"]
    size = check_circuit(
        {"num_qubits": 2, "gates": [{"name": "rz", "qubits": [1], "params": [0.25]}]}
    )
    assert (size.gates, size.width, size.clifford) == (1, 2, False)


def test_the_cost_estimate_grows_with_each_engine_as_it_should():
    limits = SchedulerLimits()
    narrow = check_circuit(f"{HEAD} qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;")
    chain = "".join(f" cx q[{i}],q[{i + 1}];" for i in range(15))
    wide = check_circuit(
        f"{HEAD} qreg q[16]; creg c[16];" + "".join(f" rx(0.3) q[{i}];" for i in range(16)) + chain
    )
    assert wide.largest_group == 16
    assert circuit_seconds(narrow, 1024, limits) < 0.05
    assert circuit_seconds(wide, 256, limits) > 10 * circuit_seconds(wide, 8, limits) > 0
    # Sixteen qubits that never interact are sixteen one-qubit parts: cheap at any shots.
    apart = check_circuit(
        f"{HEAD} qreg q[16]; creg c[16];" + "".join(f" rx(0.3) q[{i}];" for i in range(16))
    )
    assert apart.largest_group == 1 and circuit_seconds(apart, 100_000, limits) < 0.2
    wider = check_circuit(f"{HEAD} qreg q[30]; rx(0.3) q[29];")
    assert wider.width == 1  # only what gates touch counts
    entangled_30 = "".join(f" t q[{i}];" for i in range(30)) + "".join(
        f" cx q[{i}],q[{i + 1}];" for i in range(29)
    )
    with pytest.raises(TwinError) as err:
        circuit_seconds(check_circuit(f"{HEAD} qreg q[30];" + entangled_30), 10, limits)
    assert err.value.code == "circuit_too_wide"
