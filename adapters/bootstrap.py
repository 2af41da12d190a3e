"""Composition root: reads settings, wires the ports, and runs `qledger serve`.

Nothing connects or reads the environment at import time; everything starts here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import nats
import uvicorn

from adapters.calibration.runner import CalibrationRunner
from adapters.commandbus import COMMITTED_SUBJECT, CommandWriter, command_broker
from adapters.eventstore import EventStore, store_location
from adapters.figures import FigureStore
from adapters.http.app import create_app
from adapters.http.security import Auth
from adapters.natsgateway import NatsGateway
from adapters.natsserver import EmbeddedNats, die_with_parent
from adapters.projection_runner import ProjectionRunner
from adapters.readstore import ReadStore
from adapters.relay import Relay, stream_checkpoint
from adapters.security.passwords import Passwords
from adapters.security.secret_file import jwt_secret
from adapters.security.tokens import TokenService
from adapters.twin.catalog import TwinCatalog
from adapters.twin.checker import CircuitChecker
from adapters.twin.qec_bus import QecBus
from adapters.twin.qec_engine import QecEngine
from adapters.twin.runner import TwinRunner
from adapters.twin.view import TwinView
from adapters.twin.watch import JobWatch
from commands.identity import BootstrapSystem
from commands.models import Rejected
from commands.ports import StoreUnavailable
from commands.processor import Submission, process_batch, system_submission
from config.catalog import ConfigFileError, load_metrics, load_policy
from config.settings import Settings
from domain.access import DEFAULT_PROJECT
from domain.metrics import MetricCatalog, PolicyRule
from domain.projects import Project, project_key
from projections.registry import all_projectors

log = logging.getLogger("qledger")


def freeze_startup_heap() -> None:
    """What exists once a role is set up (modules, libraries, the app) lives as long as
    the process, yet every full garbage collection walked all of it: 80-140 ms on this
    machine, during which no command was decided. Frozen, a full collection walks only
    what came after (gc.freeze; reference counting still frees those objects)."""
    gc.collect()
    gc.freeze()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


ROLES = ("command", "relay", "query")


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, name: str = "qledger"):
    """One process per role and data dir (DuckDB and the embedded NATS store need it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"another qledger ({name}) is using {data_dir}; stop it first"
            ) from None
        yield


class _Server(uvicorn.Server):
    # qledger installs its own signal handlers so that it can stop every part in order.
    @contextlib.contextmanager
    def capture_signals(self):
        yield


def token_service(settings: Settings) -> TokenService:
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return TokenService(
        jwt_secret(configured, settings.data_dir),
        access_ttl=timedelta(minutes=settings.access_token_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_days),
    )


def decide_as_system(command, store: EventStore, passwords: Passwords, correlation_id: str):
    """One command decided in this process with qledger's own identity (no bus): the
    first admin at the first start, an operator's password reset from the CLI."""
    [reply] = process_batch([system_submission(command, correlation_id)], store, passwords)
    return reply


def ensure_first_admin(settings: Settings, store: EventStore, passwords: Passwords) -> None:
    """On first start: the first admin, who owns the `default` project (where events
    recorded before accounts existed live). A generated password is printed once."""
    if store.load(Project, project_key(DEFAULT_PROJECT)) is not None:
        return
    generated = settings.admin_password is None
    password = (
        secrets.token_urlsafe(18)
        if settings.admin_password is None
        else settings.admin_password.get_secret_value()
    )
    command = BootstrapSystem(admin_username=settings.admin_username, admin_password=password)  # type: ignore[arg-type]
    reply = decide_as_system(command, store, passwords, "bootstrap")
    if isinstance(reply, Rejected):
        if reply.code == "already_bootstrapped":  # another command node was first
            return
        raise SystemExit(f"qledger: could not create the first admin: {reply.message}")
    log.info("created the first admin '%s', owner of project 'default'", command.admin_username)
    if generated:
        # Shown once, on the terminal, never logged; only its argon2 hash is stored.
        print(
            f"\nqledger: first admin '{command.admin_username}' created with password:"
            f"\n\n    {password}\n\nIt is not shown again: change it with"
            " POST /api/auth/change-password.\n",
            file=sys.stderr,
            flush=True,
        )


def load_catalogs(settings: Settings) -> tuple[MetricCatalog, tuple[PolicyRule, ...]]:
    """metrics.yaml and policy.yaml, or stop the start naming the file and line."""
    try:
        return load_metrics(settings.metrics_config), load_policy(settings.policy_config)
    except ConfigFileError as err:
        raise SystemExit(f"qledger: configuration refused:\n{err}") from None


def projection_durable(settings: Settings) -> str:
    """One durable consumer per read-model file: query nodes must not share one, or each
    would see only part of the stream."""
    digest = hashlib.sha256(str(settings.duckdb_path.resolve()).encode()).hexdigest()[:10]
    return f"qledger-projections-{digest}"


def _query_app(
    settings: Settings, nc, js, store: EventStore, read: ReadStore, runner, relay: Relay | None
) -> Any:
    auth = Auth(token_service(settings), Passwords(), read)
    checkpoint = {"at": 0.0, "position": 0}

    async def stream_position() -> int:
        # Two JetStream API calls: at most once a second, however often health is polled
        # (uncached, a 20 Hz poller doubled the projection lag).
        if time.monotonic() - checkpoint["at"] > 1.0:
            checkpoint["position"] = await stream_checkpoint(js)
            checkpoint["at"] = time.monotonic()
        return int(checkpoint["position"])

    async def health() -> dict[str, Any]:
        # The relay's own position when it runs here; else what the stream holds.
        try:
            relay_position = relay.position if relay else await stream_position()
        except Exception as err:  # noqa: BLE001 - health must answer while NATS is down
            relay_position = None
            problems_extra = [f"stream unreadable: {err}"]
        else:
            problems_extra = []
        problems = [p for p in (runner.stalled, relay.stalled if relay else None) if p]
        problems += problems_extra
        return {
            "status": "stalled" if problems else "ok",
            "problems": problems,
            "store_position": await asyncio.to_thread(store.max_position),
            "relay_position": relay_position,
            "projection_position": runner.position,
            "projection_lag_ms": runner.lag_percentiles(),
            # Loaded once the read models caught up at start; lineage queries wait for it.
            "lineage_graph": "loaded" if app.state.graph.loaded else "loading",
            "event_store": store.location.description,
        }

    catalog, policy = load_catalogs(settings)
    watch = JobWatch(nc)
    app = create_app(
        catalog=catalog,
        policy=policy,
        timezone=settings.timezone,
        gateway=NatsGateway(nc),
        read=read,
        runner=runner,
        health=health,
        read_wait_seconds=settings.read_wait_seconds,
        auth=auth,
        figure_store=FigureStore(js),
        twin=TwinView(TwinCatalog(settings.twin_config)),
        twin_watch=watch,
        twin_config_read_only=settings.twin_config_read_only,
        max_body_bytes=settings.max_body_bytes,
    )
    return app


async def run_roles(
    settings: Settings, roles: set[str], nats_url: str, children=(), nats_proc=None
) -> None:
    """Run some of the roles in this process until SIGINT/SIGTERM or a part fails.

    command: FastStream subscriber + batch writer; relay: store -> JetStream;
    query: projection runner + HTTP API (DuckDB has one writing process, so these two
    share one)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    store = await _open_store(settings)
    nc = await nats.connect(
        nats_url, name=f"qledger-{'+'.join(sorted(roles))}", max_reconnect_attempts=-1
    )
    js = nc.jetstream()
    tasks: list[asyncio.Task] = []
    relay = Relay(store, nc) if "relay" in roles else None
    writer = broker = read = server = twin_runner = calibration_runner = checker = None
    warm: asyncio.Task | None = None
    if relay is not None:
        await relay.listen_for_commits()
    if "command" in roles:

        async def committed(batch: Sequence[Submission] = ()) -> None:
            # The runner reads the log only after twin commands (it also polls each second);
            # QEC session steps are not its business.
            if twin_runner is not None and any(
                s.command.SUBJECT.startswith("twin.")
                and not s.command.SUBJECT.startswith("twin.qec_")
                for s in batch
            ):
                twin_runner.notify()
            # Runs are dispatched, and their jobs end, by calibration and twin commands.
            if calibration_runner is not None and any(
                s.command.SUBJECT.startswith(("calibration.", "twin.complete", "twin.fail",
                                              "twin.cancel", "twin.write_config"))
                for s in batch
            ):  # fmt: skip
                calibration_runner.notify()
            await nc.publish(COMMITTED_SUBJECT, b"")

        passwords = Passwords()
        catalog = TwinCatalog(settings.twin_config, budget_seconds=settings.twin_job_budget_seconds)
        checker = CircuitChecker()
        await checker.start()
        await asyncio.to_thread(ensure_first_admin, settings, store, passwords)
        await committed()  # wakes a relay that started before the first admin was saved
        figures = FigureStore(js)
        writer = CommandWriter(
            store,
            batch_max=settings.command_batch_max,
            on_commit=committed,
            passwords=passwords,
            figures=figures,
            twin=catalog,
            qec=QecEngine(catalog),
        )
        twin_runner = TwinRunner(
            store,
            writer,
            catalog,
            time_limit=settings.twin_job_time_limit_seconds,
            memory_bytes=settings.twin_worker_memory_mb * 2**20,
        )
        calibration_runner = CalibrationRunner(store, writer, figures, catalog, checker)
        broker = command_broker(nats_url, writer, token_service(settings), checker)
        qec_bus = QecBus(nc, writer, token_service(settings))
        writer.on_replies = qec_bus.published
        await qec_bus.start()
    if "query" in roles:
        read = await _open_read_store(settings)
        runner = ProjectionRunner(
            read,
            store,
            js,
            durable=projection_durable(settings),
            batch=settings.projection_batch_max,
        )
        server = _Server(
            uvicorn.Config(
                _query_app(settings, nc, js, store, read, runner, relay),
                host=settings.http_host,
                port=settings.http_port,
                log_level=settings.log_level.lower(),
                lifespan="off",
                # X-Forwarded-For only from the proxies the operator names: uvicorn trusts
                # 127.0.0.1 by default, which let any local client pick its own address
                # (and so a fresh login throttle) with each request.
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=settings.forwarded_allow_ips or None,
            )
        )
    freeze_startup_heap()
    try:
        if broker is not None and writer is not None:
            await broker.start()
            tasks.append(asyncio.create_task(writer.run(), name="command-writer"))
            if twin_runner is not None:
                tasks.append(asyncio.create_task(twin_runner.run(), name="twin-runner"))
            if calibration_runner is not None:
                tasks.append(
                    asyncio.create_task(calibration_runner.run(), name="calibration-runner")
                )
        if relay is not None:
            tasks.append(asyncio.create_task(relay.run(), name="relay"))
        if server is not None:
            tasks.append(asyncio.create_task(runner.run(), name="projections"))
            await server.config.app.state.twin_watch.start()
            tasks.append(asyncio.create_task(server.serve(), name="http"))
            # Not in `tasks`: it ends by design, and an ended task there means a dead part.
            warm = asyncio.create_task(_warm_lineage_graph(server, read, runner, store))
        for child in (*children, *([nats_proc] if nats_proc else [])):
            tasks.append(
                asyncio.create_task(asyncio.to_thread(child.wait), name=f"child {child.pid}")
            )
        log.info(
            "qledger roles %s running (store %s, nats %s)",
            sorted(roles),
            store.location.description,
            nats_url,
        )
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stopper]
        for task in failed:
            log.error(
                "%s stopped unexpectedly: %r", task.get_name(), task.exception() or task.result()
            )
        if failed:
            raise SystemExit(1)
    finally:
        log.info("stopping %s", sorted(roles))
        if server is not None:
            server.should_exit = True
        if broker is not None and writer is not None:
            # Bounded: with NATS gone, FastStream's stop would wait for it indefinitely.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.stop(), 5)
            await writer.drain()
        if checker is not None:
            await asyncio.to_thread(checker.worker.close)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                await asyncio.to_thread(_wait_or_kill, child)
        for task in (*tasks, *([warm] if warm else [])):
            task.cancel()
        await asyncio.gather(*tasks, *([warm] if warm else []), return_exceptions=True)
        # close, not drain: drain waits on the pull and publish-ack inboxes until it times out.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)
        if nats_proc is not None and nats_proc.poll() is None:
            # Last: every connection to it is closed, so nothing logs a lost server.
            nats_proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(_wait_or_kill, nats_proc)
        store.close()
        if read is not None:
            read.close()
        log.info("stopped %s", sorted(roles))


async def _warm_lineage_graph(server, read: ReadStore, runner, store: EventStore) -> None:
    """Load the lineage graph once the read models have caught up, so the first lineage
    query does not pay for it (about 10 s at 500k relations)."""
    head = await asyncio.to_thread(store.max_position)
    while not await runner.wait_for(head, 5.0):
        pass
    graph = server.config.app.state.graph

    def load() -> None:
        with graph.lock:
            graph.refresh(read)

    started = time.monotonic()
    await asyncio.to_thread(load)
    log.info("lineage graph loaded in %.1f s", time.monotonic() - started)


async def _open_store(settings: Settings) -> EventStore:
    """Open the event store, retrying briefly: processes starting together on PostgreSQL
    race on its CREATE … IF NOT EXISTS statements ("tuple concurrently updated")."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return await asyncio.to_thread(
                EventStore, store_location(settings.eventstore_url, settings.data_dir)
            )
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _open_read_store(settings: Settings) -> ReadStore:
    """Open DuckDB, waiting briefly for a killed predecessor's lock to go away."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return ReadStore(settings.duckdb_path, all_projectors())
        except (duckdb.IOException, BlockingIOError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _wait_or_kill(proc: subprocess.Popen, timeout: float = 20) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _spawn_role(settings: Settings, nats_url: str, role: str) -> subprocess.Popen:
    """One role in its own process, with its own GIL, so it never slows the command writer
    or the other roles. Tied to this process like nats-server (PR_SET_PDEATHSIG)."""
    env = {**os.environ, "QLEDGER_NATS_URL": nats_url, "QLEDGER_HTTP_PORT": str(settings.http_port)}
    cmd = [sys.executable, "-m", "adapters.cli", "serve", "--role", role]
    # Its own process group: a terminal's Ctrl-C reaches only the parent, which stops the
    # children in order (they still die with it: PR_SET_PDEATHSIG).
    return subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent, process_group=0)


def run_serve(settings: Settings, roles: set[str]) -> None:
    configure_logging(settings.log_level)
    # The command writer thread gives up the GIL on every SQLite/PostgreSQL call; with the
    # default 5 ms switch interval a busy event loop makes it wait that long each time.
    sys.setswitchinterval(0.0005)
    lock_name = "qledger" if roles == set(ROLES) else "qledger-" + "-".join(sorted(roles))
    if "query" in roles:
        load_catalogs(settings)  # a bad file stops the start before anything runs
    with data_dir_lock(settings.data_dir, lock_name):
        if roles != set(ROLES):
            if not settings.nats_url:
                raise SystemExit("--role needs QLEDGER_NATS_URL (a running NATS)")
            try:
                asyncio.run(run_roles(settings, roles, settings.nats_url))
            except StoreUnavailable as err:
                raise SystemExit(f"qledger: {err}") from None
            return
        # Everything on one machine: embedded NATS (unless given), the command side here,
        # the query side (projections + HTTP) and the relay in child processes.
        embedded = None
        if not settings.nats_url:
            embedded = EmbeddedNats(settings.nats_store_dir, port=settings.nats_port).start()
        nats_url = settings.nats_url or embedded.url  # type: ignore[union-attr]
        (settings.data_dir / "nats.url").write_text(nats_url)
        try:
            # Create the store's tables once, before the children open it too; this also
            # fails fast, with a clear message, when the store is unreachable.
            EventStore(store_location(settings.eventstore_url, settings.data_dir)).close()
            token_service(settings)  # the JWT key file, before two children race to make it
            # Watched: if any child dies, qledger stops (and says so) rather than run on
            # half a system. Stopped in this order: query side, relay, this process's own
            # NATS connections, then NATS.
            children = [
                _spawn_role(settings, nats_url, "query"),
                _spawn_role(settings, nats_url, "relay"),
            ]
            nats_proc = embedded.proc if embedded else None
            asyncio.run(
                run_roles(settings, {"command"}, nats_url, children=children, nats_proc=nats_proc)
            )
        except StoreUnavailable as err:
            raise SystemExit(f"qledger: {err}") from None
        finally:
            if embedded is not None:
                embedded.stop()
