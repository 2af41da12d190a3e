"""The command side on the bus: a FastStream subscriber on `qledger.cmd.>` feeding one
writer that decides commands in batches and saves each batch in one transaction."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError

from adapters.body_limits import BodyRefused, check_json
from adapters.credentials import MissingCredential, read_credential
from adapters.security.passwords import Passwords
from adapters.security.tokens import InvalidToken, TokenService
from commands.handlers import COMMANDS
from commands.models import Command, RecordTaskResult, Rejected, Reply
from commands.ports import QecPort, StoreUnavailable, TwinPort
from commands.processor import Submission, process_batch
from commands.twin import SubmitJob
from domain.errors import DomainError, Kind
from domain.events import CommandContext

from .eventstore import EventStore
from .figures import FigureStore, KnownFigures
from .twin.checker import CircuitChecker

log = logging.getLogger(__name__)

CMD_PREFIX = "qledger.cmd."
# Core NATS, no payload: "the store has new events" - wakes relays at once instead of
# waiting for their next poll, wherever they run.
COMMITTED_SUBJECT = "qledger.sys.committed"
# A command's events must fit in one NATS message (1 MiB by default) with their envelope.
MAX_COMMAND_BYTES = 256 * 1024
PROJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # one NATS subject token


class CommandWriter:
    """Collects submissions from many concurrent requests; one thread commits them in batches."""

    def __init__(
        self,
        store: EventStore,
        *,
        batch_max: int,
        on_commit: Callable[[list[Submission]], Awaitable[None]],
        passwords: Passwords | None = None,
        figures: FigureStore | None = None,
        twin: TwinPort | None = None,
        qec: QecPort | None = None,
        on_replies: Callable[[list[Submission], list[Reply]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.qec = qec
        self.on_replies = on_replies  # after each batch: the QEC data plane publishes rounds
        self.passwords = passwords or Passwords()
        self.figures = figures
        self.twin = twin
        self.batch_max = batch_max
        self.on_commit = on_commit
        self.queue: asyncio.Queue[tuple[Submission, asyncio.Future[Reply]]] = asyncio.Queue()
        self.idle = asyncio.Event()
        self.idle.set()

    async def submit(self, submission: Submission) -> Reply:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.idle.clear()  # here, not in run(): drain() must see a queued command at once
        await self.queue.put((submission, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            submissions = [s for s, _ in batch]
            try:
                known = await self._known_figures(submissions)
                replies = await asyncio.to_thread(
                    process_batch,
                    submissions,
                    self.store,
                    self.passwords,
                    known,
                    self.twin,
                    self.qec,
                )
            except StoreUnavailable as err:
                log.error("event store unavailable: %s", err)
                message = (
                    f"event store unavailable ({err}); the outcome is unknown:"
                    " retry with the same Idempotency-Key"
                )
                replies = [
                    Rejected(kind=Kind.UNAVAILABLE, code="store_unavailable", message=message)
                ] * len(batch)
            except Exception as err:
                log.exception("command batch failed: %s", err)
                message = (
                    "internal error; the outcome is unknown: retry with the same Idempotency-Key"
                )
                replies = [
                    Rejected(kind=Kind.INTERNAL, code="internal_error", message=message)
                ] * len(batch)
            for (_, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(reply)
            await self.on_commit(submissions)
            if self.on_replies is not None:
                await self.on_replies(submissions, replies)
            if self.queue.empty():
                self.idle.set()

    async def _known_figures(self, batch: list[Submission]) -> KnownFigures | None:
        names = [
            name
            for s in batch
            if isinstance(s.command, RecordTaskResult)
            for name in (*s.command.task.figure_path, *s.command.task.json_figure_path)
        ]
        if not names or self.figures is None:
            return None
        return KnownFigures(await self.figures.present(names))

    async def drain(self, timeout: float = 10.0) -> None:
        """Let submitted commands finish (and get their replies) before shutdown."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            log.warning("shutting down with %d commands still queued", self.queue.qsize())


def parse_command(
    subject: str, body: bytes, headers: Mapping[str, str], tokens: TokenService
) -> Submission | Rejected:
    """Subject + JSON body + headers -> a Submission, or the reason it is refused."""
    try:
        credential = read_credential(headers, tokens)
    except (MissingCredential, InvalidToken) as err:
        return Rejected(kind=Kind.UNAUTHENTICATED, code="unauthenticated", message=str(err))
    name = subject.removeprefix(CMD_PREFIX)
    model = COMMANDS.get(name)
    if model is None:
        known = ", ".join(sorted(COMMANDS))
        return Rejected(
            kind=Kind.MALFORMED,
            code="unknown_command",
            message=f"no command '{name}'; known: {known}",
        )
    if len(body) > MAX_COMMAND_BYTES:
        return Rejected(
            kind=Kind.TOO_LARGE,
            code="command_too_large",
            message=f"{len(body)} bytes; a command may have at most {MAX_COMMAND_BYTES}",
        )
    try:
        check_json(body)
    except BodyRefused as err:
        return Rejected.of(err)
    try:
        command: Command = model.model_validate_json(body)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:10]
        )
        return Rejected(
            kind=Kind.INVALID, code="invalid_command", message=f"{model.__name__}: {problems}"
        )
    project = headers.get("X-Project-Id") or None
    if project is not None and not PROJECT_RE.match(project):
        return Rejected(
            kind=Kind.MALFORMED,
            code="invalid_project",
            message="X-Project-Id must match [A-Za-z0-9_-]{1,64}",
        )
    key = headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        return Rejected(
            kind=Kind.MALFORMED,
            code="invalid_idempotency_key",
            message="Idempotency-Key must be 1-200 characters",
        )
    # A command sent with an Idempotency-Key gets a command id derived from it, so every
    # event it caused (causation_id) traces back to the client's key, across retries.
    command_id = uuid.uuid5(uuid.NAMESPACE_URL, f"qledger:{project}:{key}") if key else uuid.uuid4()
    ctx = CommandContext(
        project_id=project or "",  # both set by the authorisation, from the credential
        actor="",
        command_id=command_id,
        correlation_id=headers.get("X-Correlation-Id") or str(command_id),
        received_at=datetime.now(UTC),
    )
    return Submission(
        command=command, ctx=ctx, credential=credential, project=project, idempotency_key=key
    )


async def _whole_message(msg: NatsMessage, original=None) -> NatsMessage:
    """Decoder: hand the handler the message itself (subject and headers matter here)."""
    return msg


async def prepared(submission: Submission, checker: CircuitChecker | None) -> Rejected | None:
    """Work a command needs before it joins a batch, outside the writer: a job's
    circuits are sized in the checker's child process."""
    if checker is None or not isinstance(submission.command, SubmitJob):
        return None
    try:
        await checker.prepare(submission.command)
    except DomainError as err:
        return Rejected.of(err)
    return None


def command_broker(
    nats_url: str,
    writer: CommandWriter,
    tokens: TokenService,
    checker: CircuitChecker | None = None,
) -> NatsBroker:
    # apply_types=False: the handler validates the body itself (pydantic, per subject), so
    # FastStream's per-message dependency injection (a thread hop each time) is skipped.
    broker = NatsBroker(nats_url, log_level=logging.DEBUG, apply_types=False)

    # A queue group: several command nodes share the load; the store's optimistic
    # concurrency keeps them consistent.
    @broker.subscriber(
        CMD_PREFIX + ">", queue="qledger-commands", max_workers=1024, decoder=_whole_message
    )
    async def on_command(msg: NatsMessage) -> bytes:
        parsed = parse_command(msg.raw_message.subject, msg.body, msg.headers or {}, tokens)
        if isinstance(parsed, Rejected):
            reply: Reply = parsed
        else:
            reply = await prepared(parsed, checker) or await writer.submit(parsed)
        return reply.model_dump_json().encode()

    return broker
