"""A bounded memo of pure functions of a text, keyed by the text's digest.

A run reads the same unchanged SOPs many times: the start checks every one, finalize parses the
tree for the edit plan, the learning loop's trees, and the commit gate checks the tree before and
after the commit. At 1,000 SOPs, parsing frontmatter (PyYAML is pure Python) and scanning for MDX
hazards were half of finalize's 23 s (bench/). Both are pure functions of the text, so their
results are kept per text, by a 16-byte digest: the texts themselves are not held.

Results are kept pickled: each caller gets an object of its own (a parsed frontmatter holds lists
a caller could change), and what is kept is counted in bytes, not entries, so one huge hostile
document cannot hold memory that a thousand ordinary ones would not.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
BUDGET = 32 * 2**20  # bytes kept per process: an SOP's frontmatter and hazards take a few hundred
LARGEST = BUDGET // 64  # a larger result is computed again each time, never kept
OVERHEAD = 200  # bytes of bookkeeping per kept result (its key, the dict's slot)
_lock = threading.Lock()
_kept: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
_size = 0


def memoized(kind: str, text: str, compute: Callable[[str], T]) -> T:
    """compute(text), computed once per text and kind while it stays within BUDGET (least recently used go
    first). compute must be pure and its result picklable; an exception is not kept: the next call computes again."""
    global _size
    key = (kind, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    with _lock:
        blob = _kept.get(key)
        if blob is not None:
            _kept.move_to_end(key)
    if blob is not None:
        return pickle.loads(blob)  # noqa: S301  (bytes this module pickled itself)
    value = compute(text)
    blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if len(blob) <= LARGEST:
        with _lock:
            if key not in _kept:
                _kept[key] = blob
                _size += len(blob) + OVERHEAD
                while _size > BUDGET:
                    _, dropped = _kept.popitem(last=False)
                    _size -= len(dropped) + OVERHEAD
    return value


def clear() -> None:
    """Forget everything kept (tests)."""
    global _size
    with _lock:
        _kept.clear()
        _size = 0
