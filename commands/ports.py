"""What the command side needs from the outside world (implemented in adapters/)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from domain.aggregate import Aggregate
from domain.events import DomainEvent

A = TypeVar("A", bound=Aggregate)


class ConcurrencyConflict(Exception):
    """Another writer saved one of these aggregates first (aggregate version taken)."""


class StoreUnavailable(Exception):
    """The event store could not be reached or refused the write for a non-business reason."""


class EventStorePort(Protocol):
    def load(self, cls: type[A], aggregate_id: uuid.UUID) -> A | None:
        """The aggregate as last committed (may be a cached object), or None."""

    def commit(self, events: Sequence[DomainEvent]) -> list[int]:
        """Append atomically; return the store position of each event, in order.
        Raises ConcurrencyConflict if any (aggregate id, version) is taken."""

    def position_of(self, aggregate_id: uuid.UUID, version: int) -> int:
        """Store position of one stored event."""

    def forget(self, aggregate_ids: Iterable[uuid.UUID]) -> None:
        """Drop cached copies (they may hold uncommitted or stale state)."""

    def remember(self, aggregates: Iterable[Aggregate]) -> None:
        """Keep committed aggregates for the next batch."""

    def refresh_cache(self) -> None:
        """Drop cached aggregates that another writer changed since this one last looked
        (before each batch: another command node may share the store)."""


class PasswordHasherPort(Protocol):
    """A slow, salted password hash (argon2id in adapters/)."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str | None, password: str) -> bool: ...


class FigureIndexPort(Protocol):
    """Which uploaded figures exist (looked up by the adapter before the batch runs)."""

    def exists(self, name: str) -> bool: ...


class TwinPort(Protocol):
    """The twin's configuration checks (adapters/twin/catalog.py). A refusal is raised as
    the domain's own error (InvalidInput, NotFound), so handlers let it pass."""

    def base_files(self) -> dict[str, str]: ...

    def check_files(self, files: dict[str, str]) -> None: ...

    def check_controller(
        self, files: dict[str, str], backend_id: str, command_type: str, payload: dict
    ) -> None: ...

    def check_job(
        self,
        files: dict[str, str],
        backend_id: str,
        circuits: list,
        shots: int,
        sizes: list | None = None,
        metadata: dict | None = None,
    ) -> None:
        """Refuses a job the backend cannot or will not run (limits, cost, options in
        `metadata` such as optimization_level)."""

    def backend(self, files: dict[str, str], backend_id: str) -> Any: ...

    def check_schedule(
        self, files: dict[str, str], backend_id: str, actions: list, n_qubits: int
    ) -> list[dict[str, Any]]: ...

    def readout(
        self,
        files: dict[str, str],
        backend_id: str,
        controller: Any,
        schedule: tuple[int, tuple[dict[str, Any], ...]] | None,
        seed: int,
        at: datetime,
    ) -> list[int]: ...


class QecPort(Protocol):
    """QEC sessions' codes and live simulations (adapters/twin/qec_engine.py). Each call
    that advances a simulation is made just before the aggregate records the step.
    Refusals are domain errors, as the TwinPort's."""

    def code_for(
        self, files: dict[str, str], backend_id: str, family: str, distance: int, basis: str
    ) -> Any: ...

    def measure(
        self, session: Any, files: dict[str, str], controller: Any, at: datetime, count: int
    ) -> dict[str, Any]: ...

    def correct(self, session: Any, bits: list[int]) -> None: ...

    def forget(self, aggregate_ids: Iterable[uuid.UUID]) -> None: ...

    def end(
        self, session: Any, files: dict[str, str], controller: Any, at: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...
