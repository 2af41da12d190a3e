"""Composition root: reads settings, wires the ports, and runs `qledger serve`.

Nothing connects or reads the environment at import time; everything starts here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import signal
from pathlib import Path
from typing import Any

import nats
import uvicorn
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from adapters.commandbus import CMD_PREFIX, CommandWriter, command_broker
from adapters.eventstore import EventStore, store_location
from adapters.http.app import create_app
from adapters.natsserver import EmbeddedNats
from adapters.projection_runner import ProjectionRunner
from adapters.readstore import ReadStore
from adapters.relay import Relay
from commands.models import Accepted, Command, Rejected, Reply
from config.settings import Settings
from projections.registry import all_projectors

log = logging.getLogger("qledger")


class NatsGateway:
    """Sends a command as a NATS request, exactly as any bus client would."""

    def __init__(self, nc: nats.NATS, timeout: float = 30.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def send(self, command: Command, headers: dict[str, str]) -> Reply:
        subject = CMD_PREFIX + command.SUBJECT
        try:
            msg = await self.nc.request(
                subject, command.model_dump_json().encode(), timeout=self.timeout, headers=headers
            )
        except NoRespondersError:
            return Rejected(code="bus_unavailable", message="no command handler is listening")
        except (TimeoutError, NatsTimeout):
            return Rejected(
                code="command_timeout",
                message="no reply in time; the outcome is unknown: retry with the same Idempotency-Key",
            )
        data = json.loads(msg.data)
        return Accepted(**data) if data.get("status") == "accepted" else Rejected(**data)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@contextlib.contextmanager
def data_dir_lock(data_dir: Path):
    """One serving process per data dir: DuckDB and the embedded NATS store need it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "qledger.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another qledger is serving {data_dir}; stop it first") from None
        yield


class _Server(uvicorn.Server):
    # qledger installs its own signal handlers so that it can stop every part in order.
    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def serve(settings: Settings) -> None:
    data_dir = settings.data_dir
    embedded: EmbeddedNats | None = None
    if not settings.nats_url:
        embedded = EmbeddedNats(settings.nats_store_dir, port=settings.nats_port).start()
    nats_url = settings.nats_url or embedded.url  # type: ignore[union-attr]
    (data_dir / "nats.url").write_text(nats_url)

    store = EventStore(store_location(settings.eventstore_url, data_dir))
    read = ReadStore(settings.duckdb_path, all_projectors())
    nc = await nats.connect(nats_url, name="qledger", max_reconnect_attempts=-1)
    js = nc.jetstream()
    relay = Relay(store, js)
    writer = CommandWriter(store, batch_max=settings.command_batch_max, on_commit=relay.notify)
    broker = command_broker(nats_url, writer)
    runner = ProjectionRunner(read, store, js, batch=settings.projection_batch_max)

    async def health() -> dict[str, Any]:
        return {
            "status": "stalled" if runner.stalled else "ok",
            "store_position": await asyncio.to_thread(store.max_position),
            "relay_position": relay.position,
            "projection_position": runner.position,
            "projection_lag_ms": runner.lag_percentiles(),
            "event_store": store.location.description,
            "nats_url": nats_url,
        }

    app = create_app(
        gateway=NatsGateway(nc),
        read=read,
        runner=runner,
        health=health,
        read_wait_seconds=settings.read_wait_seconds,
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level.lower(),
            lifespan="off",
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))

    tasks: list[asyncio.Task] = []
    try:
        await broker.start()
        tasks = [
            asyncio.create_task(writer.run(), name="command-writer"),
            asyncio.create_task(relay.run(), name="relay"),
            asyncio.create_task(runner.run(), name="projections"),
        ]
        http = asyncio.create_task(server.serve(), name="http")
        log.info(
            "qledger serving http://%s:%d (store %s, nats %s)",
            settings.http_host, settings.http_port, store.location.description, nats_url,
        )  # fmt: skip
        done, _ = await asyncio.wait([http, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not http and task.exception():
                log.error("%s stopped: %r", task.get_name(), task.exception())
                server.should_exit = True
        await http
    finally:
        log.info("stopping")
        await broker.stop()
        await writer.drain()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await nc.drain()
        store.close()
        read.close()
        if embedded is not None:
            embedded.stop()
        log.info("stopped")


def run_serve(settings: Settings) -> None:
    configure_logging(settings.log_level)
    with data_dir_lock(settings.data_dir):
        asyncio.run(serve(settings))
