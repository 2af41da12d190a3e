"""QEC sessions against stim and pymatching used directly.

The reference is stim's own generated memory circuit with the textbook circuit-level
noise (`after_clifford_depolarization = before_measure_flip_probability = p`), sampled
by stim's detector sampler and decoded by pymatching: the standard way of estimating a
code's logical error rate (Gidney, "Stim", Quantum 5, 497 (2021); Higgott & Gidney,
"Sparse Blossom", 2023). A session configured with the same uniform noise must give
the same rates within their statistical error, and the rates must fall with distance.
"""

from __future__ import annotations

import math

import numpy as np
import pymatching
import pytest
import stim

import twin.qec as qec
from config.twin_files import load_backends, read_dir
from twin.controller import ControllerState, apply_command, effective_noise
from twin.errors import TwinError
from twin.qec_code import build, check
from twin.qec_noise import code_noise, uniform

BACKENDS = load_backends(read_dir())


def reference_circuit(family: str, d: int, basis: str, rounds: int, p: float) -> stim.Circuit:
    task = (
        "repetition_code:memory"
        if family == "repetition"
        else f"surface_code:rotated_memory_{basis.lower()}"
    )
    return stim.Circuit.generated(
        task,
        distance=d,
        rounds=rounds,
        after_clifford_depolarization=p,
        before_measure_flip_probability=p,
    )


def errors_of(dem: stim.DetectorErrorModel) -> list[str]:
    return [str(i) for i in dem.flattened() if i.type == "error"]


@pytest.mark.parametrize(
    ("family", "d", "basis"), [("repetition", 3, "Z"), ("surface", 3, "Z"), ("surface", 3, "X")]
)
def test_uniform_noise_is_the_textbook_circuit(family, d, basis):
    code = build(family, d, basis)
    noise = uniform(code, 0.004)
    ours = qec.full_circuit(code, [(noise, 4)], noise).detector_error_model(decompose_errors=True)
    ref = reference_circuit(family, d, basis, 4, 0.004).detector_error_model(decompose_errors=True)
    assert errors_of(ours) == errors_of(ref)


def session_rate(family: str, d: int, p: float, rounds: int, shots: int, seed: int) -> float:
    code = build(family, d, "Z")
    noise = uniform(code, p)
    session = qec.Session(code, seed=seed, batch=shots)
    session.measure(noise, rounds=2)  # a bulk step, then single rounds: both paths
    while session.rounds < rounds:
        session.measure(noise)
    return float(session.end(noise).builtin_errors.mean())


def direct_rate(family: str, d: int, p: float, rounds: int, shots: int) -> float:
    circuit = reference_circuit(family, d, "Z", rounds, p)
    matching = pymatching.Matching.from_detector_error_model(
        circuit.detector_error_model(decompose_errors=True)
    )
    det, obs = circuit.compile_detector_sampler(seed=99).sample(shots, separate_observables=True)
    return float((matching.decode_batch(det)[:, 0] != obs[:, 0]).mean())


def agree(a: float, b: float, shots: int) -> bool:
    sigma = math.sqrt((a * (1 - a) + b * (1 - b)) / shots)
    return abs(a - b) <= 4 * sigma + 1.0 / shots


@pytest.mark.parametrize(
    ("family", "p", "distances", "shots"),
    [
        ("repetition", 0.01, (3, 5, 7), 40_000),
        ("surface", 0.005, (3, 5), 40_000),
        ("surface", 0.001, (3, 5), 100_000),
    ],
)
def test_closed_loop_rates_match_stim_and_pymatching(family, p, distances, shots):
    rates = []
    for d in distances:
        ours = session_rate(family, d, p, rounds=d, shots=shots, seed=d)
        ref = direct_rate(family, d, p, rounds=d, shots=shots)
        assert agree(ours, ref, shots), (d, ours, ref)
        rates.append(ours)
    # below threshold, each step in distance lowers the logical error rate
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[0] > 0  # the comparison above had something to compare


def test_rounds_are_correlated_not_independent_draws():
    """An uncorrected data error stays: the stabilizer that saw it sees it next round."""
    code = build("repetition", 5)
    session = qec.Session(code, seed=3, batch=20_000)
    noise = uniform(code, 0.01)
    syndromes, _ = session.measure(noise, rounds=6)
    fired = syndromes[:-1]
    again = syndromes[1:][fired]
    # independent draws would fire again at the base rate (< 10 %); here the data errors
    # persist and only the measurement errors (about a quarter of firings) go away
    assert fired.mean() < 0.1
    assert again.mean() > 0.6


def test_corrections_act_on_the_frame():
    code = build("repetition", 5)
    zero = uniform(code, 0.0)
    session = qec.Session(code, seed=1)
    assert not session.measure(zero)[0].any()
    session.correct(np.array([1, 0, 0, 0, 0]))  # acts like an X error on data qubit 0
    assert session.measure(zero)[0][0, :, 0].tolist() == [1, 0, 0, 0]
    session.correct(np.array([0, 0, 0, 0, 1]))  # the logical operator's qubit
    assert session.measure(zero)[0][0, :, 0].tolist() == [1, 0, 0, 1]
    outcome = session.end(zero)
    assert outcome.data[:, 0].tolist() == [1, 0, 0, 0, 1]
    assert outcome.logical_flips.tolist() == [True]  # measured as corrected
    # the built-in decoder takes the corrections' own effect out: nothing to decode
    assert outcome.builtin_errors.tolist() == [False]
    assert not any(h.any() for h in session.noise_only)


def test_a_good_decoder_preserves_the_logical_state_and_a_bad_one_does_not():
    code = build("repetition", 5)
    noise = uniform(code, 0.002)
    checks = np.array([[i in s for i in range(5)] for s in code.supports], dtype=np.uint8)
    decoder = pymatching.Matching(checks)
    rng = np.random.default_rng(0)
    rates = {}
    for kind in ("matching", "random"):
        session = qec.Session(code, seed=5, batch=20_000)
        for _ in range(10):
            syndromes, _ = session.measure(noise)
            if kind == "matching":
                session.correct(decoder.decode_batch(syndromes[0].T.astype(np.uint8)).T)
            else:
                session.correct(rng.random((5, 20_000)) < 0.05)
        rates[kind] = session.end(noise).logical_flips.mean()
    assert rates["matching"] < 0.05 < 0.3 < rates["random"]


def test_replay_gives_the_same_bits_across_record_clears(monkeypatch):
    monkeypatch.setattr(qec, "RECORD_LIMIT", 100)  # clear stim's record every few rounds
    code = build("surface", 3)
    noise = uniform(code, 0.01)

    def run() -> list[np.ndarray]:
        session = qec.Session(code, seed=42)
        out = []
        for r in range(40):
            out.append(session.measure(noise, rounds=3 if r % 7 == 0 else 1)[0])
            if r % 4 == 0:
                session.correct(np.eye(len(code.data), dtype=bool)[r % len(code.data)])
        out.append(session.end(noise).data)
        return out

    first, second = run(), run()
    assert all((a == b).all() for a, b in zip(first, second, strict=True))


def test_backend_noise_and_controller_commands_reach_the_code():
    backend = BACKENDS["ibm_jakarta_like"]
    code = build("repetition", 4)  # 7 qubits: the largest that fits
    calm = effective_noise(backend, ControllerState(), 0.0)
    base = code_noise(code, calm)
    state = apply_command(
        ControllerState(),
        "inject_noise_override",
        {"gate_error_multiplier": 5.0, "readout_error_multiplier": 2.0},
    )
    worse = code_noise(code, effective_noise(backend, state, 0.0))
    # a CX's depolarizing part: five times the configured error, less relaxation's share
    assert worse.pairs[0][2] > 5 * base.pairs[0][2] > 0
    assert worse.measure[0] == pytest.approx(2 * base.measure[0], rel=1e-3)
    q0 = calm.qubits[0]  # the config's readout errors, drift included
    assert base.measure[0] == pytest.approx(
        (q0.readout_p1_given_0 + q0.readout_p0_given_1) / 2, rel=1e-3
    )
    assert all(any(i) for i in base.idle)  # data qubits relax while ancillas are read
    # a later round under the worse noise fires more detectors
    session = qec.Session(code, seed=2, batch=20_000)
    _, before = session.measure(base, rounds=5)
    _, after = session.measure(worse, rounds=5)
    # (the first chunk of `before` is round 0, with fewer detectors)
    assert after[0].mean() > 1.5 * before[1].mean()


def test_codes_that_do_not_fit_are_refused_with_the_limit():
    check("repetition", 4, "Z", 7)
    with pytest.raises(
        TwinError, match=r"needs 9 qubits; the backend has 7 \(the largest that fits is d = 4\)"
    ):
        check("repetition", 5, "Z", 7)
    check("surface", 5, "Z", 64)
    with pytest.raises(
        TwinError, match=r"needs 71 qubits; the backend has 64 \(the largest that fits is d = 5\)"
    ):
        check("surface", 6, "Z", 64)
    with pytest.raises(TwinError, match="at least 2"):
        check("surface", 1, "Z", 64)
    assert build("surface", 5).num_stabilizers == 24
    assert build("repetition", 7).num_stabilizers == 6
    assert len(build("surface", 3).data) == 9
    layout = build("surface", 3).layout()
    assert sorted(s["type"] for s in layout["stabilizers"]) == ["X"] * 4 + ["Z"] * 4
    assert all(len(s["data"]) in (2, 4) for s in layout["stabilizers"])


def test_per_round_rate_inverts_the_compounding():
    eps = 0.01
    total = (1 - (1 - 2 * eps) ** 25) / 2
    assert qec.per_round(total, 25) == pytest.approx(eps)
