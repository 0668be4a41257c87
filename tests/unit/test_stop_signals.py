"""A stop signal ends the command even when it lands where its exception is swallowed.

CI once saw SIGTERM handled inside a weakref callback during the local worker's readiness wait:
Python printed "Exception ignored in ..." and the demo ran on to a success.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

IN_A_DESTRUCTOR = """
import os, signal, time
from playbook_sync.local_services import _stop_signals

class Dropped:
    def __del__(self):  # a handler run here can only be printed and dropped by Python
        os.kill(os.getpid(), signal.{sig})
        for _ in range(10**6):
            pass

with _stop_signals():
    Dropped()
    time.sleep(5)
    print("the block ran to its end")
print("after the block")
"""

CAUGHT = """
import os, signal, time
from playbook_sync.local_services import _stop_signals
with _stop_signals():
    try:
        os.kill(os.getpid(), signal.{sig})
        time.sleep(0.2)
    except BaseException:
        pass  # a library that catches everything
    print("the block ran to its end")
print("after the block")
"""


@pytest.mark.parametrize(("sig", "raised"), [("SIGTERM", "SystemExit"), ("SIGINT", "KeyboardInterrupt")])
def test_a_signal_in_a_destructor_is_delivered_again_and_stops_the_block(sig, raised):
    body = "".join(f"    {line}\n" for line in IN_A_DESTRUCTOR.format(sig=sig).splitlines())
    wrapped = f"try:\n{body}except {raised}:\n    print('stopped by {raised}')\n"  # what ended the block
    proc = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=60)
    assert f"stopped by {raised}" in proc.stdout and "the block ran to its end" not in proc.stdout, (proc.stdout, proc.stderr)
    assert "Exception ignored" not in proc.stderr


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_caught_stop_signal_still_ends_the_command_as_stopped(sig, code):
    proc = subprocess.run([sys.executable, "-c", CAUGHT.format(sig=sig)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert "the block ran to its end" in proc.stdout and "after the block" not in proc.stdout
    assert "Traceback" not in proc.stderr
