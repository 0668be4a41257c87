"""Orphans sharing topic words are grouped: overlapping word sets join one topic."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync.orphan_topics import _merge

pytestmark = pytest.mark.unit
IDS = [uuid.UUID(int=i) for i in range(12)]


def test_overlapping_words_make_one_topic_and_disjoint_ones_stay_apart():
    a, b, c, d, e = IDS[:5]
    assert _merge([{a, b}, {d, e}, {b, c}]) == [[a, b, c], [d, e]]


@given(st.lists(st.sets(st.sampled_from(IDS), min_size=1), max_size=8))
def test_groups_partition_the_orphans_and_never_split_a_word(sets):
    groups = _merge(sets)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == sorted(set().union(*sets)) and len(flat) == len(set(flat))
    for ids in sets:
        assert sum(1 for g in groups if set(g) & ids) == 1
