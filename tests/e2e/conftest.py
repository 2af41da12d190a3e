"""On a failed end-to-end test, show what the servers logged: the only clue CI keeps."""

from __future__ import annotations

import pytest

from tests.e2e.serving import Serve


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
    Serve.logs.clear()
    yield
