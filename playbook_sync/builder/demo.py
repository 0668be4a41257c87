"""The demo's sample playbook: generated once (offline provider by default) over the sample knowledge."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from playbook_sync.builder import generation, grounding
from playbook_sync.builder.models import GenerateRequest
from playbook_sync.builder.tables import PlaybookRow
from playbook_sync.builder.users import local_user_id

SAMPLE = GenerateRequest(title="Sample: Selling the Agency Retainer", target_persona="Agency Founder",
                         industry="Marketing agencies", product_line="Growth retainer",
                         goals="Win retainers from founders who buy on referrals. Handle price objections.", scenarios=4)


def sample_playbook(deps) -> tuple[uuid.UUID, bool]:
    """(id, made now) of the sample playbook; generated in this process, in one job, unless it exists."""
    with deps.session() as session:
        user = local_user_id(session)
        found = session.scalar(select(PlaybookRow.id).where(PlaybookRow.user_id == user, PlaybookRow.title == SAMPLE.title))
        if found is not None:
            return found, False
        grounding.index(session, deps)
        job = generation.start_playbook_job(session, user, SAMPLE)
        job_id, playbook_id = job.id, job.playbook_id
    outcome = generation.run_job(deps.session, deps.embedder, deps.llm, deps.ledger, job_id)
    if outcome["status"] != "succeeded":
        with deps.session() as session:
            raise RuntimeError(f"sample playbook not generated: {session.get(generation.GenerationJob, job_id).error}")
    return playbook_id, True
