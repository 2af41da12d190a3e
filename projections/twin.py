"""The twin's read models: jobs, the telemetry event log, controller commands and
config files, in the shapes of the digital-twin QPU API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from domain.errors import Kind
from projections.base import (
    Envelope,
    Projector,
    QueryError,
    Table,
    ViewReader,
    ViewTx,
    iso,
    to_json,
)
from projections.twin_qec import packed_word

JOB = Table(
    "twin_job",
    (
        ("project_id", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("backend_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("shots", "BIGINT"),
        ("num_circuits", "INTEGER"),
        ("metadata_json", "VARCHAR"),
        ("results_json", "VARCHAR"),
        ("error_code", "VARCHAR"),
        ("error_message", "VARCHAR"),
        ("run_ms", "DOUBLE"),
        ("after_position", "BIGINT"),
        ("submitted_at", "TIMESTAMPTZ"),
        ("started_at", "TIMESTAMPTZ"),
        ("finished_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),  # of the submission
        ("last_position", "BIGINT"),  # of the job's latest event: read after it
    ),
    (("project_id", "job_id"),),
)
EVENT = Table(
    "twin_event",
    (
        ("project_id", "VARCHAR"),
        ("backend_id", "VARCHAR"),
        ("event_type", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("payload_json", "VARCHAR"),
        ("occurred_at", "TIMESTAMPTZ"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
    (("project_id", "backend_id"), ("project_id", "job_id")),
)
CONFIG = Table(
    "twin_config",
    (
        ("project_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("content", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
)
QEC_METRIC = Table(
    "twin_qec_metric",
    (
        ("project_id", "VARCHAR"),
        ("backend_id", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("circuit_index", "INTEGER"),
        ("metric_source", "VARCHAR"),
        ("logical_error_rate", "DOUBLE"),
        ("physical_error_rate", "DOUBLE"),
        ("code_distance", "INTEGER"),
        ("details_json", "VARCHAR"),
        ("captured_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
    (("project_id", "backend_id"),),
)
EVENT_NAMES = {  # the reference's telemetry event types
    "twin.ControllerCommandApplied": "controller_command",
    "twin.JobSubmitted": "job_submitted",
    "twin.JobStarted": "job_started",
    "twin.JobCompleted": "job_completed",
    "twin.JobFailed": "job_failed",
    "twin.JobCancelled": "job_cancelled",
    "twin.JobMetadataAttached": "job_metadata",
    "twin.PulseScheduleStored": "pulse_schedule",
    "twin.ReadoutTaken": "readout",
    "twin.QecMetricCaptured": "qec_metric",
}
STATUS_AFTER = {
    "twin.JobStarted": "RUNNING",
    "twin.JobCompleted": "COMPLETED",
    "twin.JobFailed": "FAILED",
    "twin.JobCancelled": "CANCELLED",
}


class TwinProjector(Projector):
    name = "twin"
    handles = frozenset({*EVENT_NAMES, "twin.ConfigFileWritten"})
    tables = (JOB, EVENT, CONFIG, QEC_METRIC)

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        events, configs, jobs, metrics = [], [], [], []
        for env in batch:
            p, kind = env["payload"], env["type"]
            if kind == "twin.ConfigFileWritten":
                configs.append({
                    "project_id": env["project_id"], "path": p["path"], "content": p["content"],
                    "sha256": p["sha256"], "recorded_at": env["recorded_at"],
                    "position": env["position"],
                })  # fmt: skip
                continue
            events.append(_event_row(env))
            if kind == "twin.QecMetricCaptured":
                metrics.append({
                    **{k: p[k] for k in ("backend_id", "job_id", "circuit_index", "metric_source",
                       "logical_error_rate", "physical_error_rate", "code_distance")},
                    "project_id": env["project_id"], "details_json": to_json(p["details"]),
                    "captured_at": env["occurred_at"], "position": env["position"],
                })  # fmt: skip
                continue
            if kind == "twin.JobSubmitted":
                jobs.append({
                    "project_id": env["project_id"], "job_id": p["job_id"],
                    "backend_id": p["backend_id"], "status": "QUEUED", "shots": p["shots"],
                    "num_circuits": len(p["circuits"]), "metadata_json": to_json(p["metadata"]),
                    "after_position": p["after_position"], "submitted_at": env["occurred_at"],
                    "position": env["position"], "last_position": env["position"],
                })  # fmt: skip
                continue
            if kind in STATUS_AFTER or kind == "twin.JobMetadataAttached":
                # Job updates are rare next to inserts: flush the inserts first, keep order.
                tx.insert(JOB, jobs)
                jobs = []
                _update_job(kind, env, p, tx)
        tx.insert(JOB, jobs)
        tx.insert(EVENT, events)
        tx.insert(CONFIG, configs)
        tx.insert(QEC_METRIC, metrics)


def _event_row(env: Envelope) -> dict[str, Any]:
    p = env["payload"]
    payload = {k: v for k, v in p.items() if k not in ("results", "circuits")}
    return {
        "project_id": env["project_id"],
        "backend_id": p.get("backend_id"),
        "event_type": EVENT_NAMES[env["type"]],
        "job_id": p.get("job_id"),
        "payload_json": to_json(payload),
        "occurred_at": env["occurred_at"],
        "recorded_at": env["recorded_at"],
        "position": env["position"],
    }


def _update_job(kind: str, env: Envelope, p: dict[str, Any], tx: ViewTx) -> None:
    key = [env["project_id"], p["job_id"]]
    if kind == "twin.JobMetadataAttached":
        tx.execute(
            "UPDATE twin_job SET metadata_json = json_merge_patch(metadata_json, ?),"
            " last_position = ? WHERE project_id = ? AND job_id = ?",
            [to_json(p["metadata"]), env["position"], *key],
        )
    elif kind == "twin.JobStarted":
        tx.execute(
            "UPDATE twin_job SET status = 'RUNNING', started_at = ?::TIMESTAMPTZ,"
            " last_position = ? WHERE project_id = ? AND job_id = ?",
            [env["occurred_at"], env["position"], *key],
        )
    elif kind in STATUS_AFTER:
        tx.execute(
            "UPDATE twin_job SET status = ?, finished_at = ?::TIMESTAMPTZ, results_json = ?,"
            " run_ms = ?, error_code = ?, error_message = ?, last_position = ?"
            " WHERE project_id = ? AND job_id = ?",
            [
                STATUS_AFTER[kind],
                env["occurred_at"],
                to_json(p["results"]) if "results" in p else None,
                p.get("run_ms"),
                p.get("code"),
                p.get("message"),
                env["position"],
                *key,
            ],
        )


# -- queries -----------------------------------------------------------------------
def job_row(db: ViewReader, project_id: str, job_id: str) -> dict[str, Any]:
    rows = db.rows(
        "SELECT * FROM twin_job WHERE project_id = ? AND job_id = ?", [project_id, job_id]
    )
    if not rows:
        raise QueryError(Kind.NOT_FOUND, "job_not_found", f"job '{job_id}' does not exist")
    return rows[0]


def job_status(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "job_id": row["job_id"],
        "backend_id": row["backend_id"],
        "status": row["status"],
        "shots": row["shots"],
        "num_circuits": row["num_circuits"],
        "metadata": orjson.loads(row["metadata_json"]),
        "submitted_at": iso(row["submitted_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "run_ms": row["run_ms"],
        "position": row["last_position"],  # min_position for reads that must include it
    }
    if row["error_code"]:
        out["error"] = {"code": row["error_code"], "message": row["error_message"]}
    return out


def job_result(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "backend_id": row["backend_id"],
        "status": row["status"],
        "shots": row["shots"],
        "results": orjson.loads(row["results_json"] or "[]"),
        "position": row["last_position"],
    }


def job_counts(db: ViewReader, project_id: str) -> list[dict[str, Any]]:
    return db.rows(
        "SELECT backend_id, status, count(*) AS n,"
        " avg(epoch(started_at) - epoch(submitted_at)) AS queue_s,"
        " avg(epoch(finished_at) - epoch(started_at)) AS run_s"
        " FROM twin_job WHERE project_id = ? GROUP BY ALL",
        [project_id],
    )


def events(
    db: ViewReader,
    project_id: str,
    backend_id: str | None,
    *,
    since: datetime | None = None,
    limit: int = 100,
    job_id: str | None = None,
    after_position: int = 0,
) -> list[dict[str, Any]]:
    where, params = "project_id = ? AND position > ?", [project_id, after_position]
    if backend_id is not None:
        where += " AND backend_id = ?"
        params.append(backend_id)
    if job_id is not None:
        where += " AND job_id = ?"
        params.append(job_id)
    if since is not None:
        where += " AND occurred_at > ?"
        params.append(since)
    return [
        {
            "event_type": r["event_type"],
            "backend_id": r["backend_id"],
            "job_id": r["job_id"],
            "timestamp": iso(r["occurred_at"]),
            "position": r["position"],
            "payload": orjson.loads(r["payload_json"]),
        }
        for r in _newest(db, "twin_event", where, params, limit)
    ]


def _newest(db: ViewReader, table: str, where: str, params: list, limit: int) -> list[dict]:
    """The newest `limit` rows of `table` matching `where`, oldest first."""
    return db.rows(
        f"SELECT * FROM (SELECT * FROM {table} WHERE {where} ORDER BY position DESC"
        " LIMIT ?) ORDER BY position",
        [*params, limit],
    )


def controller_commands(
    db: ViewReader, project_id: str, backend_id: str, upto: int | None = None, after: int = 0
) -> list[dict[str, Any]]:
    """A backend's controller commands in order (to fold into its state)."""
    where = (
        "project_id = ? AND backend_id = ? AND event_type = 'controller_command' AND position > ?"
    )
    params: list[Any] = [project_id, backend_id, after]
    if upto is not None:
        where += " AND position <= ?"
        params.append(upto)
    rows = db.rows(
        f"SELECT payload_json, occurred_at, position FROM twin_event WHERE {where}"
        " ORDER BY position",
        params,
    )
    return [
        {
            **orjson.loads(r["payload_json"]),
            "timestamp": r["occurred_at"],
            "position": r["position"],
        }
        for r in rows
    ]


def written_files(db: ViewReader, project_id: str, upto: int | None = None) -> dict[str, str]:
    """The project's written config files (newest content per path), as of `upto`."""
    where, params = "project_id = ?", [project_id]
    if upto is not None:
        where += f" AND position <= {int(upto)}"
    rows = db.rows(
        f"SELECT path, arg_max(content, position) AS content FROM twin_config WHERE {where}"
        " GROUP BY path",
        params,
    )
    return {r["path"]: r["content"] for r in rows}


def readout_view(event: dict[str, Any], position: int) -> dict[str, Any]:
    """A ReadoutTaken event as the FPGA API returns it and the data plane publishes it."""
    outcomes = list(event["outcomes"])
    return {
        "backend_id": event["backend_id"],
        "schedule_id": event["schedule_id"],
        "round_index": event["round_index"],
        "n_qubits": len(outcomes),
        "outcomes": outcomes,
        "meas_data_packed": packed_word(outcomes),
        "position": position,
    }


def qec_points(
    db: ViewReader, project_id: str, backend_id: str, job_id: str | None, limit: int = 10_000
) -> list[dict[str, Any]]:
    """Captured QEC telemetry points, oldest first (the newest `limit`)."""
    where, params = "project_id = ? AND backend_id = ?", [project_id, backend_id]
    if job_id is not None:
        where += " AND job_id = ?"
        params.append(job_id)
    return [
        {
            "backend_id": r["backend_id"],
            "job_id": r["job_id"],
            "circuit_index": r["circuit_index"],
            "metric_source": r["metric_source"],
            "logical_error_rate": r["logical_error_rate"],
            "physical_error_rate": r["physical_error_rate"],
            "code_distance": r["code_distance"],
            "details": orjson.loads(r["details_json"]),
            "timestamp": iso(r["captured_at"]),
            "position": r["position"],
        }
        for r in _newest(db, "twin_qec_metric", where, params, limit)
    ]
