"""Digital-twin core and config endpoints (under /api/v1/digital-twin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from adapters.http.deps import (
    IdempotencyKey,
    ProjectId,
    ReadAfter,
    ReadModels,
    ReadOwnWrites,
    TwinProject,
    send_command,
)
from adapters.http.errors import ApiError
from adapters.http.twin_jobs import PREFIX
from commands.twin import WriteTwinConfig
from domain.errors import Kind
from projections import twin as q
from twin.device import Backend

router = APIRouter(prefix=PREFIX, tags=["twin core"])
config = APIRouter(prefix=PREFIX, tags=["twin config"])


@router.get("/health")
def health():
    return {"status": "healthy", "timestamp": datetime.now(UTC).isoformat()}


def _summary(b: Backend) -> dict:
    return {
        "backend_id": b.backend_id,
        "name": b.backend_id,
        "description": b.description,
        "status": "online",
        "num_qubits": b.device.num_qubits,
        "basis_gates": list(b.device.basis_gates),
        "coupling_map": [list(e) for e in b.device.coupling_map],
        "limits": {
            "max_shots": b.limits.max_shots,
            "max_circuits_per_job": b.limits.max_circuits_per_job,
        },
    }


@router.get("/backends", dependencies=[ReadAfter])
def list_backends(request: Request, project: ProjectId, db: ReadModels):
    backends = request.app.state.twin.backends(db, project)
    return {"backends": [_summary(b) for b in backends.values()]}


@router.get("/backends/{backend_id}", dependencies=[ReadOwnWrites])
def get_backend(backend_id: str, request: Request, project: ProjectId, db: ReadModels):
    view = request.app.state.twin
    b = view.backend(db, project, backend_id)
    state, _, _ = view.state(db, project, backend_id)
    return {
        **_summary(b),
        "qubit_positions": [
            {"qubit": i, "x": x, "y": y} for i, (x, y) in enumerate(b.device.positions)
        ],
        "limits": vars(b.limits),
        "scenario": state.scenario or b.default_scenario,
        "scenarios": sorted(b.scenarios),
        # What a job submitted now runs under (every controller command, drift and
        # relaxation limit applied): before, only the raw YAML said so.
        "noise": view.noise(db, project, backend_id),
    }


def _blank() -> dict:
    return {"queue_depth": 0, "running_jobs": 0, "completed_jobs": 0, "failed_jobs": 0,
            "cancelled_jobs": 0, "avg_queue_latency_s": None, "avg_run_latency_s": None}  # fmt: skip


def _metrics(request: Request, project: str, db) -> dict[str, dict]:
    out = {b: _blank() for b in request.app.state.twin.backends(db, project)}
    names = {"QUEUED": "queue_depth", "RUNNING": "running_jobs", "COMPLETED": "completed_jobs",
             "FAILED": "failed_jobs", "CANCELLED": "cancelled_jobs"}  # fmt: skip
    for r in q.job_counts(db, project):
        m = out.setdefault(r["backend_id"], _blank())
        m[names[r["status"]]] = r["n"]
        if r["status"] == "COMPLETED":
            m["avg_queue_latency_s"] = r["queue_s"]
            m["avg_run_latency_s"] = r["run_s"]
    return out


@router.get("/metrics", dependencies=[ReadAfter])
def metrics(request: Request, project: ProjectId, db: ReadModels):
    """Per backend: queue depth, running / completed / failed jobs, average latencies."""
    return {"timestamp": datetime.now(UTC).isoformat(), "backends": _metrics(request, project, db)}


@router.get("/metrics/prometheus", dependencies=[ReadAfter])
def metrics_prometheus(request: Request, project: ProjectId, db: ReadModels):
    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for backend_id, m in _metrics(request, project, db).items():
        for name, value in m.items():
            if value is None:
                continue
            if name not in gauges:
                gauges[name] = Gauge(f"qledger_twin_{name}", name.replace("_", " "),
                                     ["backend_id"], registry=registry)  # fmt: skip
            gauges[name].labels(backend_id=backend_id).set(value)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# -- config ---------------------------------------------------------------------------
class ConfigWrite(BaseModel):
    path: str
    content: str


def _read_only(request: Request) -> None:
    if request.app.state.twin_config_read_only:
        raise ApiError(
            Kind.NOT_SUPPORTED,
            "config_read_only",
            "this deployment's twin configuration is read-only",
        )


@config.get("/config", dependencies=[ReadAfter])
def list_config(request: Request, project: ProjectId, db: ReadModels):
    files = request.app.state.twin.files(db, project)
    writable = not request.app.state.twin_config_read_only
    return {
        "files": [{"path": p, "writable": writable} for p in sorted(files)],
        "writable": writable,
    }


@config.get("/config/content", dependencies=[ReadAfter])
def read_config(
    path: Annotated[str, Query(description="relative to the config directory")],
    request: Request,
    project: ProjectId,
    db: ReadModels,
):
    files = request.app.state.twin.files(db, project)
    if path not in files:
        raise ApiError(Kind.NOT_FOUND, "config_file_not_found", f"no config file '{path}'")
    return {"path": path, "content": files[path]}


@config.put("/config/content")
async def write_config(
    body: ConfigWrite,
    request: Request,
    project: TwinProject,
    idempotency_key: IdempotencyKey = None,
):
    """Validated with every other file before it is accepted (422 names the file and
    line; the file is unchanged). The write is an event carrying the whole new content."""
    _read_only(request)
    reply = await send_command(
        request, WriteTwinConfig(path=body.path, content=body.content), project, idempotency_key
    )
    return {"path": body.path, "status": "written", "position": reply.position}
