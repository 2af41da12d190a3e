"""Idle time, circuits run as written, and engines that agree with the exact model.

Counts are compared with the exact distribution (the density matrix of every qubit the
circuit uses, readout included) by their total variation distance, against a bound
taken from the same exact distribution: the largest TVD of 200 seeded exact samples at
the same shots, times 1.5. Seeds are fixed, so every run draws the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from config.twin_files import load_backends, read_dir
from twin import density, engine
from twin.circuit_input import check_circuit, read_circuit
from twin.circuits import Program, compile_for
from twin.controller import ControllerState, apply_command, check_command, effective_noise
from twin.errors import TwinError
from twin.noise import NoiseModel
from twin.plan import light_cone, split
from twin.sampling import keys_for, measured_qubits, with_readout

BACKENDS = load_backends(read_dir())
JAKARTA = BACKENDS["ibm_jakarta_like"]
HEAD = 'OPENQASM 2.0; include "qelib1.inc";'


def noise_of(backend, *commands) -> NoiseModel:
    state = ControllerState()
    for kind, payload in commands:
        state = apply_command(state, kind, payload)
    return NoiseModel(effective_noise(backend, state, 0.0))


def exact(program: Program, noise: NoiseModel) -> dict[str, float]:
    qubits = measured_qubits(program)
    p = with_readout(density.probabilities(program, noise), qubits, noise).reshape(-1)
    return dict(zip(keys_for(program, qubits, np.arange(len(p))), p, strict=True))


def tvd_to(p: dict[str, float], counts: dict[str, int]) -> float:
    shots = sum(counts.values())
    return 0.5 * sum(abs(p.get(k, 0.0) - counts.get(k, 0) / shots) for k in set(p) | set(counts))


def bound(p: dict[str, float], shots: int) -> float:
    keys = list(p)
    probs = np.clip(np.array([p[k] for k in keys]), 0, None)
    rng = np.random.default_rng(12345)
    draws = [
        tvd_to(
            p, dict(zip(keys, rng.multinomial(shots, probs / probs.sum()).tolist(), strict=True))
        )
        for _ in range(200)
    ]
    return 1.5 * max(draws)


def compiled(qasm: str, backend=JAKARTA, level: int = 1) -> Program:
    return compile_for(read_circuit(qasm), backend.device, 0, level)


# -- idle time -----------------------------------------------------------------------------


@pytest.mark.parametrize("delay_us", [0.5, 5.0, 40.0])
def test_a_delay_decays_the_excited_state_as_e_to_the_minus_t_over_t1(delay_us):
    """With gate errors and gate durations switched off (multipliers of 0), X then a
    delay t leaves P(1) = e^(-t/T1) exactly, whatever the unit it was written in."""
    noise = noise_of(
        JAKARTA,
        ("inject_noise_override", {"gate_error_multiplier": 0, "exec_time_scale": 0}),
    )
    t1 = noise.noise.qubits[0].t1_us
    for written in (
        f"delay({delay_us}us)",
        f"delay({delay_us * 1000}ns)",
        f"delay({delay_us * 1000})",
    ):
        program = compiled(
            f"{HEAD} qreg q[1]; creg c[1]; x q[0]; {written} q[0]; measure q[0] -> c[0];"
        )
        assert [op.name for op in program.ops] == ["x", "delay"]
        p1 = density.probabilities(program, noise)[1]
        assert math.isclose(p1, math.exp(-delay_us / t1), rel_tol=1e-9), written


def test_a_delay_in_a_circuit_dict_is_the_same_idle():
    noise = noise_of(JAKARTA)
    as_dict = {
        "num_qubits": 1,
        "gates": [
            {"name": "x", "qubits": [0]},
            {"name": "delay", "qubits": [0], "params": [3], "unit": "us"},
        ],
    }
    as_text = f"{HEAD} qreg q[1]; creg c[1]; x q[0]; delay(3us) q[0]; measure q[0] -> c[0];"
    p_dict = density.probabilities(compile_for(read_circuit(as_dict), JAKARTA.device), noise)
    p_text = density.probabilities(compiled(as_text), noise)
    assert np.allclose(p_dict, p_text, atol=0, rtol=1e-12)


def test_qiskit_exported_delays_and_sx_parse():
    """What qiskit.qasm2.dumps writes for a circuit with a delay: an opaque declaration."""
    text = (
        f"{HEAD} opaque delay(param0) q0; qreg q[1]; creg c[1]; sx q[0]; sxdg q[0];"
        " delay(2000.0) q[0]; measure q[0] -> c[0];"
    )
    assert check_circuit(text).gates == 3
    assert [op.name for op in compiled(text, level=0).ops][-1] == "delay"


def test_bad_delays_are_refused():
    for bad in ("delay(-5) q[0];", "delay(2 s) q[0];", "delay(5h) q[0];"):
        with pytest.raises(TwinError) as err:
            check_circuit(f"{HEAD} qreg q[1]; creg c[1]; {bad}")
        assert err.value.code in ("invalid_qasm", "invalid_circuit"), bad
    with pytest.raises(TwinError):  # only the delay may be declared opaque
        check_circuit(f"{HEAD} opaque magic q0; qreg q[1]; creg c[1]; magic q[0];")


def test_id_survives_optimisation_as_an_idle_of_one_gate_time():
    ids = f"{HEAD} qreg q[1]; creg c[1]; x q[0]; " + "id q[0]; " * 40 + "measure q[0] -> c[0];"
    for level in (0, 1, 3):
        assert [op.name for op in compiled(ids, level=level).ops].count("id") == 40
    noise = noise_of(JAKARTA)
    idle = density.probabilities(compiled(ids), noise)[1]
    without = density.probabilities(compiled(ids.replace("id q[0]; ", "")), noise)[1]
    assert idle < without  # forty gate times of T1 decay (and gate error) are in it


# -- circuits run as written -----------------------------------------------------------------


def test_level_0_keeps_every_gate_and_level_1_merges_them():
    x20 = f"{HEAD} qreg q[1]; creg c[1]; " + "x q[0]; " * 20 + "measure q[0] -> c[0];"
    assert [op.name for op in compiled(x20, level=0).ops] == ["x"] * 20
    assert compiled(x20, level=1).ops == ()
    noise = noise_of(JAKARTA)
    p_written = density.probabilities(compiled(x20, level=0), noise)[1]
    p_merged = density.probabilities(compiled(x20, level=1), noise)[1]
    assert p_written > p_merged + 1e-3  # twenty gates' errors are really applied


def test_an_unknown_optimization_level_is_refused():
    with pytest.raises(TwinError) as err:
        compiled(f"{HEAD} qreg q[1]; creg c[1]; x q[0];", level=7)
    assert err.value.code == "invalid_optimization_level"


# -- engines -------------------------------------------------------------------------------------


def one_x_then_cx(targets: int, extra: str = "") -> str:
    """x on q0, CX from q0 to each target, only q0 measured (the old stim case)."""
    cx = "".join(f"cx q[0],q[{i}];" for i in range(1, targets + 1))
    return f"{HEAD} qreg q[12]; creg c[1]; x q[0]; {extra} {cx} measure q[0] -> c[0];"


def test_unrelated_qubits_no_longer_change_a_measured_qubits_counts():
    """x on nine qubits nobody measures used to widen the circuit and switch engines."""
    square = BACKENDS["square_64"]
    noise = noise_of(square)
    plain = compiled(one_x_then_cx(5), square)
    busy = compiled(one_x_then_cx(5, " ".join(f"x q[{i}];" for i in range(6, 12))), square)
    assert len(busy.active_qubits) > len(plain.active_qubits)
    assert light_cone(busy).ops == light_cone(plain).ops
    a, ran_a = engine.run(plain, noise, 5000, np.random.default_rng(3), square.limits)
    b, ran_b = engine.run(busy, noise, 5000, np.random.default_rng(3), square.limits)
    assert a == b and ran_a == ran_b


def test_independent_groups_run_apart_and_combine_exactly():
    """Two Bell pairs that never interact: two parts on the density matrix, combined shot
    by shot; the counts fit the exact 4-qubit distribution."""
    line = BACKENDS["line_5"]
    two_pairs = (
        f"{HEAD} qreg q[4]; creg c[4]; h q[0]; cx q[0],q[1]; h q[3]; cx q[3],q[2]; measure q -> c;"
    )
    program = compiled(two_pairs, line, level=0)
    assert [sorted(measured_qubits(p)) for p in split(light_cone(program))] == [[0, 1], [2, 3]]
    noise = noise_of(line)
    shots = 20_000
    counts, ran = engine.run(program, noise, shots, np.random.default_rng(8), line.limits)
    assert len(ran.parts) == 2 and ran.approximation is None
    p = exact(program, noise)
    assert tvd_to(p, counts) <= bound(p, shots)


def test_trajectories_are_as_precise_as_their_shots():
    """One trajectory per shot: a random 4-qubit circuit on the trajectory engine lands
    within the exact sampling spread at 20,000 shots (256 shared trajectories did not)."""
    rng = np.random.default_rng(7)
    body = []
    for _ in range(4):
        for q in range(4):
            a, b, c = rng.uniform(0, 2 * math.pi, 3)
            body.append(f"u({a:.6f},{b:.6f},{c:.6f}) q[{q}];")
        body += ["cx q[0],q[1];", "cx q[2],q[3];", "cx q[1],q[2];"]
    program = compiled(f"{HEAD} qreg q[4]; creg c[4]; {' '.join(body)} measure q -> c;")
    noise = noise_of(JAKARTA, ("inject_noise_override", {"gate_error_multiplier": 4.0}))
    shots = 20_000
    counts, ran = engine.run(
        program, noise, shots, np.random.default_rng(11), JAKARTA.limits, "trajectories"
    )
    assert ran.engine == "trajectories" and ran.approximation is None
    p = exact(program, noise)
    assert tvd_to(p, counts) <= bound(p, shots)


def test_a_wide_clifford_part_beyond_one_trajectory_per_shot_says_it_is_approximate():
    square = BACKENDS["square_64"]
    program = compiled(one_x_then_cx(10), square)
    _, few = engine.run(program, noise_of(square), 100, np.random.default_rng(1), square.limits)
    _, many = engine.run(
        program, noise_of(square), 100_000, np.random.default_rng(1), square.limits
    )
    assert few.engine in ("density_matrix", "trajectories") and few.approximation is None
    assert many.engine == "stim"
    assert many.approximation and "Pauli-twirled" in many.approximation


def test_a_zero_multiplier_switches_gate_errors_off():
    check_command(JAKARTA, "inject_noise_override", {"gate_error_multiplier": 0})
    noise = noise_of(JAKARTA, ("inject_noise_override", {"gate_error_multiplier": 0}))
    assert all(q.gate_error == 0 for q in noise.noise.qubits)
    with pytest.raises(TwinError):
        check_command(JAKARTA, "inject_noise_override", {"gate_error_multiplier": -0.1})


# -- found in review ---------------------------------------------------------------------


def test_two_qubits_measured_into_one_clbit_keep_every_shot_and_the_last_wins():
    noise = noise_of(JAKARTA)
    text = f"{HEAD} qreg q[2]; creg c[1]; x q[0]; measure q[0] -> c[0]; measure q[1] -> c[0];"
    for last, expected in (("", "0"), (" measure q[0] -> c[0];", "1")):
        program = compiled(
            text.replace(" measure q[1] -> c[0];", " measure q[1] -> c[0];" + last), level=0
        )
        for forced in (None, "trajectories", "stim"):
            counts, _ = engine.run(
                program, noise, 5000, np.random.default_rng(2), JAKARTA.limits, forced
            )
            assert sum(counts.values()) == 5000, (last, forced, counts)
            assert max(counts, key=counts.get) == expected, (last, forced, counts)


def test_idles_inside_a_gate_definition_survive_every_level():
    defined = f"{HEAD} gate g a {{ id a; x a; }} gate w(t) a {{ delay(t) a; }} qreg q[1]; creg c[1]; g q[0]; w(1000) q[0]; measure q[0] -> c[0];"
    for level in (0, 1, 2, 3):
        ops = [(op.name, op.duration_ns) for op in compiled(defined, level=level).ops]
        assert ops == [("id", 0.0), ("x", 0.0), ("delay", 1000.0)], (level, ops)


def test_delays_of_a_fraction_of_a_nanosecond_and_other_spellings():
    for written, ns in (("2.5ns", 2.5), ("1.5", 1.5), (".5us", 500.0), ("2μs", 2000.0)):
        program = compiled(
            f"{HEAD} qreg q[1]; creg c[1]; x q[0]; delay({written}) q[0]; measure q[0] -> c[0];"
        )
        assert program.ops[-1].duration_ns == pytest.approx(ns), written


def test_a_job_that_routing_makes_too_expensive_fails_before_it_runs():
    """The estimate at submission sees the written circuit (two qubits interact); routing
    at level 0 joins thirteen: the worker refuses it at once instead of running a minute."""
    from adapters.twin.simulate import run_job  # the worker's entry point

    heavy = BACKENDS["heavy_hex_27"]
    text = (
        f"{HEAD} qreg q[27]; creg c[27]; "
        + "".join(f"h q[{i}]; t q[{i}];" for i in range(27))
        + " cx q[0],q[26]; "
        + "h q[26]; t q[26]; " * 300
        + " measure q -> c;"
    )
    with pytest.raises(TwinError) as err:
        run_job(heavy, ControllerState(), [text], 100, 1, 0.0, 0, 30.0)
    assert err.value.code == "job_too_expensive" and "13 qubits" in err.value.message
