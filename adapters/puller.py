"""A lean JetStream pull consumer client.

nats-py's `PullSubscription.fetch` waits for every message with its own timer task, which
costs more than projecting the event. This sends the same pull requests
(`$JS.API.CONSUMER.MSG.NEXT`) and gathers the replies in a plain subscription callback:
- "no_wait" requests return whatever is pending at once (up to the batch size);
- when nothing is pending, a long poll for a single message waits for the next event, so
  an idle consumer answers within milliseconds of a new event instead of polling.
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

# Status codes JetStream sends on the reply inbox instead of messages.
NO_MESSAGES, REQUEST_TIMEOUT, HEARTBEAT = "404", "408", "100"
CONFLICT, NO_RESPONDERS = "409", "503"  # consumer deleted / JetStream or consumer missing


class Puller:
    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = ""
        self._msgs: list[Msg] = []
        self._wanted = 0
        self._request = 0  # replies are tagged with the request they answer
        self._done = asyncio.Event()
        self.last_status: str | None = None  # of the last request that ended with one

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        await self.nc.subscribe(self.inbox + ".>", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers and not msg.data else None
        if status is None:
            # A stream message (delivered under its own subject). Messages answering an
            # abandoned request are kept too: they arrive in stream order, and acking a
            # later one (ack policy "all") covers them.
            self._msgs.append(msg)
            if len(self._msgs) >= self._wanted:
                self._done.set()
            return
        # Status replies come on our inbox, tagged with the request they end.
        if status == HEARTBEAT or not msg.subject.endswith(f".{self._request}"):
            return
        self.last_status = status
        self._done.set()  # no (more) messages, request expired, or refused

    async def _pull(self, request: dict, timeout: float) -> None:
        self._request += 1
        self._done.clear()
        await self.nc.publish(
            self.subject, json.dumps(request).encode(), reply=f"{self.inbox}.{self._request}"
        )
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            pass

    async def fetch(self, batch: int, *, wait: float = 5.0) -> list[Msg]:
        """Up to `batch` messages: those pending now, or else the next one to arrive
        (waiting at most `wait` seconds; [] if none)."""
        msgs = await self.pending(batch, timeout=wait)
        if msgs:
            return msgs
        self._wanted = 1
        await self._pull({"batch": 1, "expires": int(wait * 1e9)}, timeout=wait + 1)
        if not self._msgs:
            return []  # last_status says why, if the server said
        # Something arrived: take whatever came with it, without waiting.
        return await self.pending(batch, timeout=wait)

    async def pending(self, batch: int, *, timeout: float = 5.0) -> list[Msg]:
        """Up to `batch` messages pending now, without waiting for more."""
        self._wanted = batch
        self.last_status = None
        if len(self._msgs) < batch:
            await self._pull({"batch": batch - len(self._msgs), "no_wait": True}, timeout)
        msgs, self._msgs = self._msgs, []
        return msgs
