"""The relay: tails the store's notification log in order and publishes every event to
JetStream. Its checkpoint is the stream itself (the Nats-Msg-Id of the last message), so
a crash between publish and checkpoint cannot lose or reorder events; a re-sent event is
dropped by the stream's duplicate window."""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from .eventstore import EventStore, project_of

log = logging.getLogger(__name__)

STREAM = "QLEDGER_EVENTS"
EVENT_SUBJECTS = "qledger.evt.>"


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
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def stream_checkpoint(js: JetStreamContext) -> int:
    """Store position of the last event on the stream (0 if none)."""
    info = await js.stream_info(STREAM)
    if not info.state.last_seq:
        return 0
    msg = await js.get_msg(STREAM, seq=info.state.last_seq)
    return int((msg.headers or {}).get("Nats-Msg-Id", 0))


class Relay:
    def __init__(self, store: EventStore, js: JetStreamContext, *, batch: int = 2000) -> None:
        self.store = store
        self.js = js
        self.batch = batch
        self.wake = asyncio.Event()
        self.position = 0

    def notify(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        await ensure_stream(self.js)
        self.position = await stream_checkpoint(self.js)
        log.info("relay resumes after position %d", self.position)
        while True:
            notes = await asyncio.to_thread(
                self.store.notifications_after, self.position, self.batch
            )
            if not notes:
                self.wake.clear()
                # Woken by the local writer at once; polling catches other writers.
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=0.25)
                except TimeoutError:
                    pass
                continue
            try:
                await self._publish(notes)
            except Exception as err:  # noqa: BLE001 - NATS down or slow: resume from the stream
                log.warning(
                    "relay publish failed after position %d: %s; retrying", self.position, err
                )
                await asyncio.sleep(0.5)
                try:
                    self.position = await stream_checkpoint(self.js)
                except Exception as again:  # noqa: BLE001 - keep retrying until NATS is back
                    log.warning("stream not reachable: %s", again)

    async def _publish(self, notes) -> None:
        acks = []
        for n in notes:
            # The stored state is the envelope minus `position`: splice it in rather than
            # re-encoding, and read only what the subject needs.
            data = b'{"position":%d,' % n.id + n.state[1:]
            subject = event_subject(project_of(n.state), n.topic)
            # No wait_stall: it wraps every publish in a task and a loop round-trip.
            acks.append(
                await self.js.publish_async(
                    subject, data, headers={"Nats-Msg-Id": str(n.id)}, stream=STREAM
                )
            )
        await asyncio.gather(*acks)
        self.position = notes[-1].id
