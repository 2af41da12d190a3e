"""A backend as the twin simulates it: the device (qubits, couplings, basis gates), its
configured noise, and the scheduler's limits. Loaded from config/twin/ by config/."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QubitNoise:
    t1_us: float
    t2_us: float
    readout_p1_given_0: float  # prepared 0, read 1
    readout_p0_given_1: float
    gate_error: float  # average gate infidelity of sx / x / id
    gate_time_ns: float
    frequency_ghz: float = 5.0
    # Coherent errors a calibration finds and corrects: the qubit's frequency minus its
    # drive's (a Z turn of 2π·detuning·t over every timed operation), and the relative
    # over-rotation of its sx and x pulses.
    detuning_mhz: float = 0.0
    amplitude_error: float = 0.0


@dataclass(frozen=True)
class EdgeNoise:
    gate_error: float  # average gate infidelity of cx
    gate_time_ns: float


@dataclass(frozen=True)
class Drift:
    """Slow, seeded drift (twin/drift.py): of the error rates (multiplier
    1 + amplitude·sin(...)), of each qubit's detuning and amplitude error (a wander of
    up to ± the given peak around the configured value, on the scale of `period_s`),
    and TLS-like T1 dips on a share of the qubits. Every part is off at its default."""

    amplitude: float = 0.0
    period_s: float = 3600.0
    seed: int = 0
    detuning_mhz: float = 0.0  # peak wander of the detuning, MHz
    amplitude_error: float = 0.0  # peak wander of the amplitude error
    tls_fraction: float = 0.0  # share of the qubits with a TLS
    tls_window_s: float = 3600.0  # at most one dip per window
    tls_probability: float = 0.5  # that a window has a dip
    tls_dip_s: float = 600.0  # how long a dip lasts
    tls_t1_factor_min: float = 0.3  # T1 during a dip: a seeded factor in [min, max]
    tls_t1_factor_max: float = 0.6


@dataclass(frozen=True)
class Device:
    name: str
    num_qubits: int
    basis_gates: tuple[str, ...]
    coupling_map: tuple[tuple[int, int], ...]  # undirected; cx runs both ways
    positions: tuple[tuple[float, float], ...]  # (x, y) per qubit, for drawing

    def edges(self) -> frozenset[frozenset[int]]:
        return frozenset(frozenset(e) for e in self.coupling_map)


@dataclass(frozen=True)
class NoiseConfig:
    qubits: tuple[QubitNoise, ...]
    edges: dict[frozenset[int], EdgeNoise]
    drift: Drift = field(default_factory=Drift)


@dataclass(frozen=True)
class SchedulerLimits:
    max_shots: int = 100_000
    max_circuits_per_job: int = 20
    density_matrix_max_qubits: int = 10
    trajectory_max_qubits: int = 20
    trajectories: int = 256


@dataclass(frozen=True)
class Scenario:
    """An overlay: multiplies the config defaults (T1, T2, errors) and replaces, where
    set, the drift's amplitude, its coherent peaks and its TLS share."""

    name: str
    t1_multiplier: float = 1.0
    t2_multiplier: float = 1.0
    gate_error_multiplier: float = 1.0
    readout_error_multiplier: float = 1.0
    drift_amplitude: float | None = None
    drift_detuning_mhz: float | None = None
    drift_amplitude_error: float | None = None
    tls_fraction: float | None = None
    recognized: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    backend_id: str
    description: str
    device: Device
    noise: NoiseConfig
    limits: SchedulerLimits
    scenarios: dict[str, Scenario]
    default_scenario: str | None = None
