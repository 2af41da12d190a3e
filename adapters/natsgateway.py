"""The HTTP side's way onto the bus: a command sent as a NATS request, exactly as any bus
client would send it; a transport failure becomes a coded rejection."""

from __future__ import annotations

import json
import logging

import nats
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from adapters.commandbus import CMD_PREFIX
from commands.models import Accepted, Command, Rejected, Reply
from domain.errors import Kind

log = logging.getLogger(__name__)


class NatsGateway:
    """Sends a command as a NATS request, exactly as any bus client would."""

    def __init__(self, nc: nats.NATS, timeout: float = 30.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def send(self, command: Command, headers: dict[str, str]) -> Reply:
        subject = CMD_PREFIX + command.SUBJECT
        try:
            msg = await self.nc.request(
                subject, command.model_dump_json().encode(), timeout=self.timeout, headers=headers
            )
        except NoRespondersError:
            return Rejected(
                kind=Kind.UNAVAILABLE,
                code="bus_unavailable",
                message="no command handler is listening",
            )
        except (TimeoutError, NatsTimeout):
            return Rejected(
                kind=Kind.TIMEOUT,
                code="command_timeout",
                message="no reply in time; the outcome is unknown: retry with the same Idempotency-Key",
            )
        except MaxPayloadError:
            return Rejected(
                kind=Kind.TOO_LARGE,
                code="command_too_large",
                message="the command exceeds the bus limit",
            )
        except NatsError as err:  # disconnected, reconnecting, draining…
            return Rejected(
                kind=Kind.UNAVAILABLE, code="bus_unavailable", message=f"NATS: {err}; retry"
            )
        try:
            data = json.loads(msg.data)
            return Accepted(**data) if data.get("status") == "accepted" else Rejected(**data)
        except (ValueError, TypeError) as err:
            log.error("malformed command reply %r: %s", msg.data[:200], err)
            return Rejected(
                kind=Kind.INTERNAL,
                code="internal_error",
                message="the command side sent a malformed reply",
            )
