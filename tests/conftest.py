"""Shared fixtures: a real nats-server per test session, real SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from adapters.eventstore import EventStore, store_location
from adapters.natsserver import EmbeddedNats
from commands.models import Command
from commands.processor import Submission
from domain.access import SYSTEM
from domain.events import CommandContext


def postgres_url() -> str:
    url = os.environ.get("QLEDGER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("QLEDGER_TEST_POSTGRES_URL must be set in CI")
        pytest.skip("QLEDGER_TEST_POSTGRES_URL not set (make test sets it)")
    return url


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; dropped afterwards."""
    url = postgres_url()
    schema = f"qtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{url}?schema={schema}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'events.sqlite'}"
    return request.getfixturevalue("pg_schema")


@pytest.fixture
def store(store_url: str | None, tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(store_location(store_url, tmp_path))
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(store_location(None, tmp_path))
    yield s
    s.close()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


def ctx(project_id: str = "default", at: datetime | None = None) -> CommandContext:
    command_id = uuid.uuid4()
    return CommandContext(
        project_id=project_id,
        actor="tester",
        command_id=command_id,
        correlation_id=str(command_id),
        received_at=at or datetime.now(UTC),
    )


def sub(command: Command, key: str | None = None, project: str = "default") -> Submission:
    """A command as qledger itself sends it (no account needed) in `project`."""
    return Submission(
        command, ctx(project), credential=SYSTEM, project=project, idempotency_key=key
    )
