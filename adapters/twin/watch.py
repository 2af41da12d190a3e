"""Wakes HTTP long polls the moment a job ends.

A job's end reaches the read model after the projection commits it; the same event is
on the bus a few milliseconds earlier (the relay publishes to the stream's subject, and
core subscribers see it too). A waiting GET /jobs/{id}/result is answered from that
event, which is what the read model will hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

import orjson
from nats.aio.client import Client as NATS

ENDINGS = ("JobCompleted", "JobFailed", "JobCancelled")
RECENT = 10_000


class JobWatch:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.waiters: dict[tuple[str, str], list[asyncio.Future]] = {}
        # Endings seen lately: a job often ends before the read model shows it submitted,
        # i.e. before anyone can start waiting for it.
        self.recent: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._subs: list[Any] = []

    async def start(self) -> None:
        for ending in ENDINGS:
            self._subs.append(await self.nc.subscribe(f"qledger.evt.*.twin.{ending}", cb=self._on))

    async def _on(self, msg) -> None:
        env = orjson.loads(msg.data)
        key = (env["project_id"], env["payload"]["job_id"])
        self.recent[key] = env
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)
        for future in self.waiters.pop(key, []):
            if not future.done():
                future.set_result(env)

    async def wait(self, project_id: str, job_id: str, timeout: float) -> dict | None:
        """The job's ending event, if it came lately or comes within `timeout` seconds."""
        if (project_id, job_id) in self.recent:
            return self.recent[(project_id, job_id)]
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault((project_id, job_id), []).append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiting = self.waiters.get((project_id, job_id), [])
            with contextlib.suppress(ValueError):
                waiting.remove(future)
            if not waiting:
                self.waiters.pop((project_id, job_id), None)
