"""Chip: a processor registered in a project, with the qubits and couplings of its topology."""

from __future__ import annotations

from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput
from domain.events import CommandContext, DomainEvent, register, stable_id
from domain.topology import Layout, layout_for


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
    # The twin backend whose qubits these are ("": a chip qledger only records for).
    backend_id: str = ""


@register
@dataclass(frozen=True, kw_only=True)
class ChipLocked(DomainEvent):
    """A calibration run was dispatched on the chip: no other may start until it ends."""

    TYPE = "chip.ChipLocked"
    chip_id: str
    execution_id: str


@register
@dataclass(frozen=True, kw_only=True)
class ChipUnlocked(DomainEvent):
    TYPE = "chip.ChipUnlocked"
    chip_id: str
    execution_id: str


def chip_key(project_id: str, chip_id: str):
    return stable_id("chip", project_id, chip_id)


class Chip(Aggregate):
    chip_id: str
    qubits: frozenset[str]
    couplings: frozenset[str]
    backend_id: str
    locked_by: str | None = None  # the execution holding the chip's run lock

    @classmethod
    def register(
        cls,
        ctx: CommandContext,
        *,
        chip_id: str,
        size: int,
        topology_id: str,
        existing: Chip | None,
        backend_id: str = "",
        layout: Layout | None = None,
    ) -> Chip:
        """`layout`: the qubits and couplings of the backend the chip is bound to; else
        they follow from the topology."""
        if existing is not None:
            raise Conflict(f"chip '{chip_id}' already exists", code="chip_exists")
        layout = layout or layout_for(topology_id, size)
        chip = cls(chip_key(ctx.project_id, chip_id))
        chip._trigger(
            ChipRegistered,
            ctx,
            chip_id=chip_id,
            size=size,
            topology_id=topology_id,
            qubits=layout.qubits,
            couplings=layout.couplings,
            backend_id=backend_id,
        )
        return chip

    def check_can_lock(self) -> None:
        if self.locked_by is not None:
            raise Conflict(
                f"chip '{self.chip_id}' is running execution '{self.locked_by}'; wait for it"
                " to end or cancel it",
                code="chip_locked",
            )

    def lock(self, ctx: CommandContext, execution_id: str) -> None:
        self.check_can_lock()
        self._trigger(ChipLocked, ctx, chip_id=self.chip_id, execution_id=execution_id)

    def release(self, ctx: CommandContext, execution_id: str) -> bool:
        """Unlock if `execution_id` holds the lock (an execution recorded from outside
        never took it). True if it did."""
        if self.locked_by != execution_id:
            return False
        self._trigger(ChipUnlocked, ctx, chip_id=self.chip_id, execution_id=execution_id)
        return True

    def _on_ChipRegistered(self, e: ChipRegistered) -> None:
        self.chip_id = e.chip_id
        self.qubits = frozenset(e.qubits)
        self.couplings = frozenset(e.couplings)
        self.backend_id = e.backend_id

    def _on_ChipLocked(self, e: ChipLocked) -> None:
        self.locked_by = e.execution_id

    def _on_ChipUnlocked(self, e: ChipUnlocked) -> None:
        self.locked_by = None

    def require_target(self, qid: str) -> None:
        """A task runs on a qubit ("3") or a coupling ("3-4"); it must exist on this chip."""
        if qid not in self.qubits and qid not in self.couplings:
            raise InvalidInput(
                f"'{qid}' is neither a qubit nor a coupling of chip '{self.chip_id}'",
                code="unknown_qid",
            )
