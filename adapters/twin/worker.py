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
import resource
import select
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
    """The worker refused a call. `reason`: "timeout", "crash", "stopped", or the name
    of the exception the call raised (TwinError: the twin refused the input)."""

    def __init__(self, reason: str, code: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.code, self.message = reason, code, message


def _limited(memory_bytes: int | None):
    """preexec_fn: die with the parent and, if set, cap the child's address space (numpy
    then raises MemoryError, which the child reports; the parent carries on)."""

    def setup() -> None:
        die_with_parent()
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return setup


class SimulationWorker:
    """One child process, one call at a time. A call that outlives its `timeout`, or
    that `stop()` interrupts, kills the child; the next call starts a fresh one."""

    def __init__(self, *, memory_bytes: int | None = None, threads: int | None = None) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()  # one call at a time
        self.memory_bytes = memory_bytes
        self.threads = threads
        self.stopped = False  # set by stop(): the running call was interrupted on purpose
        self.busy = False  # a call is waiting on the child

    def start(self) -> subprocess.Popen:
        """(Re)start the child if needed. Call it from the event loop's thread: the
        kernel's parent-death signal follows the thread that forked, and a pool thread
        may end long before the process does."""
        if self.proc is None or self.proc.poll() is not None:
            env = None
            if self.threads:  # BLAS pools reserve address space per thread
                env = {**os.environ, **dict.fromkeys(_THREAD_VARS, str(self.threads))}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "adapters.twin.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                preexec_fn=_limited(self.memory_bytes),
                env=env,
                process_group=0,  # a terminal's Ctrl-C is for the parent, which stops it
            )
        return self.proc

    def call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """simulate.<name>(*args) in the worker (blocking: run it in a thread)."""
        with self.lock:
            self.stopped = False
            self.busy = True
            try:
                return self._call(name, args, timeout)
            finally:
                self.busy = False

    def _call(self, name: str, args: tuple, timeout: float | None) -> Any:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            raise WorkerError("crash", "simulation_error", "the worker is not running")
        assert proc.stdin is not None and proc.stdout is not None
        try:
            _send(proc.stdin, (name, args))
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready:
                _end(proc)
                raise WorkerError(
                    "timeout",
                    "job_time_limit",
                    f"stopped after the time limit of {timeout:g} s",
                )
            ok, value = _receive(proc.stdout)
        except (EOFError, BrokenPipeError, OSError) as err:
            if self.stopped:
                _end(proc)
                raise WorkerError("stopped", "stopped", "stopped on request") from None
            raise WorkerError("crash", "simulation_error", _death(proc, err)) from None
        if not ok:
            raise WorkerError(*value)
        return value

    def stop(self) -> None:
        """Interrupt the running call (from any thread): its caller gets kind "stopped".
        Between calls it does nothing: the next call must not meet a dying child."""
        proc = self.proc
        if self.busy and proc is not None and proc.poll() is None:
            self.stopped = True
            proc.kill()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


def _end(proc: subprocess.Popen) -> None:
    """Kill and reap: until it is reaped, poll() says it runs, and start() would hand
    the next call to a dying process."""
    proc.kill()
    proc.wait()


def _death(proc: subprocess.Popen, err: Exception) -> str:
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _end(proc)
        return f"the worker stopped answering: {err}"
    if code < 0:
        return (
            f"the simulation process died (signal {-code}); a native library may have run"
            " out of the worker's memory limit"
        )
    return f"the simulation process exited with status {code}"


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
        except MemoryError:
            message = "the simulation ran out of the worker's memory limit"
            _send(frames_out, (False, ("MemoryError", "job_memory_limit", message)))
        except Exception as err:  # noqa: BLE001 - every failure goes back as an answer
            code = getattr(err, "code", "simulation_error")
            message = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
            _send(frames_out, (False, (type(err).__name__, code, message)))


if __name__ == "__main__":
    main()
