"""The task files projects wrote: every version, so the latest of each file and each
file's history are both one query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.base import Envelope, Projector, Table, ViewReader, ViewTx, iso

TASK_FILE = Table(
    "task_file",
    (
        ("project_id", "VARCHAR"),
        ("path", "VARCHAR"),  # "<backend>/<path in its directory>"
        ("content", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("size", "BIGINT"),  # bytes of UTF-8
        ("actor", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
    (("project_id", "path"),),
)


class TaskFilesProjector(Projector):
    name = "task_files"
    handles = frozenset({"task_files.TaskFileWritten"})
    tables = (TASK_FILE,)

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        tx.insert(
            TASK_FILE,
            [
                {
                    "project_id": env["project_id"],
                    "path": env["payload"]["path"],
                    "content": env["payload"]["content"],
                    "sha256": env["payload"]["sha256"],
                    "size": len(env["payload"]["content"].encode()),
                    "actor": env["actor"],
                    "recorded_at": env["recorded_at"],
                    "position": env["position"],
                }
                for env in batch
            ],
        )


def _version(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "recorded_at": iso(row["recorded_at"])}


def latest(db: ViewReader, project_id: str) -> dict[str, dict[str, Any]]:
    """Full path -> the file's latest written version (content, sha256, size, actor,
    recorded_at, position)."""
    rows = db.rows(
        "SELECT path, content, sha256, size, actor, recorded_at, position FROM task_file"
        " WHERE project_id = ?"
        " QUALIFY row_number() OVER (PARTITION BY path ORDER BY position DESC) = 1",
        [project_id],
    )
    return {r["path"]: _version(r) for r in rows}


def history(db: ViewReader, project_id: str, path: str) -> list[dict[str, Any]]:
    """Every written version of one file, newest first, without their content."""
    rows = db.rows(
        "SELECT sha256, size, actor, recorded_at, position FROM task_file"
        " WHERE project_id = ? AND path = ? ORDER BY position DESC",
        [project_id, path],
    )
    return [_version(r) for r in rows]


def version(db: ViewReader, project_id: str, path: str, position: int) -> dict[str, Any] | None:
    """The version of one file written at `position`, with its content."""
    rows = db.rows(
        "SELECT path, content, sha256, size, actor, recorded_at, position FROM task_file"
        " WHERE project_id = ? AND path = ? AND position = ?",
        [project_id, path, position],
    )
    return _version(rows[0]) if rows else None
