"""A run's start embeds the week's entries while it syncs the SOPs (issue 12: one round trip's wait, not two),
through the real OpenAI SDK against the fake service; whatever fails, every answered call is on the run's bill."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import demo, pipeline, store
from playbook_sync.deps import Deps
from playbook_sync.errors import ConfigError
from playbook_sync.models import LlmCall, RunItem, SyncRun
from playbook_sync.schemas import RunStatus
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.wiring import real_deps

pytestmark = pytest.mark.integration
EMBEDDINGS = "/v1/embeddings"


def embed_calls(deps: Deps, run_id) -> list[LlmCall]:
    with deps.session() as s:
        return list(s.scalars(select(LlmCall).where(LlmCall.run_id == run_id, LlmCall.step == "embed")))


@pytest.fixture
def week(deps):
    """The demo's entries stored, and (the fake OpenAI service, the test's deps on its embedder)."""
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with FakeOpenAI() as fake:
        yield fake, real_deps(deps, None, fake)


def test_the_entries_and_the_sops_are_embedded_at_once(deps, week):
    fake, d = week
    # The first request is held long enough that a start embedding in turn could not send the second during it.
    fake.delay_next(EMBEDDINGS, 5.0)
    with d.session() as s:
        started = pipeline.start_run(s, d, trigger="test")
    sizes = sorted(r["inputs"] for r in fake.embedding_requests)
    entries = len(demo.entries(datetime.now(UTC)))
    assert len(started.entry_ids) == entries
    assert len(sizes) == 2 and entries in sizes, sizes  # one request for the SOP texts, one for the week
    assert fake.max_in_flight == 2
    assert len(embed_calls(deps, started.run_id)) == 2  # both on the run's bill


def test_a_start_whose_other_request_fails_bills_the_answered_one_and_loses_nothing(deps, week):
    fake, d = week
    # One of the two requests (whichever comes first) is refused for good: a 400 is not retried.
    fake.fail_next(EMBEDDINGS, 400)
    with d.session() as s, pytest.raises(Exception, match="400|invalid"):
        pipeline.start_run(s, d, trigger="test")
    with deps.session() as s:
        failed = s.scalars(select(SyncRun)).one()
    assert failed.status == RunStatus.failed and "start failed" in (failed.error_log or "")
    assert len(embed_calls(deps, failed.id)) == 1  # the other was answered, and paid for
    # Nothing was lost: the next start takes every entry, and every one gets an item.
    with d.session() as s:
        started = pipeline.start_run(s, d, trigger="test")
    assert len(started.entry_ids) == len(demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        items = s.scalars(select(RunItem.entry_id).where(RunItem.run_id == started.run_id)).all()
    assert sorted(items) == sorted(started.entry_ids)


def test_a_playbook_without_sops_is_refused_before_the_week_is_embedded(deps, week):
    # A wrong docs root is a setting to fix: no request is made (and paid for) that the refusal throws away.
    fake, _ = week
    wrong = real_deps(deps, None, fake, docs_root="documentation")
    with wrong.session() as s, pytest.raises(ConfigError, match="has no SOPs"):
        pipeline.start_run(s, wrong, trigger="test")
    assert fake.count("POST", EMBEDDINGS) == 0
