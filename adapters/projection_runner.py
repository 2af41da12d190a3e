"""Feeds the DuckDB read models: first catches up from the event store, then follows the
QLEDGER_EVENTS stream through a durable pull consumer with explicit acks.

A batch is acked only after its rows and positions are committed. If applying fails the
batch is retried in place (the messages are kept alive with in-progress acks) instead of
being NAKed: a NAK would let later events overtake it and leave a hole in the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

import orjson
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from .eventstore import EventStore, envelope
from .puller import CONFLICT, NO_RESPONDERS, Puller
from .readstore import ReadStore
from .relay import EVENT_SUBJECTS, STREAM, ensure_stream

log = logging.getLogger(__name__)

# A DuckDB commit costs about a millisecond of CPU whatever it holds. Under a steady
# stream of small commands (a QEC loop: one event every few ms) the projector applied
# them one by one and took more CPU than the command side, on the same cores. So a
# batch starts at most this often: the first event after a quiet spell is applied at
# once, the events of a stream wait up to this long and go in together.
LINGER_SECONDS = 0.025


class ProjectionRunner:
    def __init__(
        self,
        read: ReadStore,
        store: EventStore,
        js: JetStreamContext,
        *,
        durable: str = "qledger-projections",
        batch: int = 2000,
    ) -> None:
        self.read = read
        self.store = store
        self.js = js
        self.durable = durable
        self.batch = batch
        self.changed = asyncio.Condition()
        self.lag_samples: list[float] = []  # seconds from store commit to read-model commit
        self.stalled: str | None = None

    @property
    def position(self) -> int:
        return self.read.position

    async def wait_for(self, position: int, timeout: float) -> bool:
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.read.position >= position), timeout
                )
            except TimeoutError:
                return False
        return True

    def lag_percentiles(self) -> dict[str, float | None]:
        """Store commit -> read-model commit, for the oldest event of each recent batch."""
        if not self.lag_samples:
            return {"p50": None, "p99": None}
        ordered = sorted(self.lag_samples)
        pick = lambda q: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
        return {"p50": pick(0.50), "p99": pick(0.99)}

    async def _applied(self, envs: list[dict], *, live: bool = True) -> None:
        if not envs:
            return
        seen = self.read.position
        await asyncio.to_thread(self.read.apply, envs)
        # Lag of the oldest event this batch added. Redelivered events (already applied)
        # and catching up after a start or rebuild are not lag: they would skew the p99.
        fresh = [e for e in envs if e["position"] > seen]
        if live and fresh:
            oldest = min(fresh, key=lambda e: e["position"])
            self.lag_samples.append(time.time() - _epoch(oldest["recorded_at"]))
            del self.lag_samples[:-10000]
        async with self.changed:
            self.changed.notify_all()

    async def catch_up_from_store(self) -> None:
        """Apply what the store has beyond the read model (e.g. after a rebuild or a lost file)."""
        while True:
            notes = await asyncio.to_thread(
                self.store.notifications_after, self.read.position, self.batch
            )
            if not notes:
                return
            await self._applied([envelope(n) for n in notes], live=False)

    async def run(self) -> None:
        await ensure_stream(self.js)
        await self.catch_up_from_store()
        await self._ensure_consumer()
        puller = Puller(self.js._nc, STREAM, self.durable)
        await puller.start()
        # Pipelined: the next batch is fetched while DuckDB commits this one (in a thread).
        # Batches are still applied one after another, in stream order.
        applying: asyncio.Task | None = None
        started = 0.0  # when the last batch was handed to DuckDB
        try:
            while True:
                msgs = await puller.fetch(self.batch, wait=1.0)
                linger = LINGER_SECONDS - (time.monotonic() - started)
                if msgs and len(msgs) < self.batch and linger > 0:
                    await asyncio.sleep(linger)
                    msgs += await puller.pending(self.batch - len(msgs))
                if not msgs:
                    if puller.last_status in (CONFLICT, NO_RESPONDERS):
                        # The consumer (or JetStream) is gone: say so, back off, recreate.
                        self.stalled = f"consumer {self.durable}: status {puller.last_status}"
                        await asyncio.sleep(1.0)
                        with contextlib.suppress(Exception):
                            await self._ensure_consumer()
                    continue
                # Events the read model already holds (the stream replaying a store the
                # read model caught up from at start) are skipped unparsed: Nats-Msg-Id is
                # the store position.
                seen = self.read.position
                envs = [orjson.loads(m.data) for m in msgs if _position(m) > seen]
                if applying is not None:
                    await applying
                started = time.monotonic()
                applying = asyncio.create_task(self._apply_and_ack(envs, msgs))
        finally:
            if applying is not None:
                applying.cancel()

    async def _ensure_consumer(self) -> None:
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=EVENT_SUBJECTS,
            # Acked explicitly, once per batch, after the DuckDB commit: with policy
            # "all", acking the batch's last message acknowledges the whole batch.
            ack_policy=api.AckPolicy.ALL,
            ack_wait=60,
            max_ack_pending=50_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            await self.js.add_consumer(STREAM, config)
        except BadRequestError as err:
            # A durable left by an older version with other settings: replace it. The read
            # model's own positions make the redelivery from the start a no-op.
            log.warning("recreating consumer %s: %s", self.durable, err)
            await self.js.delete_consumer(STREAM, self.durable)
            await self.js.add_consumer(STREAM, config)

    async def _apply_and_ack(self, envs, msgs) -> None:
        await self._apply_until_done(envs, msgs)
        await msgs[-1].ack()

    async def _apply_until_done(self, envs, msgs) -> None:
        delay = 0.2
        while True:
            try:
                await self._applied(envs)
                self.stalled = None
                return
            except Exception as err:
                self.stalled = f"projection stalled at position {self.read.position}: {err}"
                log.exception("projection batch failed; retrying in %.1fs", delay)
                await msgs[-1].in_progress()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def _position(msg) -> float:
    try:
        return int(msg.headers["Nats-Msg-Id"])
    except (TypeError, KeyError, ValueError):
        return float("inf")  # no usable header: parse it, apply() dedupes by position


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
