"""Running `qledger serve` as a subprocess, the way a user does."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from adapters.error_catalogue import catalogue
from adapters.http.errors import STATUS_BY_KIND
from adapters.natsserver import free_port

QLEDGER = str(Path(sys.executable).parent / "qledger")
ADMIN = "admin"
ADMIN_PASSWORD = "first-admin-pw-1"


_CATALOGUE: dict[str, int] = {}


def check_error_model(response: httpx.Response) -> None:
    """Every error a test client receives has a known code and the status of its kind:
    the whole e2e suite checks the error model as a side effect."""
    if response.status_code < 400:
        return
    if not _CATALOGUE:
        _CATALOGUE.update(
            {code: STATUS_BY_KIND[next(iter(kinds))] for code, kinds in catalogue().items()}
        )
    response.read()
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        raise AssertionError(f"an error without a JSON code: {response.text[:200]}") from None
    assert code in _CATALOGUE, f"error code {code!r} is not in the catalogue (docs/errors.md)"
    assert response.status_code == _CATALOGUE[code], (
        f"{code!r} answered {response.status_code}; its kind says {_CATALOGUE[code]}"
    )


class Serve:
    logs: list[Path] = []  # of the current test, shown if it fails (tests/e2e/conftest.py)
    started: list[Serve] = []  # stopped at the end of the run if a test did not

    def __init__(
        self,
        data_dir: Path,
        store_url: str | None,
        *,
        keep_nats_url: bool = False,
        env: dict[str, str] | None = None,
    ):
        self.extra_env = env or {}
        self.data_dir = data_dir
        self.store_url = store_url
        self.keep_nats_url = keep_nats_url
        self.http_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.token = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def nats_url(self) -> str:
        return (self.data_dir / "nats.url").read_text().strip()

    def start(self) -> Serve:
        env = {
            **os.environ,
            "QLEDGER_DATA_DIR": str(self.data_dir),
            "QLEDGER_HTTP_PORT": str(self.http_port),
            "QLEDGER_LOG_LEVEL": os.environ.get("QLEDGER_TEST_LOG_LEVEL", "warning"),
            "QLEDGER_ADMIN_USERNAME": ADMIN,
            "QLEDGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **self.extra_env,
        }
        if not self.keep_nats_url:
            env.pop("QLEDGER_NATS_URL", None)
        env.pop("QLEDGER_EVENTSTORE_URL", None)
        if self.store_url:
            env["QLEDGER_EVENTSTORE_URL"] = self.store_url
        log = open(self.data_dir / "serve.log", "ab")
        Serve.logs.append(self.data_dir / "serve.log")
        self.proc = subprocess.Popen([QLEDGER, "serve"], env=env, stdout=log, stderr=log)
        Serve.started.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir / "serve.log").read_text()[-3000:]
            try:
                # Healthy and the first admin projected: the admin can sign in.
                if httpx.get(self.base + "/api/health", timeout=1).status_code == 200:
                    self.token = self.login(ADMIN, ADMIN_PASSWORD)
                    return self
            except (httpx.HTTPError, AssertionError):
                pass
            time.sleep(0.1)
        raise AssertionError("qledger serve did not become healthy in 60 s")

    def login(self, username: str, password: str) -> str:
        r = httpx.post(
            self.base + "/api/auth/login",
            data={"username": username, "password": password},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        """The first admin's credentials (owner of project `default`)."""
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, token: str | None = None) -> httpx.Client:
        auth = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(
            base_url=self.base,
            timeout=10,
            headers=auth,
            event_hooks={"response": [check_error_model]},
        )

    def children(self) -> list[int]:
        """nats-server, the query side and the relay."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def nats_pid(self) -> int:
        return int((self.data_dir / "nats" / "nats-server.pid").read_text())

    def health(self) -> dict:
        return httpx.get(self.base + "/api/health", timeout=5).json()


def running(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[Serve]:
    """A server for a test module (`yield from` it in a fixture). It is stopped with
    SIGTERM, which must end it cleanly."""
    serve = Serve(data_dir, None, env=env).start()
    yield serve
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def run_bounded(coro, timeout: float = 120):
    """asyncio.run, except that tasks left behind (a NATS client whose server was just
    killed keeps reconnect tasks around) get 5 s to finish instead of forever."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=5))
        loop.close()
