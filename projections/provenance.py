"""Parameter versions and their PROV relations (used / wasGeneratedBy / wasDerivedFrom)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.base import Envelope, Projector, Table, ViewReader, ViewTx, iso, to_json

VERSION = Table(
    "parameter_version",
    (
        ("project_id", "VARCHAR"),
        ("chip_id", "VARCHAR"),
        ("qid", "VARCHAR"),
        ("parameter_name", "VARCHAR"),
        ("version", "INTEGER"),
        ("entity_id", "VARCHAR"),
        ("value_json", "VARCHAR"),
        ("value_type", "VARCHAR"),
        ("unit", "VARCHAR"),
        ("error", "DOUBLE"),
        ("valid_from", "TIMESTAMPTZ"),  # valid_until = the next version's valid_from
        ("execution_id", "VARCHAR"),
        ("task_id", "VARCHAR"),
        ("task_name", "VARCHAR"),
        ("position", "BIGINT"),
    ),
    (("project_id", "entity_id"), ("project_id", "chip_id", "qid", "parameter_name")),
)
RELATION = Table(
    "prov_relation",
    (
        ("project_id", "VARCHAR"),
        ("relation", "VARCHAR"),  # used | wasGeneratedBy | wasDerivedFrom
        ("subject", "VARCHAR"),
        ("object", "VARCHAR"),
        ("position", "BIGINT"),
    ),
    (("project_id", "subject"), ("project_id", "object")),
)


def activity_id(execution_id: str, task_id: str) -> str:
    return f"{execution_id}:{task_id}"


class ProvenanceProjector(Projector):
    name = "provenance"
    handles = frozenset({"calibration.ParameterVersionRecorded", "calibration.TaskResultRecorded"})
    tables = (VERSION, RELATION)

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        versions: list[dict[str, Any]] = []
        relations: list[dict[str, Any]] = []
        for env in batch:
            p, rel = env["payload"], {"project_id": env["project_id"], "position": env["position"]}
            activity = activity_id(p["execution_id"], p["task_id"])
            if env["type"] == "calibration.TaskResultRecorded":
                relations.extend(
                    {**rel, "relation": "used", "subject": activity, "object": u} for u in p["used"]
                )
                continue
            versions.append(
                {
                    "project_id": env["project_id"],
                    "chip_id": p["chip_id"],
                    "qid": p["qid"],
                    "parameter_name": p["parameter_name"],
                    "version": p["version"],
                    "entity_id": p["entity_id"],
                    "value_json": to_json(p["value"]),
                    "value_type": p["value_type"],
                    "unit": p["unit"],
                    "error": p["error"],
                    "valid_from": p["valid_from"],
                    "execution_id": p["execution_id"],
                    "task_id": p["task_id"],
                    "task_name": p["task_name"],
                    "position": env["position"],
                }
            )
            relations.append(
                {**rel, "relation": "wasGeneratedBy", "subject": p["entity_id"], "object": activity}
            )
            relations.extend(
                {**rel, "relation": "wasDerivedFrom", "subject": p["entity_id"], "object": u}
                for u in p["used"]
            )
        # Insert-only: a version's valid_until is derived from its successor when read,
        # so a new version never rewrites (or scans for) the one it supersedes.
        tx.insert(VERSION, versions)
        tx.insert(RELATION, relations)


# -- queries -----------------------------------------------------------------------
VERSION_COLUMNS = (
    "entity_id, parameter_name, qid, value_json, value_type, unit, error, version, valid_from,"
    " execution_id, task_id, task_name, project_id, chip_id"
)
# valid_until of each version in a series: when the next version became valid.
VALID_UNTIL = (
    "lead(valid_from) OVER (PARTITION BY project_id, chip_id, qid, parameter_name"
    " ORDER BY version) AS valid_until"
)


def _version_dict(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["value"] = orjson.loads(out.pop("value_json"))
    out["valid_from"] = iso(out["valid_from"])
    out["valid_until"] = iso(out["valid_until"])
    return out


def get_entity(db: ViewReader, project_id: str, entity_id: str) -> dict[str, Any] | None:
    rows = db.rows(
        f"SELECT {VERSION_COLUMNS} FROM parameter_version WHERE project_id = ? AND entity_id = ?",
        [project_id, entity_id],
    )
    if not rows:
        return None
    row = rows[0]
    successor = db.rows(
        "SELECT valid_from FROM parameter_version WHERE project_id = ? AND chip_id = ?"
        " AND qid = ? AND parameter_name = ? AND version = ?",
        [project_id, row["chip_id"], row["qid"], row["parameter_name"], row["version"] + 1],
    )
    return _version_dict({**row, "valid_until": successor[0]["valid_from"] if successor else None})


def parameter_history(
    db: ViewReader,
    project_id: str,
    parameter_name: str,
    qid: str,
    *,
    limit: int,
    chip_id: str | None,
) -> dict[str, Any]:
    where = "project_id = ? AND parameter_name = ? AND qid = ?"
    params: list[Any] = [project_id, parameter_name, qid]
    if chip_id:
        where += " AND chip_id = ?"
        params.append(chip_id)
    total = db.rows(f"SELECT count(*) AS n FROM parameter_version WHERE {where}", params)[0]["n"]
    rows = db.rows(
        f"SELECT {VERSION_COLUMNS}, {VALID_UNTIL} FROM parameter_version WHERE {where}"
        " ORDER BY valid_from DESC, version DESC LIMIT ?",
        [*params, limit],
    )
    return {
        "parameter_name": parameter_name,
        "qid": qid,
        "versions": [_version_dict(r) for r in rows],
        "total_versions": total,
    }


def current_parameters(
    db: ViewReader, project_id: str, chip_id: str, qids: list[str]
) -> dict[str, dict[str, Any]]:
    """{qid: {parameter_name: current version}} for the given qubits or couplings."""
    if not qids:
        return {}
    rows = db.rows(
        "SELECT qid, parameter_name, value_json, unit, error, version, entity_id, valid_from,"
        " execution_id, task_id FROM parameter_version"
        " WHERE project_id = ? AND chip_id = ? AND list_contains(?, qid)"
        " QUALIFY row_number() OVER (PARTITION BY qid, parameter_name ORDER BY version DESC) = 1",
        [project_id, chip_id, qids],
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["qid"], {})[r["parameter_name"]] = {
            "value": orjson.loads(r["value_json"]),
            "unit": r["unit"],
            "error": r["error"],
            "version": r["version"],
            "entity_id": r["entity_id"],
            "calibrated_at": iso(r["valid_from"]),
            "execution_id": r["execution_id"],
            "task_id": r["task_id"],
        }
    return out
