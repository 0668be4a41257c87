"""Execution report validation and text (reports.py): precise reasons, cleaning, what is searched."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync.reports import EXECUTION_NAMESPACE, ReportIn, report_text, validate_report

pytestmark = pytest.mark.unit

BASE = {"report_id": "r", "customer_id": "c", "account_id": "a", "playbook_id": "p", "status": "completed"}


def test_nested_too_deeply_is_a_reason_not_a_crash():
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    assert validate_report(BASE | {"report_data": deep}) == "report_data: nested too deeply"


@pytest.mark.parametrize(("change", "reason"), [
    ({"status": "done"}, "status: Input should be 'completed', 'failed' or 'in-progress'"),
    ({"customer_id": ""}, "customer_id: String should have at least 1 character"),
    ({"execution_id": "nope"}, "execution_id: Input should be a valid UUID"),
    ({"steps_completed": -1}, "steps_completed: Input should be greater than or equal to 0"),
    ({"report_data": {"outcomes_achieved": 5}}, "report_data: outcomes_achieved must be a list, an object or a string"),
    ({"report_data": {"x": "\ud800"}}, "x: unpaired UTF-16 surrogate (not valid Unicode)"),
    ({"completed_at": "0001-01-01T00:00:00+14:00"}, "completed_at: date 0001-01-01T00:00:00+14:00 is outside the years 1-9999 in UTC"),
])
def test_bad_reports_get_a_precise_reason(change, reason):
    got = validate_report(BASE | change)
    assert isinstance(got, str) and reason.split(" (")[0] in got, got


def test_nulls_are_absent_strings_cleaned_and_execution_id_stable():
    report = validate_report(BASE | {"playbook_name": None, "account_name": " Zoë\u200b ",
                                     "report_data": {"executive_summary": "a\x00b", "next_steps": ["x\u202e"]}})
    assert isinstance(report, ReportIn)
    assert report.account_name == "Zoë" and report.report_data == {"executive_summary": "ab", "next_steps": ["x"]}
    assert report.execution == str(uuid.uuid5(EXECUTION_NAMESPACE, "r"))
    text = report_text(report.model_copy(update={"report_data": {"executive_summary": "Sum.", "outcomes_achieved": ["NPS 1 → 2"],
                                                                  "next_steps": "Call back"}}))
    assert text == "p for Zoë\nSum.\nOutcomes: NPS 1 → 2\nNext steps: Call back"


@given(st.dictionaries(st.text(max_size=8), st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                                         lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                                                         max_leaves=12), max_size=5))
def test_any_report_data_is_validated_without_raising(data):
    got = validate_report(BASE | {"report_data": data})
    if isinstance(got, ReportIn):
        assert isinstance(report_text(got), str)


def test_playbooks_map_to_sops_by_frontmatter_and_by_the_setting():
    from playbook_sync.outcome_callouts import mapping

    contents = {
        "docs/a.md": "---\nid: sop-a\ntitle: A\nplaybook_ids: [voc-sprint, 7]\n---\n# A\n",
        "docs/b.md": "---\nid: sop-b\ntitle: B\nplaybook_ids: onboarding\n---\n",
        "docs/c.md": "---\nid: sop-c\ntitle: C\n---\n",
        "docs/broken.md": "---\nid: [unclosed\n---\n",
        "docs/none.md": "no frontmatter at all",
    }
    assert mapping(contents) == {"docs/a.md": ["voc-sprint", "7"], "docs/b.md": ["onboarding"]}
    extra = {"renewal-play": ["sop-c", "docs/a.md"], "voc-sprint": ["sop-a"], "ghost": ["sop-zzz"]}
    assert mapping(contents, extra) == {"docs/a.md": ["voc-sprint", "7", "renewal-play"], "docs/b.md": ["onboarding"],
                                        "docs/c.md": ["renewal-play"]}
