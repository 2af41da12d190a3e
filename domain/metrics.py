"""What the lab means by a good value: metric definitions (from metrics.yaml) and policy
rules (from policy.yaml), and the pure rules that read values against them.

Values are compared in the unit they were recorded in; `scale` only changes how a
dashboard shows them (display value = stored value * scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EvaluationMode(StrEnum):
    MAXIMIZE = "maximize"  # larger is better (T1, fidelities)
    MINIMIZE = "minimize"  # smaller is better (errors, ZZ interaction)
    NONE = "none"  # no better or worse (frequencies)


@dataclass(frozen=True, kw_only=True)
class MetricDefinition:
    key: str  # the parameter name, e.g. "t1"
    target: str  # "qubit" | "coupling"
    title: str
    unit: str
    scale: float = 1.0
    evaluation: EvaluationMode = EvaluationMode.NONE
    description: str = ""
    # Display thresholds in stored units, e.g. {"good": 50.0, "bad": 20.0}.
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricCatalog:
    metrics: dict[str, MetricDefinition]
    color_scale: dict[str, object] = field(default_factory=dict)

    def mode(self, parameter_name: str) -> EvaluationMode:
        found = self.metrics.get(parameter_name)
        return found.evaluation if found else EvaluationMode.NONE

    def of(self, target: str) -> dict[str, MetricDefinition]:
        return {k: m for k, m in self.metrics.items() if m.target == target}


def is_better(mode: EvaluationMode, candidate: float, incumbent: float) -> bool:
    if mode is EvaluationMode.MAXIMIZE:
        return candidate > incumbent
    if mode is EvaluationMode.MINIMIZE:
        return candidate < incumbent
    return False


def is_worse(mode: EvaluationMode, after: float, before: float) -> bool:
    return is_better(mode, before, after)


def combined_error(a: float | None, b: float | None) -> float:
    """Standard error of a difference of two independent measurements (0 when unknown)."""
    return math.hypot(a or 0.0, b or 0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Trend:
    """Consecutive rises and falls of a series, ending at one version.

    Folded version by version (`next_trend`), so a read model can store it with each
    version and answer "which series are degrading" without re-reading their history.
    `sig_*` count only significant steps: a step smaller than the combined error of its
    two ends is noise; it neither extends nor breaks a streak, and the next step is
    measured from `ref`, the last significant value."""

    value: float | None = None
    rises: int = 0
    falls: int = 0
    sig_rises: int = 0
    sig_falls: int = 0
    ref: float | None = None
    ref_error: float | None = None
    # Versions from the start of the significant streak to the last significant value,
    # and noise versions after it: the streak's values are the last sig_span + since_ref
    # + 1 versions, so a reader fetches exactly those.
    sig_span: int = 0
    since_ref: int = 0

    def worsening(self, mode: EvaluationMode, *, significance: bool) -> int:
        """The current streak of worsening steps under `mode`."""
        if mode is EvaluationMode.MAXIMIZE:
            return self.sig_falls if significance else self.falls
        if mode is EvaluationMode.MINIMIZE:
            return self.sig_rises if significance else self.rises
        return 0


def next_trend(before: Trend | None, value: float | None, error: float | None) -> Trend:
    if value is None:  # not a number: no trend through it
        return Trend()
    if before is None or before.value is None:
        return Trend(value=value, ref=value, ref_error=error)
    rises = before.rises + 1 if value > before.value else 0
    falls = before.falls + 1 if value < before.value else 0
    assert before.ref is not None
    if abs(value - before.ref) < combined_error(error, before.ref_error):
        return Trend(
            value=value,
            rises=rises,
            falls=falls,
            sig_rises=before.sig_rises,
            sig_falls=before.sig_falls,
            ref=before.ref,
            ref_error=before.ref_error,
            sig_span=before.sig_span,
            since_ref=before.since_ref + 1,
        )
    sig_rises = before.sig_rises + 1 if value > before.ref else 0
    sig_falls = before.sig_falls + 1 if value < before.ref else 0
    step = before.since_ref + 1  # versions from the previous significant value to this one
    extends = (sig_rises and before.sig_rises) or (sig_falls and before.sig_falls)
    return Trend(
        value=value,
        rises=rises,
        falls=falls,
        sig_rises=sig_rises,
        sig_falls=sig_falls,
        ref=value,
        ref_error=error,
        sig_span=(before.sig_span + step if extends else step) if sig_rises or sig_falls else 0,
        since_ref=0,
    )


class Severity(StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class PolicyRule:
    """Checks on the current version of one parameter. Each bound is optional."""

    parameter: str
    severity: Severity = Severity.WARN
    min: float | None = None
    max: float | None = None
    staleness_hours: float | None = None
    uncertainty_ratio: float | None = None  # error / |value| above this is a violation


@dataclass(frozen=True, kw_only=True)
class Violation:
    check_type: str  # min | max | staleness | uncertainty
    severity: Severity
    message: str
    threshold: float
    measured: float


def check_policy(
    rule: PolicyRule,
    *,
    value: object,
    error: float | None,
    unit: str,
    valid_from: datetime,
    now: datetime,
) -> list[Violation]:
    """Every check of `rule` the version fails, evaluated at `now`."""
    out: list[Violation] = []
    name = rule.parameter

    def flag(check_type: str, message: str, threshold: float, measured: float) -> None:
        out.append(
            Violation(
                check_type=check_type,
                severity=rule.severity,
                message=message,
                threshold=threshold,
                measured=measured,
            )
        )

    # Bounds and uncertainty apply to numbers only (not bools or text); staleness to all.
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None  # fmt: skip
    if number is not None and rule.min is not None and number < rule.min:
        flag("min", f"{name} = {value} {unit} is below the minimum {rule.min}", rule.min, number)
    if number is not None and rule.max is not None and number > rule.max:
        flag("max", f"{name} = {value} {unit} is above the maximum {rule.max}", rule.max, number)
    if rule.staleness_hours is not None:
        age_h = (now - valid_from).total_seconds() / 3600
        if age_h > rule.staleness_hours:
            message = f"{name} was last calibrated {age_h:.1f} h ago (limit {rule.staleness_hours:g} h)"  # fmt: skip
            flag("staleness", message, rule.staleness_hours, round(age_h, 3))
    if number is not None and rule.uncertainty_ratio is not None and error is not None:
        ratio = abs(error) / abs(number) if number else math.inf
        if ratio > rule.uncertainty_ratio:
            message = f"{name} has error/value = {ratio:.3g} (limit {rule.uncertainty_ratio:g})"
            flag("uncertainty", message, rule.uncertainty_ratio, ratio)
    return out
