"""Who may do what: one rule, used by the command side (with aggregates) and the query
side (with read-model rows), so a bus command is authorised exactly like an HTTP request.

Credentials are verified by adapters (token signature and expiry, key format); what is
decided here is whether the verified principal is still allowed: the account is active,
the token was issued after the last logout or password change, the API key is live, and
the principal's role in the project is high enough.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from domain.errors import DomainError, Kind, NotFound

ROLES = ("viewer", "editor", "owner")  # project roles, weakest first
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
SYSTEM_ROLES = ("user", "admin")
# API key scopes, and the project role each one needs from the key's creator.
SCOPES = {"read": "viewer", "calibration:write": "editor", "twin:write": "editor"}
# Events of user accounts and the admin roster belong to no project; this pseudo-project
# can't collide with a real one (project ids are generated hex strings or "default").
IDENTITY_PROJECT = "_identity"
DEFAULT_PROJECT = "default"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    kind = Kind.UNAUTHENTICATED


class Forbidden(DomainError):
    code = "forbidden"
    kind = Kind.FORBIDDEN


@dataclass(frozen=True)
class Credential:
    """A credential whose signature/format an adapter has already checked."""

    kind: Literal["token", "api_key", "system"]
    username: str = ""
    token_epoch: int = 0
    key_id: str = ""
    key_secret_sha256: str = ""


SYSTEM = Credential(kind="system", username="system")


class UserView(Protocol):
    username: str
    disabled: bool
    deleted: bool
    token_epoch: int
    system_role: str
    default_project_id: str | None


class ApiKeyView(Protocol):
    key_id: str
    project_id: str
    owner_username: str
    scopes: tuple[str, ...]
    secret_sha256: str
    revoked: bool
    expires_at: datetime | None


class ProjectView(Protocol):
    deleted: bool

    def role_of(self, username: str) -> str | None: ...


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, or an API key acting for its creator."""

    username: str
    is_admin: bool
    default_project_id: str | None
    key_id: str | None = None
    key_project: str | None = None
    key_scopes: frozenset[str] = frozenset()
    is_system: bool = False

    @property
    def actor(self) -> str:
        """Recorded on every event the principal causes."""
        return f"apikey:{self.key_id}" if self.key_id else self.username


SYSTEM_PRINCIPAL = Principal(
    username="system", is_admin=True, default_project_id=DEFAULT_PROJECT, is_system=True
)

_REFUSED = "invalid or expired credentials"


def authenticate(
    credential: Credential,
    *,
    user: UserView | None,
    key: ApiKeyView | None = None,
    now: datetime,
) -> Principal:
    """The principal behind a verified credential, if the account still allows it.

    `user` is the token's user or the key's creator. Every refusal has the same message:
    a caller learns nothing about which part failed."""
    if credential.kind == "system":
        return SYSTEM_PRINCIPAL
    if user is None or user.deleted or user.disabled:
        raise Unauthenticated(_REFUSED)
    if credential.kind == "token":
        if credential.token_epoch != user.token_epoch:
            raise Unauthenticated(_REFUSED)  # logged out or password changed since
        return Principal(
            username=user.username,
            is_admin=user.system_role == "admin",
            default_project_id=user.default_project_id,
        )
    if (
        key is None
        or key.revoked
        or key.owner_username != user.username
        or (key.expires_at is not None and key.expires_at <= now)
        or not hmac.compare_digest(key.secret_sha256, credential.key_secret_sha256)
    ):
        raise Unauthenticated(_REFUSED)
    return Principal(
        username=user.username,
        is_admin=False,  # a key never carries its creator's admin rights
        default_project_id=key.project_id,
        key_id=key.key_id,
        key_project=key.project_id,
        key_scopes=frozenset(key.scopes),
    )


def project_role(
    principal: Principal,
    project_id: str,
    project: ProjectView | None,
    *,
    need: str,
    scope: str | None,
) -> str:
    """The principal's role in the project, if it is at least `need`; else refuse.

    A project the principal is not a member of is reported as not found, so ids of other
    teams' projects can't be probed. `scope` is what an API key must carry for this
    action (None: keys may not do it at all)."""
    if principal.is_system:
        return "owner"  # qledger itself (first start, internal jobs); never from a client
    if principal.key_id is not None:
        if scope is None:
            raise Forbidden("API keys may not do this; sign in as a user")
        if project_id != principal.key_project:
            raise Forbidden(f"this API key belongs to project '{principal.key_project}'")
        if scope not in principal.key_scopes:
            raise Forbidden(f"this API key lacks the scope '{scope}'")
    if project is None or project.deleted:
        raise NotFound(f"project '{project_id}' not found", code="project_not_found")
    role = "owner" if principal.is_admin else project.role_of(principal.username)
    if role is None:
        raise NotFound(f"project '{project_id}' not found", code="project_not_found")
    if ROLE_RANK[role] < ROLE_RANK[need]:
        raise Forbidden(f"your role in project '{project_id}' is {role}; this needs {need}")
    return role


def require_user(principal: Principal) -> None:
    """Account and project management is for people, not API keys."""
    if principal.key_id is not None:
        raise Forbidden("API keys may not do this; sign in as a user")


def require_admin(principal: Principal) -> None:
    require_user(principal)
    if not principal.is_admin:
        raise Forbidden("only a system admin may do this")
