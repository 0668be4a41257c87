"""Outcome evidence from execution reports: pure parsing and arithmetic (no database, no LLM).

A report's `report_data` already holds its numbers (`outcomes_achieved`, `metrics`): a list of
objects (`{"metric": "NPS", "before": 25, "after": 40}`), an object of metrics
(`{"NPS": {"before": 25, "after": 40}}` or `{"NPS": "25 → 40"}`), or lines of text
("CSAT 3.2 -> 4.1", "churn risk from 45% to 28%"). Each outcome with a measurable change
becomes (metric, before, after, delta, unit, status). Per SOP, over a period, the evidence
is: executions, completion rate, median steps completed, and per metric the median delta
with its count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from statistics import median

_NAME_KEYS = ("metric", "name", "kpi", "label", "title")
_BEFORE_KEYS = ("before", "baseline", "from", "start", "previous", "initial")
_AFTER_KEYS = ("after", "current", "to", "end", "result", "final", "achieved")
_NUMBER = r"[-+]?\$?\d[\d,]*(?:\.\d+)?"
_UNIT = r"%|pts|points|days|hours|h|k|x"
# "NPS 25 → 40", "CSAT: 3.2 -> 4.1", "Churn risk went from 45% to 28%", "Time to value 30 days => 21 days".
_TEXT = re.compile(rf"^(?P<metric>.*?\S)\s*(?::|\bwent\b|\bmoved\b|\bfell\b|\brose\b|\bimproved\b|\bdropped\b)?\s*"
                   rf"(?:\bfrom\s+)?(?P<before>{_NUMBER})\s*(?P<u1>{_UNIT})?\s*(?:→|->|=>|\bto\b)\s*"
                   rf"(?P<after>{_NUMBER})\s*(?P<u2>{_UNIT})?\b", re.IGNORECASE)
MATERIAL_GROWTH = 0.25  # the executions count grew by a quarter: the aggregate speaks for more accounts


@dataclass(frozen=True)
class Outcome:
    """One measurable change a report states."""

    metric: str
    before: float
    after: float
    delta: float
    unit: str | None
    status: str  # the report's own word if it has one, else increased | decreased | unchanged

    def to_dict(self) -> dict:
        return asdict(self) | {"delta": tidy(self.delta)}


def tidy(value: float) -> float:
    """For JSON readers: 5.1 - 2.1 is 3.0000000000000004 in floats; they should read 3 (the arithmetic keeps the raw value)."""
    return round(value, 9)


def number(value) -> tuple[float | None, str | None]:
    """A JSON value as (number, unit): 25 → (25, None), "45%" → (45, "%"), "$1,200" → (1200, "$")."""
    if isinstance(value, bool):
        return None, None
    if isinstance(value, int | float):
        return float(value), None
    if not isinstance(value, str):
        return None, None
    match = re.fullmatch(rf"\s*({_NUMBER})\s*({_UNIT})?\s*", value, re.IGNORECASE)
    if not match:
        return None, None
    raw = match.group(1)
    unit = "$" if "$" in raw else (match.group(2) or None)
    return float(raw.replace("$", "").replace(",", "")), unit


def _first(obj: Mapping, keys: Iterable[str]):
    lowered = {str(k).lower(): v for k, v in obj.items()}
    return next((lowered[k] for k in keys if k in lowered and lowered[k] is not None), None)


def _outcome(metric: str, before, after, unit: str | None = None, status: str | None = None) -> Outcome | None:
    (b, bu), (a, au) = number(before), number(after)
    if b is None or a is None or not metric.strip():
        return None
    delta = a - b
    word = status if isinstance(status, str) and status.strip() else (
        "increased" if delta > 0 else "decreased" if delta < 0 else "unchanged")
    return Outcome(" ".join(metric.split()), b, a, delta, unit or bu or au, word.strip())


def _from_text(text: str) -> Outcome | None:
    match = _TEXT.search(text.strip())
    if not match:
        return None
    unit = match.group("u1") or match.group("u2")
    return _outcome(match.group("metric").strip(" -:"), match.group("before"), match.group("after"), unit)


def _from_item(item, name: str | None = None) -> Outcome | None:
    if isinstance(item, str):
        parsed = _from_text(f"{name} {item}" if name else item)
        return parsed
    if not isinstance(item, Mapping):
        return None
    metric = name or _first(item, _NAME_KEYS)
    if not isinstance(metric, str):
        return None
    before, after = _first(item, _BEFORE_KEYS), _first(item, _AFTER_KEYS)
    if before is None or after is None:
        text = _first(item, ("value", "change", "description", "outcome"))
        return _from_text(f"{metric} {text}") if isinstance(text, str) else None
    unit = _first(item, ("unit", "units"))
    return _outcome(metric, before, after, unit if isinstance(unit, str) else None, _first(item, ("status",)))


def parse_outcomes(report_data: Mapping) -> list[Outcome]:
    """Every measurable change in `outcomes_achieved` and `metrics` (first mention of a metric wins)."""
    found: dict[str, Outcome] = {}
    for key in ("outcomes_achieved", "metrics"):
        value = report_data.get(key) if isinstance(report_data, Mapping) else None
        items: list[tuple[str | None, object]] = []
        if isinstance(value, list):
            items = [(None, v) for v in value]
        elif isinstance(value, Mapping):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, str):
            items = [(None, line) for line in re.split(r"[\n;]+", value)]
        for name, item in items:
            outcome = _from_item(item, name)
            if outcome is not None:
                found.setdefault(outcome.metric.casefold(), outcome)
    return list(found.values())


@dataclass(frozen=True)
class ReportFacts:
    """What evidence needs of one report."""

    report_id: str
    status: str
    when: datetime  # completed_at, else report_generated_at, else started_at, else created_at
    steps_completed: int | None = None
    total_steps: int | None = None
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True)
class MetricEvidence:
    metric: str
    unit: str | None
    count: int
    median_delta: float
    median_before: float
    median_after: float


@dataclass
class SopEvidence:
    period_days: int
    since: str
    until: str
    executions: int = 0
    completed: int = 0
    completion_rate: float | None = None
    median_steps_completed: float | None = None
    metrics: list[MetricEvidence] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        for m in out["metrics"]:
            m.update({k: tidy(m[k]) for k in ("median_delta", "median_before", "median_after")})
        return out


def in_period(when: datetime, now: datetime, period_days: int) -> bool:
    """Inside (now - period, now]."""
    return now - timedelta(days=period_days) < when <= now


def aggregate(facts: Iterable[ReportFacts], *, now: datetime, period_days: int) -> SopEvidence:
    """Executions, completion rate, median steps and per-metric medians of the reports inside the period."""
    since = now - timedelta(days=period_days)
    inside = sorted((f for f in facts if in_period(f.when, now, period_days)), key=lambda f: f.report_id)
    ev = SopEvidence(period_days=period_days, since=since.isoformat(), until=now.isoformat(),
                     executions=len(inside), reports=[f.report_id for f in inside])
    if not inside:
        return ev
    ev.completed = sum(1 for f in inside if f.status == "completed")
    ev.completion_rate = ev.completed / ev.executions
    steps = [f.steps_completed for f in inside if f.steps_completed is not None]
    ev.median_steps_completed = float(median(steps)) if steps else None
    per_metric: dict[tuple[str, str | None], list[Outcome]] = {}
    for f in inside:
        if f.status == "completed":
            for o in f.outcomes:
                per_metric.setdefault((o.metric.casefold(), o.unit), []).append(o)
    ev.metrics = sorted((MetricEvidence(metric=os[0].metric, unit=os[0].unit, count=len(os),
                                        median_delta=float(median(o.delta for o in os)),
                                        median_before=float(median(o.before for o in os)),
                                        median_after=float(median(o.after for o in os)))
                         for os in per_metric.values()), key=lambda m: (-m.count, m.metric.casefold()))
    return ev


def material_change(old: Mapping | None, new: SopEvidence, *, min_change: float) -> bool:
    """Worth a new callout: nothing published before, a metric appeared or vanished, a metric's median delta
    moved by at least min_change of its old size, or the executions count grew by MATERIAL_GROWTH or more."""
    if not new.metrics:
        return False
    if old is None:
        return True
    before = {(m["metric"].casefold(), m["unit"]): m for m in old.get("metrics", [])}
    now = {(m.metric.casefold(), m.unit): m for m in new.metrics}
    if set(before) != set(now):
        return True
    for key, m in now.items():
        previous = before[key]["median_delta"]
        if abs(m.median_delta - previous) > max(abs(previous) * min_change, 1e-9):
            return True
    return new.executions >= old.get("executions", 0) * (1 + MATERIAL_GROWTH) and new.executions > old.get("executions", 0)


# -- the callout's words ------------------------------------------------------------------------

_SCORE = re.compile(r"\b(nps|csat|ces|score|index|rating)\b", re.IGNORECASE)  # unitless scores move in "points"
_PERIODS = {7: "this week", 30: "this month", 90: "this quarter", 365: "this year"}


def fmt(value: float, places: int = 1) -> str:
    """25.0 → "25", 0.93 → "0.9", -0.0 → "0"; fmt(0.04, 2) → "0.04"."""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _with_unit(value: float, unit: str | None, places: int = 1) -> str:
    if unit == "$":
        return f"${fmt(value, places)}"
    if unit in (None, "points", "pts"):
        return fmt(value, places)
    if unit in ("%", "k", "x", "h"):
        return f"{fmt(value, places)}{unit}"
    return f"{fmt(value, places)} {_one(unit) if fmt(abs(value), places) == '1' else unit}"


def _one(unit: str) -> str:
    """ "1 days" reads wrong: the singular of the plural units we parse."""
    return {"days": "day", "hours": "hour", "points": "point"}.get(unit.lower(), unit)


def _places(m: MetricEvidence) -> int:
    """One decimal, or as many (up to 3) as it takes for a change to show: a rate going 0.12 → 0.16
    must not read "rose a median 0 (0.1 → 0.2)"."""
    for places in (1, 2, 3):
        if fmt(abs(m.median_delta), places) != "0" and fmt(m.median_before, places) != fmt(m.median_after, places):
            return places
    return 1 if m.median_delta == 0 else 3


def _in_points(m: MetricEvidence) -> bool:
    """A change of a percentage or a score is in points: 2.1% → 5.1% is 3 points, not 3%."""
    return m.unit in ("%", "points", "pts") or (m.unit is None and _SCORE.search(m.metric) is not None)


def stats_line(metric: Mapping) -> str:
    """`sops stats`: "Reply rate: median delta +3.1 points over 3 (2.1% → 5.1%)", in the callout's units."""
    m = MetricEvidence(**{k: metric[k] for k in MetricEvidence.__dataclass_fields__})
    places, size = _places(m), abs(m.median_delta)
    sign = "+" if m.median_delta > 0 else "-" if m.median_delta < 0 else "±"
    amount = f"{fmt(size, places)} points" if _in_points(m) else _with_unit(size, m.unit, places)
    return (f"{m.metric}: median delta {sign}{amount} over {m.count} "
            f"({_with_unit(m.median_before, m.unit, places)} → {_with_unit(m.median_after, m.unit, places)})")


def _change(m: MetricEvidence) -> str:
    verb = "rose" if m.median_delta > 0 else "fell" if m.median_delta < 0 else "held steady"
    size, places, points = abs(m.median_delta), _places(m), _in_points(m)
    amount = ("" if m.median_delta == 0 else f" a median {fmt(size, places)} points" if points
              else f" a median {_with_unit(size, m.unit, places)}")
    return (f"{m.metric} {verb}{amount} ({_with_unit(m.median_before, m.unit, places)} → "
            f"{_with_unit(m.median_after, m.unit, places)})")


def period_words(days: int) -> str:
    return _PERIODS.get(days, f"in the last {days} days")


def summary_text(ev: SopEvidence, max_metrics: int = 3) -> str:
    """ "Across 3 executions this quarter, NPS rose a median 15 points (25 → 40). 2 of 3 completed, a median 8 steps done." """
    shown = ev.metrics[:max_metrics]
    plural = "s" if ev.executions != 1 else ""
    changes = ", ".join(_change(m) + (f" in {m.count} of them" if m.count != ev.completed else "") for m in shown)
    first = f"Across {ev.executions} execution{plural} {period_words(ev.period_days)}, {changes}."
    n = ev.median_steps_completed
    steps = f", a median {fmt(n)} step{'' if fmt(n) == '1' else 's'} done" if n is not None else ""
    return f"{first} {ev.completed} of {ev.executions} completed{steps}."
