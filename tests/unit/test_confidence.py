"""The learning loop's arithmetic (confidence.py) against hand-computed values, and its properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync import confidence as c

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 2, tzinfo=UTC)
counts = st.floats(min_value=0, max_value=500, allow_nan=False)
step = st.floats(min_value=0.01, max_value=50, allow_nan=False)


@pytest.mark.parametrize(("kept", "declined", "expected"), [
    (0, 0, 0.1),  # no observation: the cold start
    (2, 0, 0.8 * 0.1 + 0.2 * (2.1 / 3)),  # 0.22: maturity 0.2 toward the posterior 0.7
    (0, 2, 0.8 * 0.1 + 0.2 * (0.1 / 3)),  # 0.0867
    (0, 6, 0.4 * 0.1 + 0.6 * (0.1 / 7)),  # 0.0486: six declines in a row go below 0.05
    (10, 0, 10.1 / 11),  # mature: the posterior itself, 0.9182
    (5, 5, 5.1 / 11),  # 0.4636
    (0, 10, 0.01),  # 0.1 / 11 = 0.0091, clamped up
    (1000, 0, 0.99),  # 0.9991, clamped down
])
def test_confidence_by_hand(kept, declined, expected):
    assert c.confidence(kept, declined) == pytest.approx(expected)


def test_decay_reinforcement_recency_by_hand():
    assert c.decay_weight(NOW - timedelta(days=14), NOW) == pytest.approx(0.95 ** 2)
    assert c.decayed_counts([(True, NOW - timedelta(days=7)), (False, NOW), (False, NOW)], NOW) == pytest.approx((0.95, 2.0))
    assert c.reinforce(1.0, NOW - timedelta(days=7), NOW) == pytest.approx(1.45)  # decayed, then +0.5
    assert c.reinforce(1.0, NOW - timedelta(minutes=4), NOW) == 1.0  # the stability dampener
    assert c.reinforce(1.0, NOW - timedelta(minutes=5), NOW) == pytest.approx(0.95 ** (5 / (7 * 24 * 60)) + 0.5)
    assert c.recency(NOW - timedelta(days=28), NOW) == pytest.approx(0.5)
    assert c.recency(NOW + timedelta(days=1), NOW) == 1.0  # a clock ahead is "now"
    # weight × confidence × recency: 0.95^4 × 0.22 × 0.5
    assert c.lesson_score(1.0, 2, 0, NOW - timedelta(days=28), NOW) == pytest.approx(0.95 ** 4 * 0.22 * 0.5)


def test_negative_counts_are_refused():
    with pytest.raises(ValueError):
        c.confidence(-1, 0)


@given(counts, counts)
def test_bounds(kept, declined):
    assert c.FLOOR <= c.confidence(kept, declined) <= c.CEILING


@given(counts, counts, step)
def test_monotonic_in_kept(kept, declined, more):
    assert c.confidence(kept + more, declined) >= c.confidence(kept, declined) - 1e-12


@given(counts, counts, step)
def test_a_decline_never_scores_above_a_keep(kept, declined, more):
    assert c.confidence(kept, declined + more) <= c.confidence(kept + more, declined) + 1e-12


@given(counts, counts, step)
def test_monotonic_in_declined_once_mature_or_below_the_cold_start(kept, declined, more):
    # Before maturity, with a posterior above the cold start, one more observation of either kind
    # moves the blend toward that posterior: (2 kept, 0 declined) 0.22 -> (2, 1) 0.2275. This is the
    # specified maturity blend, pinned below; once mature, or below the cold start, declines only lower it.
    if kept + declined >= c.MATURITY or c.posterior(kept, declined + more) <= c.COLD_START:
        assert c.confidence(kept, declined + more) <= c.confidence(kept, declined) + 1e-12


def test_the_maturity_blend_lets_an_early_decline_raise_confidence_slightly():
    assert c.confidence(2, 1) == pytest.approx(0.7 * 0.1 + 0.3 * (2.1 / 4))
    assert c.confidence(2, 1) > c.confidence(2, 0)


@given(st.floats(min_value=0, max_value=1000), st.floats(min_value=0, max_value=1000))
def test_decay_is_a_weight_in_0_1_and_shrinks_with_age(days, later):
    young = c.decay_weight(NOW - timedelta(days=days), NOW)
    old = c.decay_weight(NOW - timedelta(days=days + later), NOW)
    assert 0 <= old <= young <= 1
