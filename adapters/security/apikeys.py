"""API keys for scripts and instruments: `qlk_<key_id>_<secret>`.

The key id is public (it names the key in listings and audit logs); only the SHA-256 of
the secret is stored, so a leaked database does not leak usable keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from adapters.security.tokens import InvalidToken
from domain.access import Credential

KEY_PREFIX = "qlk_"  # recognisable by humans and secret scanners
_MAX_KEY_LENGTH = 200
_MAX_SECRET_LENGTH = 100
# key_id: 16 lowercase hex; secret: base64url (what token_urlsafe yields; may contain "_").
_KEY = re.compile(r"qlk_([0-9a-f]{16})_([A-Za-z0-9_-]+)")


def new_api_key() -> tuple[str, str, str]:
    """(key_id, secret, full_key). The full key is shown to its creator once, never again."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)  # 256 random bits
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def secret_sha256(secret: str) -> str:
    """Hex SHA-256 of a key secret, the form that is stored and compared.

    Why a fast hash and not argon2 as for passwords: the secret has 256 random bits, so
    brute-forcing it through a fast hash is as hopeless as guessing it outright; slow
    hashing only protects low-entropy, human-chosen secrets. And a key is verified on
    every request and bus command, where argon2 would add ~50 ms of CPU each time.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_api_key(full_key: str) -> Credential:
    """The credential a well-formed key carries; InvalidToken("invalid API key") if it is
    malformed. Whether the key exists and is live is for domain.access to decide."""
    if not isinstance(full_key, str) or len(full_key) > _MAX_KEY_LENGTH:
        raise InvalidToken("invalid API key")
    match = _KEY.fullmatch(full_key)
    if match is None or len(match[2]) > _MAX_SECRET_LENGTH:
        raise InvalidToken("invalid API key")
    return Credential(kind="api_key", key_id=match[1], key_secret_sha256=secret_sha256(match[2]))
