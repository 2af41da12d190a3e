"""The `auth` group of the calibration reference and the twin gateway's login/refresh.

Logins are answered by the query side (a password check needs no event); everything that
changes an account is a command on the bus, sent with the caller's own credential. So is
a refresh: spending a refresh token must be seen by every query node (commands/refresh.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import ReadModels, send_command
from adapters.http.errors import ApiError, not_found
from adapters.http.security import AdminUser, CurrentPrincipal, CurrentUser, auth_of
from adapters.security.tokens import InvalidToken, RefreshClaims, new_token_id
from commands.identity import (
    MAX_PASSWORD_LENGTH,
    ChangePassword,
    Logout,
    RegisterUser,
    ResetPassword,
)
from commands.models import Accepted
from commands.refresh import RotateRefreshToken
from domain.access import Unauthenticated, authenticate
from domain.errors import DomainError, Kind
from domain.refresh import REUSE_MESSAGE, RefreshFamilyRevoked, RefreshTokenRotated
from projections import identity as q

router = APIRouter(prefix="/api/auth", tags=["auth"])
gateway = APIRouter(prefix="/api/v1/auth", tags=["auth"])

WRONG = "incorrect username or password"


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    username: str
    default_project_id: str | None


class UserResponse(BaseModel):
    username: str
    full_name: str
    disabled: bool
    default_project_id: str | None
    system_role: str


class UserWithToken(UserResponse):
    access_token: str


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str
    full_name: str = ""


class PasswordChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[str, Field(max_length=MAX_PASSWORD_LENGTH)]
    new_password: str


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    new_password: str


class GatewayLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(max_length=MAX_PASSWORD_LENGTH)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, Field(max_length=4096)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


async def _check_password(request: Request, username: str, password: str) -> q.UserRow:
    """The account, if the password is right. Repeated failures per username and per
    client address are slowed down (429 with Retry-After); an unknown username costs the
    same hash check and gets the same answer as a wrong password."""
    auth = auth_of(request)
    username = username.strip().lower()
    client = request.client.host if request.client else "?"
    keys = (f"user:{username}", f"addr:{client}")
    wait = auth.throttle.retry_after(keys)
    if wait > 0:
        raise ApiError(
            Kind.THROTTLED,
            "too_many_attempts",
            f"too many failed logins; retry in {wait:.0f}s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    user = (await auth.directory()).users.get(username)
    known = user is not None and not user.deleted
    ok = await run_in_threadpool(
        auth.passwords.verify, user.password_hash if known and user else None, password
    )
    if not ok or user is None or not known:
        auth.throttle.failed(keys)
        raise ApiError(Kind.UNAUTHENTICATED, "unauthenticated", WRONG)
    # Only the account's counter: clearing the address's too would let an attacker reset
    # it by signing in to an account of their own between guesses.
    auth.throttle.succeeded(keys[:1])
    if user.disabled:
        raise ApiError(Kind.UNAUTHENTICATED, "account_disabled", "this account is disabled")
    return user


@router.post("/login", response_model=TokenResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
):
    user = await _check_password(request, username, password)
    token = auth_of(request).tokens.issue(user.username, user.token_epoch)
    return TokenResponse(
        access_token=token,
        token_type="bearer",
        username=user.username,
        default_project_id=user.default_project_id,
    )


@router.post("/register", response_model=UserWithToken)
async def register(body: RegisterRequest, request: Request, _: AdminUser, db: ReadModels):
    command = RegisterUser(username=body.username, password=body.password, full_name=body.full_name)  # type: ignore[arg-type]
    await send_command(request, command, None, request.headers.get("Idempotency-Key"), wait=True)
    user = await run_in_threadpool(q.get_user, db, command.username)
    if user is None:
        raise not_found(f"user '{command.username}'")
    token = auth_of(request).tokens.issue(command.username, 0)
    return UserWithToken(**_user_fields(user), access_token=token)


def _user_fields(user: dict) -> dict:
    return {k: user[k] for k in UserResponse.model_fields}


@router.get("/me", response_model=UserResponse)
async def me(principal: CurrentPrincipal, db: ReadModels):
    user = await run_in_threadpool(q.get_user, db, principal.username)
    if user is None:
        raise not_found(f"user '{principal.username}'")
    return _user_fields(user)


@router.post("/logout")
async def logout(request: Request, _: CurrentUser) -> dict[str, str]:
    """Signs the account out everywhere: every token issued so far stops working."""
    await send_command(request, Logout(), None, None, wait=True)
    return {"message": "Successfully logged out"}


@router.post("/change-password")
async def change_password(
    body: PasswordChangeRequest, request: Request, _: CurrentUser
) -> dict[str, str]:
    command = ChangePassword(current_password=body.current_password, new_password=body.new_password)  # type: ignore[arg-type]
    await send_command(request, command, None, None, wait=True)
    return {"message": "Password changed successfully; sign in again"}


@router.post("/reset-password")
async def reset_password(
    body: PasswordResetRequest, request: Request, _: AdminUser
) -> dict[str, str]:
    command = ResetPassword(username=body.username, new_password=body.new_password)  # type: ignore[arg-type]
    await send_command(request, command, None, None, wait=True)
    return {"message": f"Password for {command.username} reset successfully"}


# --- the twin gateway -----------------------------------------------------------------

# The bus takes access tokens only, and a refresh request carries none: the exchange is
# sent with one minted for the refresh token's owner (at the refresh token's epoch, so
# the command side re-checks it against the write model), living just long enough for
# one command (the gateway waits 30 s for a reply).
EXCHANGE_CREDENTIAL_TTL = timedelta(minutes=2)
# No reply or no store: the outcome is unknown, and sending the same exchange again is
# safe (the aggregate knows it by `next_jti`). One more attempt, then the client's error.
_RESEND = frozenset({"command_timeout", "bus_unavailable", "store_unavailable", "concurrency_conflict"})  # fmt: skip
EXCHANGE_ATTEMPTS = 2


def _pair(
    request: Request,
    user: q.UserRow,
    *,
    family: str | None = None,
    refresh_jti: str | None = None,
) -> TokenPair:
    """A sign-in's pair starts a refresh-token family (family=None); a refresh continues
    its family with the token id the command side recorded as the family's current one."""
    tokens = auth_of(request).tokens
    return TokenPair(
        access_token=tokens.issue(user.username, user.token_epoch),
        refresh_token=tokens.issue(
            user.username, user.token_epoch, kind="refresh", family=family, jti=refresh_jti
        ),
        token_type="Bearer",
        expires_in=int(tokens.access_ttl.total_seconds()),
    )


@gateway.post("/login", response_model=TokenPair)
async def gateway_login(body: GatewayLogin, request: Request):
    """The twin API's login: `email` is the qledger username (usernames may be e-mails)."""
    return _pair(request, await _check_password(request, body.email, body.password))


def _refused(code: str, message: str) -> ApiError:
    return ApiError(Kind.UNAUTHENTICATED, code, message)


@gateway.post("/refresh", response_model=TokenPair)
async def gateway_refresh(body: RefreshRequest, request: Request):
    """A new pair for a refresh token that is still valid (not expired, not issued
    before the last logout or password change, account active) and not spent: each
    refresh token works once. Presenting a spent one revokes its whole family (every
    refresh token descended from the same sign-in): 401 `refresh_token_reused`, then
    `refresh_token_revoked` for the family's other tokens. Access tokens already issued
    stay valid until they expire (domain/refresh.py says why)."""
    auth = auth_of(request)
    try:
        claims = auth.tokens.verify_refresh(body.refresh_token)
        user = (await auth.directory()).users.get(claims.credential.username)
        authenticate(claims.credential, user=user, now=datetime.now(UTC))
    except (InvalidToken, Unauthenticated, DomainError):
        raise _refused("unauthenticated", "invalid or expired refresh token") from None
    assert user is not None
    next_jti = new_token_id()  # the new refresh token's id; names this exchange on retries
    await _spend(request, claims, next_jti)
    return _pair(request, user, family=claims.family, refresh_jti=next_jti)


async def _spend(request: Request, claims: RefreshClaims, next_jti: str) -> None:
    """Returns once the command side has recorded `claims.jti` spent for `next_jti`;
    raises a 401 if the token was spent before or its family is revoked.

    No Idempotency-Key is sent: a replay by key answers without the event, which is the
    only way to tell a rotation from a revocation. Retries are recognised by `next_jti`
    instead (commands/refresh.py). A client's own Idempotency-Key is ignored for the same
    reason: a repeated refresh is exactly what must not be answered twice."""
    credential = claims.credential
    bearer = auth_of(request).tokens.issue(
        credential.username, credential.token_epoch, ttl=EXCHANGE_CREDENTIAL_TTL
    )
    as_owner = _with_bearer(request, bearer)
    command = RotateRefreshToken(family=claims.family, jti=claims.jti, next_jti=next_jti)
    reply: Accepted | None = None
    for attempt in range(1, EXCHANGE_ATTEMPTS + 1):
        try:
            reply = await send_command(as_owner, command, None, None)
            break
        except ApiError as err:
            detail = cast(dict[str, str], err.detail)
            code = detail["code"]
            if code in _RESEND and attempt < EXCHANGE_ATTEMPTS:
                continue
            if code == "refresh_already_rotated" and attempt > 1:
                return  # the earlier attempt was accepted; only its reply was lost
            if err.kind is Kind.UNAUTHENTICATED:  # unauthenticated, refresh_token_reused/_revoked
                raise _refused(code, detail["message"]) from None
            raise
    outcome = (reply.event or {}).get("type") if reply is not None else None
    if outcome == RefreshTokenRotated.TYPE:
        return
    if outcome == RefreshFamilyRevoked.TYPE:
        raise _refused("refresh_token_reused", REUSE_MESSAGE)
    # An Accepted without its event is a replay by Idempotency-Key, which is never sent.
    raise ApiError(
        Kind.INTERNAL, "internal_error", "the refresh was decided, but its outcome is unknown"
    )


def _with_bearer(request: Request, bearer: str) -> Request:
    """The request as send_command sees it, with `bearer` as its only credential (what
    the client sent, if anything, is not this exchange's credential)."""
    dropped = (b"authorization", b"x-api-key", b"idempotency-key")
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in dropped]
    headers.append((b"authorization", b"Bearer " + bearer.encode("ascii")))
    return Request({**request.scope, "headers": headers}, request.receive)
