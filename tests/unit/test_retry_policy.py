"""The one retry policy (providers/retry.py): backoff bounds, and the tenacity loop's contract
that the LLM providers, the GitHub provider and the task countdown all rely on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync.providers.retry import RetryPolicy, backoff, redact, retrying

pytestmark = pytest.mark.unit


@given(st.integers(0, 40), st.floats(0, 100), st.floats(0, 1000))
def test_backoff_is_half_fixed_half_jitter_under_the_cap(retry: int, base: float, cap: float) -> None:
    ceiling = min(cap, base * 2**retry)
    assert ceiling / 2 <= backoff(retry, base, cap) <= ceiling


class Flaky(Exception):
    def __init__(self, retry_after: str | None = None) -> None:
        super().__init__("flaky")
        self.response = SimpleNamespace(headers={"retry-after": retry_after} if retry_after else {})


def loop(policy: RetryPolicy, events: list):
    def give_up(exc: BaseException, attempts: int):
        events.append(("give up", attempts))
        raise RuntimeError("gave up") from None

    return retrying(policy, transient=lambda exc: isinstance(exc, Flaky),
                    on_retry=lambda exc, n, delay: events.append(("retry", n, delay)),
                    on_give_up=give_up, sleep=lambda s: events.append(("slept", s)))


def failing(errors: list[BaseException]):
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"
    return call


def test_transient_failures_are_retried_with_the_servers_wait_first() -> None:
    events: list = []
    assert loop(RetryPolicy(3, 0.0, 60.0), events)(failing([Flaky("2"), Flaky()])) == "ok"
    assert events == [("retry", 1, 2.0), ("slept", 2.0), ("retry", 2, 0.0), ("slept", 0.0)]


def test_other_errors_propagate_at_once_and_the_limit_ends_in_give_up() -> None:
    events: list = []
    with pytest.raises(ValueError):
        loop(RetryPolicy(3, 0.0, 60.0), events)(failing([ValueError("bad request"), Flaky()]))
    assert events == []
    with pytest.raises(RuntimeError, match="gave up"):
        loop(RetryPolicy(1, 0.0, 60.0), events)(failing([Flaky(), Flaky(), Flaky()]))
    assert events == [("retry", 1, 0.0), ("slept", 0.0), ("give up", 2)]


def test_a_retry_after_beyond_the_longest_wait_gives_up_without_waiting() -> None:
    events: list = []
    with pytest.raises(RuntimeError, match="gave up"):
        loop(RetryPolicy(4, 1.0, 60.0), events)(failing([Flaky("600")]))
    assert events == [("give up", 1)]


def test_redact_scrubs_known_secrets_and_provider_and_github_token_shapes() -> None:
    text = "keys: s3cret-value sk-proj-****abcd ghp_0123456789abcdefABCDEF github_pat_11AB_0123456789abcdefgh"
    scrubbed = redact(text, ["s3cret-value"])
    assert scrubbed == "keys: [redacted] [redacted-key] [redacted-key] [redacted-key]"
