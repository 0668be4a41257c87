"""calibration's medians (statistics.median, no numpy.ma import on a worker's first run) are numpy's, exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook_sync import calibration
from playbook_sync.config import Settings

pytestmark = pytest.mark.unit
finite = st.floats(allow_nan=False, allow_infinity=False)
scores = st.one_of(
    st.lists(finite, min_size=1, max_size=60),
    st.lists(st.sampled_from([-1e308, -1.0, -0.0, 0.0, 5e-324, 1e-300, 0.5, 1.0, 1e308]), min_size=1, max_size=20),
    st.lists(st.floats(-1, 1), min_size=1, max_size=60),  # cosine similarities
)


@settings(max_examples=500, deadline=None)
@given(scores, st.integers(0, 5))
def test_baseline_is_numpys_median(values, k):
    rest = sorted(values, reverse=True)[k:]
    got = calibration.baseline(values, k)
    assert got is None if not rest else float(got) == float(np.median(rest))  # exactly, both inf on overflow


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=80))
def test_the_records_median_is_numpys(values):
    record = calibration.calibrate(values, [], model="m", settings=Settings(_env_file=None))
    assert record["null"]["median"] == round(float(np.median(values)), 4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=30), st.integers(0, 2))
def test_standings_center_on_numpys_median(values, k):
    names = [f"s{i}" for i in range(len(values))]
    got = calibration.standings(dict(zip(names, values, strict=True)), names, k)
    rest = sorted(values, reverse=True)[k:]
    median, sd = float(np.median(rest)), float(np.std(rest, ddof=1)) if len(rest) > 1 else 0.0
    if sd <= calibration.NO_SPREAD * max(abs(median), 1.0):  # no spread (or one score): no say
        assert set(got.values()) == {0.0}
    else:
        for name, value in zip(names, values, strict=True):
            assert math.isclose(got[name], (value - median) / sd, rel_tol=1e-9, abs_tol=1e-9)
