"""Refresh-token families: rotation with reuse detection.

A family is the chain of refresh tokens that began at one sign-in. Exchanging a refresh
token spends it, and the token issued in its place becomes the family's current one.
A spent token presented again means two parties hold the family (a stolen token, or a
client replaying an old one): the family is revoked, and from then on none of its tokens
is accepted. The legitimate holder signs in again; the thief's tokens are dead too.

Tokens themselves are not stored: an aggregate per (user, family) remembers which token
ids were spent, and by which exchange. An exchange is named by the id of the token it
issues (`next_jti`, fresh per request), so a retry of the same exchange is recognised as
such and is not mistaken for reuse.

The events are `auth.*`, not `identity.*`: identity events make up the directory every
query node reloads when one is projected, and refreshes are frequent and no part of it.

Access tokens already issued from a revoked family stay valid until they expire (30
minutes by default): revoking them would need every query node to consult the families
on every request. A logout or a password change still revokes them at once (the epoch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from domain.access import IDENTITY_PROJECT, Unauthenticated
from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput
from domain.events import CommandContext, DomainEvent, register, stable_id


class RefreshTokenReused(Unauthenticated):
    """A spent refresh token was presented again; its family is (now) revoked."""

    code = "refresh_token_reused"


class RefreshTokenRevoked(Unauthenticated):
    """A token of a family that was revoked earlier."""

    code = "refresh_token_revoked"


class AlreadyRotated(Conflict):
    """This very exchange was accepted before: its token is the family's."""

    code = "refresh_already_rotated"


REUSE_MESSAGE = "this refresh token was already used; its sign-in is revoked: sign in again"
REVOKED_MESSAGE = "this refresh token's sign-in was revoked: sign in again"


@register
@dataclass(frozen=True, kw_only=True)
class RefreshTokenRotated(DomainEvent):
    """Token `jti` was spent; `next_jti` is the family's current token."""

    TYPE = "auth.RefreshTokenRotated"
    username: str
    family: str
    jti: str
    next_jti: str


@register
@dataclass(frozen=True, kw_only=True)
class RefreshFamilyRevoked(DomainEvent):
    """No token of the family is accepted any more. `jti` is the token that was presented
    again, `next_jti` the exchange that presented it."""

    TYPE = "auth.RefreshFamilyRevoked"
    username: str
    family: str
    jti: str
    next_jti: str
    reason: str


def refresh_family_key(username: str, family: str):
    # The owner is part of the key: a user's commands can only ever reach their own
    # families, whatever family id they send.
    return stable_id("refresh-family", username, family)


class RefreshFamily(Aggregate):
    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.username = ""
        self.family = ""
        self.current: str | None = None  # the one token of the family still unspent
        self.spent: dict[str, str] = {}  # spent token id -> the exchange that spent it
        self.revoked = False
        self.revoked_by: str | None = None  # the exchange that revealed the reuse

    @classmethod
    def exchange(
        cls,
        ctx: CommandContext,
        *,
        existing: RefreshFamily | None,
        username: str,
        family: str,
        jti: str,
        next_jti: str,
    ) -> RefreshFamily:
        """Spend `jti` for `next_jti`, or revoke the family if `jti` was spent before.

        Either way the returned aggregate has one pending event; a refusal (the family is
        revoked, or this exchange was already accepted) triggers none."""
        if jti == next_jti:
            raise InvalidInput("a refresh token can't replace itself")
        ctx = dataclasses.replace(ctx, project_id=IDENTITY_PROJECT)
        if existing is None:
            # The first exchange of a family: its first token (issued at sign-in, which
            # records nothing) is the one presented.
            created = cls(refresh_family_key(username, family))
            created._trigger(
                RefreshTokenRotated,
                ctx,
                username=username,
                family=family,
                jti=jti,
                next_jti=next_jti,
            )
            return created
        existing.check_not_revoked(next_jti)
        if existing.spent.get(jti) == next_jti:
            raise AlreadyRotated("this refresh exchange was already made")
        if jti != existing.current:
            # Spent (or never the family's current token, which a genuine token can only
            # be if it was spent): someone else holds this family's tokens.
            existing._trigger(
                RefreshFamilyRevoked,
                ctx,
                username=username,
                family=family,
                jti=jti,
                next_jti=next_jti,
                reason="reuse",
            )
            return existing
        if next_jti in existing.spent or next_jti in existing.spent.values():
            # Fresh per request: a used one is a client inventing ids, not a retry.
            raise InvalidInput("this exchange id was used before")
        existing._trigger(
            RefreshTokenRotated,
            ctx,
            username=username,
            family=family,
            jti=jti,
            next_jti=next_jti,
        )
        return existing

    def check_not_revoked(self, next_jti: str) -> None:
        if not self.revoked:
            return
        if self.revoked_by == next_jti:
            # A retry of the exchange that revealed the reuse gets that exchange's answer.
            raise RefreshTokenReused(REUSE_MESSAGE)
        raise RefreshTokenRevoked(REVOKED_MESSAGE)

    def _on_RefreshTokenRotated(self, e: RefreshTokenRotated) -> None:
        self.username = e.username
        self.family = e.family
        self.spent[e.jti] = e.next_jti
        self.current = e.next_jti

    def _on_RefreshFamilyRevoked(self, e: RefreshFamilyRevoked) -> None:
        self.revoked = True
        self.revoked_by = e.next_jti
        self.current = None
