"""Bounded waits on conditions: tests synchronise on what happened, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, *, poll: float = 0.05,
             detail: Callable[[], str] | None = None) -> T:
    """Call predicate until it returns something truthy and return that; raise after timeout.

    The error names what was awaited and the last value seen (plus detail(), e.g. a worker
    log tail), so a hang reads as a sentence instead of a bare TimeoutError.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last value: {last!r}){extra}")
        time.sleep(poll)
