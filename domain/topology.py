"""Chip topologies: which qubits exist and which pairs are coupled."""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.errors import InvalidInput

MAX_QUBITS = 1024


@dataclass(frozen=True)
class Layout:
    qubits: tuple[str, ...]
    couplings: tuple[str, ...]


def square_lattice(size: int) -> Layout:
    """`size` qubits filled row by row into a grid ceil(sqrt(size)) wide;
    couplings join horizontal and vertical neighbours, named "a-b" with a < b."""
    width = math.isqrt(size - 1) + 1 if size > 1 else 1
    couplings: list[str] = []
    for q in range(size):
        right, down = q + 1, q + width
        if q % width != width - 1 and right < size:
            couplings.append(f"{q}-{right}")
        if down < size:
            couplings.append(f"{q}-{down}")
    return Layout(tuple(str(q) for q in range(size)), tuple(couplings))


TOPOLOGIES = {"square-lattice": square_lattice}


def layout_for(topology_id: str, size: int) -> Layout:
    if not 1 <= size <= MAX_QUBITS:
        raise InvalidInput(
            f"size must be between 1 and {MAX_QUBITS}, got {size}", code="invalid_size"
        )
    family = next((t for t in TOPOLOGIES if topology_id.startswith(t)), None)
    if family is None:
        known = ", ".join(sorted(TOPOLOGIES))
        raise InvalidInput(
            f"unknown topology '{topology_id}'; known families: {known}", code="unknown_topology"
        )
    return TOPOLOGIES[family](size)
