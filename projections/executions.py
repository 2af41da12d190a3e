"""Executions and their task results, shaped like the calibration platform's API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from projections.base import Envelope, Projector, Table, ViewReader, ViewTx, iso, to_json

EXECUTION = Table(
    "execution",
    (
        ("project_id", "VARCHAR"),
        ("execution_id", "VARCHAR"),
        ("chip_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("flow_name", "VARCHAR"),
        ("status", "VARCHAR"),
        ("message", "VARCHAR"),
        ("tags_json", "VARCHAR"),
        ("note_json", "VARCHAR"),
        ("start_at", "TIMESTAMPTZ"),
        ("end_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
        ("source_execution_id", "VARCHAR"),  # a re-execution: the run it repeats
    ),
    (("project_id", "execution_id"), ("project_id", "chip_id")),
)
TASK = Table(
    "task_result",
    (
        ("project_id", "VARCHAR"),
        ("task_id", "VARCHAR"),
        ("execution_id", "VARCHAR"),
        ("chip_id", "VARCHAR"),
        ("task_name", "VARCHAR"),
        ("task_type", "VARCHAR"),
        ("qid", "VARCHAR"),
        ("status", "VARCHAR"),
        ("message", "VARCHAR"),
        ("input_json", "VARCHAR"),
        ("output_json", "VARCHAR"),
        ("run_json", "VARCHAR"),
        ("figures_json", "VARCHAR"),
        ("json_figures_json", "VARCHAR"),
        ("start_at", "TIMESTAMPTZ"),
        ("end_at", "TIMESTAMPTZ"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
        ("source_task_id", "VARCHAR"),  # the task result this one repeats
    ),
    (("project_id", "task_id"), ("project_id", "execution_id"), ("task_id",)),
)

# Which project's task results name a figure: a team may download only its own figures.
FIGURE = Table(
    "task_figure",
    (("project_id", "VARCHAR"), ("name", "VARCHAR"), ("task_id", "VARCHAR")),
    (("project_id", "name"),),
)


class ExecutionProjector(Projector):
    name = "executions"
    handles = frozenset(
        {
            "calibration.ExecutionStarted",
            "calibration.CalibrationDispatched",
            "calibration.TaskResultRecorded",
            "calibration.ExecutionFinished",
        }
    )
    tables = (EXECUTION, TASK, FIGURE)
    schema_version = 4  # 3: figure names; 4: re-executions

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        tasks = []
        figures = []
        for env in batch:
            p, kind = env["payload"], env["type"]
            if kind == "calibration.TaskResultRecorded":
                figures += [
                    {"project_id": env["project_id"], "name": name, "task_id": p["task_id"]}
                    for name in (*p.get("figure_path", ()), *p.get("json_figure_path", ()))
                ]
                tasks.append(
                    {
                        "project_id": env["project_id"],
                        "task_id": p["task_id"],
                        "execution_id": p["execution_id"],
                        "chip_id": p["chip_id"],
                        "task_name": p["task_name"],
                        "task_type": p["task_type"],
                        "qid": p["qid"],
                        "status": p["status"],
                        "message": p["message"],
                        "input_json": to_json(p["input_parameters"]),
                        "output_json": to_json(p["output_parameters"]),
                        "run_json": to_json(p["run_parameters"]),
                        # Version-1 events (before figures) are published as stored.
                        "figures_json": to_json(p.get("figure_path", [])),
                        "json_figures_json": to_json(p.get("json_figure_path", [])),
                        "start_at": p["start_at"],
                        "end_at": p["end_at"],
                        "recorded_at": env["recorded_at"],
                        "position": env["position"],
                        "source_task_id": _text(p["run_parameters"].get("source_task_id")),
                    }
                )
                continue
            # Starts and ends are rare; apply them in order, after the tasks before them.
            tx.insert(TASK, tasks)
            tasks = []
            if kind == "calibration.ExecutionStarted":
                tx.insert(
                    EXECUTION,
                    [
                        {
                            "project_id": env["project_id"],
                            "execution_id": p["execution_id"],
                            "chip_id": p["chip_id"],
                            "name": p["name"],
                            "flow_name": p["flow_name"],
                            "status": "running",
                            "message": "",
                            "tags_json": to_json(p["tags"]),
                            "note_json": to_json(p["note"]),
                            "start_at": env["occurred_at"],
                            "position": env["position"],
                            "source_execution_id": None,
                        }
                    ],
                )
            elif kind == "calibration.CalibrationDispatched":
                if p.get("source_execution_id"):
                    tx.execute(
                        "UPDATE execution SET source_execution_id = ? WHERE project_id = ?"
                        " AND execution_id = ?",
                        [p["source_execution_id"], env["project_id"], p["execution_id"]],
                    )
            else:
                tx.execute(
                    "UPDATE execution SET status = ?, message = ?, end_at = ?"
                    " WHERE project_id = ? AND execution_id = ?",
                    [
                        p["status"],
                        p["message"],
                        env["occurred_at"],
                        env["project_id"],
                        p["execution_id"],
                    ],
                )
        tx.insert(TASK, tasks)
        tx.insert(FIGURE, figures)


def _text(value: Any) -> str | None:
    """A client may put anything in run_parameters: only a string names a source (one
    row of another type would fail the whole batch's column, and stall every view)."""
    return value if isinstance(value, str) else None


# -- queries -----------------------------------------------------------------------
def _elapsed(start: datetime | None, end: datetime | None) -> str | None:
    return str(end - start) if start and end else None


def _execution_summary(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"],
        "execution_id": r["execution_id"],
        "status": r["status"],
        "start_at": iso(r["start_at"]),
        "end_at": iso(r["end_at"]),
        "elapsed_time": _elapsed(r["start_at"], r["end_at"]),
        "tags": orjson.loads(r["tags_json"]),
        "note": orjson.loads(r["note_json"]),
    }


def list_executions(db: ViewReader, project_id: str, chip_id: str, *, skip: int, limit: int):
    where = "project_id = ? AND chip_id = ?"
    total = db.rows(f"SELECT count(*) AS n FROM execution WHERE {where}", [project_id, chip_id])[0][
        "n"
    ]
    rows = db.rows(
        f"SELECT * FROM execution WHERE {where} ORDER BY start_at DESC, execution_id LIMIT ? OFFSET ?",
        [project_id, chip_id, limit, skip],
    )
    return {
        "executions": [_execution_summary(r) for r in rows],
        "total": total,
        "skip": skip,
        "limit": limit,
    }


FIGURE_URL = "/api/figures/"


def figure_paths(names_json: str | None) -> list[str]:
    """Where a client fetches each figure: an API path, never a server file path."""
    return [FIGURE_URL + name for name in orjson.loads(names_json or "[]")]


def task_entry(t: dict[str, Any]) -> dict[str, Any]:
    outputs = orjson.loads(t["output_json"])
    return {
        "task_id": t["task_id"],
        "qid": t["qid"],
        "name": t["task_name"],
        "upstream_id": None,
        "status": t["status"],
        "message": t["message"],
        "input_parameters": orjson.loads(t["input_json"]),
        "output_parameters": outputs,
        "output_parameter_names": list(outputs),
        "run_parameters": orjson.loads(t["run_json"]),
        "note": {},
        "figure_path": figure_paths(t["figures_json"]),
        "json_figure_path": figure_paths(t["json_figures_json"]),
        "raw_data_path": [],
        "start_at": iso(t["start_at"]),
        "end_at": iso(t["end_at"]),
        "elapsed_time": _elapsed(t["start_at"], t["end_at"]),
        "task_type": t["task_type"],
        "default_view": True,
    }


def unknown_figures(db: ViewReader, project_id: str, names: Sequence[str]) -> list[str]:
    """The names no task result of the project refers to, in the order given."""
    rows = db.rows(
        "SELECT DISTINCT name FROM task_figure WHERE project_id = ? AND name IN"
        f" ({', '.join('?' * len(names))})",
        [project_id, *names],
    )
    known = {r["name"] for r in rows}
    return [n for n in names if n not in known]


def get_execution(db: ViewReader, project_id: str, execution_id: str) -> dict[str, Any] | None:
    rows = db.rows(
        "SELECT * FROM execution WHERE project_id = ? AND execution_id = ?",
        [project_id, execution_id],
    )
    if not rows:
        return None
    r = rows[0]
    tasks = db.rows(
        "SELECT * FROM task_result WHERE project_id = ? AND execution_id = ? ORDER BY position",
        [project_id, execution_id],
    )
    summary = _execution_summary(r)
    return {
        "name": r["name"],
        "status": r["status"],
        "flow_name": r["flow_name"],
        "start_at": summary["start_at"],
        "end_at": summary["end_at"],
        "elapsed_time": summary["elapsed_time"],
        "task": [task_entry(t) for t in tasks],
        "note": summary["note"],
        "tags": summary["tags"],
        "chip_id": r["chip_id"],
        "message": r["message"] or "",  # qledger's: how it ended (a run's results and times)
        "source_execution_id": r["source_execution_id"],
        "re_executions": _re_executions(
            db, project_id, "execution", "execution_id", "source_execution_id", execution_id
        ),  # fmt: skip
    }


def _re_executions(db: ViewReader, project_id: str, table: str, key: str, source: str, of: str):
    """The ids of the runs (or task results) that repeated this one, oldest first."""
    rows = db.rows(
        f"SELECT {key} FROM {table} WHERE project_id = ? AND {source} = ? ORDER BY position",
        [project_id, of],
    )
    return [r[key] for r in rows]


def get_task_result(db: ViewReader, project_id: str, task_id: str) -> dict[str, Any] | None:
    rows = db.rows(
        "SELECT t.*, e.flow_name, e.tags_json FROM task_result t JOIN execution e"
        " ON e.project_id = t.project_id AND e.execution_id = t.execution_id"
        " WHERE t.project_id = ? AND t.task_id = ? ORDER BY t.position LIMIT 1",
        [project_id, task_id],
    )
    if not rows:
        return None
    t = rows[0]
    return {
        "task_id": t["task_id"],
        "task_name": t["task_name"],
        "qid": t["qid"],
        "status": t["status"],
        "execution_id": t["execution_id"],
        "flow_name": t["flow_name"],
        "figure_path": figure_paths(t["figures_json"]),
        "json_figure_path": figure_paths(t["json_figures_json"]),
        "input_parameters": orjson.loads(t["input_json"]),
        "output_parameters": orjson.loads(t["output_json"]),
        "run_parameters": orjson.loads(t["run_json"]),
        "tags": orjson.loads(t["tags_json"]),
        "source_task_id": t["source_task_id"],
        "re_executions": _re_executions(
            db, project_id, "task_result", "task_id", "source_task_id", task_id
        ),  # fmt: skip
        "start_at": iso(t["start_at"]),
        "end_at": iso(t["end_at"]),
        "elapsed_time": _elapsed(t["start_at"], t["end_at"]),
    }
