"""The calibration tasks measure the twin's true parameters: each task's circuits run on
the twin's engine (in process, at optimization_level 0, the noise of the shipped
ibm_jakarta_like), and each fitted value must lie within 4σ of the twin's own effective
value, σ being the fit's error. The end-to-end run through the API is the runner's."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.tasks import TASKS, marginal_p1
from config.twin_files import load_backends, read_dir
from twin import engine
from twin.circuit_input import read_circuit
from twin.circuits import compile_for
from twin.controller import ControllerState, apply_command, effective_noise
from twin.noise import NoiseModel, describe

BACKEND = load_backends(read_dir())["ibm_jakarta_like"]
QUBITS = [0, 3, 6]


def run_task(name: str, qubits: list[int], state: ControllerState | None = None, **given):
    task = TASKS[name]
    params = task.run_params(given)
    eff = effective_noise(BACKEND, state or ControllerState(), 0.0)
    noise, rng = NoiseModel(eff), np.random.default_rng(17)
    sweep = task.sweep(BACKEND.device.num_qubits, qubits, params)
    p1 = np.zeros((len(qubits), len(sweep.circuits)))
    for j, text in enumerate(sweep.circuits):
        program = compile_for(read_circuit(text), BACKEND.device, 0, 0)
        counts, _ = engine.run(program, noise, params["shots"], rng, BACKEND.limits)
        p1[:, j] = [marginal_p1(counts, i) for i in range(len(qubits))]
    outcomes = [
        task.analyze(q, np.array(sweep.x), p1[i], params["shots"], params)
        for i, q in enumerate(qubits)
    ]
    return outcomes, describe(eff)["qubits"]


def assert_within(outcome, name: str, truth: float, sigmas: float = 4.0) -> None:
    value, error = outcome.values[name], outcome.errors[name]
    assert abs(value - truth) <= sigmas * error, (outcome.qubit, name, value, error, truth)


def test_t1_is_the_twins_t1_within_its_error_and_5_percent():
    outcomes, truth = run_task("CheckT1", QUBITS)
    for o in outcomes:
        assert o.ok, o.reason
        t1 = truth[o.qubit]["t1_us"]
        assert_within(o, "t1", t1)
        assert abs(o.values["t1"] - t1) / t1 <= 0.05


def test_ramsey_and_echo_find_t2_and_no_detuning():
    ramsey, truth = run_task("CheckRamsey", QUBITS)
    echo, _ = run_task("CheckT2Echo", QUBITS)
    for r, e in zip(ramsey, echo, strict=True):
        assert r.ok and e.ok, (r.reason, e.reason)
        t2 = truth[r.qubit]["t2_us"]
        assert_within(r, "t2_star", t2)
        assert_within(e, "t2_echo", t2)
        assert_within(r, "detuning", 0.0)  # the twin models no detuning yet


def test_rabi_finds_no_amplitude_error_on_an_ideal_drive():
    outcomes, _ = run_task("CheckRabi", QUBITS)
    for o in outcomes:
        assert o.ok, o.reason
        assert o.values["pi_amplitude"] == pytest.approx(1.0, abs=0.002)


def test_readout_fidelity_is_the_twins_assignment_matrix():
    outcomes, truth = run_task("ReadoutFidelity", QUBITS)
    for o in outcomes:
        t = truth[o.qubit]
        assert_within(o, "p10", t["readout_p1_given_0"])
        assert_within(o, "p01", t["readout_p0_given_1"])
        fidelity = 1 - (t["readout_p1_given_0"] + t["readout_p0_given_1"]) / 2
        assert abs(o.values["average_readout_fidelity"] - fidelity) <= 0.005


def test_rb_finds_the_error_the_twin_applies_per_pulse():
    outcomes, truth = run_task("RandomizedBenchmarking", [0, 6], sequences=4)
    for o in outcomes:
        assert o.ok, o.reason
        implied = truth[o.qubit]["gate_error"]  # applied: relaxation over the pulse included
        measured = 1 - o.values["x90_gate_fidelity"]
        assert abs(measured - implied) <= max(0.2 * implied, 4 * o.errors["x90_gate_fidelity"])


def with_coherent_errors(**per_qubit: dict) -> ControllerState:
    state = ControllerState()
    for qubit, fields in per_qubit.items():
        state = apply_command(state, "set_qubit_noise", {"qubit": int(qubit[1:]), **fields})
    return state


def test_rabi_finds_an_amplitude_error_the_controller_set():
    """Over-rotations of +1.2 % and -0.7 %: π amplitude 1/(1+ε) within 3σ and 0.002."""
    state = with_coherent_errors(q0={"amplitude_error": 0.012}, q3={"amplitude_error": -0.007})
    outcomes, truth = run_task("CheckRabi", [0, 3, 6], state)
    for o in outcomes:
        expected = 1 / (1 + truth[o.qubit]["amplitude_error"])
        assert o.ok, o.reason
        assert_within(o, "pi_amplitude", expected, sigmas=3)
        assert abs(o.values["pi_amplitude"] - expected) <= 0.002


def test_ramsey_finds_a_detuning_the_controller_set():
    state = with_coherent_errors(q0={"detuning_mhz": 0.02}, q3={"detuning_mhz": -0.015})
    outcomes, truth = run_task("CheckRamsey", [0, 3, 6], state)
    for o in outcomes:
        assert o.ok, o.reason
        assert_within(o, "detuning", truth[o.qubit]["detuning_mhz"], sigmas=3)
