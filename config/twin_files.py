"""The twin's YAML files (config/twin/): parsed strictly into twin.device objects.

Files are handled as {relative path: text}, so the same code checks a file a user is
about to write (PUT /config/content) and rebuilds the backends from files read from
disk or from the config events that carried them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.catalog import ConfigFileError, parse_text
from twin.device import (
    Backend,
    Device,
    Drift,
    EdgeNoise,
    NoiseConfig,
    QubitNoise,
    Scenario,
    SchedulerLimits,
)

TWIN_CONFIG = Path(__file__).parent / "twin"
GROUPS = ("devices", "noise", "scheduler", "scenarios")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _BackendEntry(_Strict):
    description: str = ""
    device: str
    noise: str
    scheduler: str = "default"
    scenario: str | None = None


class _BackendsFile(_Strict):
    backends: dict[str, _BackendEntry]


class _DeviceFile(_Strict):
    num_qubits: int = Field(ge=1, le=1024)
    basis_gates: list[str]
    coupling_map: list[tuple[int, int]]
    positions: list[tuple[float, float]] = []

    @model_validator(mode="after")
    def _consistent(self) -> _DeviceFile:
        if set(self.basis_gates) - {"cx", "id", "rz", "sx", "x"}:
            raise ValueError("basis_gates may use only cx, id, rz, sx, x")
        for a, b in self.coupling_map:
            if not (0 <= a < self.num_qubits and 0 <= b < self.num_qubits) or a == b:
                raise ValueError(f"coupling [{a}, {b}] is not a pair of distinct device qubits")
        if self.positions and len(self.positions) != self.num_qubits:
            raise ValueError(f"positions lists {len(self.positions)} qubits, not {self.num_qubits}")
        return self


class _Qubit(_Strict):
    t1_us: float = Field(gt=0)
    t2_us: float = Field(gt=0)
    readout_p1_given_0: float = Field(ge=0, le=0.5)
    readout_p0_given_1: float = Field(ge=0, le=0.5)
    gate_error: float = Field(ge=0, le=0.5)
    gate_time_ns: float = Field(ge=0)
    frequency_ghz: float = Field(5.0, gt=0)
    detuning_mhz: float = Field(0.0, ge=-50, le=50)
    amplitude_error: float = Field(0.0, ge=-0.5, le=0.5)


class _Edge(_Strict):
    gate_error: float = Field(ge=0, le=0.75)
    gate_time_ns: float = Field(ge=0)


class _Drift(_Strict):
    amplitude: float = Field(0.0, ge=0, le=1)
    period_s: float = Field(3600.0, gt=0)
    seed: int = 0
    # The coherent errors' wander (peaks around the configured values) and TLS dips.
    detuning_mhz: float = Field(0.0, ge=0, le=50)
    amplitude_error: float = Field(0.0, ge=0, le=0.5)
    tls_fraction: float = Field(0.0, ge=0, le=1)
    tls_window_s: float = Field(3600.0, gt=0)
    tls_probability: float = Field(0.5, ge=0, le=1)
    tls_dip_s: float = Field(600.0, gt=0)
    tls_t1_factor_min: float = Field(0.3, gt=0, le=1)
    tls_t1_factor_max: float = Field(0.6, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> _Drift:
        if self.tls_dip_s > self.tls_window_s:
            raise ValueError("tls_dip_s must not exceed tls_window_s")
        if self.tls_t1_factor_min > self.tls_t1_factor_max:
            raise ValueError("tls_t1_factor_min must not exceed tls_t1_factor_max")
        return self


class _NoiseFile(_Strict):
    qubits: list[_Qubit]
    edges: dict[str, _Edge]
    drift: _Drift = _Drift()


class _SchedulerFile(_Strict):
    max_shots: int = Field(100_000, ge=1, le=10_000_000)
    max_circuits_per_job: int = Field(20, ge=1, le=1000)
    density_matrix_max_qubits: int = Field(10, ge=1, le=12)
    trajectory_max_qubits: int = Field(20, ge=1, le=26)
    trajectories: int = Field(256, ge=1, le=100_000)


class _ScenarioFile(BaseModel):
    """Unknown keys are kept and reported (telemetry/scenario/compatibility), not fatal:
    a scenario written for another twin still loads, and the user sees what was ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)
    t1_multiplier: float = Field(1.0, gt=0)
    t2_multiplier: float = Field(1.0, gt=0)
    gate_error_multiplier: float = Field(1.0, ge=0)
    readout_error_multiplier: float = Field(1.0, ge=0)
    drift_amplitude: float | None = Field(None, ge=0, le=1)
    drift_detuning_mhz: float | None = Field(None, ge=0, le=50)
    drift_amplitude_error: float | None = Field(None, ge=0, le=0.5)
    tls_fraction: float | None = Field(None, ge=0, le=1)


MODELS: dict[str, type[BaseModel]] = {
    "devices": _DeviceFile,
    "noise": _NoiseFile,
    "scheduler": _SchedulerFile,
    "scenarios": _ScenarioFile,
}


def model_for(path: str) -> type[BaseModel]:
    """The schema of a config file by where it lives; anything else is not a config file."""
    parts = Path(path).parts
    if parts == ("backends.yaml",):
        return _BackendsFile
    if len(parts) == 2 and parts[0] in MODELS and parts[1].endswith((".yaml", ".yml")):
        return MODELS[parts[0]]
    raise ConfigFileError(
        f"{path}: not a twin config file (backends.yaml or {{{','.join(GROUPS)}}}/<name>.yaml)"
    )


def read_dir(root: Path = TWIN_CONFIG) -> dict[str, str]:
    files = {"backends.yaml": (root / "backends.yaml").read_text()}
    for group in GROUPS:
        for f in sorted((root / group).glob("*.y*ml")):
            files[f"{group}/{f.name}"] = f.read_text()
    return files


def _stem_map(files: dict[str, str], group: str) -> dict[str, Any]:
    out = {}
    for path, text in files.items():
        if path.startswith(group + "/"):
            out[Path(path).stem] = parse_text(text, path, MODELS[group])
    return out


def load_backends(files: dict[str, str]) -> dict[str, Backend]:
    """Every backend of backends.yaml, checked across files (a backend naming a missing
    file, noise for a different qubit count, or a cx error on an uncoupled pair)."""
    for path, text in files.items():
        parse_text(text, path, model_for(path))
    listing = parse_text(files["backends.yaml"], "backends.yaml", _BackendsFile)
    devices, noises = _stem_map(files, "devices"), _stem_map(files, "noise")
    schedulers, scenario_files = _stem_map(files, "scheduler"), _stem_map(files, "scenarios")
    scenarios = {
        name: Scenario(
            name=name,
            t1_multiplier=s.t1_multiplier,
            t2_multiplier=s.t2_multiplier,
            gate_error_multiplier=s.gate_error_multiplier,
            readout_error_multiplier=s.readout_error_multiplier,
            drift_amplitude=s.drift_amplitude,
            drift_detuning_mhz=s.drift_detuning_mhz,
            drift_amplitude_error=s.drift_amplitude_error,
            tls_fraction=s.tls_fraction,
            recognized=tuple(sorted(s.model_fields_set)),
            ignored=tuple(sorted(s.model_extra or {})),
        )
        for name, s in scenario_files.items()
    }
    backends = {}
    for backend_id, entry in listing.backends.items():
        where = f"backends.yaml: {backend_id}"
        for kind, table, name in (
            ("device", devices, entry.device),
            ("noise", noises, entry.noise),
            ("scheduler", schedulers, entry.scheduler),
        ):
            if name not in table:
                raise ConfigFileError(f"{where}: no {kind} file '{name}'")
        if entry.scenario is not None and entry.scenario not in scenarios:
            raise ConfigFileError(f"{where}: no scenario '{entry.scenario}'")
        d, n = devices[entry.device], noises[entry.noise]
        device = Device(
            name=backend_id,
            num_qubits=d.num_qubits,
            basis_gates=tuple(d.basis_gates),
            coupling_map=tuple(tuple(e) for e in d.coupling_map),
            positions=tuple(tuple(p) for p in d.positions)
            or tuple((float(q), 0.0) for q in range(d.num_qubits)),
        )
        noise_path = f"noise/{entry.noise}.yaml"
        if len(n.qubits) != d.num_qubits:
            raise ConfigFileError(
                f"{noise_path}: {len(n.qubits)} qubits, but device '{entry.device}' has"
                f" {d.num_qubits}"
            )
        edges: dict[frozenset[int], EdgeNoise] = {}
        for key, e in n.edges.items():
            try:
                pair = frozenset(int(x) for x in key.split("-"))
            except ValueError:
                raise ConfigFileError(f"{noise_path}: edge '{key}' is not 'a-b'") from None
            if pair not in device.edges():
                raise ConfigFileError(f"{noise_path}: edge '{key}' is not in the coupling map")
            edges[pair] = EdgeNoise(e.gate_error, e.gate_time_ns)
        missing = [sorted(e) for e in device.edges() if e not in edges]
        if missing:
            raise ConfigFileError(f"{noise_path}: no noise for couplings {sorted(missing)}")
        backends[backend_id] = Backend(
            backend_id=backend_id,
            description=entry.description,
            device=device,
            noise=NoiseConfig(
                qubits=tuple(QubitNoise(**q.model_dump()) for q in n.qubits),
                edges=edges,
                drift=Drift(**n.drift.model_dump()),
            ),
            limits=SchedulerLimits(**schedulers[entry.scheduler].model_dump()),
            scenarios=scenarios,
            default_scenario=entry.scenario,
        )
    return backends
