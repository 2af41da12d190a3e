"""Digital-twin telemetry (under /api/v1/digital-twin/telemetry): effective qubit noise,
the event log and its live stream, controller-loop cadence, job traces, scenario keys.
QEC telemetry points (decoder-pushed job metadata first, else the twin's estimate)."""

from __future__ import annotations

import asyncio
import statistics
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from adapters.http.deps import (
    MAX_INDEX,
    ProjectId,
    ReadAfter,
    ReadModels,
    ReadOwnWrites,
    Zone,
    send_command,
    wait_for_store_head,
)
from adapters.http.errors import ApiError
from adapters.http.twin_jobs import PREFIX, drive_corrections_view, settled_job_row
from adapters.twin.catalog import digest
from commands.twin_fpga import RecordQecMetric
from domain.errors import Kind
from projections import twin as q
from twin.controller import effective_noise
from twin.qec import estimated_logical_error

router = APIRouter(prefix=PREFIX + "/telemetry", tags=["twin telemetry"])
BackendId = Annotated[str, Query(description="backend")]


@router.get("/qubits", dependencies=[ReadOwnWrites])
def qubits(
    backend_id: BackendId,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    tz: Zone,
    at: Annotated[
        datetime | None,
        Query(description="the drift at this instant (a job's submitted_at); default now"),
    ] = None,
):
    """Per qubit and per coupling, with every controller command applied: T1 (TLS dips
    included), T2, readout p(1|0) and p(0|1), gate errors as configured and as applied
    (relaxation over the gate time is a floor), durations, detuning and amplitude error
    (drifted, drive correction applied, and before it), the drive correction and the
    drift multiplier, now or `at`. Without `min_position` it waits for the caller's own
    last command."""
    noise = request.app.state.twin.noise(db, project, backend_id, _since(at, tz))
    return {"backend_id": backend_id, **noise}


def _since(value: datetime | None, tz) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=tz)


@router.get("/events", dependencies=[ReadAfter])
def events(
    project: ProjectId,
    db: ReadModels,
    tz: Zone,
    backend_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    since_timestamp: datetime | None = None,
):
    """Job lifecycle events and controller commands, oldest first (the newest `limit`)."""
    found = q.events(db, project, backend_id, since=_since(since_timestamp, tz), limit=limit)
    return {"events": found, "count": len(found)}


@router.get("/events/stream")
async def stream(
    request: Request, project: ProjectId, db: ReadModels, backend_id: str | None = None
):
    """Server-Sent Events: each new twin event of the project as `data: {json}`."""
    runner = request.app.state.runner
    start = runner.position

    async def feed():
        seen = start
        yield ": connected\n\n"
        while not await request.is_disconnected():
            async with runner.changed:
                try:
                    await asyncio.wait_for(runner.changed.wait(), 15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
            fresh = await asyncio.to_thread(
                q.events, db, project, backend_id, after_position=seen, limit=1000
            )
            for e in fresh:
                seen = max(seen, e["position"])
                yield f"id: {e['position']}\nevent: {e['event_type']}\ndata: {orjson.dumps(e).decode()}\n\n"

    return StreamingResponse(feed(), media_type="text/event-stream")


@router.get("/loop", dependencies=[ReadAfter])
def loop(backend_id: BackendId, request: Request, project: ProjectId, db: ReadModels):
    """Cadence of the closed-loop controller: its policy_update commands."""
    request.app.state.twin.backend(db, project, backend_id)
    times = [
        c["timestamp"] for c in q.controller_commands(db, project, backend_id)
        if c["command_type"] == "policy_update"
    ]  # fmt: skip
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    return {
        "backend_id": backend_id,
        "count": len(times),
        "last_timestamp": times[-1].isoformat() if times else None,
        "interval_s": {
            "avg": statistics.fmean(gaps) if gaps else None,
            "min": min(gaps) if gaps else None,
            "max": max(gaps) if gaps else None,
        },
    }


@router.get("/trace/export", dependencies=[ReadAfter])
async def trace(
    job_id: str, request: Request, project: ProjectId, db: ReadModels, backend_id: str | None = None
):
    """Everything that shaped a job, to reproduce it: the controller state and config it
    ran under (as of the position it recorded), its lifecycle and metadata, and the
    seed of each circuit's counts."""
    row = await settled_job_row(request, db, project, job_id)
    if backend_id is not None and backend_id != row["backend_id"]:
        raise ApiError(
            Kind.NOT_FOUND, "job_not_found", f"job '{job_id}' did not run on '{backend_id}'"
        )
    return await asyncio.to_thread(_trace, request.app.state.twin, db, project, row)


def _trace(view, db, project: str, row: dict) -> dict:
    """The trace's reads (DuckDB, blocking): in a worker thread, off the event loop."""
    job_id, upto = row["job_id"], row["after_position"]
    # Controller commands accepted before the job's submission (its own position).
    state, applied, _ = view.state(db, project, row["backend_id"], upto=row["position"])
    files = view.files(db, project, upto=row["position"])
    return {
        "job": q.job_status(row),
        "ran_after_position": upto,
        "controller_state": {
            "commands_applied": applied,
            "scenario": state.scenario,
            "gate_error_multiplier": state.gate_multiplier,
            "readout_error_multiplier": state.readout_multiplier,
            "exec_time_scale": state.exec_time_scale,
            "drift_multiplier": state.policy.drift,
            "qubit_overrides": {str(k): v for k, v in state.qubit_overrides.items()},
            "drive_corrections": drive_corrections_view(state),
        },
        "config_digest": digest(files),
        "events": q.events(db, project, None, job_id=job_id, limit=10_000),
        "qec_points": q.qec_points(db, project, row["backend_id"], job_id),
        "results": q.job_result(row)["results"],
    }


@router.get("/scenario/compatibility", dependencies=[ReadAfter])
def scenario_compatibility(
    backend_id: BackendId, request: Request, project: ProjectId, db: ReadModels
):
    """Which keys of the active scenario the twin uses, and which it ignores."""
    view = request.app.state.twin
    backend = view.backend(db, project, backend_id)
    state, _, _ = view.state(db, project, backend_id)
    name = state.scenario or backend.default_scenario
    if name is None:
        return {"backend_id": backend_id, "scenario": None, "recognized": [], "ignored": []}
    scenario = backend.scenarios[name]
    return {
        "backend_id": backend_id,
        "scenario": name,
        "recognized": list(scenario.recognized),
        "ignored": list(scenario.ignored),
    }


def _decoder_point(metadata: dict, circuit_index: int) -> dict | None:
    """A decoder's own figures from job metadata (`qec_metrics`, optionally a list per
    circuit; `decoder_metrics` goes along as details)."""
    metrics = metadata.get("qec_metrics")
    if isinstance(metrics, list):
        metrics = metrics[circuit_index] if circuit_index < len(metrics) else None
    if not isinstance(metrics, dict) or "logical_error_rate" not in metrics:
        return None
    try:
        logical = float(metrics["logical_error_rate"])
        physical = float(metrics.get("physical_error_rate", 0.0))
        distance = metrics.get("code_distance")
        valid = (
            0 <= logical <= 1
            and 0 <= physical <= 1
            and (distance is None or (isinstance(distance, int) and distance >= 1))
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:  # a decoder's malformed figures: the twin's estimate instead
        return None
    return {
        "metric_source": "decoder",
        "logical_error_rate": logical,
        "physical_error_rate": physical,
        "code_distance": distance,
        "details": {"qec_metrics": metrics, "decoder_metrics": metadata.get("decoder_metrics")},
    }


def _heuristic_point(view, db, project: str, backend_id: str, distance: int) -> dict:
    backend = view.backend(db, project, backend_id)
    state, _, _ = view.state(db, project, backend_id)
    eff = effective_noise(backend, state, datetime.now().timestamp())
    physical = statistics.fmean(e.gate_error for e in eff.edges.values()) if eff.edges else 0.0
    return {
        "metric_source": "heuristic",
        "logical_error_rate": estimated_logical_error(physical, distance),
        "physical_error_rate": physical,
        "code_distance": distance,
        "details": {"model": "0.03 (p / 0.01)^((d + 1) / 2), p = mean two-qubit gate error"},
    }


@router.get("/qec", dependencies=[ReadAfter])
async def qec(
    backend_id: BackendId,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    job_id: str | None = None,
    circuit_index: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    code_distance: Annotated[int, Query(ge=2, le=51)] = 3,
):
    """A QEC point: the decoder's figures pushed as job metadata (`metric_source=decoder`),
    else the twin's estimate from the backend's noise now (`heuristic`). The point is
    stored when the caller may write to the twin (`persisted`); a viewer only reads it."""
    view = request.app.state.twin
    point = None
    if job_id is not None:
        row = await settled_job_row(request, db, project, job_id)
        if row["backend_id"] != backend_id:
            raise ApiError(
                Kind.NOT_FOUND, "job_not_found", f"job '{job_id}' did not run on '{backend_id}'"
            )
        point = _decoder_point(orjson.loads(row["metadata_json"]), circuit_index)
    if point is None:
        point = await asyncio.to_thread(_heuristic_point, view, db, project, backend_id,
                                        code_distance)  # fmt: skip
    command = RecordQecMetric(backend_id=backend_id, job_id=job_id, circuit_index=circuit_index,
                              **point)  # fmt: skip
    try:
        reply = await send_command(request, command, project, None)
        persisted, position = True, reply.position
    except ApiError as err:
        if err.kind is not Kind.FORBIDDEN:
            raise
        persisted, position = False, None
    return {"backend_id": backend_id, "job_id": job_id, "circuit_index": circuit_index,
            **point, "persisted": persisted, "position": position}  # fmt: skip


@router.get("/qec/history", dependencies=[ReadAfter])
async def qec_history(
    backend_id: BackendId,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    job_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
):
    """Every captured QEC point, oldest first (the newest `limit`)."""
    await wait_for_store_head(request)
    points = await asyncio.to_thread(q.qec_points, db, project, backend_id, job_id, limit)
    return {"backend_id": backend_id, "job_id": job_id, "points": points, "count": len(points)}


@router.get("/qec/summary", dependencies=[ReadAfter])
async def qec_summary(
    backend_id: BackendId,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    job_id: str | None = None,
):
    """The latest point and the average logical and physical error rates over all."""
    await wait_for_store_head(request)
    points = await asyncio.to_thread(q.qec_points, db, project, backend_id, job_id)
    return {
        "backend_id": backend_id,
        "job_id": job_id,
        "count": len(points),
        "latest": points[-1] if points else None,
        "avg_logical_error_rate": statistics.fmean(p["logical_error_rate"] for p in points)
        if points else None,
        "avg_physical_error_rate": statistics.fmean(p["physical_error_rate"] for p in points)
        if points else None,
    }  # fmt: skip
