"""Where the token-signing secret comes from.

Either the operator configures one, or the first start generates a random one into the
data directory and every later start (and every replica sharing that directory) reuses
it. There is deliberately no built-in default: a secret shipped in the source would let
anyone mint tokens for any deployment that forgot to set one.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from adapters.security.tokens import MIN_SECRET_BYTES

SECRET_FILE_NAME = "jwt.secret"
_READ_RETRIES = 50  # x 0.02 s: how long to wait for a concurrent creator to finish writing
_READ_PAUSE = 0.02


def jwt_secret(configured: str | None, data_dir: Path) -> bytes:
    """The secret to sign tokens with: `configured` if given, else the data dir's file,
    created on first use. Exits with a message if either is too short to be safe."""
    if configured is not None:
        if len(configured) < MIN_SECRET_BYTES:
            raise SystemExit(
                f"the configured JWT secret is {len(configured)} characters; "
                f"use at least {MIN_SECRET_BYTES} random characters"
            )
        return configured.encode("utf-8")
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists() and _create(path):
        return _read(path, wait=False)
    # The file existed, or another process created it between our check and our create:
    # read the winner's secret so that all processes sign with the same one.
    return _read(path, wait=True)


def _create(path: Path) -> bool:
    """Write a fresh secret to `path` unless it already exists; True if we created it."""
    try:
        # O_EXCL makes creation atomic: of processes starting together, exactly one wins.
        # 0600: the secret lets its reader sign in as anyone.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        # Hex text, so operators can copy it into a config or inspect it safely.
        data = (secrets.token_hex(64) + "\n").encode("ascii")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)  # a crash right after start must not leave an empty secret behind
    finally:
        os.close(fd)
    return True


def _read(path: Path, *, wait: bool) -> bytes:
    # Between a winner's O_EXCL create and its write there is a moment when the file
    # exists but is empty; a loser retries briefly instead of failing at startup.
    for _ in range(_READ_RETRIES if wait else 1):
        secret = path.read_bytes().strip()  # tolerate a hand-written file's trailing newline
        if len(secret) >= MIN_SECRET_BYTES:
            return secret
        if wait:
            time.sleep(_READ_PAUSE)
    raise SystemExit(
        f"{path} holds a {len(secret)}-byte secret; it needs at least {MIN_SECRET_BYTES}. "
        "Replace it with a longer random secret, or delete it to have one generated "
        "(which signs out every user)."
    )
