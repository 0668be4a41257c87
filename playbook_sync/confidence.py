"""Confidence arithmetic of the learning loop: pure functions, no database.

The model follows the self-improving playbook system this project grows from:

- A Beta-Binomial posterior over "editors keep this kind of callout here", with the prior
  α = 0.1, β = 0.9 (a new kind of callout is assumed to be kept one time in ten until seen).
- Maturity: over its first MATURITY observations the confidence blends from the cold-start
  value toward the posterior, so two early keeps cannot make it look certain. A consequence of
  the blend, kept as specified: before maturity, with a posterior above the cold start, one more
  decline still moves the blend toward that posterior and can raise it a little (2 kept: 0.22;
  2 kept, 1 declined: 0.2275). A decline never scores above a keep, and once mature, or below the
  cold start, declines only lower it (tests/unit/test_confidence.py).
- Clamped to [FLOOR, CEILING]: never certain either way, so a later keep or decline still moves it.
- Observations and strengths decay by DECAY per PERIOD: what editors did last quarter counts
  less than what they did last week.
- A repeat strengthens by REINFORCEMENT instead of adding a duplicate; an item younger than
  STABILITY is not overwritten (two runs minutes apart must not double-count one signal).
- Lessons are ranked by weight × confidence × recency, recency halving every HALF_LIFE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

ALPHA, BETA = 0.1, 0.9
COLD_START = 0.1
MATURITY = 10
FLOOR, CEILING = 0.01, 0.99
DECAY = 0.95
# Runs are weekly, so one period is one week: the 0.95 factor then means "half the weight after
# ~13.5 weeks", about a quarter of a year of runs.
PERIOD = timedelta(days=7)
REINFORCEMENT = 0.5
STABILITY = timedelta(minutes=5)
# The system this follows ran many times a day and used a 24-hour half-life. Here runs come once a
# week: with 24 hours every lesson would be worth 2^-7 < 1% by the next run, so recency would say
# nothing. Four weeks keeps a lesson fully in play for the next run or two and halves it after a
# month of runs, which is how long a review habit of an editor plausibly lasts.
HALF_LIFE = timedelta(days=28)


def clamp(value: float) -> float:
    return min(CEILING, max(FLOOR, value))


def posterior(kept: float, declined: float) -> float:
    """The Beta-Binomial posterior mean: (α + kept) / (α + β + kept + declined)."""
    return (ALPHA + kept) / (ALPHA + BETA + kept + declined)


def confidence(kept: float, declined: float) -> float:
    """Posterior blended in from COLD_START over the first MATURITY observations, clamped.

    kept and declined may be fractional (decayed counts, see decayed_counts)."""
    if kept < 0 or declined < 0:
        raise ValueError("counts cannot be negative")
    maturity = min((kept + declined) / MATURITY, 1.0)
    return clamp((1 - maturity) * COLD_START + maturity * posterior(kept, declined))


def periods(since: datetime, now: datetime) -> float:
    """How many PERIODs lie between since and now (never negative: a clock ahead counts as now)."""
    return max((now - since) / PERIOD, 0.0)


def decay_weight(since: datetime, now: datetime) -> float:
    """DECAY ** periods: the weight today of something observed at `since`."""
    return DECAY ** periods(since, now)


def decayed_counts(observations: Iterable[tuple[bool, datetime]], now: datetime) -> tuple[float, float]:
    """(kept, declined) from (kept?, when) observations, each weighted by its decay."""
    kept = declined = 0.0
    for was_kept, when in observations:
        weight = decay_weight(when, now)
        if was_kept:
            kept += weight
        else:
            declined += weight
    return kept, declined


def decayed_strength(strength: float, updated_at: datetime, now: datetime) -> float:
    """A strength last set at updated_at, decayed to now."""
    return strength * decay_weight(updated_at, now)


def reinforce(strength: float, updated_at: datetime, now: datetime) -> float:
    """A repeat: the decayed strength plus REINFORCEMENT; unchanged within STABILITY of the last update."""
    if is_stable(updated_at, now):
        return strength
    return decayed_strength(strength, updated_at, now) + REINFORCEMENT


def is_stable(updated_at: datetime, now: datetime) -> bool:
    """True while an item is younger than STABILITY: the dampener refuses to overwrite it."""
    return timedelta(0) <= now - updated_at < STABILITY


def recency(updated_at: datetime, now: datetime) -> float:
    """0.5 ** (age / HALF_LIFE), 1 for a date in the future."""
    age = max((now - updated_at) / HALF_LIFE, 0.0)
    return math.pow(0.5, age)


def lesson_score(strength: float, kept: float, declined: float, updated_at: datetime, now: datetime) -> float:
    """weight × confidence × recency: how a lesson ranks for injection into prompts."""
    return decayed_strength(strength, updated_at, now) * confidence(kept, declined) * recency(updated_at, now)
