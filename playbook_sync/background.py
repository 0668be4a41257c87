"""Calls started on threads while the caller goes on: the callback's model calls, a run start's waits.

Each call runs in a copy of the caller's context, so a cost meter (costs.metered, a ContextVar) that is
current when the calls start records them; an exception comes back in place of its call's result, so
one failed call never hides the others' answers (or the caller's own error).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def guarded(call: Callable[[], T]) -> T | Exception:
    try:
        return call()
    except Exception as exc:
        return exc


def start(calls: list[Callable[[], T]], workers: int, name: str = "background") -> Callable[[], list[T | Exception]]:
    """Start calls on up to `workers` threads; the returned function waits for their results, in order.

    An exception comes back in place of its call's result. With workers <= 1 nothing runs
    until the results are asked for, then the calls run one after another.
    """
    if workers <= 1 or not calls:
        return lambda: [guarded(c) for c in calls]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix=name)
    futures = [pool.submit(contextvars.copy_context().run, guarded, c) for c in calls]

    def results() -> list[T | Exception]:
        try:
            return [f.result() for f in futures]
        finally:
            pool.shutdown()

    return results


def concurrently(calls: list[Callable[[], T]], workers: int, name: str = "background") -> list[T | Exception]:
    """Run calls on up to `workers` threads; results in order, an exception in place of its result."""
    return start(calls, workers, name)()
