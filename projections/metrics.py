"""Chip metrics for dashboards: per-qubit and per-coupling values of the metrics in
metrics.yaml (latest, best or average), heatmaps, summaries and metric histories.

All read the provenance tables, so they are as of a `Moment` like every other query, and
only ever see values of completed tasks (a failed task records no parameter version).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from domain.errors import Kind
from domain.metrics import EvaluationMode, MetricCatalog, MetricDefinition
from projections.base import QueryError, ViewReader, iso, utc
from projections.provenance import NOW, Moment


def metric_or_404(catalog: MetricCatalog, metric: str) -> MetricDefinition:
    found = catalog.metrics.get(metric)
    if found is None:
        known = ", ".join(sorted(catalog.metrics))
        raise QueryError(
            Kind.NOT_FOUND, "unknown_metric", f"unknown metric '{metric}'; known metrics: {known}"
        )
    return found


def metrics_config(catalog: MetricCatalog) -> dict[str, Any]:
    """metrics.yaml as the dashboard reads it."""

    def one(m: MetricDefinition) -> dict[str, Any]:
        return {
            "title": m.title,
            "unit": m.unit,
            "scale": m.scale,
            "description": m.description,
            "evaluation": {"mode": m.evaluation.value},
            "thresholds": m.thresholds,
        }

    return {
        "qubit_metrics": {k: one(m) for k, m in catalog.of("qubit").items()},
        "coupling_metrics": {k: one(m) for k, m in catalog.of("coupling").items()},
        "color_scale": catalog.color_scale,
    }


def _window(at: Moment, within_hours: int | None, alias: str = "") -> tuple[str, list[Any]]:
    known, kp = at.known(alias)
    if within_hours is None:
        return known, kp
    a = f"{alias}." if alias else ""
    return f"{known} AND {a}valid_from >= ?", [*kp, at.now - timedelta(hours=within_hours)]


def chip_metrics(
    db: ViewReader,
    project_id: str,
    chip_id: str,
    catalog: MetricCatalog,
    *,
    selection_mode: str,
    within_hours: int | None,
    at: Moment = NOW,
) -> dict[str, Any]:
    """{qubit_metrics: {metric: {qid: {...}}}, coupling_metrics: ...} for one chip.

    latest: the current version; best: the best value under the metric's evaluation mode
    (the latest for mode none); average: mean, standard deviation and count; neither
    counts results excluded by then (latest is the record as it stands). With
    `within_hours`, only versions measured in that window (before `as_of`) count."""
    names = list(catalog.metrics)
    if selection_mode == "latest":
        # The newest version inside a window is the current one, if that lies in it.
        source, args = at.current(project_id)
        where = "TRUE"
        if within_hours is not None:
            where, args = "valid_from >= ?", [*args, at.now - timedelta(hours=within_hours)]
    else:
        # Best and average leave out results someone excluded (failed tasks have none).
        source, args = "parameter_version", []
        where, params = _window(at, within_hours)
        kept, kept_args = at.not_excluded(project_id)
        where = f"project_id = ? AND {where} AND {kept}"
        args = [project_id, *params, *kept_args]
    base = (
        f"FROM {source} WHERE {where} AND chip_id = ?"
        " AND parameter_name IN (SELECT unnest(?::VARCHAR[]))"
    )
    args += [chip_id, names]
    # {target: {metric: {qid: item}}}; for latest and best, each metric's items arrive as
    # one pre-encoded JSON object (orjson.Fragment), written as is by the HTTP layer.
    series: dict[str, dict[str, Any]] = {"qubit": {}, "coupling": {}}
    if selection_mode == "average":
        rows = db.rows(
            "SELECT parameter_name, qid, avg(value_num) AS value, stddev_samp(value_num) AS"
            f" stddev, count(value_num) AS count, any_value(unit) AS unit {base}"
            " AND value_num IS NOT NULL GROUP BY parameter_name, qid",
            args,
        )
        for r in rows:
            target = catalog.metrics[r["parameter_name"]].target
            series[target].setdefault(r["parameter_name"], {})[r["qid"]] = {
                "value": r["value"], "stddev": r["stddev"], "count": r["count"], "unit": r["unit"],
            }  # fmt: skip
    else:
        columns = (
            "parameter_name, qid, value_num, value_type, value_json, error, unit, version,"
            " entity_id, valid_from::TIMESTAMP AS valid_from, execution_id, task_id"
        )
        if selection_mode == "latest":
            picked, picked_args = f"SELECT {columns} {base}", args
        else:
            # The best version of each series under its metric's evaluation mode: an
            # arg_max aggregate (hashing, no sort) picks its rowid; mode none, or a tie,
            # keeps the newest. Only the picked rows are then read whole (carrying every
            # column through the aggregate cost 1.5x as much).
            score = (
                "(CASE WHEN list_contains(?, parameter_name) THEN value_num"
                " WHEN list_contains(?, parameter_name) THEN -value_num END)"
            )
            picked = (
                f"SELECT {columns} FROM parameter_version WHERE rowid IN (SELECT arg_max(rowid,"
                f" struct_pack(s := coalesce({score}, '-inf'::DOUBLE), v := version))"
                f" {base} GROUP BY series)"
            )
            picked_args = [
                [k for k in names if catalog.mode(k) is EvaluationMode.MAXIMIZE],
                [k for k in names if catalog.mode(k) is EvaluationMode.MINIMIZE],
                *args,
            ]
        # One JSON object per metric, built by DuckDB: making Python objects of ~3,000
        # rows and encoding them again was most of this answer's time. Doubles print
        # in their shortest round-trip form, as orjson would.
        rows = db.rows(
            f"SELECT parameter_name, json_group_object(qid, json_object({ITEM_JSON}))::VARCHAR"
            f" AS items FROM ({picked}) GROUP BY parameter_name",
            picked_args,
        )
        for r in rows:
            target = catalog.metrics[r["parameter_name"]].target
            series[target][r["parameter_name"]] = orjson.Fragment(r["items"])
    return {
        "chip_id": chip_id,
        "qubit_count": _qubit_count(db, project_id, chip_id),
        "within_hours": within_hours,
        "selection_mode": selection_mode,
        "qubit_metrics": series["qubit"],
        "coupling_metrics": series["coupling"],
    }


# A version as the chip-metrics answer shows it, as DuckDB JSON. `calibrated_at` is
# written as Python's isoformat() would: microseconds only when there are any, "+00:00".
ITEM_JSON = (
    "'value', CASE WHEN value_num IS NULL THEN value_json::JSON"
    " WHEN value_type = 'int' THEN to_json(CAST(value_num AS BIGINT)) ELSE to_json(value_num) END,"
    " 'error', error, 'unit', unit, 'version', version, 'entity_id', entity_id,"
    " 'calibrated_at', strftime(valid_from, '%Y-%m-%dT%H:%M:%S')"
    " || CASE WHEN epoch_us(valid_from) % 1000000 = 0 THEN ''"
    " ELSE '.' || lpad(CAST(epoch_us(valid_from) % 1000000 AS VARCHAR), 6, '0') END"
    " || '+00:00',"
    " 'execution_id', execution_id, 'task_id', task_id"
)


def _qubit_count(db: ViewReader, project_id: str, chip_id: str) -> int:
    rows = db.rows(
        "SELECT qubit_count FROM chip WHERE project_id = ? AND chip_id = ?", [project_id, chip_id]
    )
    if not rows:
        raise QueryError(Kind.NOT_FOUND, "not_found", f"chip '{chip_id}' not found")
    return rows[0]["qubit_count"]


def heatmap(
    db: ViewReader,
    project_id: str,
    chip_id: str,
    metric: MetricDefinition,
    at: Moment = NOW,
) -> dict[str, Any]:
    """The current value of one metric on every qubit (or coupling) of a chip."""
    _qubit_count(db, project_id, chip_id)
    source, sp = at.current(project_id)
    rows = db.rows(
        f"SELECT qid, value_json FROM {source} WHERE chip_id = ? AND parameter_name = ?",
        [*sp, chip_id, metric.key],
    )
    return {
        "chip_id": chip_id,
        "metric": metric.key,
        "values": {r["qid"]: orjson.loads(r["value_json"]) for r in rows},
        "unit": metric.unit,
    }


def summary(
    db: ViewReader, project_id: str, chip_id: str, catalog: MetricCatalog, at: Moment = NOW
) -> dict[str, Any]:
    """Mean of the current values of each metric over the chip (with how many)."""
    qubits = _qubit_count(db, project_id, chip_id)
    source, sp = at.current(project_id)
    rows = db.rows(
        f"SELECT parameter_name, avg(value_num) AS mean, count(value_num) AS n FROM {source}"
        " WHERE chip_id = ? AND parameter_name IN (SELECT unnest(?::VARCHAR[]))"
        " GROUP BY parameter_name",
        [*sp, chip_id, list(catalog.metrics)],
    )
    return {
        "chip_id": chip_id,
        "qubit_count": qubits,
        "averages": {r["parameter_name"]: r["mean"] for r in rows},
        "counts": {r["parameter_name"]: r["n"] for r in rows},
    }


def metric_history(
    db: ViewReader,
    project_id: str,
    chip_id: str,
    qid: str,
    metric: MetricDefinition,
    *,
    limit: int | None,
    within_days: int | None,
    at: Moment = NOW,
) -> dict[str, Any]:
    """Every value of one metric of one qubit or coupling, newest first, with the task
    that produced it (for its figures) and that task's inputs and outputs."""
    _qubit_count(db, project_id, chip_id)
    where, params = _window(at, within_days * 24 if within_days else None, "v")
    rows = db.rows(
        "SELECT value_json, execution_id, task_id, task_name,"
        " valid_from::TIMESTAMP AS valid_from FROM parameter_version v"
        f" WHERE series = ? AND {where} ORDER BY version DESC LIMIT ?",
        [
            "\x1f".join((project_id, chip_id, qid, metric.key)),
            *params,
            limit if limit is not None else 2**31 - 1,
        ],
    )
    # The producing tasks' inputs and outputs: a second lookup by task id (indexed), not
    # a join that would scan every task result of the project.
    tasks = {
        (t["execution_id"], t["task_id"]): t
        for t in db.rows(
            "SELECT execution_id, task_id, input_json, output_json FROM task_result"
            " WHERE task_id IN (SELECT unnest(?::VARCHAR[])) AND project_id = ?",
            [list({r["task_id"] for r in rows}), project_id],
        )
    }
    history = []
    for r in rows:
        task = tasks.get((r["execution_id"], r["task_id"]), {})
        history.append(
            {
                "value": orjson.loads(r["value_json"]),
                "execution_id": r["execution_id"],
                "task_id": r["task_id"],
                "timestamp": iso(r["valid_from"]),  # when the task ended
                "calibrated_at": iso(r["valid_from"]),
                "name": r["task_name"],
                "input_parameters": orjson.loads(task.get("input_json") or "{}"),
                "output_parameters": orjson.loads(task.get("output_json") or "{}"),
            }
        )
    return {"chip_id": chip_id, "qid": qid, "metric_name": metric.key, "history": history}


def chip_dates(db: ViewReader, project_id: str, chip_id: str, zone: ZoneInfo) -> dict[str, Any]:
    """The days (YYYYMMDD in `zone`) on which the chip had executions, newest first."""
    _qubit_count(db, project_id, chip_id)
    rows = db.rows(
        "SELECT DISTINCT start_at::TIMESTAMP AS started FROM execution"
        " WHERE project_id = ? AND chip_id = ?",
        [project_id, chip_id],
    )
    days = {iso_day(r["started"], zone) for r in rows if r["started"] is not None}
    return {"data": sorted(days, reverse=True)}


def iso_day(moment: datetime, zone: ZoneInfo) -> str:
    return utc(moment).astimezone(zone).strftime("%Y%m%d")
