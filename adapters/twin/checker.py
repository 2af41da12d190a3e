"""Sizing a job's circuits before it is accepted, in a child process.

The command side must know a job's circuits parse and what they cost before it accepts
the job, but the parser must not run where a hostile circuit could take the command
writer down or hold it up: the circuits are screened, parsed and sized in a child with
a memory cap and a time limit (the simulation worker's machinery). The bus adapter asks
before the command joins a batch and hands the sizes to the handler on the command.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.twin.worker import SimulationWorker, WorkerError
from commands.twin import SubmitJob
from domain.errors import InvalidInput
from twin.circuit_input import DEFAULT_LIMITS, CircuitLimits

log = logging.getLogger(__name__)


class CircuitChecker:
    def __init__(
        self,
        limits: CircuitLimits = DEFAULT_LIMITS,
        *,
        memory_bytes: int | None = 3 * 2**30,
        timeout: float = 10.0,
    ) -> None:
        self.limits = limits
        self.timeout = timeout
        self.worker = SimulationWorker(memory_bytes=memory_bytes, threads=1)
        # One caller waits on the child at a time, here, not in a pool thread: threads
        # blocked on the worker's lock would starve every other to_thread call.
        self.lock = asyncio.Lock()
        self._warming: asyncio.Task | None = None  # held: the loop keeps only weak refs

    async def start(self) -> None:
        """Spawn the child now and warm it up meanwhile (imports take seconds): the
        first job waits for it on the lock, nothing else does."""
        self.worker.start()
        self._warming = asyncio.create_task(self._warm_up())

    async def _warm_up(self) -> None:
        async with self.lock:
            try:
                await asyncio.to_thread(self.worker.call, "warm_up_checker")
            except WorkerError as err:
                log.error("the circuit checker failed to start: %s", err.message)

    async def prepare(self, command: SubmitJob) -> None:
        """Attach the circuits' sizes to the command, or refuse them (InvalidInput)."""
        async with self.lock:
            self.worker.start()  # again if a hostile circuit killed it: from the loop
            try:
                sizes = await asyncio.to_thread(
                    self.worker.call,
                    "size_circuits",
                    list(command.circuits),
                    self.limits,
                    timeout=self.timeout,
                )
            except WorkerError as err:
                raise _refusal(err, self.timeout) from None
        command._sizes = sizes


def _refusal(err: WorkerError, timeout: float) -> InvalidInput:
    if err.reason == "TwinError":
        return InvalidInput(err.message, code=err.code)
    if err.reason in ("timeout", "crash") or err.code == "job_memory_limit":
        log.warning("circuit check stopped: %s", err.message)
        return InvalidInput(
            code="circuit_too_complex",
            message=f"checking the circuits did not finish within {timeout:g} s and the checker's"
            " memory limit; simplify them",
        )
    # Anything else the parser raised is about the request's own text.
    return InvalidInput(code="invalid_circuit", message=err.message[:500])
