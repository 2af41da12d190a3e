"""A QEC session's noise: the backend's effective noise, as stim channels on the code.

Stim runs Pauli channels only, so every channel is the Pauli twirl of the twin's own
noise model (twin/noise.py, as in twin/clifford.py):
* after each H (one sx pulse) and each CX: DEPOLARIZE1/2 sized to the gate error, then
  the relaxation of each qubit over the gate's duration;
* before each measurement: a flip with the mean of the qubit's two assignment errors
  (a frame simulator cannot make it depend on the outcome);
* after each reset: a flip with the thermal excited population (zero at 0 mK);
* while the ancillas are measured, the data qubits idle: relaxation over `readout_ns`.
Code qubit i is the backend's qubit i. A CX between qubits the device does not couple
takes the device's median two-qubit gate (error and duration).

Every probability is rounded to 4 significant digits: the noise of two rounds is then the
same table (and the same compiled stim circuit) unless something really changed, and the
table is small enough to go into an event.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Any

from twin.channels import Relaxation, excited_population, relaxation
from twin.circuits import Op as GateOp
from twin.controller import EffectiveNoise
from twin.device import EdgeNoise
from twin.noise import NoiseModel
from twin.qec_code import Chunk, Code

READOUT_NS = 1000.0  # measurement duration when the noise config does not give one


def _q(x: float) -> float:
    return float(f"{x:.4g}")


def _twirl(r: Relaxation) -> tuple[float, float, float]:
    pxy = r.reset / 4
    return (_q(pxy), _q(pxy), _q(max(0.0, 0.5 - r.reset / 4 - r.coherence / 2)))


NONE3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class CodeNoise:
    """Per code qubit and per coupled pair, what stim applies. Hashable: a cache key."""

    gate1: tuple[tuple[float, float, float, float], ...]  # (p_depolarize, px, py, pz)
    measure: tuple[float, ...]
    reset: tuple[float, ...]
    idle: tuple[tuple[float, float, float], ...]  # data qubits while ancillas are read
    pairs: tuple[tuple[int, int, float, tuple[float, ...], tuple[float, ...]], ...]

    def __hash__(self) -> int:
        # Computed once: a table is a cache key on every round (20 us a hash at d = 7).
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.gate1, self.measure, self.reset, self.idle, self.pairs))
            object.__setattr__(self, "_hash", h)
        return h

    def to_dict(self) -> dict[str, Any]:
        """As recorded in events. Built once (compared with the session's last noise on
        every round); treat it as read-only."""
        d = self.__dict__.get("_dict")
        if d is None:
            d = self._as_dict()
            object.__setattr__(self, "_dict", d)
        return d

    def _as_dict(self) -> dict[str, Any]:
        return {
            "gate1": [list(g) for g in self.gate1],
            "measure": list(self.measure),
            "reset": list(self.reset),
            "idle": [list(i) for i in self.idle],
            "pairs": [[a, b, p, list(ra), list(rb)] for a, b, p, ra, rb in self.pairs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodeNoise:
        return cls(
            gate1=tuple(tuple(g) for g in d["gate1"]),  # type: ignore[misc]
            measure=tuple(d["measure"]),
            reset=tuple(d["reset"]),
            idle=tuple(tuple(i) for i in d["idle"]),  # type: ignore[misc]
            pairs=tuple((a, b, p, tuple(ra), tuple(rb)) for a, b, p, ra, rb in d["pairs"]),
        )


def _pairs(code: Code) -> list[tuple[int, int]]:
    out: dict[tuple[int, int], None] = {}
    for chunk in (code.head, code.body):
        for op in chunk.ops:
            if op.name == "CX":
                for a, b in zip(op.targets[::2], op.targets[1::2], strict=True):
                    out[(a, b)] = None
    return list(out)


def code_noise(code: Code, noise: EffectiveNoise, readout_ns: float = READOUT_NS) -> CodeNoise:
    pairs = _pairs(code)
    edges = dict(noise.edges)
    if noise.edges:
        median = EdgeNoise(
            statistics.median(e.gate_error for e in noise.edges.values()),
            statistics.median(e.gate_time_ns for e in noise.edges.values()),
        )
    else:
        median = EdgeNoise(0.0, 0.0)
    for a, b in pairs:
        edges.setdefault(frozenset((a, b)), median)
    model = NoiseModel(replace(noise, edges=edges))
    temperature_mk = noise.temperature_mk
    gate1: list[tuple[float, float, float, float]] = []
    measure: list[float] = []
    reset: list[float] = []
    idle: list[tuple[float, float, float]] = []
    for q in range(code.num_qubits):
        g = model.gate(GateOp("sx", (q,)))
        p = g.depolarizing * 3 / 4 if g else 0.0
        relax = _twirl(g.relaxations[0]) if g and g.relaxations else NONE3
        gate1.append((_q(p), *relax))
        qn = noise.qubits[q]
        measure.append(_q((qn.readout_p1_given_0 + qn.readout_p0_given_1) / 2))
        exc = excited_population(qn.frequency_ghz, temperature_mk)
        reset.append(_q(exc))
        idle.append(_twirl(relaxation(qn.t1_us, qn.t2_us, readout_ns, exc)))
    out_pairs = []
    for a, b in pairs:
        g = model.gate(GateOp("cx", (a, b)))
        p = g.depolarizing * 15 / 16 if g else 0.0
        ra, rb = (_twirl(r) for r in g.relaxations) if g and g.relaxations else (NONE3, NONE3)
        out_pairs.append((a, b, _q(p), ra, rb))
    return CodeNoise(tuple(gate1), tuple(measure), tuple(reset), tuple(idle), tuple(out_pairs))


def uniform(code: Code, p: float) -> CodeNoise:
    """The textbook circuit-level model: DEPOLARIZE1(p) after each H, DEPOLARIZE2(p)
    after each CX, X_ERROR(p) before each measurement (stim's `generated` arguments
    after_clifford_depolarization and before_measure_flip_probability)."""
    n = code.num_qubits
    return CodeNoise(
        gate1=tuple((p, 0.0, 0.0, 0.0) for _ in range(n)),
        measure=(p,) * n,
        reset=(0.0,) * n,
        idle=(NONE3,) * n,
        pairs=tuple((a, b, p, NONE3, NONE3) for a, b in _pairs(code)),
    )


def _channel(lines: list[str], q: int, pauli: tuple[float, ...]) -> None:
    if any(pauli):
        lines.append(f"PAULI_CHANNEL_1({pauli[0]!r}, {pauli[1]!r}, {pauli[2]!r}) {q}")


def text(code: Code, chunk: Chunk, noise: CodeNoise, annotate: bool) -> str:
    """A chunk with its noise as stim text; with its detectors (and observable) when
    `annotate` (for the detector error model), without them for the frame simulator."""
    pair_noise = {(a, b): (p, ra, rb) for a, b, p, ra, rb in noise.pairs}
    data = set(code.data)
    lines: list[str] = []
    for op in chunk.ops:
        name, targets = op.name, op.targets
        if name == "TICK":
            lines.append("TICK")
            continue
        flip = "Z_ERROR" if name.endswith("X") else "X_ERROR"
        if name.startswith("M"):
            for q in targets:
                if noise.measure[q]:
                    lines.append(f"{flip}({noise.measure[q]!r}) {q}")
        lines.append(f"{name} " + " ".join(map(str, targets)))
        if name in ("R", "RX", "MR", "MRX"):
            for q in targets:
                if noise.reset[q]:
                    lines.append(f"{flip}({noise.reset[q]!r}) {q}")
        if name.startswith("MR"):
            for q in data:
                _channel(lines, q, noise.idle[q])
        elif name == "H":
            for q in targets:
                p, *relax = noise.gate1[q]
                if p:
                    lines.append(f"DEPOLARIZE1({p!r}) {q}")
                _channel(lines, q, tuple(relax))
        elif name == "CX":
            for a, b in zip(targets[::2], targets[1::2], strict=True):
                p, ra, rb = pair_noise[(a, b)]
                if p:
                    lines.append(f"DEPOLARIZE2({p!r}) {a} {b}")
                _channel(lines, a, ra)
                _channel(lines, b, rb)
    if annotate:
        for det in chunk.detectors:
            lines.append("DETECTOR " + " ".join(f"rec[{o}]" for o in det))
        if chunk.observable:
            lines.append("OBSERVABLE_INCLUDE(0) " + " ".join(f"rec[{o}]" for o in chunk.observable))
    return "\n".join(lines)
