"""User accounts, the admin roster and API keys.

Passwords and key secrets never enter an event: a user carries only an argon2 hash of the
password, a key only the SHA-256 of its (random, 256-bit) secret. Tokens are not stored;
each carries the user's `token_epoch`, which logout, password changes and disabling bump,
so every older token stops working at once - and stays stopped after a restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from domain.access import IDENTITY_PROJECT, SCOPES, SYSTEM_ROLES
from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import CommandContext, DomainEvent, register, stable_id


def _in(project_id: str, ctx: CommandContext) -> CommandContext:
    return dataclasses.replace(ctx, project_id=project_id)


@register
@dataclass(frozen=True, kw_only=True)
class UserRegistered(DomainEvent):
    TYPE = "identity.UserRegistered"
    username: str
    full_name: str
    password_hash: str
    system_role: str
    default_project_id: str | None


@register
@dataclass(frozen=True, kw_only=True)
class UserUpdated(DomainEvent):
    """The account's settings after the change (all of them)."""

    TYPE = "identity.UserUpdated"
    full_name: str
    disabled: bool
    system_role: str


@register
@dataclass(frozen=True, kw_only=True)
class PasswordChanged(DomainEvent):
    TYPE = "identity.PasswordChanged"
    password_hash: str
    reset_by_admin: bool


@register
@dataclass(frozen=True, kw_only=True)
class TokensRevoked(DomainEvent):
    """Every token issued before this is void (logout)."""

    TYPE = "identity.TokensRevoked"
    reason: str


@register
@dataclass(frozen=True, kw_only=True)
class DefaultProjectAssigned(DomainEvent):
    TYPE = "identity.DefaultProjectAssigned"
    default_project_id: str | None


@register
@dataclass(frozen=True, kw_only=True)
class UserDeleted(DomainEvent):
    TYPE = "identity.UserDeleted"


def user_key(username: str):
    return stable_id("user", username)


def default_project_of(username: str) -> str:
    """The id of the project created with an account (usernames are never reused). The
    "-" keeps it out of the ids CreateProject accepts, so nobody can take it first."""
    return "home-" + stable_id("default-project", username).hex[:12]


# Names that would read as qledger itself in the `actor` of events.
RESERVED_USERNAMES = frozenset({"system", "qledger", "root"})


class User(Aggregate):
    username: str
    full_name: str
    password_hash: str
    system_role: str
    default_project_id: str | None
    disabled = False
    deleted = False
    token_epoch = 0

    @classmethod
    def register(
        cls,
        ctx: CommandContext,
        *,
        username: str,
        full_name: str,
        password_hash: str,
        system_role: str,
        default_project_id: str | None,
        existing: User | None,
    ) -> User:
        if existing is not None:
            why = " by a deleted account" if existing.deleted else ""
            raise Conflict(f"username '{username}' is already taken{why}", code="username_taken")
        if username in RESERVED_USERNAMES:
            raise InvalidInput(f"'{username}' is reserved", code="username_reserved")
        if system_role not in SYSTEM_ROLES:
            raise InvalidInput(f"system_role must be one of {SYSTEM_ROLES}", code="invalid_role")
        user = cls(user_key(username))
        user._trigger(
            UserRegistered,
            _in(IDENTITY_PROJECT, ctx),
            username=username,
            full_name=full_name,
            password_hash=password_hash,
            system_role=system_role,
            default_project_id=default_project_id,
        )
        return user

    def update(
        self, ctx: CommandContext, *, full_name: str, disabled: bool, system_role: str
    ) -> None:
        if system_role not in SYSTEM_ROLES:
            raise InvalidInput(f"system_role must be one of {SYSTEM_ROLES}", code="invalid_role")
        self._trigger(
            UserUpdated,
            _in(IDENTITY_PROJECT, ctx),
            full_name=full_name,
            disabled=disabled,
            system_role=system_role,
        )

    def set_password(self, ctx: CommandContext, *, password_hash: str, by_admin: bool) -> None:
        self._trigger(
            PasswordChanged,
            _in(IDENTITY_PROJECT, ctx),
            password_hash=password_hash,
            reset_by_admin=by_admin,
        )

    def revoke_tokens(self, ctx: CommandContext, *, reason: str) -> None:
        self._trigger(TokensRevoked, _in(IDENTITY_PROJECT, ctx), reason=reason)

    def assign_default_project(self, ctx: CommandContext, project_id: str | None) -> None:
        self._trigger(
            DefaultProjectAssigned, _in(IDENTITY_PROJECT, ctx), default_project_id=project_id
        )

    def delete(self, ctx: CommandContext) -> None:
        self._trigger(UserDeleted, _in(IDENTITY_PROJECT, ctx))

    def _on_UserRegistered(self, e: UserRegistered) -> None:
        self.username = e.username
        self.full_name = e.full_name
        self.password_hash = e.password_hash
        self.system_role = e.system_role
        self.default_project_id = e.default_project_id

    def _on_UserUpdated(self, e: UserUpdated) -> None:
        if e.disabled and not self.disabled:
            self.token_epoch += 1
        self.full_name = e.full_name
        self.disabled = e.disabled
        self.system_role = e.system_role

    def _on_PasswordChanged(self, e: PasswordChanged) -> None:
        self.password_hash = e.password_hash
        self.token_epoch += 1

    def _on_TokensRevoked(self, e: TokensRevoked) -> None:
        self.token_epoch += 1

    def _on_DefaultProjectAssigned(self, e: DefaultProjectAssigned) -> None:
        self.default_project_id = e.default_project_id

    def _on_UserDeleted(self, e: UserDeleted) -> None:
        self.deleted = True
        self.token_epoch += 1


def require_user_exists(user: User | None, username: str) -> User:
    if user is None or user.deleted:
        raise NotFound(f"user '{username}' not found", code="user_not_found")
    return user


# --- The admin roster: one aggregate, so "never remove the last admin" is a checked rule.


@register
@dataclass(frozen=True, kw_only=True)
class AdminGranted(DomainEvent):
    TYPE = "identity.AdminGranted"
    username: str


@register
@dataclass(frozen=True, kw_only=True)
class AdminRevoked(DomainEvent):
    TYPE = "identity.AdminRevoked"
    username: str


ROSTER_KEY = stable_id("admin-roster")


class AdminRoster(Aggregate):
    def __init__(self, aggregate_id=ROSTER_KEY) -> None:
        super().__init__(aggregate_id)
        self.admins: set[str] = set()

    def grant(self, ctx: CommandContext, username: str) -> None:
        if username not in self.admins:
            self._trigger(AdminGranted, _in(IDENTITY_PROJECT, ctx), username=username)

    def revoke(self, ctx: CommandContext, username: str) -> None:
        if username not in self.admins:
            return
        if self.admins == {username}:
            raise Conflict(
                f"'{username}' is the last active admin; make another user admin first",
                code="last_admin",
            )
        self._trigger(AdminRevoked, _in(IDENTITY_PROJECT, ctx), username=username)

    def _on_AdminGranted(self, e: AdminGranted) -> None:
        self.admins.add(e.username)

    def _on_AdminRevoked(self, e: AdminRevoked) -> None:
        self.admins.discard(e.username)


# --- API keys: machine credentials of one project, acting for their creator.


@register
@dataclass(frozen=True, kw_only=True)
class ApiKeyCreated(DomainEvent):
    TYPE = "identity.ApiKeyCreated"
    key_id: str
    name: str
    owner_username: str
    scopes: tuple[str, ...]
    secret_sha256: str
    expires_at: datetime | None


@register
@dataclass(frozen=True, kw_only=True)
class ApiKeyRevoked(DomainEvent):
    TYPE = "identity.ApiKeyRevoked"
    key_id: str


def api_key_key(key_id: str):
    return stable_id("api-key", key_id)


class ApiKey(Aggregate):
    key_id: str
    project_id: str
    name: str
    owner_username: str
    scopes: tuple[str, ...]
    secret_sha256: str
    expires_at: datetime | None
    revoked = False

    @classmethod
    def create(
        cls,
        ctx: CommandContext,
        *,
        key_id: str,
        name: str,
        scopes: tuple[str, ...],
        secret_sha256: str,
        expires_at: datetime | None,
        existing: ApiKey | None,
    ) -> ApiKey:
        if existing is not None:
            raise Conflict(f"API key '{key_id}' already exists", code="api_key_exists")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(
                f"unknown or no scopes {unknown}; known: {sorted(SCOPES)}", code="invalid_scope"
            )
        if expires_at is not None and expires_at <= ctx.received_at:
            raise InvalidInput("expires_at must be in the future", code="invalid_expiry")
        key = cls(api_key_key(key_id))
        key._trigger(
            ApiKeyCreated,
            ctx,
            key_id=key_id,
            name=name,
            owner_username=ctx.actor,
            scopes=tuple(sorted(set(scopes))),
            secret_sha256=secret_sha256,
            expires_at=expires_at,
        )
        return key

    def revoke(self, ctx: CommandContext) -> None:
        if self.revoked:
            raise Conflict(f"API key '{self.key_id}' is already revoked", code="api_key_revoked")
        self._trigger(ApiKeyRevoked, _in(self.project_id, ctx), key_id=self.key_id)

    def _on_ApiKeyCreated(self, e: ApiKeyCreated) -> None:
        self.key_id = e.key_id
        self.project_id = e.project_id
        self.name = e.name
        self.owner_username = e.owner_username
        self.scopes = e.scopes
        self.secret_sha256 = e.secret_sha256
        self.expires_at = e.expires_at

    def _on_ApiKeyRevoked(self, e: ApiKeyRevoked) -> None:
        self.revoked = True
