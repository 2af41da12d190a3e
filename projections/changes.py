"""What changed: provenance statistics, recent executions, recent changes with their delta,
and two executions compared. All read the provenance tables, as of a `Moment`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from domain.errors import Kind
from projections.base import QueryError, ViewReader, iso
from projections.provenance import NOW, ROW, Moment, version_dict


def delta(after: Any, before: Any) -> tuple[float | None, float | None]:
    """(after - before, that in percent of |before|) for numbers; (None, None) otherwise."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (after, before))
    if not numbers:
        return None, None
    d = after - before
    return d, (d / abs(before) * 100 if before else None)


def stats(db: ViewReader, project_id: str, at: Moment = NOW) -> dict[str, Any]:
    known, kp = at.known()
    rel_known, rp = ("recorded_at <= ?", [at.as_of]) if at.as_of else ("TRUE", [])
    counts = {
        r["relation"]: r["n"]
        for r in db.rows(
            "SELECT relation, count(*) AS n FROM prov_relation"
            f" WHERE project_id = ? AND {rel_known} GROUP BY relation",
            [project_id, *rp],
        )
    }
    # Every task result is an activity (one that failed or read and wrote nothing too).
    activities = db.rows(
        f"SELECT count(*) AS n FROM task_result WHERE project_id = ? AND {rel_known}",
        [project_id, *rp],
    )[0]["n"]
    entities = db.rows(
        f"SELECT count(*) AS n FROM parameter_version WHERE project_id = ? AND {known}",
        [project_id, *kp],
    )[0]["n"]
    recent = db.rows(
        f"SELECT {ROW} FROM parameter_version WHERE project_id = ? AND {known}"
        " ORDER BY parameter_version.valid_from DESC, position DESC LIMIT 10",
        [project_id, *kp],
    )
    return {
        "total_entities": entities,
        "total_activities": activities,
        "total_relations": sum(counts.values()),
        "relation_counts": counts,
        "recent_entities": [version_dict(r) for r in recent],
    }


def recent_executions(
    db: ViewReader, project_id: str, *, limit: int, at: Moment = NOW
) -> dict[str, Any]:
    known, kp = at.known()
    rows = db.rows(
        "SELECT execution_id, max(valid_from)::TIMESTAMP AS valid_from FROM parameter_version"
        f" WHERE project_id = ? AND {known} GROUP BY execution_id"
        " ORDER BY valid_from DESC, execution_id LIMIT ?",
        [project_id, *kp, limit],
    )
    return {
        "executions": [
            {"execution_id": r["execution_id"], "valid_from": iso(r["valid_from"])} for r in rows
        ]
    }


def recent_changes(
    db: ViewReader,
    project_id: str,
    *,
    limit: int,
    within_hours: int,
    parameter_names: list[str] | None,
    at: Moment = NOW,
) -> dict[str, Any]:
    """Versions that replaced an earlier one within the window, newest first."""
    known, kp = at.known("v")
    where = f"v.project_id = ? AND v.version > 1 AND v.valid_from >= ? AND {known}"
    params: list[Any] = [project_id, at.now - timedelta(hours=within_hours), *kp]
    if parameter_names:
        where += " AND list_contains(?, v.parameter_name)"
        params.append(parameter_names)
    source = (
        "FROM parameter_version v JOIN parameter_version p"
        f" ON p.series = v.series AND p.version = v.version - 1 WHERE {where}"
    )
    total = db.rows(f"SELECT count(*) AS n {source}", params)[0]["n"]
    rows = db.rows(
        "SELECT v.entity_id, v.parameter_name, v.qid, v.chip_id, v.value_json, v.unit,"
        " v.version, v.valid_from::TIMESTAMP AS valid_from, v.task_name, v.execution_id, v.error,"
        f" p.value_json AS previous_json, p.error AS previous_error {source}"
        " ORDER BY v.valid_from DESC, v.position DESC LIMIT ?",
        [*params, limit],
    )
    changes = []
    for r in rows:
        value, previous = orjson.loads(r["value_json"]), orjson.loads(r["previous_json"])
        d, pct = delta(value, previous)
        changes.append(
            {
                "entity_id": r["entity_id"],
                "parameter_name": r["parameter_name"],
                "qid": r["qid"],
                "chip_id": r["chip_id"],
                "value": value,
                "previous_value": previous,
                "unit": r["unit"],
                "delta": d,
                "delta_percent": pct,
                "version": r["version"],
                "valid_from": iso(r["valid_from"]),
                "task_name": r["task_name"],
                "execution_id": r["execution_id"],
                "error": r["error"],
                "previous_error": r["previous_error"],
            }
        )
    return {"changes": changes, "total_count": total}


def _execution_values(
    db: ViewReader, project_id: str, execution_id: str, at: Moment
) -> dict[tuple[str, str], Any]:
    """{(parameter_name, qid): value} an execution produced (its last value of each)."""
    if not db.rows(
        "SELECT 1 FROM execution WHERE project_id = ? AND execution_id = ?",
        [project_id, execution_id],
    ):
        raise QueryError(Kind.NOT_FOUND, "not_found", f"execution '{execution_id}' not found")
    known, kp = at.known()
    rows = db.rows(
        "SELECT parameter_name, qid, value_json FROM parameter_version"
        f" WHERE project_id = ? AND execution_id = ? AND {known}"
        " QUALIFY row_number() OVER (PARTITION BY series ORDER BY version DESC) = 1",
        [project_id, execution_id, *kp],
    )
    return {(r["parameter_name"], r["qid"]): orjson.loads(r["value_json"]) for r in rows}


def compare_executions(
    db: ViewReader, project_id: str, before_id: str, after_id: str, at: Moment = NOW
) -> dict[str, Any]:
    before = _execution_values(db, project_id, before_id, at)
    after = _execution_values(db, project_id, after_id, at)

    def item(key: tuple[str, str]) -> dict[str, Any]:
        b, a = before.get(key), after.get(key)
        d, pct = delta(a, b) if key in before and key in after else (None, None)
        return {
            "parameter_name": key[0],
            "qid": key[1],
            "value_before": b,
            "value_after": a,
            "delta": d,
            "delta_percent": pct,
        }

    both = before.keys() & after.keys()
    changed = sorted(k for k in both if before[k] != after[k])
    return {
        "execution_id_before": before_id,
        "execution_id_after": after_id,
        "added_parameters": [item(k) for k in sorted(after.keys() - before.keys())],
        "removed_parameters": [item(k) for k in sorted(before.keys() - after.keys())],
        "changed_parameters": [item(k) for k in changed],
        "unchanged_count": len(both) - len(changed),
    }
