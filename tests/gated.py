"""An LLM that stops mid-run on cue: deterministic 'mid-chord' faults without timing guesses."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from playbook_sync.providers.offline import OfflineLLM
from playbook_sync.schemas import ClassifyRequest, Decision

GATE_AFTER_ENV = "PLAYBOOK_SYNC_TEST_GATE_AFTER"  # classify calls let through (per worker process)
GATE_FILE_ENV = "PLAYBOOK_SYNC_TEST_GATE_FILE"  # later calls wait until this file exists
GATE_WAIT_SECONDS = 300  # bounded: a forgotten gate fails the task instead of hanging the suite


class GatedLLM(OfflineLLM):
    """The offline LLM; after GATE_AFTER classify calls, each further call blocks until GATE_FILE exists.

    A test waits until exactly that many entries are done, then injects its fault (kill a
    worker, restart Redis) while the rest of the run is certainly still in flight.
    """

    _lock = threading.Lock()
    _calls = 0

    def classify(self, request: ClassifyRequest) -> list[Decision]:
        with GatedLLM._lock:
            GatedLLM._calls += 1
            mine = GatedLLM._calls
        gate = Path(os.environ[GATE_FILE_ENV])
        if mine > int(os.environ.get(GATE_AFTER_ENV, "0")):
            deadline = time.monotonic() + GATE_WAIT_SECONDS
            while not gate.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"test gate {gate} never opened")
                time.sleep(0.05)
        return super().classify(request)


def gate_env(gate: Path, after: int) -> dict[str, str]:
    """Worker environment for GatedLLM letting `after` classify calls through before the gate."""
    return {"PLAYBOOK_SYNC_LLM": "tests.gated:GatedLLM", GATE_FILE_ENV: str(gate), GATE_AFTER_ENV: str(after)}
