"""Exchanging a refresh token: the command and its handler.

A query node verifies the refresh token's signature, then asks the command side, over
the bus, to spend it: several query nodes (and restarts) must agree on which tokens are
spent, and only the event store is shared by all of them. The RefreshFamily aggregate
(domain/refresh.py) decides, and the reply carries its event (`REPLY_WITH_EVENT`):

- `auth.RefreshTokenRotated`: the node issues the new pair, whose refresh token has
  the id `next_jti` and the same family;
- `auth.RefreshFamilyRevoked`: the token had been spent; the node answers 401.

Retries: `next_jti` names the exchange, so the same exchange sent again is refused with
`refresh_already_rotated` (or `refresh_token_reused` if it was the one that revoked
the family), never mistaken for reuse. With an Idempotency-Key that refusal becomes the
first reply, as for every other command (commands/processor.py).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from commands.authorization import Caller
from commands.models import Command
from commands.unit_of_work import UnitOfWork
from domain.events import CommandContext
from domain.refresh import RefreshFamily, refresh_family_key

# adapters/security/tokens.py TOKEN_ID: the ids a token service makes.
TokenId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class RotateRefreshToken(Command):
    """Spend the caller's refresh token `jti` of `family`; `next_jti` is its successor's
    id, fresh for each exchange. Only for people (API keys hold no refresh tokens), and
    only for the caller's own families (the aggregate's id includes the username)."""

    SUBJECT = "identity.rotate_refresh_token"
    ACCESS: ClassVar[str] = "user"
    SCOPE: ClassVar[str | None] = None
    REPLY_WITH_EVENT: ClassVar[bool] = True  # rotated or revoked: the node must know which
    family: TokenId
    jti: TokenId
    next_jti: TokenId


def handle_rotate_refresh_token(
    cmd: RotateRefreshToken, ctx: CommandContext, uow: UnitOfWork, _: Caller
):
    family = RefreshFamily.exchange(
        ctx,
        existing=uow.get(RefreshFamily, refresh_family_key(ctx.actor, cmd.family)),
        username=ctx.actor,
        family=cmd.family,
        jti=cmd.jti,
        next_jti=cmd.next_jti,
    )
    return uow.stage(family)


REFRESH_HANDLERS = {RotateRefreshToken: handle_rotate_refresh_token}
