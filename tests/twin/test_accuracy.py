"""The twin against an established noisy simulator (Qiskit Aer, dev-only) given the same
device noise: Aer builds its own model from a Target carrying our T1, T2, gate errors
and durations (its standard device construction), plus our readout matrices. Both run
the same transpiled circuit; at 200,000 shots the total variation distance must stay
within 0.01 (sampling alone gives about 0.002)."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import CXGate, IGate, Measure, RZGate, SXGate, XGate
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import InstructionProperties, QubitProperties, Target
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel as AerNoiseModel
from qiskit_aer.noise import ReadoutError

from config.twin_files import load_backends, read_dir
from twin import engine
from twin.circuit_input import read_circuit as parse
from twin.circuits import Program, compile_for
from twin.controller import ControllerState, apply_command, effective_noise
from twin.noise import NoiseModel

SHOTS = 200_000
BACKENDS = load_backends(read_dir())


class _Device(BackendV2):
    def __init__(self, target: Target) -> None:
        super().__init__(name="twin-under-test")
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options()

    def run(self, run_input, **options):  # pragma: no cover - never run
        raise NotImplementedError


def aer_model(noise: NoiseModel, num_qubits: int) -> AerNoiseModel:
    eff = noise.noise
    target = Target(
        num_qubits=num_qubits,
        qubit_properties=[
            QubitProperties(t1=q.t1_us * 1e-6, t2=q.t2_us * 1e-6, frequency=q.frequency_ghz * 1e9)
            for q in eff.qubits
        ],
    )
    one = {
        (i,): InstructionProperties(duration=q.gate_time_ns * 1e-9, error=q.gate_error)
        for i, q in enumerate(eff.qubits)
    }
    target.add_instruction(SXGate(), dict(one))
    target.add_instruction(XGate(), dict(one))
    target.add_instruction(IGate(), dict(one))
    target.add_instruction(
        RZGate(Parameter("t")),
        {(i,): InstructionProperties(duration=0.0, error=0.0) for i in range(num_qubits)},
    )
    two = {}
    for edge, e in eff.edges.items():
        a, b = sorted(edge)
        props = InstructionProperties(duration=e.gate_time_ns * 1e-9, error=e.gate_error)
        two[(a, b)] = two[(b, a)] = props
    target.add_instruction(CXGate(), two)
    target.add_instruction(Measure(), {(i,): None for i in range(num_qubits)})
    model = AerNoiseModel.from_backend(_Device(target))
    for i in range(num_qubits):
        a = noise.readout(i)  # A[read, prepared]; Aer wants rows = prepared
        model.add_readout_error(ReadoutError(a.T.tolist()), [i])
    return model


def as_qiskit(program: Program, num_qubits: int) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits, program.num_clbits)
    for op in program.ops:
        if op.name == "rz":
            qc.rz(op.angle, op.qubits[0])
        else:
            getattr(qc, op.name)(*op.qubits)
    for q, c in program.measures:
        qc.measure(q, c)
    return qc


def tvd(a: dict[str, int], b: dict[str, int]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in set(a) | set(b))


def ghz(n: int) -> str:
    cx = "".join(f"cx q[{i}],q[{i + 1}];" for i in range(n - 1))
    return f'OPENQASM 2.0; include "qelib1.inc"; qreg q[{n}]; creg c[{n}]; h q[0]; {cx} measure q -> c;'


CASES = [
    ("ibm_jakarta_like", ghz(2), ()),
    ("ibm_jakarta_like", ghz(5), ()),
    ("ibm_jakarta_like", ghz(7), ()),  # needs routing on the H-shaped coupling map
    ("line_5", ghz(5), (("inject_noise_override", {"gate_error_multiplier": 4.0}),)),
    (
        "ibm_jakarta_like",
        ghz(3),
        (("set_qubit_noise", {"qubit": 1, "t1_us": 20.0, "t2_us": 15.0}),),
    ),
]


@pytest.mark.parametrize(("backend_id", "qasm", "commands"), CASES)
def test_counts_match_aer_within_a_tvd_of_0_01(backend_id, qasm, commands):
    backend = BACKENDS[backend_id]
    state = ControllerState()
    for kind, payload in commands:
        state = apply_command(state, kind, payload)
    noise = NoiseModel(effective_noise(backend, state, t=0.0))
    program = compile_for(parse(qasm), backend.device, seed=11)
    ours, used = engine.run(program, noise, SHOTS, np.random.default_rng(5), backend.limits)
    assert used.engine == "density_matrix"
    sim = AerSimulator(
        method="density_matrix",
        noise_model=aer_model(noise, backend.device.num_qubits),
        seed_simulator=9,
    )
    theirs = (
        sim.run(as_qiskit(program, backend.device.num_qubits), shots=SHOTS).result().get_counts()
    )
    distance = tvd(ours, theirs)
    print(f"{backend_id} {len(program.active_qubits)}q TVD {distance:.4f}")
    assert distance <= 0.01, (distance, sorted(ours.items(), key=lambda kv: -kv[1])[:5])
    # and the noise is really there: far from the ideal two-peak distribution
    assert sum(v for k, v in ours.items() if len(set(k)) > 1) > 0.01 * SHOTS
