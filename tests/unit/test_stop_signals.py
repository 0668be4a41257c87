"""A stop signal ends the command even when code inside the services block swallowed its exception."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SWALLOWED = """
import os, signal, time
from playbook_sync.local_services import _stop_signals
with _stop_signals():
    try:
        os.kill(os.getpid(), signal.{sig})
        time.sleep(0.2)
    except BaseException:
        pass  # as a library in the block once did (a SIGTERM during the worker's readiness ping)
    print("the block ended normally")
print("after the block")
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_swallowed_stop_signal_still_ends_the_command_as_stopped(sig, code):
    proc = subprocess.run([sys.executable, "-c", SWALLOWED.format(sig=sig)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert "the block ended normally" in proc.stdout and "after the block" not in proc.stdout
    assert "Traceback" not in proc.stderr
