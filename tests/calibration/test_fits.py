"""The fits recover known parameters from synthetic data: binomial counts drawn from the
model at random true values (hypothesis, derandomized so every run draws the same). The
true value must lie within 4σ of the fit, σ being the fit's own error."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration import clifford
from calibration.fits import (
    binomial_sigma,
    damped_cosine,
    exponential_decay,
    rb_decay,
    rotation_train,
)
from calibration.tasks import TASKS

SHOTS = 2000
RUNS = settings(max_examples=25, deadline=None, derandomize=True)


def measured(p: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(SHOTS, np.clip(p, 0, 1)) / SHOTS
    return y, binomial_sigma(y, SHOTS)


@RUNS
@given(t1=st.floats(10, 400), spam=st.floats(0.0, 0.05), seed=st.integers(0, 2**32 - 1))
def test_an_exponential_decay_recovers_t1(t1, spam, seed):
    t = np.geomspace(0.02 * 100, 5 * 100, 24)  # the task's sweep for a 100 µs guess
    y, sigma = measured((1 - 2 * spam) * np.exp(-t / t1) + spam, seed)
    fit = exponential_decay(t, y, sigma)
    assert fit.ok and abs(fit.values["tau"] - t1) <= 4 * fit.errors["tau"], (t1, fit.values)


@RUNS
@given(t2=st.floats(20, 120), detuning=st.floats(-0.01, 0.01), seed=st.integers(0, 2**32 - 1))
def test_a_damped_cosine_recovers_t2_star_and_frequency(t2, detuning, seed):
    t = np.linspace(0, 125, 41)
    f = 5 / 125 + detuning  # the task's artificial detuning plus the qubit's own
    y, sigma = measured(0.5 - 0.48 * np.exp(-t / t2) * np.cos(2 * math.pi * f * t), seed)
    fit = damped_cosine(t, y, sigma)
    assert fit.ok
    assert abs(fit.values["tau"] - t2) <= 4 * fit.errors["tau"], (t2, fit.values)
    assert abs(fit.values["frequency"] - f) <= 4 * fit.errors["frequency"], (f, fit.values)


@RUNS
@given(eps=st.floats(-0.05, 0.05), decay=st.floats(200, 5000), seed=st.integers(0, 2**32 - 1))
def test_a_rotation_train_recovers_the_amplitude_error(eps, decay, seed):
    n = np.arange(0, 61, dtype=float)
    p = 0.5 - 0.49 * np.exp(-n / decay) * np.cos(n * (math.pi / 2) * (1 + eps))
    y, sigma = measured(p, seed)
    fit = rotation_train(n, y, sigma)
    assert fit.ok and abs(fit.values["eps"] - eps) <= 4 * fit.errors["eps"], (eps, fit.values)


@RUNS
@given(epc=st.floats(1e-4, 5e-3), seed=st.integers(0, 2**32 - 1))
def test_the_rb_decay_recovers_the_error_per_clifford(epc, seed):
    m = np.array([1, 16, 64, 128, 256], dtype=float)
    p = 1 - 2 * epc
    rng = np.random.default_rng(seed)
    y = 0.95 * p**m + rng.normal(0, 0.004, size=len(m))
    fit = rb_decay(m, y, np.full(len(m), 0.004))
    assert fit.ok and abs(fit.values["p"] - p) <= 4 * fit.errors["p"], (p, fit.values)


def test_data_without_a_decay_fail_the_task_with_a_reason():
    """A qubit that never left |0> (a dead drive line): the T1 task fails, no value."""
    task = TASKS["CheckT1"]
    params = task.run_params(None)
    x = np.array(task.sweep(1, [0], params).x)
    y, _ = measured(np.full(len(x), 0.02), seed=3)
    outcome = task.analyze(0, x, y, SHOTS, params)
    assert not outcome.ok and outcome.values == {} and "R²" in outcome.reason


def test_the_clifford_group_has_24_elements_and_sequences_invert():
    assert len(clifford.group()) == 24 and clifford.mean_pulses() == 1.0
    rng = np.random.default_rng(4)
    for length in (1, 7, 100):
        total = np.eye(2, dtype=complex)
        for word in clifford.sequence(length, rng):
            total = clifford.unitary(word) @ total
        assert abs(abs(np.trace(total)) - 2) < 1e-9  # the identity up to a phase
