"""The simulation worker: a child process that runs adapters.twin.simulate calls.

A plain child (like the query side and the relay), started with PR_SET_PDEATHSIG before
it runs any Python, so it dies with its parent even if that is SIGKILLed while the
worker is still importing numpy and qiskit. (multiprocessing's spawned workers only run
an initializer after those imports, seconds later, and bring a resource-tracker process
of their own.) Calls and answers are pickled frames on the child's stdin and stdout.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from adapters.natsserver import die_with_parent

HEADER = struct.Struct("!I")


def _send(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("the other side closed the pipe")
    (size,) = HEADER.unpack(header)
    return pickle.loads(stream.read(size))


class WorkerError(Exception):
    """The worker refused a call: `code` and `message` of the twin's error, if any."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message


class SimulationWorker:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()  # one call at a time

    def start(self) -> subprocess.Popen:
        """(Re)start the child if needed. Call it from the event loop's thread: the
        kernel's parent-death signal follows the thread that forked, and a pool thread
        may end long before the process does."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "adapters.twin.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )
        return self.proc

    def call(self, name: str, *args: Any) -> Any:
        """simulate.<name>(*args) in the worker (blocking: run it in a thread)."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise WorkerError("crash", "simulation_error", "the worker is not running")
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, (name, args))
                ok, value = _receive(proc.stdout)
            except (EOFError, BrokenPipeError, OSError) as err:
                proc.kill()
                raise WorkerError("crash", "simulation_error", f"the worker died: {err}") from None
        if not ok:
            raise WorkerError(*value)
        return value

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def main() -> None:
    # Frames go to the real stdout; anything a library prints goes to stderr instead.
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    frames_in = sys.stdin.buffer
    from adapters.twin import simulate

    while True:
        try:
            name, args = _receive(frames_in)
        except EOFError:
            return
        try:
            _send(frames_out, (True, getattr(simulate, name)(*args)))
        except Exception as err:  # noqa: BLE001 - every failure goes back as an answer
            code = getattr(err, "code", "simulation_error")
            message = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
            _send(frames_out, (False, (type(err).__name__, code, message)))


if __name__ == "__main__":
    main()
