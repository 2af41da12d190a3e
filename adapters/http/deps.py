"""Typed dependencies shared by the routers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from adapters.http.errors import ApiError
from adapters.http.security import ProjectId, TwinProject, WritableProject, credential_headers
from adapters.readstore import ReadStore
from commands.models import Accepted, Command, Rejected, Reply
from domain.errors import Kind
from projections.provenance import Moment

__all__ = ["ProjectId", "TwinProject", "WritableProject"]


class Gateway(Protocol):
    async def send(self, command: Command, headers: dict[str, str]) -> Reply: ...


class Waiter(Protocol):
    stalled: str | None

    async def wait_for(self, position: int, timeout: float) -> bool: ...


def zone(request: Request, tz: str | None = None) -> ZoneInfo:
    """The zone of YYYYMMDD dates and naive times: `tz`, else the server's setting."""
    name = tz or request.app.state.timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(Kind.INVALID, "invalid_timezone", f"unknown time zone {name!r}") from None


Zone = Annotated[ZoneInfo, Depends(zone)]


def moment(
    tz: Zone,
    as_of: Annotated[
        datetime | None,
        Query(description="answer with the state the lab had at this instant (ISO 8601)"),
    ] = None,
) -> Moment:
    """Time travel: every dashboard query can be asked as of a past instant."""
    if as_of is None:
        return Moment()
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)
    as_of = as_of.astimezone(UTC)
    if as_of > datetime.now(UTC):
        raise ApiError(
            Kind.INVALID, "as_of_in_future", f"as_of {as_of.isoformat()} is in the future"
        )
    return Moment(as_of)


AsOf = Annotated[Moment, Depends(moment)]


class _UtcJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # Naive datetimes from the read models are UTC (projections.base.utc): orjson
        # writes them with "+00:00", exactly as isoformat() would, but in C.
        return orjson.dumps(
            content,
            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC,
        )


def fast_json(content: Any) -> Response:
    """A large read answer, encoded by orjson straight from the query's dicts: FastAPI's
    jsonable_encoder walks them in Python first, which took three times the query's own
    time for a 256-qubit chip's metrics."""
    return _UtcJSON(content)


def read_models(request: Request) -> ReadStore:
    return request.app.state.read


ReadModels = Annotated[ReadStore, Depends(read_models)]


async def wait_for_position(position: int, request: Request) -> None:
    runner: Waiter = request.app.state.runner
    timeout: float = request.app.state.read_wait_seconds
    if getattr(runner, "position", 0) < position:
        # A position the store has not reached is no reply's: waiting for it would hold
        # the request (and a slot of this node) for the whole timeout, then say 503.
        head = await asyncio.to_thread(request.app.state.runner.store.max_position)
        if position > head:
            raise ApiError(
                Kind.INVALID,
                "position_not_in_store",
                f"position {position} is beyond the store's last ({head}); use a position"
                " from a command's reply",
            )
    if not await runner.wait_for(position, timeout):
        reason = f" ({runner.stalled})" if runner.stalled else ""
        raise ApiError(
            Kind.UNAVAILABLE,
            "projection_lagging",
            f"read models have not reached position {position} within {timeout:g}s{reason}; retry",
        )


async def wait_for_store_head(request: Request) -> None:
    """Wait (bounded) until the read models hold everything the store held when asked:
    read-your-writes for a client that sent no `min_position`."""
    head = await asyncio.to_thread(request.app.state.runner.store.max_position)
    await wait_for_position(head, request)


async def read_after(
    request: Request,
    min_position: Position = None,
    x_min_position: PositionHeader = None,
) -> None:
    """Read-your-writes: wait (bounded) until the read models reached this position."""
    position = max(min_position or 0, x_min_position or 0)
    if position:
        await wait_for_position(position, request)


ReadAfter = Depends(read_after)


async def read_own_writes(
    request: Request,
    min_position: Position = None,
    x_min_position: PositionHeader = None,
) -> None:
    """As ReadAfter; without a position, wait (bounded) for the store's head as it was
    when asked. For reads of the controller's state, which a client reads right after
    its own command and must see (a stale noise table looked like a lost command)."""
    position = max(min_position or 0, x_min_position or 0)
    if position:
        await wait_for_position(position, request)
    else:
        await wait_for_store_head(request)


ReadOwnWrites = Depends(read_own_writes)


async def send_command(
    request: Request,
    command: Command,
    project: str | None,
    idempotency_key: str | None,
    *,
    wait: bool = False,
) -> Accepted:
    """Send a command over the bus; a rejection becomes an ApiError with its code."""
    correlation = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
    headers = {"X-Correlation-Id": correlation[:200], **credential_headers(request)}
    if project is not None:
        headers["X-Project-Id"] = project
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    gateway: Gateway = request.app.state.gateway
    reply = await gateway.send(command, headers)
    if isinstance(reply, Rejected):
        raise ApiError(reply.kind, reply.code, reply.message)
    if wait:
        await wait_for_position(reply.position, request)
    return reply


# Bounds of every integer a client sends in a query, header or path: beyond them is
# 422 like any other bad input (unbounded, 2^63 reached DuckDB and SQL as a 500).
MAX_OFFSET = 1_000_000_000
MAX_POSITION = 2**62
MAX_INDEX = 1_000_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
Position = Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="wait until projected")]
PositionHeader = Annotated[int | None, Header(ge=0, le=MAX_POSITION)]

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def generated_id(project: str, idempotency_key: str | None) -> str:
    """An id for a client that sent none. Derived from the Idempotency-Key when there is
    one, so a retried request is the same command (and gets the first reply)."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    return uuid.uuid5(uuid.NAMESPACE_URL, f"qledger:{project}:{idempotency_key}").hex


class AcceptedResponse(BaseModel):
    status: str
    event_ids: list[str]
    position: int


def accepted_body(reply: Accepted, **extra: Any) -> dict[str, Any]:
    return {**extra, "status": "accepted", "event_ids": reply.event_ids, "position": reply.position}
