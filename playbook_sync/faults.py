"""Named crash points for the fault tests: die exactly where a SIGKILL would hurt most.

The moments around a commit (after the branch moved, before the bookkeeping) cannot be hit
reliably by killing a process from outside, so the tests ask the process to die there.
"""

from __future__ import annotations

import os

CRASH_ENV = "PLAYBOOK_SYNC_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """os._exit (no cleanup, like SIGKILL) when PLAYBOOK_SYNC_TEST_CRASH_AT names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
