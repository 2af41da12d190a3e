"""Figure blobs in a JetStream object store.

Every role already talks to NATS, and roles may run on different hosts, so the figures
live in JetStream (file storage, chunked, SHA-256 checked by the object store) rather
than in one host's data directory. Names are content digests: a put of bytes already
stored is a no-op, and a stored figure never changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import ObjectNotFoundError
from nats.js.object_store import ObjectStore

BUCKET = "qledger_figures"


class FigureStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._bucket: ObjectStore | None = None

    async def bucket(self) -> ObjectStore:
        if self._bucket is None:
            config = ObjectStoreConfig(
                bucket=BUCKET,
                description="qledger calibration figures, named by SHA-256",
                storage=StorageType.FILE,
            )
            # Idempotent: creating a bucket that exists with this config returns it.
            self._bucket = await self.js.create_object_store(BUCKET, config=config)
        return self._bucket

    async def put(self, name: str, data: bytes) -> None:
        bucket = await self.bucket()
        if not await self.exists(name):
            await bucket.put(name, data)

    async def get(self, name: str) -> bytes | None:
        bucket = await self.bucket()
        try:
            result = await bucket.get(name)
        except ObjectNotFoundError:
            return None
        return result.data

    async def exists(self, name: str) -> bool:
        bucket = await self.bucket()
        try:
            await bucket.get_info(name)
        except ObjectNotFoundError:
            return False
        return True

    async def present(self, names: Iterable[str]) -> frozenset[str]:
        unique = sorted(set(names))
        found = await asyncio.gather(*(self.exists(n) for n in unique))
        return frozenset(n for n, ok in zip(unique, found, strict=True) if ok)


class KnownFigures:
    """The command side's view (commands.ports.FigureIndexPort): the figures a batch
    names that were found before the batch ran. Figures are never deleted, so a name
    found present stays present while the batch is decided."""

    def __init__(self, present: frozenset[str]) -> None:
        self.present = present

    def exists(self, name: str) -> bool:
        return name in self.present
