"""Typed dependencies shared by the routers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from adapters.http.security import ProjectId, TwinProject, WritableProject, credential_headers
from adapters.readstore import ReadStore
from commands.models import Accepted, Command, Rejected, Reply
from projections.provenance import Moment

# How a rejected command's code maps to HTTP. Unlisted codes are 400.
STATUS_BY_CODE = {
    "invalid_command": 422,
    "invalid_input": 422,
    "invalid_size": 422,
    "unknown_topology": 422,
    "invalid_status": 422,
    "invalid_time_range": 422,
    "unknown_qid": 422,
    "unknown_input_version": 422,
    "input_name_mismatch": 422,
    "input_from_the_future": 422,
    "unknown_figure": 422,
    "not_found": 404,
    "chip_not_found": 404,
    "execution_not_found": 404,
    "task_not_found": 404,
    "chip_exists": 409,
    "execution_exists": 409,
    "execution_finished": 409,
    "duplicate_task": 409,
    "stale_measurement": 409,
    "idempotency_key_reused": 409,
    "concurrency_conflict": 409,
    "command_too_large": 413,
    "body_too_large": 413,
    "invalid_utf8": 422,
    "nesting_too_deep": 422,
    "number_out_of_range": 422,
    "invalid_project": 400,
    "invalid_idempotency_key": 400,
    "unknown_command": 400,
    "store_unavailable": 503,
    "bus_unavailable": 503,
    "command_timeout": 504,
    "internal_error": 500,
    # identity and tenancy
    "unauthenticated": 401,
    "forbidden": 403,
    "project_not_found": 404,
    "user_not_found": 404,
    "member_not_found": 404,
    "api_key_not_found": 404,
    "no_project": 400,
    "wrong_password": 400,
    "invalid_role": 422,
    "invalid_scope": 422,
    "invalid_expiry": 422,
    "username_taken": 409,
    "username_reserved": 422,
    "project_exists": 409,
    "already_member": 409,
    "already_owner": 409,
    "last_owner": 409,
    "last_admin": 409,
    "has_default_project": 409,
    "api_key_exists": 409,
    "api_key_revoked": 409,
    "already_bootstrapped": 409,
    "refresh_token_reused": 401,
    "refresh_token_revoked": 401,
    "refresh_already_rotated": 409,
    # the digital twin
    "unknown_backend": 404,
    "job_not_found": 404,
    "config_file_not_found": 404,
    "job_exists": 409,
    "job_running": 409,
    "job_finished": 409,
    "job_not_queued": 409,
    "job_not_running": 409,
    "session_not_found": 404,
    "schedule_not_found": 404,
    **dict.fromkeys(
        (
            "session_exists",
            "schedule_exists",
            "session_ended",
            "session_autonomous",
            "round_out_of_order",
            "rounds_limit_reached",
            "correction_exists",
            "no_rounds",
        ),
        409,
    ),
    **dict.fromkeys(
        (
            "invalid_config",
            "invalid_config_path",
            "unknown_command_type",
            "unknown_payload_field",
            "qubit_out_of_range",
            "invalid_payload",
            "unknown_scenario",
            "invalid_shots",
            "too_many_circuits",
            "invalid_qasm",
            "invalid_circuit",
            "too_many_qubits",
            "unknown_code_family",
            "invalid_basis",
            "invalid_distance",
            "code_too_large",
            "invalid_correction",
            "step_too_large",
            "session_too_large",
            "invalid_schedule",
            "include_not_allowed",
            "qasm_too_large",
            "too_many_clbits",
            "too_many_gates",
            "unsupported_instruction",
            "circuit_too_wide",
            "circuit_too_complex",
            "job_too_expensive",
        ),
        422,
    ),  # fmt: skip
    "twin_unavailable": 503,
}

__all__ = ["ProjectId", "TwinProject", "WritableProject"]


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail={"code": code, "message": message})


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


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
        raise ApiError(422, "invalid_timezone", f"unknown time zone {name!r}") from None


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
        raise ApiError(422, "as_of_in_future", f"as_of {as_of.isoformat()} is in the future")
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
                422,
                "position_not_in_store",
                f"position {position} is beyond the store's last ({head}); use a position"
                " from a command's reply",
            )
    if not await runner.wait_for(position, timeout):
        reason = f" ({runner.stalled})" if runner.stalled else ""
        raise ApiError(
            503,
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
        raise ApiError(STATUS_BY_CODE.get(reply.code, 400), reply.code, reply.message)
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
