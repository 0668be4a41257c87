"""Outcome evidence arithmetic (evidence.py): medians, counts, periods, parsing, the callout's words."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook_sync.callouts import render_block, sentences
from playbook_sync.evidence import (
    Outcome,
    ReportFacts,
    aggregate,
    fmt,
    material_change,
    number,
    parse_outcomes,
    summary_text,
)
from playbook_sync.schemas import CalloutKind, TranscriptType

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, tzinfo=UTC)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2))


@st.composite
def reports(draw):
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        status = draw(st.sampled_from(["completed", "failed", "in-progress"]))
        age = draw(st.integers(-5, 200))  # days before NOW (negative: after NOW)
        total = draw(st.none() | st.integers(0, 20))
        steps = None if total is None else draw(st.integers(0, total))
        metrics = draw(st.lists(st.tuples(st.sampled_from(["NPS", "CSAT", "Churn risk"]), values, values), max_size=3,
                                unique_by=lambda t: t[0]))
        outcomes = tuple(Outcome(m, b, a, a - b, None, "x") for m, b, a in metrics)
        out.append(ReportFacts(report_id=f"r{i}", status=status, when=NOW - timedelta(days=age, hours=1),
                               steps_completed=steps, total_steps=total, outcomes=outcomes))
    return out


@given(reports(), st.integers(1, 365))
@settings(max_examples=200, deadline=None)
def test_counts_medians_and_period_match_a_direct_computation(facts, period):
    ev = aggregate(facts, now=NOW, period_days=period)
    inside = [f for f in facts if NOW - timedelta(days=period) < f.when <= NOW]
    assert ev.executions == len(inside) and sorted(ev.reports) == sorted(f.report_id for f in inside)
    assert ev.completed == sum(f.status == "completed" for f in inside)
    assert ev.completion_rate == (ev.completed / len(inside) if inside else None)
    steps = [f.steps_completed for f in inside if f.steps_completed is not None]
    assert ev.median_steps_completed == (statistics.median(steps) if steps else None)
    for m in ev.metrics:
        deltas = [o.delta for f in inside if f.status == "completed" for o in f.outcomes if o.metric == m.metric]
        assert m.count == len(deltas) and m.median_delta == pytest.approx(statistics.median(deltas))
        assert min(deltas) <= m.median_delta <= max(deltas)
    assert sum(m.count for m in ev.metrics) == sum(len(f.outcomes) for f in inside if f.status == "completed")


@given(reports(), st.randoms())
@settings(max_examples=100, deadline=None)
def test_order_of_reports_does_not_matter(facts, rnd):
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    assert aggregate(facts, now=NOW, period_days=90) == aggregate(shuffled, now=NOW, period_days=90)


@given(reports())
@settings(max_examples=100, deadline=None)
def test_same_evidence_is_never_a_material_change_and_its_text_is_one_callout(facts):
    ev = aggregate(facts, now=NOW, period_days=90)
    assert not material_change(ev.to_dict(), ev, min_change=0.1)
    assert material_change(None, ev, min_change=0.1) == bool(ev.metrics)
    if ev.metrics:
        block = render_block(CalloutKind.results, summary_text(ev), {TranscriptType.report}, "3 execution reports")
        assert block.startswith(":::note Results From the Field\n") and len(sentences(block.splitlines()[1])) <= 3


def test_period_boundaries_are_half_open():
    facts = [ReportFacts("edge", "completed", NOW - timedelta(days=90)), ReportFacts("in", "completed", NOW),
             ReportFacts("future", "completed", NOW + timedelta(seconds=1))]
    assert aggregate(facts, now=NOW, period_days=90).reports == ["in"]


def test_material_change_rules():
    def ev(deltas, executions=3):
        return aggregate([ReportFacts(f"r{i}", "completed", NOW, outcomes=(Outcome("NPS", 0, d, d, None, "x"),))
                          for i, d in enumerate(deltas)] + [ReportFacts(f"f{i}", "failed", NOW) for i in range(executions - len(deltas))],
                         now=NOW, period_days=90)

    old = ev([10, 15, 20]).to_dict()
    assert not material_change(old, ev([10, 15, 20], executions=3), min_change=0.1)
    assert not material_change(old, ev([10, 16, 20]), min_change=0.1)  # 15 → 16 is under 10%
    assert material_change(old, ev([10, 18, 20]), min_change=0.1)  # 15 → 18
    assert material_change(old, ev([10, 15, 20], executions=4), min_change=0.1)  # a third more executions
    assert not material_change(ev([10, 15, 20], executions=8).to_dict(), ev([10, 15, 20], executions=9), min_change=0.1)
    assert not material_change(None, ev([], executions=2), min_change=0.1)  # nothing measurable: nothing to say


def test_issue_example_sentence():
    facts = [ReportFacts(f"r{i}", "completed", NOW - timedelta(days=i + 1), 8, 10, (Outcome("NPS", b, a, a - b, None, "x"),))
             for i, (b, a) in enumerate([(20, 40), (25, 40), (30, 40)])]
    text = summary_text(aggregate(facts, now=NOW, period_days=90))
    assert text.startswith("Across 3 executions this quarter, NPS rose a median 15 points (25 → 40).")


@pytest.mark.parametrize(("data", "expected"), [
    ({"outcomes_achieved": ["NPS 25 → 40"]}, [("NPS", 25, 40, None)]),
    ({"outcomes_achieved": ["CSAT: 3.2 -> 4.1", "churn risk went from 45% to 28%"]},
     [("CSAT", 3.2, 4.1, None), ("churn risk", 45, 28, "%")]),
    ({"outcomes_achieved": [{"metric": "Revenue", "before": "$1,200", "after": "$1,500"}]}, [("Revenue", 1200, 1500, "$")]),
    ({"metrics": {"NPS": {"baseline": 10, "current": 12}, "Time to value": "30 days => 21 days"}},
     [("NPS", 10, 12, None), ("Time to value", 30, 21, "days")]),
    ({"outcomes_achieved": "Réduction du churn 45% → 28%; NPS 1 to 2"}, [("Réduction du churn", 45, 28, "%"), ("NPS", 1, 2, None)]),
    ({"outcomes_achieved": ["Team morale improved", {"metric": "NPS"}, {"before": 1, "after": 2}, 42, None, True]}, []),
    ({"outcomes_achieved": [{"metric": "NPS", "before": 1, "after": 2}], "metrics": {"nps": "5 → 9"}}, [("NPS", 1, 2, None)]),
    ({"outcomes_achieved": {"not": "a metric"}}, []),
    ("not a dict", []),
])
def test_parse_outcomes(data, expected):
    got = [(o.metric, o.before, o.after, o.unit) for o in parse_outcomes(data)]
    assert got == [(m, float(b), float(a), u) for m, b, a, u in expected]
    assert all(o.delta == o.after - o.before for o in parse_outcomes(data))


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_number_and_fmt_round_trip(x):
    value, unit = number(f"{x:.1f}")
    assert unit is None and value == pytest.approx(float(f"{x:.1f}"))
    assert float(fmt(x)) == pytest.approx(round(x, 1), abs=0.051)
    assert fmt(-0.01) == "0"


def test_number_refuses_what_is_not_one():
    assert number(True) == (None, None) and number("n/a") == (None, None) and number([1]) == (None, None)
    assert number("45%") == (45.0, "%") and number(" 1,250 ") == (1250.0, None)


@pytest.mark.parametrize(("before", "after", "unit", "words"), [
    (0.12, 0.16, None, "Conversion rate rose a median 0.04 (0.12 → 0.16)"),
    (4.12, 4.16, None, "CSAT rose a median 0.04 points (4.12 → 4.16)"),
    (0.002, 0.001, "%", "Conversion rate fell a median 0.001 points (0.002% → 0.001%)"),
    (25, 40, None, "Conversion rate rose a median 15 (25 → 40)"),
])
def test_a_small_change_is_not_written_as_zero(before, after, unit, words):
    """One decimal hid real changes: "CSAT rose a median 0 points (4.1 → 4.2)"."""
    metric = "CSAT" if words.startswith("CSAT") else "Conversion rate"
    facts = [ReportFacts("r1", "completed", NOW - timedelta(days=1), 5, 5,
                         (Outcome(metric, before, after, after - before, unit, "x"),))]
    assert summary_text(aggregate(facts, now=NOW, period_days=90)).startswith(f"Across 1 execution this quarter, {words}.")


def test_one_is_singular():
    facts = [ReportFacts("r1", "completed", NOW - timedelta(days=1), 1, 5,
                         (Outcome("Time to value", 30, 29, -1, "days", "x"),))]
    text = summary_text(aggregate(facts, now=NOW, period_days=90))
    assert text == "Across 1 execution this quarter, Time to value fell a median 1 day (30 days → 29 days). 1 of 1 completed, a median 1 step done."


def test_stats_line_says_points_and_keeps_units():
    """`sops stats` printed "Reply rate: median delta +3.1% over 3 (2.1 → 5.1)": a relative-looking percent, bare values."""
    from playbook_sync.evidence import stats_line

    rate = {"metric": "Reply rate", "unit": "%", "count": 3, "median_delta": 3.0, "median_before": 2.1, "median_after": 5.1}
    assert stats_line(rate) == "Reply rate: median delta +3 points over 3 (2.1% → 5.1%)"
    days = {"metric": "Days to signature", "unit": "days", "count": 2, "median_delta": -8, "median_before": 19.5,
            "median_after": 11.5}
    assert stats_line(days) == "Days to signature: median delta -8 days over 2 (19.5 days → 11.5 days)"


def test_json_readers_get_tidy_numbers():
    """The API said "median_delta": 3.1000000000000005 and "delta": 3.1000000000000005 for 2.1% → 5.2%."""
    (outcome,) = parse_outcomes({"outcomes_achieved": ["Reply rate 2.1% → 5.2%"]})
    assert outcome.to_dict()["delta"] == 3.1
    facts = [ReportFacts("r1", "completed", NOW - timedelta(days=1), 5, 5, (outcome,))]
    assert aggregate(facts, now=NOW, period_days=90).to_dict()["metrics"][0]["median_delta"] == 3.1


def test_the_run_report_shows_evidence_with_units():
    from playbook_sync.report_html import _evidence

    rate = {"metric": "Reply rate", "unit": "%", "count": 3, "median_delta": 3.0, "median_before": 2.1, "median_after": 5.1}
    page = _evidence([{"sop": "docs/sops/a.md", "evidence": {"executions": 3, "metrics": [rate]}, "committed": True}])
    assert "Reply rate: median delta +3 points over 3 (2.1% → 5.1%)" in page
