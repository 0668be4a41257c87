"""OpenAI embeddings in the pipeline: cached per content and model, re-embedded on a model change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from playbook_sync import callouts, demo, lifecycle, pipeline, store
from playbook_sync.models import KnowledgeEntry, SopEmbedding, SopSection
from playbook_sync.sops import content_hash, index_key, parse_sop
from tests.blocks import blocks_in
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
        # (the SOP texts and the week's entries are two requests in flight at once: in either order)
        assert sorted((r["model"], r["inputs"]) for r in again) == sorted(("text-embedding-3-large", r["inputs"]) for r in first)
    with deps.session() as s:
        assert set(s.scalars(select(SopEmbedding.embedding_model))) == {"text-embedding-3-large"}
        assert set(s.scalars(select(KnowledgeEntry.embedding_model))) == {"text-embedding-3-large"}


def _restart(deps) -> None:
    """A start (the SOP sync) on today's clock, then the run closed failed: only the sync matters."""
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    with deps.session() as s:
        lifecycle.fail_run(s, run_id=started.run_id, error="test: only the start matters here", repo=deps.repo)


def test_sections_are_indexed_without_the_callouts_a_run_wrote(deps):
    # Retrieval reads what the SOP itself says; the callouts stay in the cached SOP text the classifier is shown.
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    outcome = pipeline.run_inline(deps)
    assert outcome["commit_sha"] and outcome["sops_enriched"]
    _restart(deps)  # syncs the SOPs the run changed
    with deps.session() as s:
        for path in outcome["sops_enriched"]:
            content = s.scalar(select(SopEmbedding.content).where(SopEmbedding.file_path == path))
            bodies = "\n".join(s.scalars(select(SopSection.body).where(SopSection.file_path == path)))
            written = blocks_in(content)
            assert written, path
            said = [line for b in written for line in b.splitlines()[1:-1]]  # the tip and its attribution line
            assert not any(line in bodies for line in said), path
            assert not any(line in callouts.OPENERS for line in bodies.splitlines()), path
            own = [line for section in parse_sop(path, content.encode()).sections
                   for line in callouts.without_blocks(section.text).splitlines() if line.strip()]
            assert own and all(line in bodies for line in own), path  # the SOP's own words are all still there


def test_a_cache_indexed_the_old_way_is_embedded_again_once(deps):
    # Sections cached by a worker of the old index (with our callouts) carry the file's plain content hash:
    # the cache key (sops.index_key) tells them apart, so every one is embedded again once, then cached.
    _restart(deps)
    with deps.session() as s:
        texts = s.scalar(select(func.count()).select_from(SopSection)) + s.scalar(select(func.count()).select_from(SopEmbedding))
        for row in s.scalars(select(SopEmbedding)):
            assert row.content_hash == index_key(parse_sop(row.file_path, row.content.encode()))
            row.content_hash = content_hash(row.content)  # as the old code keyed it
    before = deps.embedder.inputs
    _restart(deps)
    assert deps.embedder.inputs - before == texts  # every SOP and section once, in the sync's batch
    _restart(deps)
    assert deps.embedder.inputs - before == texts  # and cached again after
