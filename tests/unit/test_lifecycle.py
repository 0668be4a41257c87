"""The run status rule: counts decide success | partial | failed; the run log is written in one place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync.lifecycle import append_log, histogram, outcome_status
from playbook_sync.models import SyncRun
from playbook_sync.schemas import RunStatus

pytestmark = pytest.mark.unit


@given(st.integers(min_value=0, max_value=10_000).flatmap(lambda total: st.tuples(st.just(total), st.integers(0, total))))
def test_status_follows_the_failed_count(counts):
    total, failed = counts
    status = outcome_status(total, failed)
    if failed == 0:
        assert status is RunStatus.success
    elif failed == total:
        assert status is RunStatus.failed  # every entry failed: not "partial" (issue 9, item 14)
    else:
        assert status is RunStatus.partial


@given(st.lists(st.floats(min_value=-1, max_value=2, allow_nan=False), max_size=200))
def test_histogram_counts_every_score_once(scores):
    h = histogram(scores)
    assert sum(h["counts"]) == h["n"] == len(scores) and len(h["counts"]) == 20


def test_append_log_adds_lines_once():
    run = SyncRun()
    append_log(run)
    assert run.error_log is None
    append_log(run, "skipped a.md:1: x", "", "gate refused b.md:\nbuild output")
    append_log(run, "gate refused b.md:\nbuild output", "skipped a.md:1: x", "skipped a.md:1")  # a retried commit
    assert run.error_log == "skipped a.md:1: x\ngate refused b.md:\nbuild output\nskipped a.md:1"
