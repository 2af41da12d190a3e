"""Is the chip getting worse? Degradation trends (consecutive worsening under each metric's
evaluation mode) and policy violations of the current versions, as of a `Moment`."""

from __future__ import annotations

from typing import Any

import orjson

from domain.metrics import EvaluationMode, MetricCatalog, PolicyRule, Severity, check_policy
from projections.base import ViewReader, iso
from projections.changes import delta
from projections.provenance import NOW, Moment

# The per-version trend column that counts worsening steps under each mode.
_WORSENING = {
    (EvaluationMode.MAXIMIZE, False): "falls",
    (EvaluationMode.MAXIMIZE, True): "sig_falls",
    (EvaluationMode.MINIMIZE, False): "rises",
    (EvaluationMode.MINIMIZE, True): "sig_rises",
}


def degradation_trends(
    db: ViewReader,
    project_id: str,
    catalog: MetricCatalog,
    *,
    min_streak: int,
    limit: int,
    parameter_names: list[str] | None = None,
    chip_id: str | None = None,
    significance: bool = False,
    at: Moment = NOW,
) -> dict[str, Any]:
    """Series whose newest versions worsened `min_streak` times or more in a row, the
    steepest (largest total change in percent) first. Series are per chip."""
    trends: list[dict[str, Any]] = []
    for mode in (EvaluationMode.MAXIMIZE, EvaluationMode.MINIMIZE):
        names = [
            k
            for k, m in catalog.metrics.items()
            if m.evaluation is mode and (not parameter_names or k in parameter_names)
        ]
        if names:
            trends += _worsening(db, project_id, names, mode, min_streak, chip_id, significance, at)
    trends.sort(key=lambda t: (-abs(t["total_delta_percent"] or 0), t["parameter_name"], t["qid"]))
    return {"trends": trends[:limit], "total_count": len(trends)}


def _worsening(db, project_id, names, mode, min_streak, chip_id, significance, at):
    col = _WORSENING[(mode, significance)]
    source, sp = at.current(project_id)
    known, kp = at.known("v")
    where, params = f"parameter_name IN (SELECT unnest(?::VARCHAR[])) AND {col} >= ?", [names, min_streak]  # fmt: skip
    if chip_id:
        where += " AND chip_id = ?"
        params.append(chip_id)
    # The streak starts at the newest version (at or before the current one) whose
    # counter was 0; with significance, at a significant value (its own reference).
    start_cond = f"v.{col} = 0" + (" AND v.value_num = v.sig_ref" if significance else "")
    rows = db.rows(
        f"WITH hit AS (SELECT * FROM {source} WHERE {where}),"
        " start AS (SELECT v.series, max(v.version) AS first FROM parameter_version v"
        f" JOIN hit h ON v.series = h.series AND v.version <= h.version WHERE {start_cond}"
        f" AND {known} GROUP BY v.series)"
        " SELECT h.series, h.parameter_name, h.qid, h.chip_id, h.unit, h.entity_id,"
        f" h.valid_from, h.{col} AS streak,"
        " list(v.value_num ORDER BY v.version) AS vals FROM hit h JOIN start s USING (series)"
        " JOIN parameter_version v ON v.series = h.series AND v.version BETWEEN s.first"
        " AND h.version GROUP BY ALL",
        [*sp, *params, *kp],
    )
    out = []
    for r in rows:
        values = r["vals"]
        total, pct = delta(values[-1], values[0])
        out.append(
            {
                "parameter_name": r["parameter_name"],
                "qid": r["qid"],
                "chip_id": r["chip_id"],
                "evaluation_mode": mode.value,
                "streak_count": r["streak"],
                "total_delta": total,
                "total_delta_percent": pct,
                "delta_per_step": total / r["streak"] if total is not None else None,
                "current_value": values[-1],
                "current_entity_id": r["entity_id"],
                "unit": r["unit"],
                "values": values,
                "valid_from": iso(r["valid_from"]),
            }
        )
    return out


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARN: 1, Severity.INFO: 2}


def policy_violations(
    db: ViewReader,
    project_id: str,
    rules: tuple[PolicyRule, ...],
    *,
    limit: int,
    severity: Severity | None = None,
    parameter_names: list[str] | None = None,
    chip_id: str | None = None,
    entity_ids: list[str] | None = None,
    at: Moment = NOW,
) -> dict[str, Any]:
    """Policy checks on the current version of every series (of those `entity_ids`'
    series when given), evaluated at the query's moment."""
    by_param: dict[str, list[PolicyRule]] = {}
    for rule in rules:
        if severity is None or rule.severity == severity:
            if not parameter_names or rule.parameter in parameter_names:
                by_param.setdefault(rule.parameter, []).append(rule)
    if not by_param or entity_ids == []:
        return {"violations": [], "total_count": 0}
    source, sp = at.current(project_id)
    where = "parameter_name IN (SELECT unnest(?::VARCHAR[]))"
    params: list[Any] = [list(by_param)]
    if chip_id:
        where += " AND chip_id = ?"
        params.append(chip_id)
    if entity_ids is not None:
        where += (
            " AND series IN (SELECT series FROM parameter_version WHERE project_id = ?"
            " AND entity_id IN (SELECT unnest(?::VARCHAR[])))"
        )
        params += [project_id, entity_ids]
    rows = db.rows(f"SELECT * FROM {source} WHERE {where}", [*sp, *params])
    found = []
    for r in rows:
        value = orjson.loads(r["value_json"])
        for rule in by_param[r["parameter_name"]]:
            for v in check_policy(
                rule,
                value=value,
                error=r["error"],
                unit=r["unit"],
                valid_from=r["valid_from"],
                now=at.now,
            ):
                found.append(
                    {
                        "entity_id": r["entity_id"],
                        "parameter_name": r["parameter_name"],
                        "qid": r["qid"],
                        "chip_id": r["chip_id"],
                        "value": value,
                        "unit": r["unit"],
                        "error": r["error"],
                        "valid_from": iso(r["valid_from"]),
                        "severity": v.severity.value,
                        "check_type": v.check_type,
                        "message": v.message,
                        "warn_threshold": v.threshold,
                        "measured": v.measured,
                    }
                )
    found.sort(
        key=lambda v: (
            _SEVERITY_ORDER[Severity(v["severity"])],
            v["parameter_name"],
            v["chip_id"],
            v["qid"],
            v["check_type"],
        )
    )
    return {"violations": found[:limit], "total_count": len(found)}
