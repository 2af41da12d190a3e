"""Reading a caller's credential from request or message headers, the same way for HTTP
and the bus: `Authorization: Bearer <JWT>` or `X-API-Key: qlk_…`."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.security.apikeys import parse_api_key
from adapters.security.tokens import InvalidToken, TokenService
from domain.access import Credential

SIGN_IN = "sign in: send 'Authorization: Bearer <access token>' or 'X-API-Key: <key>'"


class MissingCredential(Exception):
    """No credential at all (as opposed to a bad one)."""


def read_credential(headers: Mapping[str, str], tokens: TokenService) -> Credential:
    """The credential, checked for signature, expiry and format (not yet for revocation,
    which needs the account: domain.access.authenticate). Raises MissingCredential or
    InvalidToken."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization")
    key = lowered.get("x-api-key")
    if auth and key:
        raise InvalidToken("send either Authorization or X-API-Key, not both")
    if key:
        return parse_api_key(key.strip())
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Authorization must be 'Bearer <access token>'")
        return tokens.verify(token.strip())
    raise MissingCredential(SIGN_IN)
