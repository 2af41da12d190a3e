"""What a seed import recorded, read back for its answer: each imported value with the
task result (one per qubit) and the parameter version it belongs to."""

from __future__ import annotations

from typing import Any

import orjson

from projections.base import ViewReader
from projections.provenance import activity_id


def imported_values(db: ViewReader, project_id: str, execution_id: str) -> list[dict[str, Any]]:
    """One row per recorded value, in the order the import recorded them."""
    rows = db.rows(
        "SELECT qid, task_id, output_json FROM task_result"
        " WHERE project_id = ? AND execution_id = ? ORDER BY position",
        [project_id, execution_id],
    )
    return [
        {
            "parameter_name": name,
            "qid": r["qid"],
            "value": out["value"],
            "unit": out["unit"],
            "task_id": r["task_id"],
            # The version's entity id (domain.parameters.entity_id_for).
            "entity_id": f"{name}:{r['qid']}:{activity_id(execution_id, r['task_id'])}",
        }
        for r in rows
        for name, out in orjson.loads(r["output_json"]).items()
    ]
