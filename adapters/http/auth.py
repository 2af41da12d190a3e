"""The `auth` group of the calibration reference and the twin gateway's login/refresh.

Logins are answered by the query side (a password check needs no event); everything that
changes an account is a command on the bus, sent with the caller's own credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import ReadModels, not_found, send_command
from adapters.http.security import AdminUser, CurrentPrincipal, CurrentUser, auth_of
from adapters.security.tokens import InvalidToken
from commands.identity import (
    MAX_PASSWORD_LENGTH,
    ChangePassword,
    Logout,
    RegisterUser,
    ResetPassword,
)
from domain.access import Unauthenticated, authenticate
from domain.errors import DomainError
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
        raise HTTPException(
            429,
            {
                "code": "too_many_attempts",
                "message": f"too many failed logins; retry in {wait:.0f}s",
            },
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    user = (await auth.directory()).users.get(username)
    known = user is not None and not user.deleted
    ok = await run_in_threadpool(
        auth.passwords.verify, user.password_hash if known and user else None, password
    )
    if not ok or user is None or not known:
        auth.throttle.failed(keys)
        raise HTTPException(
            401,
            {"code": "unauthenticated", "message": WRONG},
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Only the account's counter: clearing the address's too would let an attacker reset
    # it by signing in to an account of their own between guesses.
    auth.throttle.succeeded(keys[:1])
    if user.disabled:
        raise HTTPException(
            401, {"code": "account_disabled", "message": "this account is disabled"}
        )
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


def _pair(request: Request, user: q.UserRow) -> TokenPair:
    tokens = auth_of(request).tokens
    return TokenPair(
        access_token=tokens.issue(user.username, user.token_epoch),
        refresh_token=tokens.issue(user.username, user.token_epoch, kind="refresh"),
        token_type="Bearer",
        expires_in=int(tokens.access_ttl.total_seconds()),
    )


@gateway.post("/login", response_model=TokenPair)
async def gateway_login(body: GatewayLogin, request: Request):
    """The twin API's login: `email` is the qledger username (usernames may be e-mails)."""
    return _pair(request, await _check_password(request, body.email, body.password))


@gateway.post("/refresh", response_model=TokenPair)
async def gateway_refresh(body: RefreshRequest, request: Request):
    """A new pair for a refresh token that is still valid (not expired, not issued
    before the last logout or password change, account active)."""
    auth = auth_of(request)
    try:
        credential = auth.tokens.verify(body.refresh_token, kind="refresh")
        user = (await auth.directory()).users.get(credential.username)
        authenticate(credential, user=user, now=datetime.now(UTC))
    except (InvalidToken, Unauthenticated, DomainError):
        raise HTTPException(
            401, {"code": "unauthenticated", "message": "invalid or expired refresh token"}
        ) from None
    assert user is not None
    return _pair(request, user)
