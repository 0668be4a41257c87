"""OpenAI embeddings in the pipeline: cached per content and model, re-embedded on a model change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from playbook_sync import demo, lifecycle, pipeline, store
from playbook_sync.models import KnowledgeEntry, SopEmbedding
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.wiring import real_deps

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def start_and_close(deps) -> None:
    """Start a run (SOP sync + entry embeddings), then end it failed so the window stays put."""
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=1))
    with deps.session() as s:
        lifecycle.fail_run(s, run_id=started.run_id, error="test: only the start matters here", repo=deps.repo)


def test_vectors_are_cached_per_model_and_a_model_change_re_embeds(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=[e.model_copy(update={"created_at": T0}) for e in demo.entries(T0)[:5]])
    with FakeOpenAI() as fake:
        small = real_deps(deps, None, fake)
        start_and_close(small)
        first = [dict(r) for r in fake.embedding_requests]
        assert {r["model"] for r in first} == {"text-embedding-3-small"} and len(first) == 2  # SOP texts, entries
        start_and_close(small)
        assert fake.embedding_requests == first  # same content, same model: nothing sent

        large = real_deps(deps, None, fake, embedding_model="text-embedding-3-large")
        start_and_close(large)
        again = fake.embedding_requests[len(first):]
        assert [(r["model"], r["inputs"]) for r in again] == [("text-embedding-3-large", r["inputs"]) for r in first]
    with deps.session() as s:
        assert set(s.scalars(select(SopEmbedding.embedding_model))) == {"text-embedding-3-large"}
        assert set(s.scalars(select(KnowledgeEntry.embedding_model))) == {"text-embedding-3-large"}
