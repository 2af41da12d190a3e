"""Drift of the coherent errors and TLS-like T1 dips (seeded by the drift seed and the
clock alone), the drive correction a calibration applies (set_drive_correction), and
results as per-clbit marginals."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from adapters.twin.simulate import run_job
from config.catalog import ConfigFileError
from config.twin_files import load_backends, read_dir
from twin import drift as drifting
from twin.controller import ControllerState, apply_command, check_command, effective_noise
from twin.device import Backend, Drift
from twin.errors import TwinError
from twin.noise import NoiseModel, describe
from twin.sampling import marginals

SHIPPED = read_dir()
BACKENDS = load_backends(SHIPPED)
LINE = BACKENDS["line_5"]
SQUARE = BACKENDS["square_64"]
T0 = 1_780_000_000.0  # an instant in 2026


def drifting_backend(backend: Backend, **settings) -> Backend:
    drift = replace(backend.noise.drift, **settings)
    return replace(backend, noise=replace(backend.noise, drift=drift))


def apply(state: ControllerState, *commands: tuple[str, dict]) -> ControllerState:
    for kind, payload in commands:
        state = apply_command(state, kind, payload)
    return state


# -- marginals ----------------------------------------------------------------------
def test_marginals_count_the_ones_of_each_clbit_bit_0_rightmost():
    assert marginals({"001": 3, "011": 2, "100": 5}, 3) == [5, 2, 5]
    assert marginals({"": 10}, 0) == []
    assert marginals({}, 2) == [0, 0]


def test_a_marginals_job_carries_the_marginals_of_the_same_counts():
    ghz = (
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3];'
        " x q[0]; h q[1]; cx q[1],q[2]; measure q -> c;"
    )
    counts, _ = run_job(LINE, ControllerState(), [ghz], 4000, 9, T0)
    shaped, _ = run_job(LINE, ControllerState(), [ghz], 4000, 9, T0, result_format="marginals")
    (c,), (m,) = counts, shaped
    assert m["counts"] == {} and len(m["marginals"]) == 3
    assert m["marginals"] == marginals(c["counts"], 3)
    assert m["marginals"][0] > 3700 and 1700 < m["marginals"][1] < 2300  # clbit 0 is x'ed
    assert {k: v for k, v in m.items() if k not in ("counts", "marginals")} == {
        k: v for k, v in c.items() if k != "counts"
    }


# -- drift of the coherent errors -----------------------------------------------------
def test_without_drift_settings_the_coherent_errors_are_the_configured_ones():
    eff = effective_noise(SQUARE, ControllerState(), T0)
    assert all(q.detuning_mhz == 0 and q.amplitude_error == 0 for q in eff.qubits)
    assert all(f == 1.0 for f in eff.tls_t1_factors)
    assert [q.t1_us for q in eff.qubits] == [q.t1_us for q in SQUARE.noise.qubits]


def test_detuning_and_amplitude_error_wander_deterministically_around_the_config():
    backend = drifting_backend(SQUARE, detuning_mhz=0.2, amplitude_error=0.01)

    def coherent(t: float) -> list[tuple[float, float]]:
        return [(q.detuning_mhz, q.amplitude_error) for q in effective_noise(
            backend, ControllerState(), t).qubits]  # fmt: skip

    now = coherent(T0)
    assert now == coherent(T0)  # same seed and time: same values
    assert now == [(q.detuning_mhz, q.amplitude_error) for q in effective_noise(
        drifting_backend(backend), ControllerState(), T0).qubits]  # a new object, same config  # fmt: skip
    later = coherent(T0 + 1800)
    assert all(a != b for a, b in zip(now, later, strict=True))
    # slow: a second moves a detuning by far less than its peak
    near = coherent(T0 + 1)
    assert max(abs(a[0] - b[0]) for a, b in zip(now, near, strict=True)) < 0.002
    samples = [v for t in range(0, 86_400, 600) for v in coherent(T0 + t)]
    assert max(abs(d) for d, _ in samples) <= 0.2 and max(abs(e) for _, e in samples) <= 0.01
    assert max(abs(d) for d, _ in samples) > 0.1  # it does wander that far
    other = drifting_backend(backend, seed=backend.noise.drift.seed + 1)
    assert [q.detuning_mhz for q in effective_noise(other, ControllerState(), T0).qubits] != [
        d for d, _ in now
    ]


def test_drift_multiplier_zero_stops_the_wander_and_the_dips():
    backend = drifting_backend(SQUARE, detuning_mhz=0.2, tls_fraction=1.0, tls_probability=1.0)
    frozen = apply(ControllerState(), ("policy_update", {"drift_multiplier": 0}))
    for t in (T0, T0 + 777, T0 + 5000):
        eff = effective_noise(backend, frozen, t)
        assert all(q.detuning_mhz == 0 for q in eff.qubits)
        assert all(f == 1.0 for f in eff.tls_t1_factors)


def test_a_scenario_turns_the_drift_on_from_the_shipped_config():
    scenario = SQUARE.scenarios["drifting_lab"]
    assert (scenario.drift_detuning_mhz, scenario.drift_amplitude_error) == (0.1, 0.01)
    assert "tls_fraction" in scenario.recognized and not scenario.ignored
    state = apply(ControllerState(), ("set_scenario", {"scenario_name": "drifting_lab"}))
    eff = effective_noise(SQUARE, state, T0)
    assert all(0 < abs(q.detuning_mhz) <= 0.1 for q in eff.qubits)
    assert len(drifting.tls_qubits(SQUARE.noise.drift.seed, 64, 0.1)) == 6


# -- TLS dips -------------------------------------------------------------------------
def test_tls_dips_lower_t1_for_a_while_then_it_recovers():
    backend = drifting_backend(LINE, tls_fraction=0.4, tls_window_s=1000.0, tls_dip_s=200.0,
                               tls_probability=1.0)  # fmt: skip
    affected = drifting.tls_qubits(backend.noise.drift.seed, 5, 0.4)
    assert len(affected) == 2
    base = [q.t1_us for q in effective_noise(LINE, ControllerState(), T0).qubits]
    seen: dict[int, list[float]] = {q: [] for q in range(5)}
    for t in np.arange(T0, T0 + 3000, 10.0):
        eff = effective_noise(backend, ControllerState(), float(t))
        for q in range(5):
            factor = eff.tls_t1_factors[q]
            seen[q].append(factor)
            assert eff.qubits[q].t1_us == pytest.approx(base[q] * factor)
    for q in range(5):
        factors = seen[q]
        if q not in affected:
            assert set(factors) == {1.0}
            continue
        dipped = [f for f in factors if f < 1]
        assert all(0.3 <= f <= 0.6 for f in dipped)
        # one 200 s dip in every 1000 s window (3000 s see parts of four): about a fifth
        assert 0.1 <= len(dipped) / len(factors) <= 0.3
    (q,) = sorted(affected)[:1]
    t_dip = next(T0 + 10 * i for i, f in enumerate(seen[q]) if f < 1)
    dip = effective_noise(backend, ControllerState(), t_dip)
    assert dip.qubits[q].t1_us < base[q] * 0.61  # the dip lowers the effective T1
    assert dip.tls_t1_factors == effective_noise(backend, ControllerState(), t_dip).tls_t1_factors
    assert describe(dip)["qubits"][q]["t1_us"] == dip.qubits[q].t1_us
    assert describe(dip)["qubits"][q]["tls_t1_factor"] == dip.tls_t1_factors[q]


def test_a_per_qubit_t1_override_is_absolute_even_in_a_dip():
    backend = drifting_backend(LINE, tls_fraction=1.0, tls_probability=1.0, tls_dip_s=3600.0)
    state = apply(ControllerState(), ("set_qubit_noise", {"qubit": 1, "t1_us": 77.0}))
    eff = effective_noise(backend, state, T0)
    assert eff.tls_t1_factors[0] < 1 and eff.qubits[1].t1_us == 77.0


def test_the_drift_settings_are_checked_in_the_noise_file():
    files = dict(SHIPPED)
    path = "noise/line_5.yaml"
    files[path] = files[path].replace(
        "drift: {amplitude: 0.05,", "drift: {tls_fraction: 0.2, tls_dip_s: 7200, amplitude: 0.05,"
    )
    with pytest.raises(ConfigFileError, match="tls_dip_s must not exceed tls_window_s"):
        load_backends(files)
    files[path] = SHIPPED[path].replace(
        "drift: {amplitude: 0.05,", "drift: {detuning_mhz: 0.3, tls_fraction: 0.2, amplitude: 0.05,"
    )
    drift = load_backends(files)["line_5"].noise.drift
    assert (drift.detuning_mhz, drift.tls_fraction, drift.tls_window_s) == (0.3, 0.2, 3600.0)
    assert Drift().tls_fraction == 0 and Drift().detuning_mhz == 0


# -- the drive correction -------------------------------------------------------------
def test_a_drive_correction_cancels_the_amplitude_error_and_the_detuning():
    state = apply(
        ControllerState(),
        ("set_qubit_noise", {"qubit": 2, "amplitude_error": 0.03, "detuning_mhz": 0.4}),
        ("set_drive_correction", {"qubit": 2, "amplitude_scale": 1 / 1.03}),
    )
    eff = effective_noise(LINE, state, T0)
    assert eff.qubits[2].amplitude_error == pytest.approx(0, abs=1e-12)
    assert eff.qubits[2].detuning_mhz == 0.4
    assert eff.uncorrected[2] == (0.4, 0.03)
    state = apply(state, ("set_drive_correction", {"qubit": 2, "frequency_offset_mhz": 0.4}))
    assert state.drive_corrections[2] == (1 / 1.03, 0.4)  # the scale is kept
    eff = effective_noise(LINE, state, T0)
    assert (eff.qubits[2].amplitude_error, eff.qubits[2].detuning_mhz) == (0, 0)
    assert NoiseModel(eff).coherent_qubits == frozenset()  # Clifford again
    row = describe(eff)["qubits"][2]
    assert (row["uncorrected_amplitude_error"], row["uncorrected_detuning_mhz"]) == (0.03, 0.4)
    # a correction on a qubit without coherent errors creates them: (1 + 0)·1.1 - 1
    over = apply(state, ("set_drive_correction", {"qubit": 0, "amplitude_scale": 1.1,
                                                  "frequency_offset_mhz": -2}))  # fmt: skip
    eff = effective_noise(LINE, over, T0)
    assert eff.qubits[0].amplitude_error == pytest.approx(0.1) and eff.qubits[0].detuning_mhz == 2
    # reset_qubit_noise clears the qubit's noise, not its drive; reset clears both
    kept = apply(state, ("reset_qubit_noise", {"qubit": 2}))
    assert kept.drive_corrections == state.drive_corrections
    assert effective_noise(LINE, kept, T0).qubits[2].detuning_mhz == -0.4
    assert apply(state, ("reset", {})).drive_corrections == {}
    # the identity is no correction
    undone = apply(state, ("set_drive_correction", {"qubit": 2, "amplitude_scale": 1,
                                                    "frequency_offset_mhz": 0}))  # fmt: skip
    assert undone.drive_corrections == {}


def test_a_drive_correction_applies_to_the_drifted_values():
    backend = drifting_backend(LINE, detuning_mhz=0.2, amplitude_error=0.01)
    bare = effective_noise(backend, ControllerState(), T0)
    d, e = bare.qubits[3].detuning_mhz, bare.qubits[3].amplitude_error
    state = apply(ControllerState(), ("set_drive_correction", {
        "qubit": 3, "amplitude_scale": 1 / (1 + e), "frequency_offset_mhz": d}))  # fmt: skip
    fixed = effective_noise(backend, state, T0).qubits[3]
    assert fixed.detuning_mhz == pytest.approx(0, abs=1e-12)
    assert fixed.amplitude_error == pytest.approx(0, abs=1e-12)
    later = effective_noise(backend, state, T0 + 1800).qubits[3]  # it drifts away again
    assert abs(later.detuning_mhz) > 1e-4


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"qubit": 0, "amplitude_scale": 1.0, "phase": 1}, "unknown_payload_field"),
        ({"amplitude_scale": 1.0}, "invalid_payload"),
        ({"qubit": 0}, "invalid_payload"),
        ({"qubit": 5, "amplitude_scale": 1.0}, "qubit_out_of_range"),
        ({"qubit": "0", "amplitude_scale": 1.0}, "invalid_payload"),
        ({"qubit": True, "amplitude_scale": 1.0}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": "1.0"}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": True}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": math.nan}, "invalid_payload"),
        ({"qubit": 0, "frequency_offset_mhz": math.inf}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": 0.49}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": 2.01}, "invalid_payload"),
        ({"qubit": 0, "frequency_offset_mhz": -50.5}, "invalid_payload"),
        ({"qubit": 0, "amplitude_scale": None}, "invalid_payload"),
    ],
)
def test_bad_drive_corrections_are_refused_with_a_code(payload, code):
    with pytest.raises(TwinError) as err:
        check_command(LINE, "set_drive_correction", payload)
    assert err.value.code == code


def test_good_drive_corrections_pass_the_check():
    for payload in (
        {"qubit": 4, "amplitude_scale": 0.5},
        {"qubit": 0, "amplitude_scale": 2, "frequency_offset_mhz": 50},
        {"qubit": 1, "frequency_offset_mhz": -0.25},
    ):
        check_command(LINE, "set_drive_correction", payload)
