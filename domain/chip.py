"""Chip: a processor registered in a project, with the qubits and couplings of its topology."""

from __future__ import annotations

from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput
from domain.events import CommandContext, DomainEvent, register, stable_id
from domain.topology import layout_for


@register
@dataclass(frozen=True, kw_only=True)
class ChipRegistered(DomainEvent):
    """A chip was installed in a project."""

    TYPE = "chip.ChipRegistered"
    chip_id: str
    size: int
    topology_id: str
    qubits: tuple[str, ...]
    couplings: tuple[str, ...]


def chip_key(project_id: str, chip_id: str):
    return stable_id("chip", project_id, chip_id)


class Chip(Aggregate):
    chip_id: str
    qubits: frozenset[str]
    couplings: frozenset[str]

    @classmethod
    def register(
        cls,
        ctx: CommandContext,
        *,
        chip_id: str,
        size: int,
        topology_id: str,
        existing: Chip | None,
    ) -> Chip:
        if existing is not None:
            raise Conflict(f"chip '{chip_id}' already exists", code="chip_exists")
        layout = layout_for(topology_id, size)
        chip = cls(chip_key(ctx.project_id, chip_id))
        chip._trigger(
            ChipRegistered,
            ctx,
            chip_id=chip_id,
            size=size,
            topology_id=topology_id,
            qubits=layout.qubits,
            couplings=layout.couplings,
        )
        return chip

    def _on_ChipRegistered(self, e: ChipRegistered) -> None:
        self.chip_id = e.chip_id
        self.qubits = frozenset(e.qubits)
        self.couplings = frozenset(e.couplings)

    def require_target(self, qid: str) -> None:
        """A task runs on a qubit ("3") or a coupling ("3-4"); it must exist on this chip."""
        if qid not in self.qubits and qid not in self.couplings:
            raise InvalidInput(
                f"'{qid}' is neither a qubit nor a coupling of chip '{self.chip_id}'",
                code="unknown_qid",
            )
