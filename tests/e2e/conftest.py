"""On a failed end-to-end test, show what the servers logged: the only clue CI keeps."""

from __future__ import annotations

import pytest

from tests.e2e.serving import Serve


def pytest_collection_modifyitems(items):
    """Everything under tests/e2e/ starts servers: marked e2e (`make test-fast` skips it)."""
    for item in items:
        if "tests/e2e/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for log in Serve.logs:
            if log.exists():
                report.sections.append((f"qledger serve log {log}", log.read_text()[-6000:]))


@pytest.fixture(autouse=True)
def _forget_logs():
    """Each test shows the logs of the servers it used: those still running from a
    module-scoped fixture, and those it starts itself."""
    Serve.logs[:] = [
        s.data_dir / "serve.log" for s in Serve.started if s.proc and s.proc.poll() is None
    ]
    yield


@pytest.fixture(autouse=True, scope="session")
def _no_server_outlives_the_run():
    """A test that fails between starting a server and stopping it leaves it running;
    the next run (or CI's next step) would share the machine with it."""
    yield
    for serve in Serve.started:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(timeout=10)
