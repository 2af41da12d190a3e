"""The twin's engines against closed-form reference values, and properties that must
hold for any circuit and any sequence of controller commands."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from config.twin_files import load_backends, read_dir
from twin import engine
from twin.circuits import Op, Program
from twin.controller import ControllerState, apply_command, effective_noise
from twin.density import probabilities
from twin.device import QubitNoise
from twin.noise import NoiseModel
from twin.sampling import with_readout

BACKENDS = load_backends(read_dir())
LINE = BACKENDS["line_5"]


def noise_with(**qubit0) -> NoiseModel:
    eff = effective_noise(LINE, ControllerState(), t=0.0)
    qubits = list(eff.qubits)
    qubits[0] = replace(qubits[0], **qubit0)
    return NoiseModel(replace(eff, qubits=tuple(qubits)))


def test_t1_decay_after_idling():
    """P(1) after X and n identity gates of duration t: e^(-(n+1)t/T1). Amplitude
    damping with γ = 1 - e^(-t/T1) per gate (Nielsen & Chuang §8.3.5) composes to it."""
    noise = noise_with(t1_us=20.0, t2_us=40.0, gate_error=0.0, gate_time_ns=35.56)
    for n in (0, 10, 200, 1000):
        program = Program((Op("x", (0,)), *[Op("id", (0,))] * n), ((0, 0),), 1)
        p1 = probabilities(program, noise)[1]
        assert math.isclose(p1, math.exp(-(n + 1) * 35.56e-3 / 20.0), rel_tol=1e-9)


def test_bell_odd_parity_is_the_readout_flips():
    """A perfect Bell pair read with assignment errors: P(01 or 10) is
    ½[p10a(1-p10b) + (1-p10a)p10b + p01a(1-p01b) + (1-p01a)p01b] ≈ ½ Σ flips."""
    eff = effective_noise(LINE, ControllerState(), t=0.0)
    perfect = tuple(
        replace(q, t1_us=1e12, t2_us=1e12, gate_error=0.0) for q in eff.qubits
    )  # fmt: skip
    edges = {e: replace(v, gate_error=0.0) for e, v in eff.edges.items()}
    noise = NoiseModel(replace(eff, qubits=perfect, edges=edges))
    program = Program(
        (
            Op("rz", (0,), math.pi / 2),
            Op("sx", (0,)),
            Op("rz", (0,), math.pi / 2),
            Op("cx", (0, 1)),
        ),
        ((0, 0), (1, 1)),
        2,
    )
    p = with_readout(probabilities(program, noise), [0, 1], noise)
    a, b = perfect[0], perfect[1]
    exact = 0.5 * (
        a.readout_p1_given_0 * (1 - b.readout_p1_given_0)
        + (1 - a.readout_p1_given_0) * b.readout_p1_given_0
        + a.readout_p0_given_1 * (1 - b.readout_p0_given_1)
        + (1 - a.readout_p0_given_1) * b.readout_p0_given_1
    )
    assert math.isclose(p[0, 1] + p[1, 0], exact, rel_tol=1e-9)
    first_order = 0.5 * sum(
        (q.readout_p1_given_0 + q.readout_p0_given_1) for q in (a, b)
    )  # fmt: skip
    assert abs(exact - first_order) < 0.01


GATES = st.one_of(
    st.tuples(st.sampled_from(["sx", "x", "id"]), st.integers(0, 2)).map(
        lambda g: Op(g[0], (g[1],))
    ),
    st.tuples(st.floats(-7, 7), st.integers(0, 2)).map(lambda g: Op("rz", (g[1],), g[0])),
    st.sampled_from([Op("cx", (0, 1)), Op("cx", (1, 0)), Op("cx", (1, 2)), Op("cx", (2, 1))]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(GATES, max_size=25), st.integers(1, 5000), st.integers(0, 2**32 - 1))
def test_any_circuit_gives_probabilities_and_counts(ops, shots, seed):
    program = Program(tuple(ops), ((0, 0), (1, 1), (2, 2)), 3)
    noise = NoiseModel(effective_noise(LINE, ControllerState(), t=0.0))
    p = probabilities(program, noise)
    assert np.all(p >= -1e-12) and np.all(p <= 1 + 1e-12) and math.isclose(p.sum(), 1.0)
    counts, _ = engine.run(program, noise, shots, np.random.default_rng(seed), LINE.limits)
    assert sum(counts.values()) == shots
    assert all(len(k) == 3 and set(k) <= {"0", "1"} for k in counts)
    if program.is_clifford:
        stim_counts, _ = engine.run(
            program, noise, shots, np.random.default_rng(seed), LINE.limits, "stim"
        )
        assert sum(stim_counts.values()) == shots


COMMANDS = st.one_of(
    st.tuples(st.just("inject_noise_override"), st.fixed_dictionaries({"gate_error_multiplier": st.floats(0.1, 10)})),
    st.tuples(st.just("policy_update"), st.fixed_dictionaries({"gate_error_multiplier": st.floats(0.1, 10), "readout_error_multiplier": st.floats(0.1, 3)})),
    st.tuples(st.just("set_dac_bias"), st.fixed_dictionaries({"gate_error_multiplier": st.floats(0.1, 10)})),
    st.tuples(st.just("set_scenario"), st.fixed_dictionaries({"scenario_name": st.sampled_from(["noisy_day", "quiet_night"])})),
    st.tuples(st.just("set_qubit_noise"), st.fixed_dictionaries({"qubit": st.integers(0, 4), "gate_error": st.floats(0, 0.5), "t1_us": st.floats(1, 500)})),
    st.tuples(st.just("reset_qubit_noise"), st.fixed_dictionaries({"qubit": st.integers(0, 4)})),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(COMMANDS, max_size=12))
def test_a_per_qubit_override_wins_over_every_multiplier(commands):
    state = ControllerState()
    expected: dict[int, dict] = {}
    for kind, payload in commands:
        state = apply_command(state, kind, payload)
        if kind == "set_qubit_noise":
            expected[payload["qubit"]] = {
                "gate_error": payload["gate_error"],
                "t1_us": payload["t1_us"],
            }
        elif kind == "reset_qubit_noise":
            expected.pop(payload["qubit"], None)
    eff = effective_noise(LINE, state, t=0.0)
    scenario = LINE.scenarios.get(state.scenario or "")
    sg = scenario.gate_error_multiplier if scenario else 1.0
    st1 = scenario.t1_multiplier if scenario else 1.0
    for q, base in enumerate(LINE.noise.qubits):
        got: QubitNoise = eff.qubits[q]
        if q in expected:  # absolute values: no multiplier touches them
            assert (got.gate_error, got.t1_us) == (expected[q]["gate_error"], expected[q]["t1_us"])
        else:  # config x scenario x controller (x drift)
            scaled = base.gate_error * sg * state.gate_multiplier * eff.drift_multipliers[q]
            assert math.isclose(got.gate_error, min(0.5, scaled))
            assert math.isclose(got.t1_us, base.t1_us * st1)
