"""The base of every domain event: immutable facts with stable wire names.

Each event carries the envelope fields of docs/architecture.md that the domain knows
(who, which project, which command caused it, when it happened in the lab). The store
adds `position` and `recorded_at`; `type` and `schema_version` come from the class.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

NAMESPACE = uuid.UUID("6f1c2d4e-8a35-4b7e-9c0d-2f4a6b8c0e12")


@functools.lru_cache(maxsize=65536)
def stable_id(*parts: str) -> uuid.UUID:
    """Deterministic aggregate id from natural keys, so a lookup needs no index.
    Cached: the same few keys (the caller, the project, the chip, busy series) come back
    with every command, and uuid5 costs ~10 us each time."""
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


@dataclass(frozen=True, kw_only=True)
class CommandContext:
    """Who asked for a change, in which project, and which command it was."""

    project_id: str
    actor: str
    command_id: uuid.UUID
    correlation_id: str
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "originator_id",
            "originator_version",
            "event_id",
            "project_id",
            "actor",
            "correlation_id",
            "causation_id",
            "occurred_at",
        }
    )

    originator_id: uuid.UUID
    originator_version: int
    event_id: uuid.UUID
    project_id: str
    actor: str
    correlation_id: str
    causation_id: str
    occurred_at: datetime

    def payload(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in payload_fields(type(self))}


_PAYLOAD_FIELDS: dict[type, tuple[str, ...]] = {}


def payload_fields(cls: type[DomainEvent]) -> tuple[str, ...]:
    try:
        return _PAYLOAD_FIELDS[cls]
    except KeyError:
        names = tuple(f.name for f in fields(cls) if f.name not in DomainEvent.ENVELOPE_FIELDS)
        _PAYLOAD_FIELDS[cls] = names
        return names


EVENT_TYPES: dict[str, type[DomainEvent]] = {}


def register(cls: type[DomainEvent]) -> type[DomainEvent]:
    """Class decorator: make an event type resolvable by its wire name."""
    if not cls.TYPE or "." not in cls.TYPE:
        raise TypeError(f"{cls.__name__} needs TYPE = '<context>.<EventName>'")
    if cls.TYPE in EVENT_TYPES and EVENT_TYPES[cls.TYPE] is not cls:
        raise TypeError(f"event type {cls.TYPE} registered twice")
    EVENT_TYPES[cls.TYPE] = cls
    return cls


# Upcasters: (TYPE, from_version) -> pure function payload -> payload of from_version + 1.
UPCASTERS: dict[tuple[str, int], Any] = {}


def upcast(type_name: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    target = EVENT_TYPES[type_name].VERSION
    while version < target:
        payload = UPCASTERS[(type_name, version)](payload)
        version += 1
    return payload
