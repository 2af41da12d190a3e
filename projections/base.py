"""What a projector is, and the ports it writes to and reads from (DuckDB in adapters/).

Projectors are plain classes fed batches of envelopes (dicts; docs/architecture.md, "The
envelope") in store-position order. The runner commits their rows together with their positions, so
a projector never sees an event twice and needs no idempotency logic of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import orjson

from domain.errors import Kind

Envelope = dict[str, Any]


def utc(moment: datetime) -> datetime:
    """A read-model time as an aware UTC datetime. Queries that return many rows select
    TIMESTAMPTZ columns as naive UTC (`col::TIMESTAMP`): DuckDB's tz-aware conversion
    costs about 5 us a value, more than the rest of the row."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """Timestamps leave the read models as ISO 8601 strings with an explicit offset."""
    return utc(moment).isoformat() if moment is not None else None


def to_json(value: Any) -> str:
    """JSON text for a VARCHAR column (read back with orjson.loads)."""
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, DuckDB type)
    indexes: tuple[tuple[str, ...], ...] = ()

    def ddl(self) -> list[str]:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns)
        stmts = [f"CREATE TABLE IF NOT EXISTS {self.name} ({cols})"]
        for i, idx in enumerate(self.indexes):
            stmts.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_ix{i} ON {self.name} ({', '.join(idx)})"
            )
        return stmts


class ViewTx(Protocol):
    """One read-model transaction."""

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows (dicts keyed by column; missing columns are NULL), set-based."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Read inside the transaction (sees this batch's own writes)."""
        ...


class QueryError(Exception):
    """A query that can't be answered as asked: `kind` as a domain error's (an unknown
    thing named in the path is NOT_FOUND, an ill-posed question INVALID), a stable
    `code`, a human `message`."""

    def __init__(self, kind: Kind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


class ViewReader(Protocol):
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Projector:
    name: ClassVar[str]
    handles: ClassVar[frozenset[str]]
    tables: ClassVar[tuple[Table, ...]]
    # Bump when `tables` or the meaning of their rows change: the read side then drops
    # this projector's tables and replays the store into them.
    schema_version: ClassVar[int] = 1

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        raise NotImplementedError
