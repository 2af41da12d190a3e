"""Authentication and project access for HTTP routes.

The query side decides from the identity read model (an in-memory directory reloaded
whenever identity events are projected); commands sent on a caller's behalf carry the
caller's own credential and are authorised again by the command side, from the write
model. A route declares what it needs with a typed dependency:

    project: ProjectId           member of the project (viewer), or a key with scope read
    project: WritableProject     editor, or a key with scope calibration:write
    ctx: OwnerCtx                project owner (or admin), people only
    user: CurrentUser / AdminUser
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from adapters.commandbus import PROJECT_RE
from adapters.credentials import MissingCredential, read_credential
from adapters.http.errors import ApiError
from adapters.readstore import ReadStore
from adapters.security.passwords import Passwords
from adapters.security.throttle import LoginThrottle
from adapters.security.tokens import InvalidToken, TokenService
from domain.access import (
    Principal,
    authenticate,
    project_role,
    require_admin,
    require_user,
)
from domain.errors import DomainError, Kind
from projections.identity import Directory, load_directory


class Auth:
    """What the HTTP side needs to authenticate: token keys, hashes, the directory."""

    def __init__(self, tokens: TokenService, passwords: Passwords, read: ReadStore) -> None:
        self.tokens = tokens
        self.passwords = passwords
        self.read = read
        self.throttle = LoginThrottle()
        self._directory: Directory | None = None
        self._generation = -1
        self._reload = asyncio.Lock()

    async def directory(self) -> Directory:
        """Accounts, projects and keys as of the last projected identity event."""
        generation = self.read.generation("identity")
        if self._directory is None or generation != self._generation:
            async with self._reload:
                generation = self.read.generation("identity")
                if self._directory is None or generation != self._generation:
                    self._directory = await run_in_threadpool(load_directory, self.read)
                    self._generation = generation
        return self._directory

    def forget(self) -> None:
        self._directory = None


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


def refuse(err: DomainError) -> ApiError:
    return ApiError.of(err)


def unauthenticated(message: str) -> ApiError:
    return ApiError(Kind.UNAUTHENTICATED, "unauthenticated", message)


# Declared for the OpenAPI document (Swagger's Authorize button, generated clients,
# schemathesis): either scheme signs a request in. The credential itself is read below,
# the same way the bus reads it.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an access token from POST /api/auth/login or /api/v1/auth/login",
)
_API_KEY = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="a project API key from POST /api/api-keys (qlk_…)",
)


async def current_principal(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    _api_key: Annotated[str | None, Security(_API_KEY)] = None,
) -> Principal:
    auth = auth_of(request)
    try:
        credential = read_credential(request.headers, auth.tokens)
    except (MissingCredential, InvalidToken) as err:
        raise unauthenticated(str(err)) from None
    directory = await auth.directory()
    key = directory.keys.get(credential.key_id) if credential.kind == "api_key" else None
    username = key.owner_username if key is not None else credential.username
    try:
        return authenticate(
            credential, user=directory.users.get(username), key=key, now=datetime.now(UTC)
        )
    except DomainError as err:
        raise refuse(err) from None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _person(principal: CurrentPrincipal) -> Principal:
    try:
        require_user(principal)
    except DomainError as err:
        raise refuse(err) from None
    return principal


def _admin(principal: CurrentPrincipal) -> Principal:
    try:
        require_admin(principal)
    except DomainError as err:
        raise refuse(err) from None
    return principal


CurrentUser = Annotated[Principal, Depends(_person)]
AdminUser = Annotated[Principal, Depends(_admin)]


@dataclass(frozen=True)
class ProjectContext:
    principal: Principal
    project_id: str
    role: str


async def _resolve(
    request: Request, principal: Principal, project_id: str | None, need: str, scope: str | None
) -> ProjectContext:
    project_id = project_id or principal.default_project_id
    if project_id is None:
        raise ApiError(
            Kind.MALFORMED, "no_project", "send X-Project-Id: the account has no default"
        )
    if not PROJECT_RE.match(project_id):
        raise ApiError(
            Kind.MALFORMED, "invalid_project", "X-Project-Id must match [A-Za-z0-9_-]{1,64}"
        )
    directory = await auth_of(request).directory()
    try:
        role = project_role(
            principal, project_id, directory.projects.get(project_id), need=need, scope=scope
        )
    except DomainError as err:
        raise refuse(err) from None
    return ProjectContext(principal=principal, project_id=project_id, role=role)


def project_access(need: str, scope: str | None, *, from_path: bool = False) -> Callable:
    """A dependency: the caller's project (X-Project-Id, or `{project_id}` in the path),
    if the caller holds at least the role `need` there (an API key: `scope`)."""

    if from_path:

        async def from_path_param(request: Request, principal: CurrentPrincipal):
            return await _resolve(
                request, principal, request.path_params["project_id"], need, scope
            )

        return from_path_param

    async def from_header(
        request: Request,
        principal: CurrentPrincipal,
        x_project_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> ProjectContext:
        return await _resolve(request, principal, x_project_id, need, scope)

    return from_header


ReaderCtx = Annotated[ProjectContext, Depends(project_access("viewer", "read"))]
EditorCtx = Annotated[ProjectContext, Depends(project_access("editor", "calibration:write"))]
TwinEditorCtx = Annotated[ProjectContext, Depends(project_access("editor", "twin:write"))]
# Managing a project (settings, members) is for people: keys never have these scopes.
PathReaderCtx = Annotated[ProjectContext, Depends(project_access("viewer", None, from_path=True))]
PathOwnerCtx = Annotated[ProjectContext, Depends(project_access("owner", None, from_path=True))]
MemberCtx = Annotated[ProjectContext, Depends(project_access("viewer", None))]


def _project_id(ctx: ReaderCtx) -> str:
    return ctx.project_id


def _writable_project_id(ctx: EditorCtx) -> str:
    return ctx.project_id


def _twin_project_id(ctx: TwinEditorCtx) -> str:
    return ctx.project_id


ProjectId = Annotated[str, Depends(_project_id)]
TwinProject = Annotated[str, Depends(_twin_project_id)]
WritableProject = Annotated[str, Depends(_writable_project_id)]


def credential_headers(request: Request) -> dict[str, str]:
    """The caller's own credential, forwarded with a command: the command side checks it
    again against the write model (a token revoked a moment ago is refused there)."""
    headers = {}
    for name in ("Authorization", "X-API-Key"):
        value = request.headers.get(name)
        if value:
            headers[name] = value
    return headers
