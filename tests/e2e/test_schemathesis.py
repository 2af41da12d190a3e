"""Schemathesis over the whole OpenAPI document of a running `qledger serve`, signed in
as the first admin: thousands of generated requests (valid, boundary and invalid
values for every parameter and body) and not one may answer 5xx. Bounded: five
examples per operation and phase, a fixed seed (the same requests every run)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serving import Serve, running

pytestmark = pytest.mark.e2e

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# Signing the admin out or changing its password would end the run's credential early;
# the telemetry event stream never ends by design (a fuzzer's request would hang there
# until its timeout: tests/e2e/test_twin.py reads it properly).
SPARED = "logout|change-password|reset-password|/events/stream"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("schemathesis")))


def test_no_generated_request_gets_a_server_error(served: Serve, tmp_path: Path):
    run = subprocess.run(
        [
            SCHEMATHESIS, "run", served.base + "/openapi.json",
            "-H", f"Authorization: Bearer {served.token}",
            "--checks", "not_a_server_error",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "5",
            "--seed", "1",
            "--workers", "2",
            "--request-timeout", "30",
            "--exclude-path-regex", SPARED,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache of past failures stays out of the repository
    )  # fmt: skip
    summary = run.stdout[-3000:]
    print(summary)
    # Failures and errors are reported before the summary: show them, not the list of
    # operations that only warned (the summary's tail alone hid a runtime error once).
    details = run.stdout.split("SUMMARY")[0][-6000:]
    assert run.returncode == 0, details + summary[-800:]
    assert "generated" in summary and "passed" in summary
