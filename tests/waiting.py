"""Bounded waits on conditions: tests synchronise on what happened, never on a fixed sleep."""

from __future__ import annotations

import subprocess
import threading
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


def communicate_timed(proc: subprocess.Popen, timeout: float) -> tuple[str, str, list[tuple[float, str]], float]:
    """proc.communicate(), plus each line of its stdout with when (time.monotonic()) it arrived, and when it exited."""
    lines, err = [], []

    def stamp(stream) -> None:
        lines.extend((time.monotonic(), line) for line in stream)

    readers = [threading.Thread(target=stamp, args=(proc.stdout,), daemon=True),
               threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    proc.wait(timeout)
    exited = time.monotonic()
    for reader in readers:
        reader.join(timeout)
    return "".join(line for _, line in lines), "".join(err), lines, exited
