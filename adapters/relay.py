"""The relay: tails the store's notification log in order and publishes every event to
JetStream. Its checkpoint is the stream itself (the Nats-Msg-Id of the last message), so
a crash between publish and checkpoint cannot lose or reorder events; a re-sent event is
dropped by the stream's duplicate window."""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from .commandbus import COMMITTED_SUBJECT
from .eventstore import EventStore, project_of

log = logging.getLogger(__name__)

STREAM = "QLEDGER_EVENTS"
EVENT_SUBJECTS = "qledger.evt.>"
CHECKPOINT_SECONDS = 1.0


def event_subject(project_id: str, event_type: str) -> str:
    context, name = event_type.split(".", 1)
    return f"qledger.evt.{project_id}.{context}.{name}"


async def ensure_stream(js: JetStreamContext) -> None:
    config = api.StreamConfig(
        name=STREAM,
        subjects=[EVENT_SUBJECTS],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        duplicate_window=120.0,
    )
    try:
        existing = (await js.stream_info(STREAM)).config
    except NotFoundError:
        await js.add_stream(config)
        return
    # A stream made by someone else must still be able to hold the record.
    if existing.subjects != [EVENT_SUBJECTS] or existing.storage != api.StorageType.FILE:
        raise RuntimeError(
            f"stream {STREAM} exists with subjects {existing.subjects} and storage"
            f" {existing.storage}; qledger needs [{EVENT_SUBJECTS}] on file storage"
        )


async def stream_checkpoint(js: JetStreamContext) -> int:
    """Store position of the last event on the stream (0 if none)."""
    info = await js.stream_info(STREAM)
    if not info.state.last_seq:
        return 0
    msg = await js.get_msg(STREAM, seq=info.state.last_seq)
    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    if not msg_id.isdigit():
        # Guessing would republish the whole store; stop and say why instead.
        raise RuntimeError(
            f"the last message on {STREAM} (seq {info.state.last_seq}, subject {msg.subject})"
            " was not published by the qledger relay: only the relay may publish there"
        )
    return int(msg_id)


class Relay:
    def __init__(
        self,
        store: EventStore,
        nc: NATS,
        *,
        batch: int = 2000,
        poll_seconds: float = 0.25,
    ) -> None:
        self.poll_seconds = poll_seconds
        self.store = store
        self.nc = nc
        self.js = nc.jetstream()
        self._acks = _AckCounter()
        self.batch = batch
        self.wake = asyncio.Event()
        self.position = 0
        self.stalled: str | None = None
        self._checkpointed = 0.0

    def notify(self) -> None:
        self.wake.set()

    async def listen_for_commits(self) -> None:
        """Wake up when a command writer (in any process) reports a commit."""

        async def woken(_msg) -> None:
            self.notify()

        await self.nc.subscribe(COMMITTED_SUBJECT, cb=woken)

    async def start(self) -> None:
        await ensure_stream(self.js)
        self._acks.inbox = self.nc.new_inbox()
        await self.nc.subscribe(self._acks.inbox + ".>", cb=self._acks.on_reply)
        self.position = await stream_checkpoint(self.js)
        log.info("relay resumes after position %d", self.position)

    async def run(self) -> None:
        await self.start()
        while True:
            # Cleared before reading, so a commit notice that arrives during the read
            # still wakes the next wait instead of being lost until the next poll.
            self.wake.clear()
            try:
                notes = await asyncio.to_thread(
                    self.store.notifications_after, self.position, self.batch
                )
            except Exception as err:  # noqa: BLE001 - store down: wait for it, don't die
                self.stalled = f"event store unreadable: {err}"
                log.warning("relay cannot read the store: %s; retrying", err)
                await asyncio.sleep(1.0)
                continue
            if notes:
                try:
                    await self._publish(notes)
                    self.stalled = None
                except Exception as err:  # noqa: BLE001 - NATS down or slow: resume from the stream
                    self.stalled = f"publishing after position {self.position} failed: {err}"
                    log.warning(
                        "relay publish failed after position %d: %s; retrying", self.position, err
                    )
                    await asyncio.sleep(0.5)
                    try:
                        self.position = await stream_checkpoint(self.js)
                    except Exception as again:  # noqa: BLE001 - keep retrying until NATS is back
                        log.warning("stream not reachable: %s", again)
                    continue
                await self._checkpoint_now_and_then()
                if len(notes) == self.batch:
                    continue  # more to read at once
            # Caught up: the next read waits for a commit notice (one read per commit
            # rather than two), or for the poll, which catches writers that send none.
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass

    async def _checkpoint_now_and_then(self) -> None:
        """The store's log checkpoints here, not in a command's commit (EventStore.checkpoint)."""
        if time.monotonic() - self._checkpointed < CHECKPOINT_SECONDS:
            return
        self._checkpointed = time.monotonic()
        try:
            await asyncio.to_thread(self.store.checkpoint)
        except Exception as err:  # noqa: BLE001 - the commits' backstop still checkpoints
            log.warning("store checkpoint failed: %s", err)

    async def _publish(self, notes) -> None:
        """Publish a batch to JetStream and wait for every acknowledgement.

        Plain publishes with a reply inbox (what publish_async does underneath) and one
        counter for the whole batch: nats-py's per-message PubAck objects cost more CPU
        than the publish itself."""
        reply_prefix = self._acks.start(len(notes))
        previous = self.position
        for n in notes:
            # The stored state is the envelope minus `position`: splice it in rather than
            # re-encoding, and read only what the subject needs.
            data = b'{"position":%d,' % n.id + n.state[1:]
            subject = event_subject(project_of(n.state), n.topic)
            headers = {"Nats-Msg-Id": str(n.id), "Nats-Expected-Stream": STREAM}
            if previous:
                # The stream refuses an event unless its predecessor is the last message:
                # if a connection drops mid-batch, later events cannot land past a hole.
                headers["Nats-Expected-Last-Msg-Id"] = str(previous)
            previous = n.id
            await self.nc.publish(subject, data, reply=f"{reply_prefix}.{n.id}", headers=headers)
        await self._acks.wait(timeout=10)
        self.position = notes[-1].id


class _AckCounter:
    """Counts JetStream publish acknowledgements for one batch at a time."""

    def __init__(self) -> None:
        self.inbox = ""
        self.batch = 0
        self.pending = 0
        self.errors: list[bytes] = []
        self.done = asyncio.Event()

    def start(self, count: int) -> str:
        self.batch += 1
        self.pending = count
        self.errors = []
        self.done.clear()
        return f"{self.inbox}.{self.batch}"

    async def on_reply(self, msg) -> None:
        # Replies of an abandoned (timed-out) batch carry an older batch number.
        if not msg.subject.startswith(f"{self.inbox}.{self.batch}."):
            return
        if b'"error"' in msg.data or not msg.data:
            self.errors.append(msg.data)
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.done.wait(), timeout)
        if self.errors:
            raise RuntimeError(
                f"JetStream refused {len(self.errors)} events: {self.errors[0][:200]!r}"
            )
