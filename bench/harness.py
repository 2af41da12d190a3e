"""What the twin and QEC benches share: a fresh `qledger serve` in a temp data dir
(embedded NATS, SQLite), signed in as its first admin, and the p50 / p99 they print."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

QLEDGER = str(Path(sys.executable).parent / "qledger")


def pct(samples: list[float], width: int = 8) -> str:
    """p50 / p99 in ms."""
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
    return f"{1000 * statistics.median(s):{width}.2f} / {1000 * p99:{width}.2f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, password: str) -> tuple[subprocess.Popen, str, str]:
    """(server process, base URL, the admin's access token) once it answers a login."""
    port = free_port()
    env = {**os.environ, "QLEDGER_DATA_DIR": str(data_dir), "QLEDGER_HTTP_PORT": str(port),
           "QLEDGER_ADMIN_PASSWORD": password, "QLEDGER_LOG_LEVEL": "warning"}  # fmt: skip
    env.pop("QLEDGER_NATS_URL", None)
    log = open(data_dir / "serve.log", "ab")
    proc = subprocess.Popen([QLEDGER, "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (data_dir / "serve.log").read_text()[-2000:]
        try:
            r = httpx.post(
                base + "/api/auth/login", data={"username": "admin", "password": password}
            )
            if r.status_code == 200:
                return proc, base, r.json()["access_token"]
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "qledger serve did not start"
        time.sleep(0.3)
