"""The command line against a running (and then a stopped) `qledger serve`: a lost
password recovered on the server, and `events tail` that knows when there is no
server."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import ADMIN, ADMIN_PASSWORD, QLEDGER, Serve

pytestmark = pytest.mark.e2e

BUDGET = 60.0  # every wait below is a share of this


def login_status(serve: Serve, password: str) -> int:
    r = httpx.post(
        serve.base + "/api/auth/login",
        data={"username": ADMIN, "password": password},
        timeout=BUDGET / 2,
    )
    return r.status_code


def read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no line in time"
    return stream.readline().decode()


def test_reset_password_on_the_server_and_tail_until_it_stops(tmp_path: Path):
    (tmp_path / "data").mkdir()
    serve = Serve(tmp_path / "data", None).start()
    env = {**os.environ, "QLEDGER_DATA_DIR": str(serve.data_dir)}
    env.pop("QLEDGER_NATS_URL", None)
    tail = subprocess.Popen(
        [QLEDGER, "events", "tail"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(1)  # its subscription: it prints only what arrives after it
        reset = subprocess.run(
            [QLEDGER, "admin", "reset-password", ADMIN, "--password-stdin"],
            input="a-new-password-1\n", env=env, capture_output=True, text=True,
            timeout=BUDGET,
        )  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        assert "reset" in reset.stdout
        # The change is an event: the relay publishes it, tail prints it.
        assert '"identity.' in read_line(tail.stdout, BUDGET / 2)
        deadline = time.monotonic() + BUDGET / 2
        while login_status(serve, "a-new-password-1") != 200:
            assert time.monotonic() < deadline, "the new password never worked"
            time.sleep(0.2)
        assert login_status(serve, ADMIN_PASSWORD) == 401

        too_short = subprocess.run(
            [QLEDGER, "admin", "reset-password", ADMIN, "--password-stdin"],
            input="short\n", env=env, capture_output=True, text=True, timeout=BUDGET,
        )  # fmt: skip
        assert too_short.returncode != 0 and "refused" in too_short.stderr

        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=BUDGET) == 0
        # The stream ended with the server: tail says so and exits non-zero.
        assert tail.wait(timeout=BUDGET / 2) != 0
        assert b"stopped" in tail.stderr.read()
    finally:
        tail.kill()
        if serve.proc.poll() is None:
            serve.proc.kill()

    # A stale nats.url: no endless retrying, a clear message, a failing status.
    started = time.monotonic()
    again = subprocess.run(
        [QLEDGER, "events", "tail"], env=env, capture_output=True, text=True, timeout=BUDGET
    )
    assert again.returncode != 0 and "not running" in again.stderr
    assert time.monotonic() - started < BUDGET / 2
