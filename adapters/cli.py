"""`qledger` command line: serve, projections rebuild, schema, events tail, docs, admin."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from config.settings import Settings


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from adapters.bootstrap import ROLES, run_serve

    if args.port is not None:
        settings.http_port = args.port
    roles = set(args.role.split(",")) if args.role else set(ROLES)
    if not roles <= set(ROLES):
        raise SystemExit(f"unknown role in {args.role!r}; roles: {', '.join(ROLES)}")
    run_serve(settings, roles)


def _replay_into(path, store, *, to_position, as_of) -> tuple[int, int]:
    """Feed the store's events, in order, into a fresh read-model file at `path`."""
    from adapters.eventstore import envelope
    from adapters.readstore import ReadStore
    from projections.registry import all_projectors

    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    read = ReadStore(path, all_projectors(), locked=False)
    position, count = 0, 0
    try:
        while True:
            notes = store.notifications_after(position, 5000, stop=to_position)
            envs = [envelope(n) for n in notes]
            if as_of is not None:
                envs = [e for e in envs if datetime.fromisoformat(e["recorded_at"]) <= as_of]
            if envs:
                read.apply(envs)
                position, count = envs[-1]["position"], count + len(envs)
            if len(envs) < len(notes) or not notes:
                return position, count
            position = notes[-1].id
    finally:
        read.close()


def _cmd_rebuild(args: argparse.Namespace, settings: Settings) -> None:
    from adapters.eventstore import EventStore, store_location
    from adapters.readstore import lock_read_models

    store = EventStore(store_location(settings.eventstore_url, settings.data_dir))
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        raise SystemExit("--as-of needs a time zone, e.g. 2026-11-23T10:00:00+00:00")
    try:
        if args.output:
            # A copy as of a moment, for reproducing what a dashboard showed then; the
            # serving read models are left alone (and serve never catches this file up).
            position, count = _replay_into(
                Path(args.output), store, to_position=args.to_position, as_of=as_of
            )
            print(f"built {args.output} from {count} events (up to position {position})")
            return
        target = settings.duckdb_path
        try:
            # Refuse while a projector (any role mix) holds this read-model file.
            held = lock_read_models(target)
        except BlockingIOError:
            raise SystemExit(f"{target} is in use by a running qledger; stop it first") from None
        with held:
            fresh = target.with_name(target.name + ".rebuild")
            position, count = _replay_into(fresh, store, to_position=args.to_position, as_of=as_of)
            target.with_name(target.name + ".wal").unlink(missing_ok=True)
            os.replace(fresh, target)
        print(f"rebuilt {target} from {count} events (up to position {position})")
    finally:
        store.close()


def _cmd_schema(args: argparse.Namespace, settings: Settings) -> None:
    from pydantic import TypeAdapter

    from commands.handlers import COMMANDS
    from domain.catalog import EVENT_TYPES

    doc = {
        "commands": {
            f"qledger.cmd.{subject}": model.model_json_schema()
            for subject, model in COMMANDS.items()
        },
        "events": {
            name: {"schema_version": cls.VERSION, **TypeAdapter(cls).json_schema()}
            for name, cls in sorted(EVENT_TYPES.items())
        },
    }
    json.dump(doc, sys.stdout, indent=2, default=str)
    print()


def _cmd_tail(args: argparse.Namespace, settings: Settings) -> None:
    import nats
    from nats.js import api

    url = args.nats_url or settings.nats_url
    if url is None:
        url_file = settings.data_dir / "nats.url"
        if not url_file.exists():
            raise SystemExit(
                f"no NATS URL: is qledger serving {settings.data_dir}? (or pass --nats-url)"
            )
        url = url_file.read_text().strip()

    gone = f"qledger is not running: no NATS answers at {url}"

    async def quiet(_err: Exception) -> None:  # the exit message says it once
        return None

    async def tail() -> None:
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        try:
            # No reconnecting: a stale nats.url (a stopped server) must end the command.
            nc = await nats.connect(
                url, allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.2,
                connect_timeout=3,
                error_cb=quiet,
                closed_cb=on_closed,
            )  # fmt: skip
        except (OSError, nats.errors.Error) as err:
            raise SystemExit(f"{gone} ({err})") from None
        js = nc.jetstream()
        policy = api.DeliverPolicy.ALL if args.from_start else api.DeliverPolicy.NEW
        sub = await js.subscribe(args.subject, ordered_consumer=True, deliver_policy=policy)

        async def printing() -> None:
            async for msg in sub.messages:
                print(msg.data.decode(), flush=True)

        printer = asyncio.create_task(printing())
        await asyncio.wait({printer, asyncio.create_task(closed.wait())},
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        printer.cancel()
        if closed.is_set():
            raise SystemExit("qledger stopped: the event stream ended")
        await nc.close()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        pass


def _cmd_reset_password(args: argparse.Namespace, settings: Settings) -> None:
    """A lost admin password, recovered on the server itself: whoever can run this can
    read the store anyway. The change is a command like any other, so it is an event."""
    import getpass

    from adapters.bootstrap import decide_as_system
    from adapters.eventstore import EventStore, store_location
    from adapters.security.passwords import Passwords
    from commands.identity import ResetPassword
    from commands.models import Rejected

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"new password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the two passwords differ; nothing changed")
    try:
        command = ResetPassword(username=args.username, new_password=password)  # type: ignore[arg-type]
    except ValueError as err:
        raise SystemExit(f"refused: {err}") from None
    store = EventStore(store_location(settings.eventstore_url, settings.data_dir))
    try:
        reply = decide_as_system(command, store, Passwords(), "cli:reset-password")
    finally:
        store.close()
    if isinstance(reply, Rejected):
        raise SystemExit(f"refused ({reply.code}): {reply.message}")
    print(
        f"password of '{command.username}' reset (store position {reply.position}); every"
        " token issued to it before is void"
    )


def _cmd_docs(args: argparse.Namespace, settings: Settings) -> None:
    from adapters.docs_gen import run

    raise SystemExit(run(check=args.check))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qledger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run NATS (embedded), store, relay, projections and HTTP")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000, QLEDGER_HTTP_PORT)")
    serve.add_argument(
        "--role",
        help="run only these roles, comma-separated: command, relay, query (default: all;"
        " needs QLEDGER_NATS_URL)",
    )
    serve.set_defaults(func=_cmd_serve)

    projections = sub.add_parser("projections", help="read-model maintenance")
    psub = projections.add_subparsers(dest="projections_command", required=True)
    rebuild = psub.add_parser(
        "rebuild", help="replay the event store into a fresh DuckDB file and swap it in"
    )
    rebuild.add_argument("--to-position", type=int, default=None, help="stop at this position")
    rebuild.add_argument(
        "--as-of", default=None, help="only events the store had accepted by this ISO time"
    )
    rebuild.add_argument(
        "--output",
        default=None,
        help="write a separate DuckDB file instead of replacing the serving one",
    )
    rebuild.set_defaults(func=_cmd_rebuild)

    schema = sub.add_parser("schema", help="print the JSON Schema of every command and event")
    schema.set_defaults(func=_cmd_schema)

    events = sub.add_parser("events", help="the event stream")
    esub = events.add_subparsers(dest="events_command", required=True)
    tail = esub.add_parser("tail", help="print events from the bus as they arrive (JSON lines)")
    tail.add_argument("--subject", default="qledger.evt.>", help="subject filter")
    tail.add_argument("--from-start", action="store_true", help="replay the stream first")
    tail.add_argument(
        "--nats-url", default=None, help="default: QLEDGER_NATS_URL, else <data_dir>/nats.url"
    )
    tail.set_defaults(func=_cmd_tail)

    docs = sub.add_parser(
        "docs", help="write the documents generated from the code (docs/asyncapi.yaml, ...)"
    )
    docs.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming any stale document"
    )
    docs.set_defaults(func=_cmd_docs)

    admin = sub.add_parser("admin", help="recovery on the server itself")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    reset = asub.add_parser(
        "reset-password",
        help="set a user's password (writes to the store named by QLEDGER_DATA_DIR /"
        " QLEDGER_EVENTSTORE_URL; the server may be running)",
    )
    reset.add_argument("username")
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the new password from stdin"
    )
    reset.set_defaults(func=_cmd_reset_password)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args, Settings())


if __name__ == "__main__":
    main()
