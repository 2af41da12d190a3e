"""The codes a QEC session runs: their qubits, stabilizers and one round's circuit.

The geometry comes from stim's own generated memory circuits (noiseless), so the
schedules are the ones the QEC literature uses: `repetition_code:memory` and
`surface_code:rotated_memory_{z,x}`. They are cut into three chunks that a session runs
one after another: `head` (reset and round 0), `body` (every later round) and `tail`
(the data qubits' measurement). Qubits are renumbered 0..n-1 in stim's order; code qubit
i runs on the backend's qubit i.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import stim

from twin.errors import TwinError

FAMILIES = ("repetition", "surface")
BASES = ("Z", "X")
GATES = ("R", "RX", "H", "CX", "M", "MX", "MR", "MRX")


def qubits_needed(family: str, distance: int) -> int:
    return 2 * distance - 1 if family == "repetition" else 2 * distance * distance - 1


def check(family: str, distance: int, basis: str, num_qubits: int) -> None:
    """Raises TwinError if this code cannot run on a device of `num_qubits` qubits."""
    if family not in FAMILIES:
        raise TwinError("unknown_code_family", f"code_family must be one of {list(FAMILIES)}")
    if basis not in BASES:
        raise TwinError("invalid_basis", f"basis must be one of {list(BASES)}")
    if family == "repetition" and basis != "Z":
        raise TwinError("invalid_basis", "the repetition code protects only the Z basis")
    if distance < 2:
        raise TwinError("invalid_distance", "code_distance must be at least 2")
    need = qubits_needed(family, distance)
    if need > num_qubits:
        largest = max(
            (d for d in range(2, 64) if qubits_needed(family, d) <= num_qubits), default=None
        )
        fits = f"the largest that fits is d = {largest}" if largest else "no distance fits"
        raise TwinError(
            "code_too_large",
            f"a {family} code of distance {distance} needs {need} qubits; the backend has"
            f" {num_qubits} ({fits})",
        )


@dataclass(frozen=True)
class Op:
    name: str  # one of GATES, or TICK
    targets: tuple[int, ...]  # code qubits (pairs flattened for CX)


@dataclass(frozen=True)
class Chunk:
    ops: tuple[Op, ...]
    num_measurements: int
    # Each detector as offsets back into the measurement record (-1 = the chunk's last).
    detectors: tuple[tuple[int, ...], ...]
    observable: tuple[int, ...] = ()  # tail only


@dataclass(frozen=True)
class Code:
    family: str
    distance: int
    basis: str
    num_qubits: int
    data: tuple[int, ...]  # code qubits in the order of the final measurement
    ancillas: tuple[int, ...]  # in measurement order: syndrome bit j is ancillas[j]
    stabilizer_types: tuple[str, ...]  # "X" or "Z" per ancilla
    supports: tuple[tuple[int, ...], ...]  # data indices each stabilizer checks
    logical: tuple[int, ...]  # data indices of the measured logical operator
    coords: tuple[tuple[float, ...], ...]  # per code qubit, stim's coordinates
    head: Chunk
    body: Chunk
    tail: Chunk

    @property
    def num_stabilizers(self) -> int:
        return len(self.ancillas)

    def layout(self) -> dict:
        return {
            "data_qubits": [
                {"index": i, "qubit": q, "coords": list(self.coords[q])}
                for i, q in enumerate(self.data)
            ],
            "stabilizers": [
                {
                    "index": j,
                    "qubit": q,
                    "type": self.stabilizer_types[j],
                    "data": list(self.supports[j]),
                    "coords": list(self.coords[q]),
                }
                for j, q in enumerate(self.ancillas)
            ],
            "logical_observable": list(self.logical),
        }


def _chunk(instructions: list[stim.CircuitInstruction], renumber: dict[int, int]) -> Chunk:
    ops: list[Op] = []
    detectors: list[tuple[int, ...]] = []
    observable: list[int] = []
    measured = 0
    for ins in instructions:
        name = ins.name
        if name in GATES:
            targets = tuple(renumber[t.value] for t in ins.targets_copy())
            ops.append(Op(name, targets))
            if name.startswith("M"):
                measured += len(targets)
        elif name == "TICK":
            ops.append(Op("TICK", ()))
        elif name == "DETECTOR":
            detectors.append(tuple(t.value for t in ins.targets_copy()))
        elif name == "OBSERVABLE_INCLUDE":
            observable += [t.value for t in ins.targets_copy()]
        elif name not in ("QUBIT_COORDS", "SHIFT_COORDS"):
            raise AssertionError(f"unexpected {name} in stim's generated circuit")
    return Chunk(tuple(ops), measured, tuple(detectors), tuple(observable))


@cache
def build(family: str, distance: int, basis: str = "Z") -> Code:
    task = (
        "repetition_code:memory"
        if family == "repetition"
        else f"surface_code:rotated_memory_{basis.lower()}"
    )
    circuit = stim.Circuit.generated(task, distance=distance, rounds=3)
    used = sorted(
        {t.value for ins in circuit.flattened() for t in ins.targets_copy() if t.is_qubit_target}
    )
    renumber = {q: i for i, q in enumerate(used)}
    stim_coords = circuit.get_final_qubit_coordinates()
    coords = tuple(tuple(stim_coords.get(q, (float(q), 0.0))) for q in used)
    parts: list[list[stim.CircuitInstruction]] = [[], [], []]
    part = 0
    for ins in circuit:
        if isinstance(ins, stim.CircuitRepeatBlock):
            parts[1] = list(ins.body_copy())
            part = 2
        else:
            parts[part].append(ins)
    head, body, tail = (_chunk(p, renumber) for p in parts)
    ancillas = next(op.targets for op in body.ops if op.name.startswith("MR"))
    data = next(op.targets for op in tail.ops if op.name.startswith("M"))
    x_type = {t for op in body.ops if op.name == "H" for t in op.targets}
    support: dict[int, list[int]] = {a: [] for a in ancillas}
    for op in body.ops:
        if op.name == "CX":
            for c, t in zip(op.targets[::2], op.targets[1::2], strict=True):
                anc, dat = (c, t) if c in support else (t, c)
                support[anc].append(data.index(dat))
    return Code(
        family=family,
        distance=distance,
        basis=basis,
        num_qubits=len(used),
        data=data,
        ancillas=ancillas,
        stabilizer_types=tuple("X" if a in x_type else "Z" for a in ancillas),
        supports=tuple(tuple(sorted(support[a])) for a in ancillas),
        logical=tuple(sorted(len(data) + o for o in tail.observable)),
        coords=coords,
        head=head,
        body=body,
        tail=tail,
    )
