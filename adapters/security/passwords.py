"""Password hashing with argon2id: deliberately slow and memory-hard, so a stolen
password table costs an attacker real hardware per guess."""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

# Validation limits for whoever accepts a new password (HTTP, CLI). The upper bound stops
# megabyte "passwords" from being used to make each hash attempt expensive for the server.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class Passwords:
    """Hashes and checks passwords. Length rules are enforced by callers, not here."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults are RFC 9106's "low memory" profile (argon2id, t=3,
        # m=64 MiB, p=4). Tests pass a cheap hasher.
        self._hasher = hasher if hasher is not None else argon2.PasswordHasher()
        # Checked against when the username is unknown, so that case costs the same time
        # as a wrong password and response times don't reveal which accounts exist. Made
        # with this hasher, so its cost tracks the parameters real hashes use. Computed on
        # first need, not here: constructing a Passwords must stay cheap (tests, CLI).
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True only if `password` matches `password_hash`; False for a wrong password,
        a malformed hash, or no hash at all (unknown user)."""
        if password_hash is None:
            if self._dummy_hash is None:  # a race between threads just computes it twice
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))
            try:
                self._hasher.verify(self._dummy_hash, password)
            except VerificationError:
                pass  # expected: the dummy matches nothing anyone types
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
