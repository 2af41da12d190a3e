"""The twin's noise construction, controller precedence and engines (pure code)."""

from __future__ import annotations

import numpy as np
import pytest

from config.twin_files import load_backends, read_dir
from twin import engine
from twin.channels import average_fidelity, depolarizing_parameter, relaxation
from twin.circuit_input import read_circuit as parse
from twin.circuits import Op, compile_for
from twin.controller import (
    ControllerState,
    apply_command,
    check_command,
    effective_noise,
)
from twin.density import gate_superop
from twin.errors import TwinError
from twin.gates import unitary, unitary_superop
from twin.noise import NoiseModel

BACKENDS = load_backends(read_dir())
JAKARTA = BACKENDS["ibm_jakarta_like"]


def channel_fidelity(superop: np.ndarray, unitary_superop: np.ndarray, n: int) -> float:
    """Average gate fidelity of a noisy gate against its ideal unitary (superoperators)."""
    d = 2**n
    process = np.real(np.trace(unitary_superop.conj().T @ superop)) / d**2
    return (d * process + 1) / (d + 1)


@pytest.mark.parametrize(
    "op", [Op("sx", (3,)), Op("sx", (4,)), Op("x", (0,)), Op("cx", (3, 5)), Op("cx", (5, 3))]
)
def test_each_gate_has_exactly_its_configured_error(op):
    noise = NoiseModel(effective_noise(JAKARTA, ControllerState()))
    noisy = gate_superop(op, noise)
    fidelity = channel_fidelity(noisy, unitary_superop(unitary(op.name)), len(op.qubits))
    if len(op.qubits) == 1:
        configured = noise.noise.qubits[op.qubits[0]].gate_error
    else:
        configured = noise.noise.edges[frozenset(op.qubits)].gate_error
    relax_only = 1 - average_fidelity(noise.gate(op).relaxations)
    # The configured error, unless relaxation alone already costs more (then no depolarizing).
    assert 1 - fidelity == pytest.approx(max(configured, relax_only), rel=1e-9)


def test_relaxation_alone_can_exceed_the_gate_error():
    slow = relaxation(10.0, 10.0, 1000.0)  # 1 us gate on a 10 us qubit
    assert 1 - average_fidelity((slow,)) > 0.01
    assert depolarizing_parameter(0.01, (slow,)) == 0.0


def test_t2_is_clamped_to_twice_t1():
    assert relaxation(50.0, 500.0, 100.0) == relaxation(50.0, 100.0, 100.0)


def test_precedence_override_then_controller_then_scenario_then_config():
    base = JAKARTA.noise.qubits[2]
    state = apply_command(ControllerState(), "set_scenario", {"scenario_name": "noisy_day"})
    eff = effective_noise(JAKARTA, state)
    assert eff.qubits[2].t1_us == pytest.approx(base.t1_us * 0.7)
    state = apply_command(state, "inject_noise_override", {"gate_error_multiplier": 2.0})
    state = apply_command(state, "set_dac_bias", {"gate_error_multiplier": 1.5})
    # drift is a multiplier too; compare at an instant and with drift off
    state = apply_command(state, "policy_update", {"drift_multiplier": 0.0})
    eff = effective_noise(JAKARTA, state)
    assert eff.qubits[2].gate_error == pytest.approx(base.gate_error * 1.5 * 2.0 * 1.5)
    state = apply_command(state, "set_qubit_noise", {"qubit": 2, "gate_error": 0.01, "t1_us": 33})
    eff = effective_noise(JAKARTA, state)
    assert (eff.qubits[2].gate_error, eff.qubits[2].t1_us) == (0.01, 33.0)  # absolute wins
    assert eff.qubits[3].gate_error == pytest.approx(JAKARTA.noise.qubits[3].gate_error * 4.5)
    state = apply_command(state, "set_qubit_noise", {"qubit": 2, "t1_us": -1})  # revert one field
    eff = effective_noise(JAKARTA, state)
    assert (
        eff.qubits[2].t1_us == pytest.approx(base.t1_us * 0.7) and eff.qubits[2].gate_error == 0.01
    )
    state = apply_command(state, "reset_qubit_noise", {})
    assert state.qubit_overrides == {}
    state = apply_command(state, "reset", {})
    assert effective_noise(JAKARTA, state).qubits[2].t1_us == base.t1_us


def test_drift_moves_errors_with_time_and_is_reproducible():
    a = effective_noise(JAKARTA, ControllerState(), t=0.0).qubits[0].gate_error
    b = effective_noise(JAKARTA, ControllerState(), t=900.0).qubits[0].gate_error
    assert a != b
    assert effective_noise(JAKARTA, ControllerState(), t=900.0).qubits[0].gate_error == b


@pytest.mark.parametrize(
    ("kind", "payload", "code"),
    [
        ("warp_drive", {}, "unknown_command_type"),
        ("policy_update", {"gate_multiplier": 2}, "unknown_payload_field"),
        ("set_qubit_noise", {"qubit": 7, "t1_us": 10}, "qubit_out_of_range"),
        ("set_qubit_noise", {"t1_us": 10}, "invalid_payload"),
        ("set_scenario", {"scenario_name": "sunny"}, "unknown_scenario"),
        ("inject_noise_override", {"gate_error_multiplier": -2}, "invalid_payload"),
        ("set_qubit_noise", {"qubit": 1, "readout_error": 0.9}, "invalid_payload"),
    ],
)
def test_bad_commands_are_refused_with_a_code(kind, payload, code):
    with pytest.raises(TwinError) as err:
        check_command(JAKARTA, kind, payload)
    assert err.value.code == code


def test_the_unknown_type_message_lists_the_nine_allowed():
    with pytest.raises(TwinError) as err:
        check_command(JAKARTA, "warp", {})
    for kind in ("inject_noise_override", "set_qubit_noise", "reset_qubit_noise", "set_scenario",
                 "policy_update", "set_pulse_schedule", "set_adc_gain", "set_dac_bias", "reset"):  # fmt: skip
        assert kind in err.value.message


BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


def run(
    qasm: str, backend_id: str = "ibm_jakarta_like", seed: int = 1, shots: int = 4000, eng=None
):
    backend = BACKENDS[backend_id]
    program = compile_for(parse(qasm), backend.device, seed=seed)
    noise = NoiseModel(effective_noise(backend, ControllerState()))
    return engine.run(program, noise, shots, np.random.default_rng(seed), backend.limits, eng)


def test_a_seed_makes_counts_reproducible_bit_for_bit():
    assert run(BELL, seed=42) == run(BELL, seed=42)
    assert run(BELL, seed=42)[0] != run(BELL, seed=43)[0]


def test_invalid_qasm_names_line_and_column():
    with pytest.raises(TwinError) as err:
        parse('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];')
    assert err.value.code == "invalid_qasm" and err.value.message.startswith("line 4, column 0:")


def test_a_gate_on_an_uncoupled_pair_is_routed():
    qasm = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[7]; creg c[2]; x q[0]; cx q[0],q[6]; measure q[0] -> c[0]; measure q[6] -> c[1];'
    program = compile_for(parse(qasm), JAKARTA.device)
    edges = JAKARTA.device.edges()
    assert all(frozenset(op.qubits) in edges for op in program.ops if op.name == "cx")
    counts, _ = run(qasm, shots=2000)
    assert max(counts, key=counts.get) == "11"


def test_engines_agree_on_a_small_clifford_circuit():
    qasm = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; x q[1]; measure q -> c;'
    shots = 40_000
    exact, _ = run(qasm, shots=shots, eng="density_matrix")
    for other in ("stim", "trajectories"):
        counts, _ = run(qasm, shots=shots, eng=other)
        tvd = (
            0.5
            * sum(abs(exact.get(k, 0) - counts.get(k, 0)) for k in set(exact) | set(counts))
            / shots
        )
        assert tvd < 0.02, (other, tvd)


def test_engine_choice_by_width_and_gate_set():
    wide_clifford = f'OPENQASM 2.0; include "qelib1.inc"; qreg q[50]; creg c[50]; h q[0]; {"".join(f"cx q[{i}],q[{i + 1}];" for i in range(49))} measure q -> c;'
    counts, used = run(wide_clifford, "square_64", shots=1000)
    assert used.engine == "stim" and sum(counts.values()) == 1000
    assert used.approximation and "Pauli-twirled" in used.approximation
    assert max(counts, key=counts.get) in ("0" * 50, "1" * 50)
    # Twelve qubits that never interact: twelve exact one-qubit parts, not one wide one.
    independent = f'OPENQASM 2.0; include "qelib1.inc"; qreg q[12]; creg c[12]; {"".join(f"t q[{i}]; h q[{i}];" for i in range(12))} measure q -> c;'
    _, used = run(independent, "square_64", shots=64)
    assert used.engine == "density_matrix" and len(used.parts) == 12
    assert used.approximation is None
    # Entangled and non-Clifford beyond the density matrix: a trajectory per shot.
    entangled = f'OPENQASM 2.0; include "qelib1.inc"; qreg q[12]; creg c[12]; {"".join(f"t q[{i}]; h q[{i}];" for i in range(12))} {"".join(f"cx q[{i}],q[{i + 1}];" for i in range(11))} measure q -> c;'
    _, used = run(entangled, "square_64", shots=64)
    assert used.engine == "trajectories" and used.approximation is None
    too_wide = f'OPENQASM 2.0; include "qelib1.inc"; qreg q[30]; creg c[30]; {"".join(f"t q[{i}]; h q[{i}];" for i in range(30))} {"".join(f"cx q[{i}],q[{i + 1}];" for i in range(29))} measure q -> c;'
    with pytest.raises(TwinError) as err:
        run(too_wide, "square_64", shots=10)
    assert err.value.code == "circuit_too_wide"
