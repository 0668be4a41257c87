"""A bounded memo of pure functions of a text, keyed by the text's digest.

A run reads the same unchanged SOPs many times: the start checks every one, finalize parses the
tree for the edit plan, the learning loop's trees, and the commit gate checks the tree before and
after the commit. At 1,000 SOPs, parsing frontmatter (PyYAML is pure Python) and scanning for MDX
hazards were half of finalize's 23 s (bench/). Both are pure functions of the text, so their
results are kept per text, by a 16-byte digest: the texts themselves are not held.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
SIZE = 8192  # results kept per process: two kinds for each SOP of a 4,000-SOP playbook (results are small)
_lock = threading.Lock()
_kept: OrderedDict[tuple[str, bytes], object] = OrderedDict()


def memoized(kind: str, text: str, compute: Callable[[str], T]) -> T:
    """compute(text), computed once per text and kind while it stays among the SIZE most recent. compute must be
    pure and its result immutable (callers share it); an exception is not kept: the next call computes again."""
    key = (kind, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]  # type: ignore[return-value]
    value = compute(text)
    with _lock:
        _kept[key] = value
        while len(_kept) > SIZE:
            _kept.popitem(last=False)
    return value
