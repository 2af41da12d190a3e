"""Parameter versions and their PROV relations (used / wasGeneratedBy / wasDerivedFrom).

Every version row also carries the series' trend up to it (domain.metrics.Trend), and
`parameter_current` keeps the newest version of each series, so "the chip now" and "which
series are degrading" read one row per series instead of folding history per query.
Time travel reads the version table with `Moment.known` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.errors import Kind
from domain.metrics import Trend, next_trend
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

_VERSION_COLUMNS = (
    ("project_id", "VARCHAR"),
    ("chip_id", "VARCHAR"),
    ("qid", "VARCHAR"),
    ("parameter_name", "VARCHAR"),
    ("series", "VARCHAR"),  # project, chip, qid and parameter in one join key
    ("version", "INTEGER"),
    ("entity_id", "VARCHAR"),
    ("value_json", "VARCHAR"),
    ("value_type", "VARCHAR"),
    ("value_num", "DOUBLE"),  # the value when it is a number (not a bool), else NULL
    ("unit", "VARCHAR"),
    ("error", "DOUBLE"),
    ("valid_from", "TIMESTAMPTZ"),  # valid_until = the next version's valid_from
    ("recorded_at", "TIMESTAMPTZ"),  # when the store accepted it: what `as_of` compares
    ("execution_id", "VARCHAR"),
    ("task_id", "VARCHAR"),
    ("task_name", "VARCHAR"),
    ("position", "BIGINT"),
    ("rises", "INTEGER"),
    ("falls", "INTEGER"),
    ("sig_rises", "INTEGER"),
    ("sig_falls", "INTEGER"),
    ("sig_ref", "DOUBLE"),
    ("sig_ref_error", "DOUBLE"),
    ("sig_span", "INTEGER"),
    ("since_ref", "INTEGER"),
)
# Single-column indexes: DuckDB answers an equality or IN-list lookup from an ART index
# only on one column; compound ones were scans (4 ms instead of 1 ms at 36k versions).
VERSION = Table("parameter_version", _VERSION_COLUMNS, (("entity_id",), ("series",)))
CURRENT = Table("parameter_current", _VERSION_COLUMNS, (("series",),))
RELATION = Table(
    "prov_relation",
    (
        ("project_id", "VARCHAR"),
        ("relation", "VARCHAR"),  # used | wasGeneratedBy | wasDerivedFrom
        ("subject", "VARCHAR"),
        ("object", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
    # No index: traversals run on the in-memory graph, which reads this table by position
    # (insert order, so DuckDB's zone maps find the new rows); indexes only slow inserts.
)
# Every exclusion mark, append-only: a task's newest mark known at a moment decides
# whether best and average metrics leave its versions out then.
EXCLUSION = Table(
    "task_exclusion",
    (
        ("project_id", "VARCHAR"),
        ("activity", "VARCHAR"),  # execution_id:task_id
        ("excluded", "BOOLEAN"),
        ("reason", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
)


def activity_id(execution_id: str, task_id: str) -> str:
    return f"{execution_id}:{task_id}"


def series_key(project_id: str, chip_id: str, qid: str, parameter_name: str) -> str:
    return "\x1f".join((project_id, chip_id, qid, parameter_name))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


TREND_COLUMNS = (
    "value_num, rises, falls, sig_rises, sig_falls, sig_ref, sig_ref_error, sig_span, since_ref"
)


def _trend_of(row: dict[str, Any]) -> Trend:
    return Trend(
        value=row["value_num"],
        rises=row["rises"],
        falls=row["falls"],
        sig_rises=row["sig_rises"],
        sig_falls=row["sig_falls"],
        ref=row["sig_ref"],
        ref_error=row["sig_ref_error"],
        sig_span=row["sig_span"],
        since_ref=row["since_ref"],
    )


class ProvenanceProjector(Projector):
    name = "provenance"
    handles = frozenset(
        {
            "calibration.ParameterVersionRecorded",
            "calibration.TaskResultRecorded",
            "calibration.TaskResultExclusionSet",
        }
    )
    tables = (VERSION, CURRENT, RELATION, EXCLUSION)
    schema_version = 6  # 6: exclusion marks

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        versions: list[dict[str, Any]] = []
        relations: list[dict[str, Any]] = []
        exclusions: list[dict[str, Any]] = []
        for env in batch:
            p = env["payload"]
            rel = {
                "project_id": env["project_id"],
                "recorded_at": env["recorded_at"],
                "position": env["position"],
            }
            activity = activity_id(p["execution_id"], p["task_id"])
            if env["type"] == "calibration.TaskResultExclusionSet":
                exclusions.append(
                    {**rel, "activity": activity, "excluded": p["excluded"], "reason": p["reason"]}
                )
                continue
            if env["type"] == "calibration.TaskResultRecorded":
                relations.extend(
                    {**rel, "relation": "used", "subject": activity, "object": u} for u in p["used"]
                )
                continue
            versions.append(_version_row(env))
            relations.append(
                {**rel, "relation": "wasGeneratedBy", "subject": p["entity_id"], "object": activity}
            )
            relations.extend(
                {**rel, "relation": "wasDerivedFrom", "subject": p["entity_id"], "object": u}
                for u in p["used"]
            )
        self._fold_trends(versions, tx)
        # Insert-only: a version's valid_until is derived from its successor when read,
        # so a new version never rewrites (or scans for) the one it supersedes.
        tx.insert(VERSION, versions)
        tx.insert(RELATION, relations)
        tx.insert(EXCLUSION, exclusions)

    def _fold_trends(self, versions: list[dict[str, Any]], tx: ViewTx) -> None:
        """Give each version its series' trend, and move `parameter_current` on."""
        if not versions:
            return
        keys = list({v["series"] for v in versions})
        last = {
            r["series"]: _trend_of(r)
            for r in tx.rows(
                # Only the trend: the other columns (two timestamps among them) would cost
                # more to convert than the rest of the batch's work.
                f"SELECT series, {TREND_COLUMNS} FROM parameter_current"
                " WHERE series IN (SELECT unnest(?::VARCHAR[]))",
                [keys],
            )
        }
        newest: dict[str, dict[str, Any]] = {}
        for v in versions:  # in position order, so in version order within a series
            t = next_trend(last.get(v["series"]), v["value_num"], v["error"])
            last[v["series"]] = t
            v.update(
                rises=t.rises,
                falls=t.falls,
                sig_rises=t.sig_rises,
                sig_falls=t.sig_falls,
                sig_ref=t.ref,
                sig_ref_error=t.ref_error,
                sig_span=t.sig_span,
                since_ref=t.since_ref,
            )
            newest[v["series"]] = v
        tx.execute(
            "DELETE FROM parameter_current WHERE series IN (SELECT unnest(?::VARCHAR[]))", [keys]
        )
        tx.insert(CURRENT, list(newest.values()))


def _version_row(env: Envelope) -> dict[str, Any]:
    p = env["payload"]
    return {
        "project_id": env["project_id"],
        "chip_id": p["chip_id"],
        "qid": p["qid"],
        "parameter_name": p["parameter_name"],
        "series": series_key(env["project_id"], p["chip_id"], p["qid"], p["parameter_name"]),
        "version": p["version"],
        "entity_id": p["entity_id"],
        "value_json": to_json(p["value"]),
        "value_type": p["value_type"],
        "value_num": _number(p["value"]),
        "unit": p["unit"],
        "error": p["error"],
        "valid_from": p["valid_from"],
        "recorded_at": env["recorded_at"],
        "execution_id": p["execution_id"],
        "task_id": p["task_id"],
        "task_name": p["task_name"],
        "position": env["position"],
    }


# -- time travel ---------------------------------------------------------------------
@dataclass(frozen=True)
class Moment:
    """The instant a query answers for: `as_of`, or now.

    A version belongs to the lab's state at `as_of` when the store had accepted it by then
    (`recorded_at`) and it was already measured (`valid_from`): exactly what a dashboard
    could have shown at that instant."""

    as_of: datetime | None = None

    @property
    def now(self) -> datetime:
        return self.as_of or datetime.now(UTC)

    def known(self, alias: str = "") -> tuple[str, list[Any]]:
        """SQL predicate (and its parameters) for versions known at this moment."""
        if self.as_of is None:
            return "TRUE", []
        a = f"{alias}." if alias else ""
        return f"{a}recorded_at <= ? AND {a}valid_from <= ?", [self.as_of, self.as_of]

    def not_excluded(self, project_id: str) -> tuple[str, list[Any]]:
        """SQL predicate on a version row: its task was not excluded at this moment."""
        known = "TRUE" if self.as_of is None else "recorded_at <= ?"
        return (
            "execution_id || ':' || task_id NOT IN (SELECT activity FROM task_exclusion"
            f" WHERE project_id = ? AND {known} GROUP BY activity"
            " HAVING arg_max(excluded, position))",
            [project_id, *([self.as_of] if self.as_of is not None else [])],
        )

    def current(self, project_id: str) -> tuple[str, list[Any]]:
        """A FROM-clause source with the newest known version of each series."""
        if self.as_of is None:
            return "(SELECT * FROM parameter_current WHERE project_id = ?)", [project_id]
        pred, params = self.known()
        return (
            f"(SELECT * FROM parameter_version WHERE project_id = ? AND {pred}"
            " QUALIFY row_number() OVER (PARTITION BY series ORDER BY version DESC) = 1)",
            [project_id, *params],
        )


NOW = Moment()

# -- queries -----------------------------------------------------------------------
VERSION_COLUMNS = (
    "entity_id, parameter_name, qid, value_json, value_type, unit, error, version,"
    " execution_id, task_id, task_name, project_id, chip_id"
)
# What queries select of a version row: the response's columns, the series key, and
# valid_from as naive UTC (see projections.base.utc).
ROW = f"{VERSION_COLUMNS}, series, valid_from::TIMESTAMP AS valid_from"


def version_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A version as the reference's ParameterVersionResponse shows it."""
    out = {c: row[c] for c in VERSION_COLUMNS.replace(" ", "").split(",") if c != "value_json"}
    out["value"] = orjson.loads(row["value_json"])
    out["valid_from"] = iso(row["valid_from"])
    out["valid_until"] = iso(row.get("valid_until"))
    return out


def versions_by_id(
    db: ViewReader, project_id: str, entity_ids: list[str], at: Moment = NOW
) -> dict[str, dict[str, Any]]:
    """{entity_id: version row with valid_until and the series' latest_version} for the
    ids known at `at` (unknown ones are left out). Two index lookups: the versions, then
    the versions of their series (for successors and the latest one)."""
    if not entity_ids:
        return {}
    known, kp = at.known()
    hits = db.rows(
        f"SELECT {ROW} FROM parameter_version WHERE entity_id IN (SELECT unnest(?::VARCHAR[]))"
        f" AND project_id = ? AND {known}",
        [entity_ids, project_id, *kp],
    )
    if not hits:
        return {}
    steps: dict[str, dict[int, Any]] = {}
    for r in db.rows(
        "SELECT series, version, valid_from::TIMESTAMP AS valid_from FROM parameter_version"
        f" WHERE series IN (SELECT unnest(?::VARCHAR[])) AND {known}",
        [list({h["series"] for h in hits}), *kp],
    ):
        steps.setdefault(r["series"], {})[r["version"]] = r["valid_from"]
    out = {}
    for h in hits:
        series = steps[h["series"]]
        h["valid_until"] = series.get(h["version"] + 1)
        h["latest_version"] = max(series)
        out[h["entity_id"]] = h
    return out


def get_entity(
    db: ViewReader, project_id: str, entity_id: str, at: Moment = NOW
) -> dict[str, Any] | None:
    found = versions_by_id(db, project_id, [entity_id], at).get(entity_id)
    return version_dict(found) if found else None


def resolve_chip(
    db: ViewReader, project_id: str, qid: str, chip_id: str | None, parameter_name: str | None
) -> str | None:
    """The chip a qid-only question means. Two chips may both have a `Q00`; their values
    must never be mixed, so an ambiguous question is refused rather than answered."""
    if chip_id:
        return chip_id
    where, params = "project_id = ? AND qid = ?", [project_id, qid]
    if parameter_name:
        where += " AND parameter_name = ?"
        params.append(parameter_name)
    chips = [r["chip_id"] for r in db.rows(f"SELECT DISTINCT chip_id FROM parameter_current WHERE {where} ORDER BY 1", params)]  # fmt: skip
    if len(chips) > 1:
        raise QueryError(
            Kind.INVALID,
            "ambiguous_qid",
            f"qid '{qid}' has versions on chips {', '.join(chips)}; pass chip_id",
        )
    return chips[0] if chips else None


def parameter_history(
    db: ViewReader,
    project_id: str,
    parameter_name: str,
    qid: str,
    *,
    limit: int,
    chip_id: str | None,
    at: Moment = NOW,
) -> dict[str, Any]:
    chip = resolve_chip(db, project_id, qid, chip_id, parameter_name)
    known, kp = at.known()
    series = series_key(project_id, chip or "", qid, parameter_name)
    total = db.rows(
        f"SELECT count(*) AS n FROM parameter_version WHERE series = ? AND {known}", [series, *kp]
    )[0]["n"]
    rows = db.rows(
        f"SELECT {ROW}, lead(valid_from::TIMESTAMP) OVER (ORDER BY version) AS valid_until"
        f" FROM parameter_version WHERE series = ? AND {known}"
        " ORDER BY version DESC LIMIT ?",
        [series, *kp, limit],
    )
    return {
        "parameter_name": parameter_name,
        "qid": qid,
        "chip_id": chip,
        "versions": [version_dict(r) for r in rows],
        "total_versions": total,
    }


def current_parameters(
    db: ViewReader, project_id: str, chip_id: str, qids: list[str]
) -> dict[str, dict[str, Any]]:
    """{qid: {parameter_name: current version}} for the given qubits or couplings."""
    if not qids:
        return {}
    rows = db.rows(
        "SELECT qid, parameter_name, value_json, unit, error, version, entity_id,"
        " valid_from::TIMESTAMP AS valid_from,"
        " execution_id, task_id FROM parameter_current"
        " WHERE project_id = ? AND chip_id = ? AND list_contains(?, qid)",
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
