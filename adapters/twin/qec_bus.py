"""The QEC data plane on NATS, in the command process (next to the sessions).

* `qledger.twin.<backend>.syndrome`: every round an interactive session measures (over
  HTTP, over NATS or in bulk), published once its step is committed;
* `qledger.twin.<backend>.correction`: a bridge's correction, as a request. It is the
  `twin.qec_correct` command with `measure_next` on by default, so one round trip records
  the correction, measures the next round and answers with its syndrome.
* `qledger.twin.<backend>.readout`: each readout of the FPGA controller API.

Requests carry a credential in their headers like any command (`X-API-Key`, or
`Authorization: Bearer …`; optionally `X-Project-Id`). Core NATS, not JetStream: a bridge
that misses a message asks the session again (HTTP GET of the round returns it as
recorded); the events themselves are in the store and on the event stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.commandbus import CMD_PREFIX, CommandWriter, parse_command
from adapters.security.tokens import TokenService
from commands.models import Accepted, Rejected, Reply
from commands.processor import Submission
from commands.twin_qec import SubmitQecCorrection
from domain.errors import Kind
from projections.twin import readout_view
from projections.twin_qec import round_view

log = logging.getLogger(__name__)
SUBJECT = "qledger.twin.{backend}.{kind}"
CORRECTIONS = "qledger.twin.*.correction"


class QecBus:
    def __init__(self, nc: NATS, writer: CommandWriter, tokens: TokenService) -> None:
        self.nc = nc
        self.writer = writer
        self.tokens = tokens

    async def start(self) -> None:
        await self.nc.subscribe(CORRECTIONS, queue="qledger-qec", cb=self._on_correction)

    async def _on_correction(self, msg: Msg) -> None:
        try:
            body = orjson.loads(msg.data)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as err:
            reply: Reply = Rejected(
                kind=Kind.INVALID, code="invalid_command", message=f"not JSON: {err}"
            )
        else:
            body.setdefault("measure_next", True)
            parsed = parse_command(
                CMD_PREFIX + SubmitQecCorrection.SUBJECT,
                orjson.dumps(body),
                msg.headers or {},
                self.tokens,
            )
            reply = parsed if isinstance(parsed, Rejected) else await self.writer.submit(parsed)
        if msg.reply:
            await self.nc.publish(msg.reply, _answer(reply))

    async def published(self, batch: Sequence[Submission], replies: Sequence[Reply]) -> None:
        """The writer committed a batch: publish the rounds and readouts it took."""
        for reply in replies:
            event = reply.event if isinstance(reply, Accepted) else None
            if event is None:
                continue
            if event["type"] == "twin.ReadoutTaken":
                subject = SUBJECT.format(backend=event["backend_id"], kind="readout")
                view = {**readout_view(event, reply.position), "project_id": event["project_id"]}
                await self.nc.publish(subject, orjson.dumps(view))
                continue
            if event["type"] != "twin.QecRoundsMeasured":
                continue
            if event["count"] != 1:
                continue  # bulk: the caller has the rounds in its reply
            view = round_view(event["session_id"], event, reply.position)
            subject = SUBJECT.format(backend=event["backend_id"], kind="syndrome")
            await self.nc.publish(
                subject, orjson.dumps({**view, "project_id": event["project_id"]})
            )


def _answer(reply: Reply) -> bytes:
    if isinstance(reply, Rejected):
        return reply.model_dump_json().encode()
    out: dict = {"status": "accepted", "position": reply.position}
    if reply.event is not None and reply.event["type"] == "twin.QecRoundsMeasured":
        out["next"] = round_view(reply.event["session_id"], reply.event, reply.position)
    return orjson.dumps(out)
