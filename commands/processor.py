"""Decide a batch of commands and save them in one store transaction (group commit).

Retries the whole batch on a version conflict (another writer got there first); if a
handler broke an aggregate before failing, or conflicts persist, falls back to deciding
each command alone so one bad command never costs the others their acceptance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from commands.authorization import Caller, authorize
from commands.handlers import HANDLERS
from commands.identity import MASK_SECRETS
from commands.models import Accepted, Command, Rejected, Reply
from commands.ports import (
    ConcurrencyConflict,
    EventStorePort,
    FigureIndexPort,
    PasswordHasherPort,
    QecPort,
    TwinPort,
)
from commands.unit_of_work import UnitOfWork
from domain.access import SYSTEM, Credential
from domain.errors import DomainError, Kind
from domain.events import CommandContext
from domain.idempotency import CommandRecord, command_key

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Submission:
    """A parsed command with its verified (signature-checked) credential. `ctx` gets its
    project and actor from the authorisation, inside the batch's unit of work."""

    command: Command
    ctx: CommandContext
    credential: Credential
    project: str | None = None  # X-Project-Id; None: the caller's default project
    idempotency_key: str | None = None

    @property
    def fingerprint(self) -> str:
        # Secrets are masked: this hash is stored, and a fast hash of a password must not be.
        body = self.command.model_dump_json(context=MASK_SECRETS)
        return hashlib.sha256((type(self.command).__name__ + body).encode()).hexdigest()


def system_submission(
    command: Command, correlation_id: str, project: str | None = None
) -> Submission:
    """A command qledger sends with its own identity: its runners, the first start, an
    operator's CLI. `project`: the project it acts in (None: outside projects)."""
    ctx = CommandContext(
        project_id="",
        actor="",
        command_id=uuid.uuid4(),
        correlation_id=correlation_id,
        received_at=datetime.now(UTC),
    )
    return Submission(command, ctx, credential=SYSTEM, project=project)


@dataclass
class _Outcome:
    reply: Reply | None = None
    event_ids: list[str] = field(default_factory=list)
    last_index: int = -1
    same_as: _Outcome | None = None
    event: dict | None = None  # the last event's payload, for REPLY_WITH_EVENT commands

    def resolve(self, positions: list[int]) -> Reply:
        if self.same_as is not None:
            return self.same_as.resolve(positions)
        if self.reply is not None:
            return self.reply
        return Accepted(
            event_ids=self.event_ids, position=positions[self.last_index], event=self.event
        )


class _Poisoned(Exception):
    """A command failed after changing an aggregate: the batch's state can't be trusted."""

    def __init__(self, reply: Rejected) -> None:
        self.reply = reply


def process_batch(
    batch: list[Submission],
    store: EventStorePort,
    passwords: PasswordHasherPort | None = None,
    figures: FigureIndexPort | None = None,
    twin: TwinPort | None = None,
    qec: QecPort | None = None,
) -> list[Reply]:
    # Aggregates a batch only reads (the caller's User, ApiKey, Project) are never checked
    # at commit: without this, another node's logout or key revocation would go unseen.
    store.refresh_cache()
    for attempt in range(MAX_ATTEMPTS):
        uow = UnitOfWork(store, passwords, figures, twin, qec)
        try:
            # First attempt: look up idempotency keys only for rejected commands. A repeated
            # command that would be accepted again stages its CommandRecord at version 1,
            # which the store refuses; the retry then looks every key up.
            outcomes = _decide_all(batch, uow, check_keys=attempt > 0)
            positions = uow.commit()
        except ConcurrencyConflict:
            uow.discard()
            continue
        except _Poisoned as poisoned:
            uow.discard()
            if len(batch) == 1:
                return [poisoned.reply]
            return [
                reply
                for sub in batch
                for reply in process_batch([sub], store, passwords, figures, twin, qec)
            ]
        except BaseException:
            uow.discard()
            raise
        return [o.resolve(positions) for o in outcomes]
    if len(batch) > 1:
        return [
            reply
            for sub in batch
            for reply in process_batch([sub], store, passwords, figures, twin, qec)
        ]
    return [
        Rejected(
            kind=Kind.CONFLICT,
            code="concurrency_conflict",
            message=f"gave up after {MAX_ATTEMPTS} version conflicts with other writers; retry",
        )
    ]


def _decide_all(batch: list[Submission], uow: UnitOfWork, *, check_keys: bool) -> list[_Outcome]:
    seen_keys: dict[object, tuple[Submission, _Outcome]] = {}
    outcomes = []
    for sub in batch:
        try:
            # Authorised before anything else, the idempotency replay included: a replayed
            # reply is still an answer about the project.
            caller, ctx = authorize(sub.command, sub.credential, sub.project, sub.ctx, uow)
        except DomainError as err:
            outcomes.append(_Outcome(reply=Rejected.of(err)))
            continue
        sub = dataclasses.replace(sub, ctx=ctx)
        # Keys are the caller's own, per project: the same key from another user is
        # another command. Compared after authorisation, on the project it resolved to.
        key = _record_key(sub)
        if key is not None and key in seen_keys:
            first, outcome = seen_keys[key]
            if (type(first.command), first.fingerprint) != (type(sub.command), sub.fingerprint):
                outcomes.append(_Outcome(reply=_key_reused()))
            else:
                outcomes.append(_Outcome(same_as=outcome))
            continue
        outcome = _decide(sub, caller, uow, check_keys=check_keys)
        if key is not None:
            seen_keys[key] = (sub, outcome)
        outcomes.append(outcome)
    return outcomes


def _record_key(sub: Submission):
    if sub.idempotency_key is None:
        return None
    return command_key(sub.ctx.project_id, sub.ctx.actor, sub.idempotency_key)


def _key_reused() -> Rejected:
    return Rejected(
        kind=Kind.CONFLICT,
        code="idempotency_key_reused",
        message="this Idempotency-Key was already used for a different command",
    )


def _replay(sub: Submission, uow: UnitOfWork) -> _Outcome | None:
    """The first reply to this command, if its idempotency key was accepted before."""
    key = _record_key(sub)
    if key is None:
        return None
    record = uow.get(CommandRecord, key)
    if record is None:
        return None
    record.check_same_command(type(sub.command).__name__, sub.fingerprint)
    position = uow.store.position_of(record.id, record.version)
    if position is None:
        # Staged in this batch, not yet stored (cannot happen while batches dedupe keys
        # as above): retrying the batch, then each command alone, resolves it.
        raise ConcurrencyConflict(f"idempotency record {record.id} is not stored yet")
    return _Outcome(reply=Accepted(event_ids=list(record.event_ids), position=position))


def _decide(sub: Submission, caller: Caller, uow: UnitOfWork, *, check_keys: bool) -> _Outcome:
    before = uow.mark()
    try:
        if check_keys and (replayed := _replay(sub, uow)) is not None:
            return replayed
        events = HANDLERS[type(sub.command)](sub.command, sub.ctx, uow, caller)
        if not events:
            # The reply's position is its last event's; a command that changed nothing
            # would borrow another command's. No handler does this: refuse if one ever does.
            raise RuntimeError(f"{type(sub.command).__name__} was accepted without events")
        if sub.idempotency_key is not None:
            # Staged last: its position is the command's position on replay.
            record = CommandRecord.accept(
                sub.ctx,
                idempotency_key=sub.idempotency_key,
                command_type=type(sub.command).__name__,
                fingerprint=sub.fingerprint,
                event_ids=tuple(str(e.event_id) for e in events),
            )
            uow.stage(record)
        return _Outcome(
            event_ids=[str(e.event_id) for e in events],
            last_index=len(uow.staged) - 1,
            # A measured QEC round's syndrome goes back in the reply that recorded it.
            # (A replay by Idempotency-Key answers without it: read it back instead.)
            event=(
                {
                    "type": events[-1].TYPE,
                    "project_id": events[-1].project_id,
                    **events[-1].payload(),
                }  # fmt: skip
                if getattr(type(sub.command), "REPLY_WITH_EVENT", False)
                else None
            ),
        )
    except DomainError as err:
        if uow.mark() != before:
            raise _Poisoned(Rejected.of(err)) from err
        if not check_keys:
            # A repeat of an accepted command is usually refused by the aggregate
            # (duplicate task, chip exists…): answer with the first reply instead.
            try:
                replayed = _replay(sub, uow)
            except DomainError as key_err:
                return _Outcome(reply=Rejected.of(key_err))
            if replayed is not None:
                return replayed
        return _Outcome(reply=Rejected.of(err))
    except ConcurrencyConflict:
        raise
    except Exception as err:
        log.exception("handler crashed on %s", type(sub.command).__name__)
        raise _Poisoned(
            Rejected(
                kind=Kind.INTERNAL,
                code="internal_error",
                message="the command could not be decided (server error)",
            )
        ) from err
