"""The calibration note of the reference's API. qledger keeps no notes apart from
executions: an execution's `note` is its calibration note, so the note now is the one
of the newest execution that has one."""

from __future__ import annotations

from typing import Any

import orjson

from projections.base import ViewReader, iso


def latest_note(db: ViewReader, project_id: str, chip_id: str | None) -> dict[str, Any] | None:
    where, params = "project_id = ? AND note_json <> '{}'", [project_id]
    if chip_id is not None:
        where += " AND chip_id = ?"
        params.append(chip_id)
    rows = db.rows(
        "SELECT execution_id, chip_id, note_json, start_at FROM execution"
        f" WHERE {where} ORDER BY position DESC LIMIT 1",
        params,
    )
    if not rows:
        return None
    r = rows[0]
    return {
        "execution_id": r["execution_id"],
        "chip_id": r["chip_id"],
        "note": orjson.loads(r["note_json"]),
        "timestamp": iso(r["start_at"]),
    }
