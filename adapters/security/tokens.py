"""Signed, expiring bearer tokens (JWT, HS256) for signed-in users.

A token proves "the server said, at iat, that this is `sub`, valid until exp". Whether
that user may still act (not disabled, no logout since) is decided in domain.access by
comparing the token's epoch with the account's: that is how logout and password changes
revoke tokens that are still cryptographically valid.

A refresh token also names its family (`fam`): the chain of refresh tokens that began at
one sign-in. Each is spent when exchanged (domain/refresh.py decides, on the command
side), and a spent one presented again revokes its whole family.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import jwt
from jwt.utils import base64url_decode, base64url_encode

from domain.access import Credential

TokenKind = Literal["access", "refresh"]

_ALGORITHM = "HS256"
_CACHE_SIZE = 10_000  # verified tokens remembered (a few MB at most)
MIN_SECRET_BYTES = 32  # HS256 keys shorter than the 256-bit hash output weaken it (RFC 7518 §3.2)
MAX_TOKEN_LENGTH = 4096  # far above any token we issue; refused before any parsing work
MAX_CLOCK_SKEW = 60  # seconds an iat may lie in the future (another replica's clock)
_CLAIMS = ("iss", "sub", "ep", "typ", "iat", "exp", "jti")
_SEGMENT = r"[A-Za-z0-9_-]+"
# Three base64url segments and nothing else: non-alphabet characters would otherwise be
# silently skipped by Python's base64 decoder, letting many strings stand for one token.
_SHAPE = re.compile(rf"{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}")
# Token and family ids: what new_token_id makes, and what the rotation command accepts.
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_token_id() -> str:
    """A random token or family id (128 bits, 22 base64url characters)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class RefreshClaims:
    """What a genuine refresh token says: whose it is, which one it is, which family."""

    credential: Credential
    jti: str
    family: str


class _Verified(NamedTuple):
    credential: Credential
    iat: int
    exp: int
    jti: str
    family: str | None  # refresh tokens only


class InvalidToken(Exception):
    """A presented credential is not acceptable.

    The message is the same for every failure kind (bad signature, expired, wrong type,
    malformed), so a caller can't use it to probe which check failed."""

    def __init__(self, message: str = "invalid or expired token") -> None:
        super().__init__(message)
        self.message = message


def _timestamp(now: datetime | None) -> int:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        # A naive datetime would be read as local time: a silent hours-long shift.
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp())


def _is_token_id(value: Any) -> bool:
    return isinstance(value, str) and TOKEN_ID.fullmatch(value) is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


class TokenService:
    """Issues and verifies access tokens (short-lived, sent on every request) and refresh
    tokens (long-lived, only exchanged for new access tokens)."""

    def __init__(
        self,
        secret: bytes,
        *,
        access_ttl: timedelta = timedelta(minutes=30),
        refresh_ttl: timedelta = timedelta(days=7),
        issuer: str = "qledger",
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        if access_ttl <= timedelta(0) or refresh_ttl <= timedelta(0):
            raise ValueError("token lifetimes must be positive")
        try:  # PyJWT refuses secrets shaped like PEM/JSON keys; fail at startup, not per login
            jwt.encode({}, secret, algorithm=_ALGORITHM)
        except jwt.InvalidKeyError as exc:
            raise ValueError(f"unusable token secret: {exc}") from exc
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.issuer = issuer
        self._verified: dict[tuple[str, str], _Verified] = {}

    def issue(
        self,
        username: str,
        token_epoch: int,
        *,
        kind: TokenKind = "access",
        now: datetime | None = None,
        family: str | None = None,
        jti: str | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        """A signed token. A refresh token without `family` starts a new family (a
        sign-in); a rotated one keeps its family and carries the `jti` the command side
        recorded as the family's current token. `ttl` replaces the kind's lifetime (the
        short-lived credential a query node mints to send a refresh exchange)."""
        if not isinstance(username, str) or not username:
            raise ValueError("username must be a non-empty string")
        if not _is_int(token_epoch):
            raise ValueError("token_epoch must be an int")
        if kind not in ("access", "refresh"):
            raise ValueError(f"unknown token kind {kind!r}")
        if family is not None and kind != "refresh":
            raise ValueError("only refresh tokens belong to a family")
        for value in (family, jti):
            if value is not None and not _is_token_id(value):
                raise ValueError(f"token and family ids must match {TOKEN_ID.pattern}")
        if ttl is not None and ttl <= timedelta(0):
            raise ValueError("token lifetimes must be positive")
        iat = _timestamp(now)
        if ttl is None:
            ttl = self.access_ttl if kind == "access" else self.refresh_ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": username,
            "ep": token_epoch,
            "typ": kind,
            "iat": iat,
            "exp": iat + int(ttl.total_seconds()),
            # Unique per token, so two tokens issued in the same second differ, and the
            # refresh-token family can name the one it spent.
            "jti": jti or new_token_id(),
        }
        if kind == "refresh":
            claims["fam"] = family or new_token_id()
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError("username too long to fit in a token")
        return token

    def verify(
        self,
        token: str,
        *,
        kind: TokenKind = "access",
        now: datetime | None = None,
    ) -> Credential:
        """The credential a genuine, unexpired token of this kind carries; else InvalidToken."""
        return self._verify(token, kind, now).credential

    def verify_refresh(self, token: str, *, now: datetime | None = None) -> RefreshClaims:
        """A genuine, unexpired refresh token's credential, id and family; else InvalidToken.

        Whether it is still unspent is not known here: only the command side knows
        (commands/refresh.py)."""
        verified = self._verify(token, "refresh", now)
        # Refresh tokens issued before families existed have no `fam`: each starts a
        # family of its own at its first exchange (its id is as unique as a family id).
        return RefreshClaims(
            credential=verified.credential,
            jti=verified.jti,
            family=verified.family or verified.jti,
        )

    def _verify(self, token: str, kind: TokenKind, now: datetime | None) -> _Verified:
        current = _timestamp(now)
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken()
        # A bus client sends the same token with every command: checking its signature once
        # saves ~70 us per command. Only genuine tokens are cached (one canonical string
        # form each), and their time limits are still checked on every use.
        cached = self._verified.get((token, kind))
        if cached is not None:
            if current >= cached.exp or cached.iat > current + MAX_CLOCK_SKEW:
                raise InvalidToken()
            return cached
        if not _SHAPE.fullmatch(token):
            raise InvalidToken()
        signature = token.rsplit(".", 1)[1]
        # The signature's last base64url character carries spare bits; accept only the
        # canonical spelling so that a token has exactly one valid string form. (Recent
        # PyJWT checks this too, but accepts "=" padding; the shape check above refuses it.)
        try:
            canonical = base64url_encode(base64url_decode(signature)).decode("ascii")
        except ValueError:  # binascii.Error: impossible length
            raise InvalidToken() from None
        if canonical != signature:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Only HS256: refuses alg=none and tokens where an attacker picks another
                # algorithm (RS/HS confusion, or HS384/512 with our secret).
                algorithms=[_ALGORITHM],
                issuer=self.issuer,
                options={
                    "require": list(_CLAIMS),
                    # Time is checked below against `current`, one code path whether the
                    # caller passes `now` (tests, replays) or not, with zero leeway.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        sub, epoch, iat, exp = claims["sub"], claims["ep"], claims["iat"], claims["exp"]
        jti, family = claims["jti"], claims.get("fam")
        if (
            not isinstance(sub, str)
            or not sub
            or not _is_int(epoch)
            or not _is_int(iat)
            or not _is_int(exp)
            or not isinstance(jti, str)
            or claims["typ"] != kind  # a refresh token is not an access token, nor vice versa
            or current >= exp
            or iat > current + MAX_CLOCK_SKEW
            # A refresh token's ids go into a command: only the shapes this service makes.
            or (kind == "refresh" and not _is_token_id(jti))
            or (kind == "refresh" and family is not None and not _is_token_id(family))
        ):
            raise InvalidToken()
        verified = _Verified(
            Credential(kind="token", username=sub, token_epoch=epoch),
            iat,
            exp,
            jti,
            family if kind == "refresh" else None,
        )
        if len(self._verified) >= _CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[(token, kind)] = verified
        return verified
