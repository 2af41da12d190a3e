"""A minimal event-sourced aggregate: state changes only by applying events.

Methods that enforce rules check first and trigger events last, so a rejected command
leaves the aggregate untouched.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from domain.events import CommandContext, DomainEvent

A = TypeVar("A", bound="Aggregate")


def new_event_id() -> uuid.UUID:
    """A random (version 4) UUID. Not uuid.uuid4(): its os.urandom call releases the GIL,
    and on a busy server each release costs the writer thread a whole switch interval."""
    return uuid.UUID(int=random.getrandbits(128), version=4)


class Aggregate:
    # Events triggered by any aggregate so far: lets a unit of work tell, in O(1), whether a
    # failed command changed state before it failed.
    triggered = 0
    # Kept in the store's cache after a commit (records that are never loaded again say
    # no, so they do not push out aggregates that are).
    CACHED = True

    def __init__(self, aggregate_id: uuid.UUID) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[DomainEvent] = []

    def _trigger(
        self,
        event_cls: type[DomainEvent],
        ctx: CommandContext,
        *,
        occurred_at: datetime | None = None,
        **payload: Any,
    ) -> DomainEvent:
        event = event_cls(
            originator_id=self.id,
            originator_version=self.version + 1,
            event_id=new_event_id(),
            project_id=ctx.project_id,
            actor=ctx.actor,
            correlation_id=ctx.correlation_id,
            causation_id=str(ctx.command_id),
            occurred_at=occurred_at or ctx.received_at,
            **payload,
        )
        self.apply(event)
        self._pending.append(event)
        Aggregate.triggered += 1
        return event

    def apply(self, event: DomainEvent) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is None:
            raise TypeError(f"{type(self).__name__} cannot apply {event.TYPE}")
        handler(event)
        self.version = event.originator_version

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events not yet saved (the eventsourcing library's protocol)."""
        events, self._pending = self._pending, []
        return events

    @classmethod
    def replay(cls: type[A], events: Iterable[DomainEvent]) -> A | None:
        aggregate: A | None = None
        for event in events:
            if aggregate is None:
                aggregate = cls(event.originator_id)
            aggregate.apply(event)
        return aggregate
