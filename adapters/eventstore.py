"""The event store: an eventsourcing Application over SQLite or PostgreSQL.

Stored rows carry qledger's envelope as JSON (docs/architecture.md, "The envelope") with
the stable event type as the topic, so the relay can publish a row without knowing any
Python class and a renamed module never breaks old rows.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import unquote, urlparse

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    PersistenceError,
    StoredEvent,
)
from psycopg.sql import SQL, Composed, Identifier
from pydantic import TypeAdapter

from commands.ports import ConcurrencyConflict, StoreUnavailable
from domain.aggregate import Aggregate
from domain.catalog import EVENT_TYPES
from domain.events import DomainEvent, upcast

A = TypeVar("A", bound=Aggregate)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} in an event")


def dumps(obj: Any) -> bytes:
    """Compact JSON; datetimes as RFC 3339, UUIDs as strings, tuples as arrays."""
    return orjson.dumps(obj, default=_json_default)


@cache
def _adapter(cls: type[DomainEvent]) -> TypeAdapter:
    return TypeAdapter(cls)


class EnvelopeMapper(Mapper):
    """Domain event <-> stored row. The row's state is the envelope minus `position`."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        e: DomainEvent = domain_event
        state = {
            "project_id": e.project_id,  # first: the relay reads it without parsing the row
            "event_id": e.event_id,
            "type": e.TYPE,
            "schema_version": e.VERSION,
            "aggregate_id": e.originator_id,
            "aggregate_version": e.originator_version,
            "actor": e.actor,
            "correlation_id": e.correlation_id,
            "causation_id": e.causation_id,
            "occurred_at": e.occurred_at,
            "recorded_at": datetime.now(UTC),
            "payload": e.payload(),
        }
        return StoredEvent(
            originator_id=e.originator_id,
            originator_version=e.originator_version,
            topic=e.TYPE,
            state=dumps(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        env = orjson.loads(stored_event.state)
        cls = EVENT_TYPES[stored_event.topic]
        payload = upcast(stored_event.topic, env["schema_version"], env["payload"])
        return _adapter(cls).validate_python(
            {
                **payload,
                "originator_id": stored_event.originator_id,
                "originator_version": stored_event.originator_version,
                "event_id": env["event_id"],
                "project_id": env["project_id"],
                "actor": env["actor"],
                "correlation_id": env["correlation_id"],
                "causation_id": env["causation_id"],
                "occurred_at": env["occurred_at"],
            }
        )


_PROJECT_PREFIX = b'{"project_id":"'


def project_of(state: bytes) -> str:
    """The project of a stored row; project ids are plain tokens, so no JSON escapes."""
    if state.startswith(_PROJECT_PREFIX):
        start = len(_PROJECT_PREFIX)
        return state[start : state.index(b'"', start)].decode()
    return orjson.loads(state)["project_id"]


class StoredRow(NamedTuple):
    id: int  # the store position
    topic: str  # the event type
    state: bytes  # the envelope minus `position`, as JSON


def envelope(notification: StoredRow) -> dict[str, Any]:
    """The published form of one stored event: its envelope with the store position."""
    env = orjson.loads(notification.state)
    env["position"] = notification.id
    return env


class Ledger(Application):
    name = "qledger"

    def construct_mapper(self) -> Mapper:
        return EnvelopeMapper(transcoder=self.construct_transcoder())


@dataclass(frozen=True)
class StoreLocation:
    env: dict[str, str]
    description: str
    is_postgres: bool


def store_location(url: str | None, data_dir: Path) -> StoreLocation:
    """`None` or `sqlite:///path` -> SQLite file; `postgresql://user@host:port/db?schema=s`."""
    if not url or url.startswith("sqlite"):
        path = Path(urlparse(url).path) if url else data_dir / "events.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
        return StoreLocation(env, f"sqlite:{path}", False)
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported event store URL scheme '{parsed.scheme}'")
    query = dict(p.split("=", 1) for p in parsed.query.split("&") if "=" in p)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_SCHEMA": query.get("schema", "public"),
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        # The library's default (5 s) ended a writer's transaction whose thread merely
        # waited for the GIL on a loaded machine. A killed client's session ends at once
        # anyway (its socket closes), so the timeout only guards against a stuck one.
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "adapters.pg_recorder:BinaryBatchRecorder",
        # The library's database-function insert path skips the table lock that makes
        # notification ids commit in order (EventStore.refresh_cache relies on it); set
        # here so a stray POSTGRES_ENABLE_DB_FUNCTIONS in the environment can't turn it on.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "no",
    }
    safe = f"postgresql://{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
    return StoreLocation(env, safe, True)


_ABSENT = object()  # in the aggregate cache: "looked up, not in the store"

# Rows one cache refresh reads at most. Past this (a node idle while others wrote a lot),
# emptying the cache costs less than reading them all, and it refills by itself.
REFRESH_MAX_ROWS = 10_000

# SQLite checkpoints its write-ahead log inside whichever commit takes it past 1,000 pages
# (4 MB): every ~200th small command paid 5-7 ms for it (copying pages, two fsyncs). The
# relay checkpoints instead, off the command path (EventStore.checkpoint); commits still
# do it past this backstop, should no relay run for a long while.
WAL_BACKSTOP_PAGES = 50_000  # 200 MB


def _defer_checkpoints(app: Application) -> None:
    # The pool is eventsourcing's (pinned): each connection it makes gets the backstop.
    pool: Any = app.recorder.datastore.pool  # type: ignore[attr-defined]
    make = pool._create_connection

    def backstop(conn):
        conn._sqlite_conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        return conn

    pool._create_connection = lambda: backstop(make())
    for conn in [*pool._pool, *pool._in_use.values()]:
        backstop(conn)


class EventStore:
    """The command side's port to the store (commands.ports.EventStorePort), plus reads
    of the notification log for the relay and for rebuilds."""

    def __init__(self, location: StoreLocation, *, cache_size: int = 200_000) -> None:
        self.location = location
        try:
            self.app = Ledger(env=location.env)
        except PersistenceError as err:
            raise StoreUnavailable(
                f"cannot open event store {location.description}: {err}"
            ) from err
        if not location.is_postgres:
            _defer_checkpoints(self.app)
        self._cache: OrderedDict[uuid.UUID, Aggregate | object] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # The store position up to which the cache is known to be current: every row at or
        # below it is either in a cached aggregate's version or about an uncached one.
        # The cache is empty now, so anything stored so far qualifies.
        try:
            self._seen = self.max_position()
        except PersistenceError as err:
            raise StoreUnavailable(f"cannot read {location.description}: {err}") from err

    # -- write side ---------------------------------------------------------------
    def load(self, cls: type[A], aggregate_id: uuid.UUID) -> A | None:
        with self._lock:
            cached = self._cache.get(aggregate_id)
            if cached is not None:
                self._cache.move_to_end(aggregate_id)
                return None if cached is _ABSENT else cached  # type: ignore[return-value]

        try:
            # No snapshots, so the library always folds from nothing: the domain's replay.
            return self.app.repository.get(
                aggregate_id, projector_func=lambda _none, events: cls.replay(events)
            )
        except AggregateNotFoundError:
            # Remembered too: the hot paths look up things that mostly do not exist (a
            # backend nobody sent a controller command, a project without config files),
            # one SELECT each per command. A batch that creates one replaces the entry
            # (remember); one that conflicts drops it (forget).
            with self._lock:
                self._cache[aggregate_id] = _ABSENT
                self._trim()
            return None
        except PersistenceError as err:
            raise StoreUnavailable(str(err)) from err

    def commit(self, events: Sequence[DomainEvent]) -> list[int]:
        try:
            # The application's event store directly: Application.save would re-check every
            # event against its runtime protocol, and there is nothing else to collect.
            recordings = self.app.events.put(list(events))
        except IntegrityError as err:
            raise ConcurrencyConflict(str(err)) from err
        except PersistenceError as err:
            raise StoreUnavailable(str(err)) from err
        positions = [r.notification.id for r in recordings]
        with self._lock:
            # Our rows right after `_seen` leave no room for another writer's in between:
            # the next refresh need not read them. Otherwise (another node committed first,
            # or PostgreSQL skipped ids of a rolled-back insert) it reads from `_seen`, and
            # finds our own rows current in the cache.
            # (Positions strictly increase, so the first and the last pin the rest.)
            if (
                positions
                and positions[0] == self._seen + 1
                and positions[-1] == self._seen + len(positions)
            ):
                self._seen = positions[-1]
        return positions

    def refresh_cache(self) -> None:
        """Drop cached aggregates that another writer (another command node on this store)
        changed since this node last looked; called before each batch.

        One indexed range query on the position: when nothing changed, one round trip
        that returns no rows. Reading by position is safe because positions become
        visible in order, so a row at or below `_seen` can never appear later. SQLite
        has one writer at a time, and gives each row max(rowid) + 1 under its write lock.
        PostgreSQL's application recorder takes LOCK TABLE … IN EXCLUSIVE MODE before its
        INSERT (eventsourcing's PostgresApplicationRecorder._insert_stored_events, which
        BinaryBatchRecorder keeps: it changes only the statement), so notification ids are
        drawn and committed one transaction at a time; ids of a rolled-back insert stay gaps.

        Runs on the writer thread, like the batch's loads: a load racing a refresh could
        cache a state from before a row the refresh has already passed."""
        seen = self._seen
        try:
            rows = self._changes_after(seen, REFRESH_MAX_ROWS + 1)
            if not rows:
                return
            latest = self.max_position() if len(rows) > REFRESH_MAX_ROWS else rows[-1][0]
        except (PersistenceError, sqlite3.Error) as err:
            raise StoreUnavailable(str(err)) from err
        with self._lock:
            if len(rows) > REFRESH_MAX_ROWS:
                self._cache.clear()  # loads from here on read at least up to `latest`
            else:
                cache = self._cache
                for _position, aggregate_id, version in rows:
                    cached = cache.get(aggregate_id)
                    # A newer cached version is this node's own commit (or a load that
                    # already read the row): still current.
                    if cached is not None and (
                        cached is _ABSENT or cached.version < version  # type: ignore[attr-defined]
                    ):
                        del cache[aggregate_id]
            self._seen = max(self._seen, latest)

    def _changes_after(self, position: int, limit: int) -> list[tuple[int, uuid.UUID, int]]:
        """(position, aggregate id, aggregate version) of the rows after `position`."""
        recorder: Any = self.app.recorder
        if self.location.is_postgres:
            rows = self._pg_autocommit_rows(
                "SELECT notification_id, originator_id, originator_version"
                " FROM {table} WHERE notification_id > %s"
                " ORDER BY notification_id LIMIT %s",
                (position, limit),
            )
            return [
                (r["notification_id"], r["originator_id"], r["originator_version"]) for r in rows
            ]
        with recorder.datastore.get_connection(commit=False) as conn:
            # One statement outside BEGIN…ROLLBACK: it is its own read transaction.
            rows = conn._sqlite_conn.execute(
                f"SELECT rowid, originator_id, originator_version FROM"
                f" {recorder.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (position, limit),
            ).fetchall()
        return [(r[0], uuid.UUID(r[1]), r[2]) for r in rows]

    def remember(self, aggregates: Iterable[Aggregate]) -> None:
        with self._lock:
            for aggregate in aggregates:
                if not aggregate.CACHED:  # a one-event record nobody loads again
                    continue
                self._cache[aggregate.id] = aggregate
                self._cache.move_to_end(aggregate.id)
            self._trim()

    def _trim(self) -> None:
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, aggregate_ids: Iterable[uuid.UUID]) -> None:
        with self._lock:
            for aggregate_id in aggregate_ids:
                self._cache.pop(aggregate_id, None)

    def _pg_autocommit_rows(self, template: str, params: tuple) -> list:
        """One prepared statement on the pool's autocommit connection: one round trip, no
        BEGIN, and no transaction left open while a starved thread waits for the GIL
        (PostgreSQL ended such sessions after its idle-in-transaction timeout)."""
        recorder: Any = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._pg_sql(template), params, prepare=True)
            return cursor.fetchall()

    def _pg_sql(self, template: str) -> Composed:
        """A PostgreSQL statement on the events table ({table} in the template)."""
        recorder: Any = self.app.recorder
        table = Identifier(recorder.datastore.schema, recorder.events_table_name)
        return SQL(template).format(table=table)

    def position_of(self, aggregate_id: uuid.UUID, version: int) -> int:
        recorder: Any = self.app.recorder
        table = recorder.events_table_name
        with recorder.datastore.transaction(commit=False) as cursor:
            if self.location.is_postgres:
                cursor.execute(
                    self._pg_sql(
                        "SELECT notification_id FROM {table}"
                        " WHERE originator_id = %s AND originator_version = %s"
                    ),
                    (aggregate_id, version),
                )
                row = cursor.fetchone()
                return int(row["notification_id"])
            cursor.execute(
                f"SELECT rowid FROM {table} WHERE originator_id = ? AND originator_version = ?",
                (aggregate_id.hex, version),
            )
            return int(cursor.fetchone()[0])

    # -- read side ----------------------------------------------------------------
    def notifications_after(
        self, position: int, limit: int, stop: int | None = None, *, topic_prefix: str = ""
    ) -> list[StoredRow]:
        """The notification log after `position`, in order: (id, topic, state) only;
        with `topic_prefix`, only the events whose type starts with it.

        The same rows the library's select_notifications reads, without building a UUID
        and a Notification per row, which the relay and the projections never use."""
        recorder: Any = self.app.recorder
        last = stop if stop is not None else 2**62
        like = topic_prefix.replace("%", "").replace("_", "\\_") + "%"
        if self.location.is_postgres:
            rows = self._pg_autocommit_rows(
                "SELECT notification_id, topic, state FROM {table}"
                " WHERE notification_id > %s AND notification_id <= %s"
                " AND topic LIKE %s ORDER BY notification_id LIMIT %s",
                (position, last, like, limit),
            )
            return [StoredRow(r["notification_id"], r["topic"], bytes(r["state"])) for r in rows]
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT rowid, topic, state FROM {recorder.events_table_name}"
                " WHERE rowid > ? AND rowid <= ? AND topic LIKE ? ESCAPE '\\'"
                " ORDER BY rowid LIMIT ?",
                (position, last, like, limit),
            )
            return [StoredRow(r[0], r[1], r[2]) for r in cursor.fetchall()]

    def max_position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def aggregate_events(self, aggregate_id: uuid.UUID) -> list[DomainEvent]:
        return list(self.app.events.get(aggregate_id))

    def checkpoint(self) -> None:
        """SQLite: move the write-ahead log into the database file (PASSIVE: commits go
        on meanwhile), so the log restarts from its beginning. PostgreSQL: nothing."""
        if self.location.is_postgres:
            return
        recorder: Any = self.app.recorder
        with recorder.datastore.get_connection(commit=False) as conn:
            conn._sqlite_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.app.close()
