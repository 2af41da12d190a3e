"""Is the chip getting worse? Degradation trends (consecutive worsening under each metric's
evaluation mode) and policy violations of the current versions, as of a `Moment`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from domain.metrics import EvaluationMode, MetricCatalog, PolicyRule, Severity, check_policy
from projections.base import ViewReader, iso, utc
from projections.changes import delta
from projections.provenance import NOW, ROW, Moment

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
    where = f"parameter_name IN (SELECT unnest(?::VARCHAR[])) AND {col} >= ?"
    params: list[Any] = [names, min_streak]
    if chip_id:
        where += " AND chip_id = ?"
        params.append(chip_id)
    hits = db.rows(
        f"SELECT {ROW}, {col}, sig_span, since_ref FROM {source} WHERE {where}", [*sp, *params]
    )
    if not hits:
        return []
    # The streak's versions: a plain streak of n steps is the last n + 1; a significant
    # one also spans noise steps, which the trend counts (sig_span, since_ref).
    known, kp = at.known("v")
    lows = [
        h["version"] - (h["sig_span"] + h["since_ref"] if significance else h[col]) for h in hits
    ]
    history: dict[str, list[float]] = {}
    for r in db.rows(
        "SELECT v.series, v.value_num FROM parameter_version v JOIN (SELECT"
        " unnest(?::VARCHAR[]) AS series, unnest(?::INTEGER[]) AS low, unnest(?::INTEGER[])"
        " AS high) b ON v.series = b.series AND v.version BETWEEN b.low AND b.high"
        f" WHERE {known} ORDER BY v.series, v.version",
        [[h["series"] for h in hits], lows, [h["version"] for h in hits], *kp],
    ):
        history.setdefault(r["series"], []).append(r["value_num"])
    out = []
    for h in hits:
        values = history[h["series"]]
        total, pct = delta(values[-1], values[0])
        out.append(
            {
                "parameter_name": h["parameter_name"],
                "qid": h["qid"],
                "chip_id": h["chip_id"],
                "evaluation_mode": mode.value,
                "streak_count": h[col],
                "total_delta": total,
                "total_delta_percent": pct,
                "delta_per_step": total / h[col] if total is not None else None,
                "current_value": values[-1],
                "current_entity_id": h["entity_id"],
                "unit": h["unit"],
                "values": values,
                "valid_from": iso(h["valid_from"]),
            }
        )
    return out


def _candidates(by_param: dict[str, list[PolicyRule]], now: datetime) -> tuple[str, list[Any]]:
    """A SQL filter that keeps every version a rule could flag (non-strict, so a superset:
    `check_policy` decides), so only those rows are read into Python."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, rules in by_param.items():
        conds: list[str] = []
        values: list[Any] = [name]
        for rule in rules:
            if rule.min is not None:
                conds.append("value_num <= ?")
                values.append(rule.min)
            if rule.max is not None:
                conds.append("value_num >= ?")
                values.append(rule.max)
            if rule.staleness_hours is not None:
                conds.append("valid_from <= ?")
                values.append(now - timedelta(hours=rule.staleness_hours))
            if rule.uncertainty_ratio is not None:
                conds.append("abs(error) >= ? * abs(value_num)")
                values.append(rule.uncertainty_ratio)
        clauses.append(f"(parameter_name = ? AND ({' OR '.join(conds)}))")
        params += values
    return "(" + " OR ".join(clauses) + ")", params


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
    where, params = _candidates(by_param, at.now)
    if chip_id:
        where += " AND chip_id = ?"
        params.append(chip_id)
    if entity_ids is not None:
        where += (
            " AND series IN (SELECT series FROM parameter_version WHERE project_id = ?"
            " AND entity_id IN (SELECT unnest(?::VARCHAR[])))"
        )
        params += [project_id, entity_ids]
    rows = db.rows(f"SELECT {ROW} FROM {source} WHERE {where}", [*sp, *params])
    found = []
    for r in rows:
        value = orjson.loads(r["value_json"])
        for rule in by_param[r["parameter_name"]]:
            for v in check_policy(
                rule,
                value=value,
                error=r["error"],
                unit=r["unit"],
                valid_from=utc(r["valid_from"]),
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
