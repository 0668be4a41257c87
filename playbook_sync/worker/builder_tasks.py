"""The Playbook Builder's task: one job id in, a small dict out (routed to the LLM queue in app.py)."""

from __future__ import annotations

import uuid

from playbook_sync.builder import generation
from playbook_sync.worker.app import app
from playbook_sync.worker.tasks import deps


@app.task(name="playbook_sync.generate_playbook_content")
def generate(job_id: str) -> dict:
    """Run one generation job (a whole playbook, or one scenario's modules); its failures stay on the job row."""
    d = deps()
    return generation.run_job(d.session, d.embedder, d.llm, d.ledger, uuid.UUID(job_id))
