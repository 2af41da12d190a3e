"""The FPGA controller's physics: the reference's cryostat curve, the readout
discriminator model and pulse-schedule checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin import fpga
from twin.channels import excited_population
from twin.errors import TwinError


@pytest.mark.parametrize(
    ("mk", "multiplier"),
    [(10, 1.0), (15, 1.0), (30, 0.85), (50, 0.60), (100, 0.20), (300, 0.20), (22.5, 0.925)],
)
def test_the_cryostat_curve_is_the_references(mk, multiplier):
    # 15 mK -> 1.0, 30 -> 0.85, 50 -> 0.60, 100 -> 0.20 (the twin reference's cryo table)
    assert fpga.coherence_multiplier(mk) == pytest.approx(multiplier)


def test_thermal_population_follows_boltzmann():
    # p = 1 / (1 + e^(hf/kT)), h/k = 47.99 mK/GHz: 5 GHz at 50 mK -> e^-4.8
    assert excited_population(5.0, 50.0) == pytest.approx(1 / (1 + math.exp(47.99243 * 0.1)))


def test_the_reference_operating_point_leaves_readout_unchanged():
    assert fpga.readout_errors(0.02, 0.04, 100.0, 1000.0, 0.5) == (0.02, 0.04)


@given(
    p=st.floats(0.001, 0.3),
    tau=st.floats(100, 20_000),
    threshold=st.floats(0.05, 0.95),
)
def test_readout_errors_stay_probabilities_and_follow_the_model(p, tau, threshold):
    p10, p01 = fpga.readout_errors(p, p, 1e9, tau, threshold)  # T1 long: no decay term
    assert 0 <= p10 <= 0.5 and 0 <= p01 <= 0.5
    # longer integration narrows the blobs: never worse at the symmetric threshold
    longer, _ = fpga.readout_errors(p, p, 1e9, tau * 2, 0.5)
    same, _ = fpga.readout_errors(p, p, 1e9, tau, 0.5)
    assert longer <= same + 1e-12
    # moving the threshold toward |1> trades p(1|0) down for p(0|1) up
    if threshold > 0.5:
        assert p10 <= same + 1e-12 and p01 >= same - 1e-12


def test_decay_during_a_long_integration_costs_p0_given_1():
    _, p01 = fpga.readout_errors(0.02, 0.02, 50.0, 6000.0, 0.5)
    _, no_decay = fpga.readout_errors(0.02, 0.02, 1e9, 6000.0, 0.5)
    assert p01 - no_decay == pytest.approx((1 - math.exp(-5000 / 50_000)) / 2)


def test_a_schedule_becomes_qasm_with_terminal_measurements():
    actions = fpga.check_schedule(
        [{"gate": "h", "qubits": [0]}, {"gate": "cx", "qubits": [0, 1]},
         {"gate": "rz", "qubits": [1], "angle": 0.5}],
        2, 5,
    )  # fmt: skip
    qasm = fpga.schedule_qasm(actions, 2)
    assert "h q[0];" in qasm and "cx q[0],q[1];" in qasm and "rz(0.5) q[1];" in qasm
    assert qasm.endswith("measure q[0] -> c[0];\nmeasure q[1] -> c[1];")
    with pytest.raises(TwinError, match=r"actions\[0\] \(x\): repeated|qubits must"):
        fpga.check_schedule([{"gate": "x", "qubits": [0, 0]}], 2, 5)
