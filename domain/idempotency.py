"""CommandRecord: remembers an accepted command by its idempotency key.

Saved in the same store transaction as the command's own events, so a key is either
recorded together with everything the command changed, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Conflict
from domain.events import CommandContext, DomainEvent, register, stable_id


@register
@dataclass(frozen=True, kw_only=True)
class CommandAccepted(DomainEvent):
    """A command sent with an idempotency key was accepted and produced these events."""

    TYPE = "ledger.CommandAccepted"
    idempotency_key: str
    command_type: str
    fingerprint: str  # hash of the command body: the same key with another body is refused
    event_ids: tuple[str, ...]


def command_key(project_id: str, actor: str, idempotency_key: str):
    """Keys belong to their sender: the same key from two callers names two commands."""
    return stable_id("command", project_id, actor, idempotency_key)


class CommandRecord(Aggregate):
    command_type: str
    fingerprint: str
    event_ids: tuple[str, ...]

    @classmethod
    def accept(
        cls,
        ctx: CommandContext,
        *,
        idempotency_key: str,
        command_type: str,
        fingerprint: str,
        event_ids: tuple[str, ...],
    ) -> CommandRecord:
        record = cls(command_key(ctx.project_id, ctx.actor, idempotency_key))
        record._trigger(
            CommandAccepted,
            ctx,
            idempotency_key=idempotency_key,
            command_type=command_type,
            fingerprint=fingerprint,
            event_ids=event_ids,
        )
        return record

    def _on_CommandAccepted(self, e: CommandAccepted) -> None:
        self.command_type = e.command_type
        self.fingerprint = e.fingerprint
        self.event_ids = e.event_ids

    def check_same_command(self, command_type: str, fingerprint: str) -> None:
        if (command_type, fingerprint) != (self.command_type, self.fingerprint):
            raise Conflict(
                "this Idempotency-Key was already used for a different command",
                code="idempotency_key_reused",
            )
