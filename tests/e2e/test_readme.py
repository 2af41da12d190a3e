"""The README's "Try it" block, run as written against a fresh `qledger serve`: only
the host, the password and the data dir are filled in. A README whose first commands
fail is the first thing a new user meets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serving import ADMIN_PASSWORD, Serve, running

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
BUDGET = 120.0


def try_it_script() -> str:
    text = README.read_text()
    section = text[text.index("## Try it") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 3
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("readme")))


def test_the_try_it_block_runs_as_written(served: Serve, tmp_path: Path):
    script = try_it_script()
    script = script.replace("localhost:8000", f"127.0.0.1:{served.http_port}")
    script = script.replace("password=…", f"password={ADMIN_PASSWORD}")
    # The event stream never ends by itself: a few seconds of it.
    script = script.replace(
        ".venv/bin/qledger events tail --from-start",
        f"timeout 5 {Path(sys.executable).parent}/qledger events tail --from-start || true",
    )
    prologue = (
        "set -euo pipefail\n"
        # An HTTP error must fail the script, not print an error body and go on.
        'curl() { command curl --fail-with-body "$@"; }\n'
    )
    (tmp_path / "try_it.sh").write_text(prologue + script)
    env = {**os.environ, "QLEDGER_DATA_DIR": str(served.data_dir)}
    run = subprocess.run(
        ["bash", str(tmp_path / "try_it.sh")],
        capture_output=True, text=True, timeout=BUDGET, env=env, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, run.stderr[-2000:] + out[-2000:]
    assert '"chip_id":"64Q"' in out
    assert '"position":9' in out  # as the README's comment says
    assert '"t1"' in out and "55.2" in out
    assert "calibration.TaskResultRecorded" in out  # from the event stream
    assert '"status":"COMPLETED"' in out and '"engine":"density_matrix"' in out
