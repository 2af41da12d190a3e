"""Controller state, folded from controller commands, and the effective noise it gives.

Precedence, highest first (as the reference): a per-qubit override (absolute values) →
global controller multipliers (inject_noise_override, policy_update, pulse schedule,
ADC/DAC proxies, cryostat) → the active scenario overlay → the config default, with its
drift (twin/drift.py). A drive correction (set_drive_correction) acts last, on the
coherent errors the qubit has whichever way they were set: it is the drive's, not the
qubit's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from twin import drift as drifting
from twin import fpga
from twin.device import Backend, EdgeNoise, QubitNoise
from twin.errors import TwinError

COMMAND_FIELDS: dict[str, frozenset[str]] = {
    "inject_noise_override": frozenset(
        {"gate_error_multiplier", "readout_error_multiplier", "exec_time_scale"}
    ),
    "set_qubit_noise": frozenset(
        {
            "qubit",
            "t1_us",
            "t2_us",
            "readout_error",
            "gate_error",
            "detuning_mhz",
            "amplitude_error",
        }
    ),  # fmt: skip
    "reset_qubit_noise": frozenset({"qubit"}),
    "set_scenario": frozenset({"scenario_name"}),
    "policy_update": frozenset(
        {"gate_error_multiplier", "readout_error_multiplier", "drift_multiplier", "exec_time_scale"}
    ),
    "set_pulse_schedule": frozenset({"error_multiplier"}),
    "set_adc_gain": frozenset({"readout_error_multiplier"}),
    "set_dac_bias": frozenset({"gate_error_multiplier"}),
    "reset": frozenset(),
    # The FPGA controller API's state (controller_api/v1/{backend}/cryo, readout_config).
    "set_cryo": frozenset({"temperature_mk", "still_mk", "t1_multiplier", "t2_multiplier"}),
    "set_readout_config": frozenset({"channels", "integration_time_ns", "thresholds"}),
    # A calibration's correction of a qubit's drive pulses (closing the loop).
    "set_drive_correction": frozenset({"qubit", "amplitude_scale", "frequency_offset_mhz"}),
}
QUBIT_FIELDS = ("t1_us", "t2_us", "readout_error", "gate_error")
REVERT = -1  # set_qubit_noise: this field goes back to its config value
# Signed values (a detuning of -1 MHz is real): no REVERT; reset_qubit_noise clears them.
COHERENT_FIELDS = {"detuning_mhz": 50.0, "amplitude_error": 0.5}  # field -> largest |value|
# set_drive_correction: field -> (lowest, highest) value.
DRIVE_FIELDS = {"amplitude_scale": (0.5, 2.0), "frequency_offset_mhz": (-50.0, 50.0)}
NO_CORRECTION = (1.0, 0.0)  # (amplitude_scale, frequency_offset_mhz)


@dataclass(frozen=True)
class Multipliers:
    gate_error: float = 1.0
    readout_error: float = 1.0
    exec_time: float = 1.0
    drift: float = 1.0


@dataclass(frozen=True)
class ControllerState:
    injected: Multipliers = Multipliers()
    policy: Multipliers = Multipliers()
    pulse_error: float = 1.0
    adc_readout: float = 1.0
    dac_gate: float = 1.0
    cryo_t1: float = 1.0
    cryo_t2: float = 1.0
    scenario: str | None = None
    qubit_overrides: dict[int, dict[str, float]] = field(default_factory=dict)
    # The cryostat: None until set (no thermal population is modelled before that).
    temperature_mk: float | None = None
    still_mk: float | None = None
    # Per qubit (integration time ns, threshold) of the FPGA's readout configuration.
    readout_config: dict[int, tuple[float, float]] = field(default_factory=dict)
    # Per qubit (amplitude_scale, frequency_offset_mhz) of its drive (NO_CORRECTION: absent).
    drive_corrections: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def gate_multiplier(self) -> float:
        return self.injected.gate_error * self.policy.gate_error * self.pulse_error * self.dac_gate

    @property
    def readout_multiplier(self) -> float:
        return self.injected.readout_error * self.policy.readout_error * self.adc_readout

    @property
    def exec_time_scale(self) -> float:
        return self.injected.exec_time * self.policy.exec_time


def check_command(backend: Backend, command_type: str, payload: dict[str, Any]) -> None:
    """Refuse what the fold could not apply: unknown type or field, a qubit outside the
    device, an unknown scenario, a multiplier that is not a positive number."""
    allowed = COMMAND_FIELDS.get(command_type)
    if allowed is None:
        raise TwinError(
            "unknown_command_type",
            f"unknown command_type '{command_type}'; allowed: {sorted(COMMAND_FIELDS)}",
        )
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise TwinError(
            "unknown_payload_field",
            f"{command_type} does not take {unknown}; allowed: {sorted(allowed)}",
        )
    if command_type in ("set_cryo", "set_readout_config"):
        if command_type == "set_cryo":
            fpga.check_cryo(payload)
        else:
            fpga.check_readout_config(payload, backend.device.num_qubits)
        return
    for key, value in payload.items():
        if key == "scenario_name":
            if value not in backend.scenarios:
                raise TwinError(
                    "unknown_scenario",
                    f"scenario '{value}' is not defined for {backend.backend_id};"
                    f" known: {sorted(backend.scenarios)}",
                )
            continue
        if key == "qubit":
            if not isinstance(value, int) or isinstance(value, bool):
                raise TwinError("invalid_payload", "qubit must be an integer")
            if not 0 <= value < backend.device.num_qubits:
                raise TwinError(
                    "qubit_out_of_range",
                    f"qubit {value} is outside {backend.backend_id}"
                    f" (0..{backend.device.num_qubits - 1})",
                )
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise TwinError("invalid_payload", f"{key} must be a finite number")
        if command_type == "set_drive_correction":
            low, high = DRIVE_FIELDS[key]
            if not low <= value <= high:
                raise TwinError("invalid_payload", f"{key} must lie in [{low:g}, {high:g}]")
            continue
        if command_type == "set_qubit_noise" and key in COHERENT_FIELDS:
            if abs(value) > COHERENT_FIELDS[key]:
                raise TwinError("invalid_payload", f"{key} must lie in ±{COHERENT_FIELDS[key]:g}")
            continue
        if command_type == "set_qubit_noise":
            if value == REVERT:
                continue
            if key in ("readout_error", "gate_error") and not 0 <= value <= 0.5:
                raise TwinError("invalid_payload", f"{key} must lie in [0, 0.5] (or -1)")
            if key in ("t1_us", "t2_us") and value <= 0:
                raise TwinError("invalid_payload", f"{key} must be positive (or -1)")
        elif value < 0:  # 0 switches a noise source off (gate errors, to isolate readout)
            raise TwinError("invalid_payload", f"{key} must be 0 or more")
    if command_type in ("set_qubit_noise", "set_drive_correction") and "qubit" not in payload:
        raise TwinError("invalid_payload", f"{command_type} needs a qubit")
    if command_type == "set_drive_correction" and not set(payload) & set(DRIVE_FIELDS):
        raise TwinError(
            "invalid_payload", f"set_drive_correction needs one of {list(DRIVE_FIELDS)}"
        )


def _multipliers(m: Multipliers, payload: dict[str, Any]) -> Multipliers:
    return replace(
        m,
        gate_error=payload.get("gate_error_multiplier", m.gate_error),
        readout_error=payload.get("readout_error_multiplier", m.readout_error),
        exec_time=payload.get("exec_time_scale", m.exec_time),
        drift=payload.get("drift_multiplier", m.drift),
    )


def apply_command(state: ControllerState, command_type: str, payload: dict[str, Any]):
    """The state after one (checked) command: the only way the noise state changes."""
    if command_type == "inject_noise_override":
        return replace(state, injected=_multipliers(state.injected, payload))
    if command_type == "policy_update":
        return replace(state, policy=_multipliers(state.policy, payload))
    if command_type == "set_pulse_schedule":
        return replace(state, pulse_error=payload.get("error_multiplier", 1.0))
    if command_type == "set_adc_gain":
        return replace(state, adc_readout=payload.get("readout_error_multiplier", 1.0))
    if command_type == "set_dac_bias":
        return replace(state, dac_gate=payload.get("gate_error_multiplier", 1.0))
    if command_type == "set_scenario":
        return replace(state, scenario=payload["scenario_name"])
    if command_type == "set_qubit_noise":
        overrides = {q: dict(v) for q, v in state.qubit_overrides.items()}
        mine = overrides.setdefault(payload["qubit"], {})
        for key in QUBIT_FIELDS:
            if key in payload:
                if payload[key] == REVERT:
                    mine.pop(key, None)
                else:
                    mine[key] = float(payload[key])
        for key in COHERENT_FIELDS:
            if key in payload:
                mine[key] = float(payload[key])
        return replace(state, qubit_overrides={q: v for q, v in overrides.items() if v})
    if command_type == "reset_qubit_noise":
        if payload.get("qubit") is None:
            return replace(state, qubit_overrides={})
        rest = {q: v for q, v in state.qubit_overrides.items() if q != payload["qubit"]}
        return replace(state, qubit_overrides=rest)
    if command_type == "set_cryo":
        return _cryo(state, payload)
    if command_type == "set_drive_correction":
        return _drive_correction(state, payload)
    if command_type == "set_readout_config":
        tau = float(payload.get("integration_time_ns", fpga.REFERENCE_INTEGRATION_NS))
        thresholds = {int(k): float(v) for k, v in payload.get("thresholds", {}).items()}
        channels = payload.get("channels") or sorted(thresholds)
        config = dict(state.readout_config)
        for q in channels:
            config[q] = (tau, thresholds.get(q, fpga.REFERENCE_THRESHOLD))
        return replace(state, readout_config=config)
    if command_type == "reset":
        # The cryostat is physical, not an override: it stays.
        return ControllerState(
            cryo_t1=state.cryo_t1, cryo_t2=state.cryo_t2, temperature_mk=state.temperature_mk,
            still_mk=state.still_mk,
        )  # fmt: skip
    raise TwinError("unknown_command_type", command_type)


def _drive_correction(state: ControllerState, payload: dict[str, Any]) -> ControllerState:
    """Absolute values, not relative to the current correction; a field left out keeps
    its current value. The identity correction is no correction."""
    qubit = payload["qubit"]
    scale, offset = state.drive_corrections.get(qubit, NO_CORRECTION)
    corrected = (
        float(payload.get("amplitude_scale", scale)),
        float(payload.get("frequency_offset_mhz", offset)),
    )
    corrections = {q: c for q, c in state.drive_corrections.items() if q != qubit}
    if corrected != NO_CORRECTION:
        corrections[qubit] = corrected
    return replace(state, drive_corrections=corrections)


def _cryo(state: ControllerState, payload: dict[str, Any]) -> ControllerState:
    """A temperature sets T1/T2 from the curve; explicit multipliers win over it."""
    temperature = payload.get("temperature_mk", state.temperature_mk)
    t1, t2 = state.cryo_t1, state.cryo_t2
    if "temperature_mk" in payload:
        t1 = t2 = fpga.coherence_multiplier(payload["temperature_mk"])
    return replace(
        state,
        temperature_mk=temperature,
        still_mk=payload.get("still_mk", state.still_mk),
        cryo_t1=payload.get("t1_multiplier", t1),
        cryo_t2=payload.get("t2_multiplier", t2),
    )


@dataclass(frozen=True)
class EffectiveNoise:
    qubits: tuple[QubitNoise, ...]
    edges: dict[frozenset[int], EdgeNoise]
    drift_multipliers: tuple[float, ...]
    temperature_mk: float = 0.0  # thermal excited population: none below a set cryostat
    # Per qubit: the T1 factor of a TLS dip now (1: none), and the detuning and amplitude
    # error the qubit itself has, before its drive correction (drift included).
    tls_t1_factors: tuple[float, ...] = ()
    uncorrected: tuple[tuple[float, float], ...] = ()


def _clamped(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


def _snapped(value: float) -> float:
    """A coherent error a correction cancelled up to rounding is none (so the qubit's
    gates are Clifford again)."""
    return 0.0 if abs(value) < 1e-12 else value


def effective_noise(backend: Backend, state: ControllerState, t: float = 0.0) -> EffectiveNoise:
    """The noise a circuit runs under at time `t` (seconds since the epoch)."""
    scenario = backend.scenarios.get(state.scenario or backend.default_scenario or "")
    t1m = (scenario.t1_multiplier if scenario else 1.0) * state.cryo_t1
    t2m = (scenario.t2_multiplier if scenario else 1.0) * state.cryo_t2
    sg = scenario.gate_error_multiplier if scenario else 1.0
    sr = scenario.readout_error_multiplier if scenario else 1.0
    config = backend.noise.drift
    n = backend.device.num_qubits

    def drift_setting(name: str, default: float) -> float:
        value = getattr(scenario, name) if scenario else None
        return default if value is None else value

    # policy_update's drift_multiplier scales every wander; 0 also stops TLS dips.
    scale = state.policy.drift
    amplitude = drift_setting("drift_amplitude", config.amplitude) * scale
    drift = drifting.error_multipliers(config, n, amplitude, t)
    wander = drifting.coherent_offsets(
        config,
        n,
        drift_setting("drift_detuning_mhz", config.detuning_mhz) * scale,
        drift_setting("drift_amplitude_error", config.amplitude_error) * scale,
        t,
    )
    tls_fraction = drift_setting("tls_fraction", config.tls_fraction) if scale else 0.0
    tls = drifting.tls_factors(config, n, tls_fraction, t)
    g, r, ts = state.gate_multiplier, state.readout_multiplier, state.exec_time_scale
    qubits, uncorrected = [], []
    for q, base in enumerate(backend.noise.qubits):
        over = state.qubit_overrides.get(q, {})
        ro = sr * r * drift[q]
        t1 = over.get("t1_us", base.t1_us * t1m * tls[q])
        p10 = min(0.5, base.readout_p1_given_0 * ro)
        p01 = min(0.5, base.readout_p0_given_1 * ro)
        if q in state.readout_config:
            p10, p01 = fpga.readout_errors(p10, p01, t1, *state.readout_config[q])
        detuning = over.get(
            "detuning_mhz",
            _clamped(base.detuning_mhz + wander[q][0], COHERENT_FIELDS["detuning_mhz"]),
        )
        eps = over.get(
            "amplitude_error",
            _clamped(base.amplitude_error + wander[q][1], COHERENT_FIELDS["amplitude_error"]),
        )
        uncorrected.append((detuning, eps))
        amplitude_scale, frequency_offset = state.drive_corrections.get(q, NO_CORRECTION)
        qubits.append(
            QubitNoise(
                t1_us=t1,
                t2_us=over.get("t2_us", base.t2_us * t2m),
                readout_p1_given_0=over.get("readout_error", p10),
                readout_p0_given_1=over.get("readout_error", p01),
                gate_error=over.get("gate_error", min(0.5, base.gate_error * sg * g * drift[q])),
                gate_time_ns=base.gate_time_ns * ts,
                frequency_ghz=base.frequency_ghz,
                detuning_mhz=_snapped(detuning - frequency_offset),
                amplitude_error=eps
                if amplitude_scale == 1.0
                else _snapped((1 + eps) * amplitude_scale - 1),
            )
        )
    edges = {}
    for edge, base_edge in backend.noise.edges.items():
        d = max(drift[q] for q in edge)
        edges[edge] = EdgeNoise(
            gate_error=min(0.75, base_edge.gate_error * sg * g * d),
            gate_time_ns=base_edge.gate_time_ns * ts,
        )
    return EffectiveNoise(
        tuple(qubits), edges, drift, state.temperature_mk or 0.0, tls, tuple(uncorrected)
    )
