"""A QEC memory experiment advanced round by round on stim's frame simulator.

One `Session` holds `batch` shots in lockstep (one for a session driven by a decoder,
many for an autonomous run). Each round continues the same simulated frame, so an error
that is not corrected stays and shows up again: consecutive rounds are correlated as on
a device. A submitted correction is a Pauli on the data qubits, applied to the frame.

What a decoder sees per round are the raw stabilizer outcomes (`syndrome_bits`, as flips
from the noiseless reference) and the detection events (stim's detectors: the change of
each stabilizer since the round before). The built-in decoder, pymatching on the
detector error model of the circuit as it was run, decodes the detection events with the
corrections' own effect taken out; so it answers "what would matching have concluded on
these syndromes" also for a session whose decoder corrected along the way.

Replaying the same calls (seed, noise per step, corrections, rounds per step) gives the
same syndromes bit for bit: that is how a session survives a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import numpy as np
import pymatching
import stim

from twin.qec_code import Chunk, Code
from twin.qec_noise import CodeNoise, text

RECORD_LIMIT = 4096  # measurements kept in stim's record before it is cleared
_CIRCUITS: OrderedDict[tuple, stim.Circuit] = OrderedDict()
_MATCHINGS: OrderedDict[tuple, pymatching.Matching] = OrderedDict()


def _cached(cache: OrderedDict, key: tuple, make, size: int = 64):
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = make()
        if len(cache) > size:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return hit


def circuit(code: Code, part: str, noise: CodeNoise, annotate: bool = False) -> stim.Circuit:
    chunk: Chunk = getattr(code, part)
    key = (code.family, code.distance, code.basis, part, noise, annotate)
    return _cached(_CIRCUITS, key, lambda: stim.Circuit(text(code, chunk, noise, annotate)))


def full_circuit(code: Code, runs: list[tuple[CodeNoise, int]], end: CodeNoise) -> stim.Circuit:
    """The whole experiment as it ran: round 0, then each run of rounds under one noise."""
    c = circuit(code, "head", runs[0][0], True).copy()
    first = True
    for noise, count in runs:
        n = count - 1 if first else count
        first = False
        if n:
            c += circuit(code, "body", noise, True) * n
    return c + circuit(code, "tail", end, True)


def matching(code: Code, runs: list[tuple[CodeNoise, int]], end: CodeNoise):
    key = (code.family, code.distance, code.basis, tuple(runs), end)

    def make() -> pymatching.Matching:
        dem = full_circuit(code, runs, end).detector_error_model(decompose_errors=True)
        return pymatching.Matching.from_detector_error_model(dem)

    return _cached(_MATCHINGS, key, make, size=16)


@cache
def _offsets(detectors: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The detectors as a padded (n_det, width) array of record offsets, and its padding."""
    width = max(len(d) for d in detectors)
    offsets = np.zeros((len(detectors), width), dtype=np.int64)
    padding = np.ones((len(detectors), width), dtype=bool)
    for i, d in enumerate(detectors):
        offsets[i, : len(d)] = d
        padding[i, : len(d)] = False
    return offsets, padding


def _detect(window: np.ndarray, ends: np.ndarray, detectors: tuple[tuple[int, ...], ...]):
    """Detector values (len(ends)·len(detectors), batch): each the XOR of the records
    it names, counted back from each end."""
    if not detectors:
        return np.zeros((0, window.shape[1]), dtype=bool)
    offsets, padding = _offsets(detectors)
    padded = np.concatenate([window, np.zeros((1, window.shape[1]), dtype=bool)])
    # padding points at the row of zeros after the window
    idx = np.where(padding, window.shape[0], ends[:, None, None] + offsets)
    return np.bitwise_xor.reduce(padded[idx], axis=2).reshape(-1, window.shape[1])


@dataclass
class Outcome:
    rounds: int
    logical_flips: np.ndarray  # (batch,) measured logical value != prepared, corrections in
    builtin_errors: np.ndarray  # (batch,) pymatching's correction would have failed
    data: np.ndarray  # (n_data, batch) the data qubits' final outcomes (flips)


class Session:
    def __init__(self, code: Code, seed: int, batch: int = 1) -> None:
        self.code = code
        self.batch = batch
        self.sim = stim.FlipSimulator(batch_size=batch, num_qubits=code.num_qubits, seed=seed)
        self.rounds = 0
        self.last = np.zeros((0, batch), dtype=bool)  # the last round's ancilla flips
        self.last_delta = np.zeros((0, batch), dtype=bool)
        self.noise_only: list[np.ndarray] = []  # detection events, corrections taken out
        self.nbytes = 0  # of noise_only: what a long session holds
        self.runs: list[tuple[CodeNoise, int]] = []
        self.frame = np.zeros((len(code.data), batch), dtype=bool)  # corrections so far
        self.corrections_received = 0
        # syndrome row j flips when data qubit i is corrected: basis-type stabilizers only
        checks = np.zeros((code.num_stabilizers, len(code.data)), dtype=np.uint8)
        for j, (kind, support) in enumerate(zip(code.stabilizer_types, code.supports, strict=True)):
            if kind == code.basis:
                checks[j, list(support)] = 1
        self.checks = checks

    def _run(self, c: stim.Circuit, measured: int) -> np.ndarray:
        self.sim.do(c)
        flips = self.sim.get_measurement_flips()[-measured:]
        if self.sim.num_measurements > RECORD_LIMIT:
            # Detectors are computed here, not by stim, so the record can go; the frame
            # is put back as it was (clear() leaves random Z flips, which are undone).
            xs, zs = self.sim.to_numpy(output_xs=True, output_zs=True)[:2]
            self.sim.clear()
            self.sim.broadcast_pauli_errors(pauli="X", mask=xs)
            cleared_zs = self.sim.to_numpy(output_zs=True)[1]
            self.sim.broadcast_pauli_errors(pauli="Z", mask=cleared_zs ^ zs)
        return flips

    def measure(self, noise: CodeNoise, rounds: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
        """Runs `rounds` more rounds: their syndromes (rounds, n_stab, batch) and their
        detection events in chunks of rounds with the same detectors, each
        (rounds, n_det, batch); round 0 has only the basis-type stabilizers' detectors
        (the others start random)."""
        code = self.code
        n = code.num_stabilizers
        parts: list[tuple[Chunk, stim.Circuit, int]] = []
        if self.rounds == 0:
            parts.append((code.head, circuit(code, "head", noise), 1))
        body = rounds - len(parts)
        if body:
            parts.append((code.body, circuit(code, "body", noise) * body, body))
        delta = (self.checks.astype(np.int64) @ self.frame.astype(np.int64) % 2).astype(bool)
        syndromes: list[np.ndarray] = []
        detections: list[np.ndarray] = []
        for chunk, c, k in parts:
            flips = self._run(c, k * n)
            window = np.concatenate([self.last, flips])
            ends = self.last.shape[0] + n * np.arange(1, k + 1)
            det = _detect(window, ends, chunk.detectors)
            if delta.any() or self.last_delta.any():
                # the corrections' own detection events, taken out for the built-in decoder
                dwin = np.concatenate([self.last_delta, np.tile(delta, (k, 1))])
                self.noise_only.append(det ^ _detect(dwin, ends, chunk.detectors))
            else:
                self.noise_only.append(det)
            self.nbytes += self.noise_only[-1].nbytes
            self.last, self.last_delta = flips[-n:], delta
            syndromes.append(flips.reshape(k, n, self.batch))
            detections.append(det.reshape(k, -1, self.batch))
        if self.runs and self.runs[-1][0] == noise:
            self.runs[-1] = (noise, self.runs[-1][1] + rounds)
        else:
            self.runs.append((noise, rounds))
        self.rounds += rounds
        return np.concatenate(syndromes), detections

    def correct(self, bits: np.ndarray) -> None:
        """Applies X (Z for an X-basis code) to each data qubit whose bit is set;
        `bits` is (n_data,) or (n_data, batch)."""
        mask = np.zeros((self.code.num_qubits, self.batch), dtype=bool)
        bits = np.asarray(bits, dtype=bool).reshape(len(self.code.data), -1)
        mask[list(self.code.data)] = bits
        self.sim.broadcast_pauli_errors(pauli="Z" if self.code.basis == "X" else "X", mask=mask)
        self.frame ^= bits
        self.corrections_received += 1

    def end(self, noise: CodeNoise) -> Outcome:
        """Measures the data qubits; decides the logical outcome as measured and as the
        built-in decoder would have corrected it."""
        if self.rounds == 0:
            raise ValueError("a session ends after at least one round")
        code = self.code
        data = self._run(circuit(code, "tail", noise), len(code.data))
        window = np.concatenate([self.last, data])
        end = np.array([window.shape[0]])
        det = _detect(window, end, code.tail.detectors)
        dwin = np.concatenate([self.last_delta, self.frame])
        history = np.concatenate([*self.noise_only, det ^ _detect(dwin, end, code.tail.detectors)])
        logical = np.bitwise_xor.reduce(data[list(code.logical)], axis=0)
        moved = np.bitwise_xor.reduce(self.frame[list(code.logical)], axis=0)
        decoder = matching(code, self.runs, noise)
        predicted = decoder.decode_batch(history.T.astype(np.uint8))[:, 0].astype(bool)
        return Outcome(self.rounds, logical, predicted ^ logical ^ moved, data)


def per_round(rate: float, rounds: int) -> float:
    """Logical error per round from the error rate after `rounds` rounds:
    1 - 2·P = (1 - 2·ε)^rounds."""
    return (1 - max(0.0, 1 - 2 * rate) ** (1 / rounds)) / 2


THRESHOLD = 0.01  # circuit-level surface-code threshold (Fowler et al., PRA 86, 032324)
PREFACTOR = 0.03


def estimated_logical_error(physical: float, distance: int) -> float:
    """The usual scaling estimate of a surface code's logical error per round,
    A·(p/p_th)^((d+1)/2), capped at 0.5: the twin's own figure when no decoder reported."""
    return min(0.5, PREFACTOR * (physical / THRESHOLD) ** ((distance + 1) / 2))
