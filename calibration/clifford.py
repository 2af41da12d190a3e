"""The 24 one-qubit Cliffords, each as its shortest word in the twin's pulses (sx) and
virtual Z turns (rz by multiples of π/2), for randomized benchmarking.

Words s^a (sx s^b)^k are tried with k = 0, 1, 2, 3 pulses, elements compared up to a
global phase, so every element gets a word with the fewest sx pulses: the pulses are
what carry error, the Z turns are free.
"""

from __future__ import annotations

from functools import cache

import numpy as np

SX = 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])
S = np.diag([1.0, 1j])  # rz(π/2) up to a global phase
Word = tuple[str, ...]  # "sx" or "s" (a quarter Z turn), applied left to right


def _key(u: np.ndarray) -> tuple:
    """u up to a global phase, rounded: a hashable name for the element."""
    pivot = u.flat[np.argmax(np.abs(u.flat) > 1e-9)]
    v = u * (abs(pivot) / pivot)
    return tuple(np.round(v, 6).flat)


def unitary(word: Word) -> np.ndarray:
    u = np.eye(2, dtype=complex)
    for letter in word:
        u = (SX if letter == "sx" else S) @ u
    return u


@cache
def group() -> tuple[Word, ...]:
    """The 24 Cliffords as words, identity first; fewest sx, then fewest letters. Every
    word has the form s^a (sx s^b)^k: candidates are tried by k, then by length."""
    candidates: list[Word] = []
    for k in range(4):
        for turns in np.ndindex(*(4,) * (k + 1)):
            letters: list[str] = ["s"] * turns[0]
            for b in turns[1:]:
                letters += ["sx", *(["s"] * b)]
            candidates.append(tuple(letters))
    candidates.sort(key=lambda w: (w.count("sx"), len(w)))
    found: dict[tuple, Word] = {}
    for candidate in candidates:
        found.setdefault(_key(unitary(candidate)), candidate)
    words = sorted(found.values(), key=lambda w: (w.count("sx"), len(w)))
    assert len(words) == 24, len(words)
    return tuple(words)


@cache
def _index() -> dict[tuple, int]:
    return {_key(unitary(w)): i for i, w in enumerate(group())}


def mean_pulses() -> float:
    """sx pulses per Clifford, averaged over the group: error per Clifford / this is
    the error per pulse."""
    return sum(w.count("sx") for w in group()) / 24


def sequence(length: int, rng: np.random.Generator) -> list[Word]:
    """`length` random Cliffords, then the one that undoes them all."""
    words = [group()[i] for i in rng.integers(0, 24, size=length)]
    total = np.eye(2, dtype=complex)
    for w in words:
        total = unitary(w) @ total
    inverse = _index()[_key(total.conj().T)]
    return [*words, group()[inverse]]


def qasm_ops(words: list[Word], qubit: int) -> list[str]:
    """The sequence as QASM statements on one qubit (`s` is the quarter Z turn). Run at
    optimization_level 0, so no transpiler merges the Cliffords into one."""
    return [f"{'sx' if letter == 'sx' else 's'} q[{qubit}];" for w in words for letter in w]
