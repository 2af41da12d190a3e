"""The trend fold (domain.metrics.next_trend) against a direct reading of the definition,
and the policy checks on hand-made versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.metrics import EvaluationMode, PolicyRule, Trend, check_policy, next_trend

steps = st.lists(
    st.tuples(st.sampled_from([1.0, 2.0, 3.0, 3.5, 5.0]), st.sampled_from([None, 0.1, 1.0])),
    min_size=1,
    max_size=25,
)


def direct(seq, *, significance: bool) -> tuple[int, int]:
    """(falls in a row ending at the newest value, index where that streak starts)."""
    count, start, ref = 0, 0, 0
    for i in range(1, len(seq)):
        (v, e), (r, re) = seq[i], seq[ref]
        if significance and abs(v - r) < ((e or 0) ** 2 + (re or 0) ** 2) ** 0.5:
            continue
        if v < r:
            start = start if count else ref
            count += 1
        else:
            count = 0
        ref = i
    return count, start


@given(steps)
def test_the_fold_counts_streaks_and_their_span_as_defined(seq):
    trend: Trend | None = None
    for value, error in seq:
        trend = next_trend(trend, value, error)
    assert trend is not None
    falls, start = direct(seq, significance=False)
    assert trend.worsening(EvaluationMode.MAXIMIZE, significance=False) == falls
    sig_falls, sig_start = direct(seq, significance=True)
    assert trend.worsening(EvaluationMode.MAXIMIZE, significance=True) == sig_falls
    if sig_falls:
        assert len(seq) - 1 - (trend.sig_span + trend.since_ref) == sig_start
    assert trend.worsening(EvaluationMode.NONE, significance=False) == 0


def test_policy_checks():
    now = datetime(2026, 1, 3, tzinfo=UTC)
    rule = PolicyRule(parameter="t1", min=20, max=200, staleness_hours=24, uncertainty_ratio=0.1)
    fresh = now - timedelta(hours=1)
    assert check_policy(rule, value=50.0, error=1.0, unit="us", valid_from=fresh, now=now) == []
    found = check_policy(rule, value=10.0, error=2.0, unit="us", valid_from=now - timedelta(hours=30), now=now)  # fmt: skip
    assert {v.check_type for v in found} == {"min", "staleness", "uncertainty"}
    low = next(v for v in found if v.check_type == "min")
    assert (low.threshold, low.measured) == (20, 10.0)
    assert [v.check_type for v in check_policy(rule, value=250, error=None, unit="us", valid_from=fresh, now=now)] == ["max"]  # fmt: skip
    # text values have no bounds, but they do go stale
    assert [v.check_type for v in check_policy(rule, value="ok", error=None, unit="", valid_from=now - timedelta(days=2), now=now)] == ["staleness"]  # fmt: skip
