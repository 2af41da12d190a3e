"""One batch of commands decided against the same in-memory aggregates, saved together.

Aggregates are loaded once per batch, so two commands in one batch that touch the same
series see each other's versions; all staged events are appended in one transaction
(group commit).
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from commands.ports import EventStorePort, FigureIndexPort, PasswordHasherPort, QecPort, TwinPort
from domain.aggregate import Aggregate
from domain.events import DomainEvent

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    def __init__(
        self,
        store: EventStorePort,
        passwords: PasswordHasherPort | None = None,
        figures: FigureIndexPort | None = None,
        twin: TwinPort | None = None,
        qec: QecPort | None = None,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.figures = figures
        self.twin = twin
        self.qec = qec
        self.loaded: dict[uuid.UUID, Aggregate] = {}
        self.staged: list[DomainEvent] = []
        self.absent: set[uuid.UUID] = set()  # looked up and not found

    def get(self, cls: type[A], aggregate_id: uuid.UUID) -> A | None:
        if aggregate_id in self.loaded:
            found = self.loaded[aggregate_id]
        else:
            loaded = self.store.load(cls, aggregate_id)
            if loaded is None:
                self.absent.add(aggregate_id)
                return None
            self.loaded[aggregate_id] = found = loaded
        if not isinstance(found, cls):
            raise TypeError(f"{aggregate_id} is a {type(found).__name__}, not a {cls.__name__}")
        return found

    def stage(self, *aggregates: Aggregate) -> list[DomainEvent]:
        """Queue the aggregates' new events, in this order, for the batch's commit."""
        events: list[DomainEvent] = []
        for aggregate in aggregates:
            self.loaded[aggregate.id] = aggregate
            events.extend(aggregate.collect_events())
        self.staged.extend(events)
        return events

    def mark(self) -> tuple[int, int]:
        """Changes whenever a command stages or triggers events."""
        return len(self.staged), Aggregate.triggered

    def commit(self) -> list[int]:
        positions = self.store.commit(self.staged) if self.staged else []
        self.store.remember(self.loaded.values())
        return positions

    def discard(self) -> None:
        """Forget every aggregate this batch touched: their state may be uncommitted (and
        so may a QEC session's live simulation, advanced for a step not stored)."""
        self.store.forget([*self.loaded, *self.absent])
        if self.qec is not None:
            self.qec.forget(self.loaded)
        self.loaded.clear()
        self.absent.clear()
        self.staged.clear()
