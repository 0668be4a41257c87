"""The builder page's scenario form as a browser (or anyone) may send it."""

from __future__ import annotations

import pytest

from playbook_sync.api.pages import scenario_from_form

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("pairs", ["abc", "", "-5", "1000000000", "2"])
def test_the_pairs_count_is_not_trusted(pairs):
    """'abc' was a 500; '1000000000' looped for minutes: the pair fields sent are what counts."""
    form = {"title": "Discovery", "pairs": pairs, "objection_0": "Too pricey", "response_0": "Show the ROI",
            "objection_1": "Bad timing", "response_1": "Start small", "remove_1": "on", "objection_7": "No budget"}
    got = scenario_from_form(form).content_modules.objection_handling
    assert [(p.objection, p.response) for p in got] == [("Too pricey", "Show the ROI"), ("No budget", "")]
