"""From outcome probabilities to counts: readout assignment errors, then shots."""

from __future__ import annotations

import numpy as np

from twin.circuits import Program
from twin.noise import NoiseModel

# How a job's results carry its outcomes (metadata.result_format): "counts", the count
# of every bitstring; "marginals", per classical bit the shots that read 1 (a wide
# circuit's count table is about as long as its shots).
RESULT_FORMATS = ("counts", "marginals")
DEFAULT_RESULT_FORMAT = "counts"


def marginals(counts: dict[str, int], num_clbits: int) -> list[int]:
    """Per classical bit, clbit 0 first, the shots in which it read 1 (count keys hold
    bit 0 rightmost, as Qiskit prints them)."""
    if not num_clbits or not counts:
        return [0] * num_clbits
    keys = np.frombuffer("".join(counts).encode("ascii"), dtype=np.uint8)
    ones = keys.reshape(len(counts), num_clbits)[:, ::-1] == ord("1")
    shots = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    return [int(n) for n in shots @ ones.astype(np.int64)]


def measured_qubits(program: Program) -> list[int]:
    return list(dict.fromkeys(q for q, _ in program.measures))


def with_readout(p: np.ndarray, qubits: list[int], noise: NoiseModel) -> np.ndarray:
    """Apply each qubit's assignment matrix A[read, true] to its axis of P(true)."""
    for axis, q in enumerate(qubits):
        p = np.moveaxis(np.tensordot(noise.readout(q), p, axes=([1], [axis])), 0, axis)
    return p


def keys_for(program: Program, qubits: list[int], indices: np.ndarray) -> list[str]:
    """The count key of each joint outcome index (qubits[0] most significant in the
    index): classical bits as a string, bit 0 rightmost, as Qiskit prints counts."""
    n = len(qubits)
    axis_of = {q: axis for axis, q in enumerate(qubits)}
    bits = np.zeros((len(indices), program.num_clbits), dtype=np.uint8)
    # In program order: a clbit measured into twice holds the last measurement.
    for q, c in program.measures:
        bits[:, program.num_clbits - 1 - c] = (indices >> (n - 1 - axis_of[q])) & 1
    chars = (bits + ord("0")).view(f"S{program.num_clbits}").reshape(-1)
    return [k.decode() for k in chars]


def _summed(keys: list[str], counts: list[int]) -> dict[str, int]:
    """Counts by key: outcomes that differ only in an overwritten clbit share a key."""
    out: dict[str, int] = {}
    for key, n in zip(keys, counts, strict=True):
        out[key] = out.get(key, 0) + n
    return out


def sample_counts(
    p_true: np.ndarray, program: Program, noise: NoiseModel, shots: int, rng: np.random.Generator
) -> dict[str, int]:
    qubits = measured_qubits(program)
    if not qubits:
        return {"0" * program.num_clbits: shots} if program.num_clbits else {"": shots}
    p = with_readout(p_true, qubits, noise).reshape(-1)
    p = np.clip(p, 0, None)
    p /= p.sum()
    drawn = rng.multinomial(shots, p)
    nonzero = np.flatnonzero(drawn)
    return _summed(keys_for(program, qubits, nonzero), drawn[nonzero].tolist())


def counts_from_bits(bits: np.ndarray, program: Program) -> dict[str, int]:
    """Counts of per-shot outcomes (shots × measured qubits, in measured_qubits order)."""
    qubits = measured_qubits(program)
    # Rows packed to bytes and compared as one opaque value each: np.unique over the
    # rows themselves sorts column by column (ten times slower for 50 qubits).
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    width = packed.shape[1]
    keyed = packed.view(np.dtype((np.void, width))).reshape(-1)
    unique, freq = np.unique(keyed, return_counts=True)
    rows = np.unpackbits(unique.view(np.uint8).reshape(-1, width), axis=1)[:, : len(qubits)]
    keys = np.full((len(rows), program.num_clbits), ord("0"), dtype=np.uint8)
    axis_of = {q: axis for axis, q in enumerate(qubits)}
    for q, c in program.measures:  # program order: the last measurement into a clbit wins
        keys[:, program.num_clbits - 1 - c] = rows[:, axis_of[q]] + ord("0")
    if not program.num_clbits:
        return {"": int(freq.sum())}
    strings = keys.view(f"S{program.num_clbits}").reshape(-1)
    return _summed([k.decode() for k in strings], freq.tolist())


def bits_of(indices: np.ndarray, width: int) -> np.ndarray:
    """Outcome indices (first qubit most significant) as (shots, width) uint8 bits."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((indices[:, None] >> shifts) & 1).astype(np.uint8)


def shuffled_outcomes(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One outcome index per shot, from counts per outcome, in random order (shots of
    independent parts are paired at random, as independent shots would be)."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def with_readout_flips(
    bits: np.ndarray, qubits: list[int], noise: NoiseModel, rng: np.random.Generator
) -> np.ndarray:
    """Per-shot readout assignment errors on true outcomes (shots × qubits)."""
    p10 = np.array([noise.readout(q)[1, 0] for q in qubits], dtype=np.float32)  # 1 | 0
    p01 = np.array([noise.readout(q)[0, 1] for q in qubits], dtype=np.float32)
    # float32 draws: half the cost of float64, and ample resolution for error rates
    flip = rng.random(bits.shape, dtype=np.float32) < np.where(bits == 1, p01, p10)
    return bits ^ flip.astype(np.uint8)
