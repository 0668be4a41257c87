"""playbook_sync.worker.local.Liveness on a fake clock: when a broker that stopped answering counts as gone.

The README promises that `run` on the embedded profile treats a broker silent for about 6 s as
gone. With a ping every 2 s counted from the first failed one, a broker that died just after a
ping was declared gone 8 s later (6.5-8.7 s measured after a kill -9 of the embedded Redis).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from playbook_sync.worker import local
from playbook_sync.worker.local import Liveness

pytestmark = pytest.mark.unit
POLL = 0.3  # follow_run's poll: Liveness is asked once per poll
START = 1000.0  # the fake monotonic clock's origin (not 0: Liveness pings first at any time >= 0)
GRACE = 6.0  # the README's "about 6 s"
SLACK = 1.0  # how much later than GRACE "about" may be: a ping interval plus a poll


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def follow(down: list[tuple[float, float]], *, until: float = 60.0) -> float | None:
    """Ask a fresh Liveness once per poll, as follow_run does, while the broker does not answer during the
    given (start, end) intervals (seconds after START); the seconds at which it first said why, or None."""
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch:  # (not the fixture: hypothesis calls a test many times per fixture)
        patch.setattr(local, "time", SimpleNamespace(monotonic=clock))
        patch.setattr(local, "broker_answers", lambda url: not any(a <= clock.now - START < b for a, b in down))
        check = Liveness(None, "redis://127.0.0.1:1/0")
        while clock.now - START < until:
            if (reason := check()) is not None:
                assert reason == "the broker at redis://127.0.0.1:1/0 does not answer"
                return clock.now - START
            clock.now += POLL
    return None


@hsettings(deadline=None, max_examples=200)
@given(died=st.floats(min_value=0.0, max_value=10.0))
def test_a_broker_that_died_counts_as_gone_about_six_seconds_later(died):
    said = follow([(died, float("inf"))])
    assert said is not None
    assert GRACE <= said - died <= GRACE + SLACK, f"died at {died:.2f}s, said so {said - died:.2f}s later"


@hsettings(deadline=None, max_examples=200)
@given(started=st.floats(min_value=0.0, max_value=10.0), lasted=st.floats(min_value=0.0, max_value=GRACE - 0.01))
def test_a_broker_silent_for_less_than_the_grace_is_not_gone(started, lasted):
    assert follow([(started, started + lasted)]) is None


def test_silence_starts_afresh_once_the_broker_answered_again():
    # Two 4 s outages one second apart: each is a hiccup. With a ping every 2 s the answer in
    # between could be missed and the two counted as one 9 s silence.
    for phase in (0.0, 0.4, 0.8, 1.2, 1.6):
        assert follow([(phase, phase + 4.0), (phase + 5.0, phase + 9.0)]) is None, phase
