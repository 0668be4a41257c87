"""Test-only providers and helpers (real offline logic, with injected permanent failures)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import event

from playbook_sync.db import get_engine
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.offline import OfflineLLM
from playbook_sync.schemas import ClassifyRequest, Decision, EntryIn

FAIL_IDS_ENV = "PLAYBOOK_SYNC_TEST_FAIL_IDS"


class FailingLLM(OfflineLLM):
    """The offline LLM, except classify fails for good for the entry ids in FAIL_IDS_ENV."""

    def __init__(self, fail_ids: set[str] | None = None) -> None:
        super().__init__()
        self.fail_ids = fail_ids if fail_ids is not None else set(filter(None, os.environ.get(FAIL_IDS_ENV, "").split(",")))

    def classify(self, request: ClassifyRequest) -> list[Decision]:
        if str(request.entry.id) in self.fail_ids:
            raise ProviderError("injected permanent failure: 400 invalid request")
        return super().classify(request)


def entry(content: str, *, created_at: datetime, category: str = "insight", source: str = "call-1",
          transcript_type: str = "coaching", tags: list[str] | None = None) -> EntryIn:
    """A valid entry with a fresh id."""
    return EntryIn(id=uuid.uuid4(), category=category, content=content, transcript_type=transcript_type,
                   source_ref=source, created_at=created_at, tags=tags or [])


SLOW_ENV = "PLAYBOOK_SYNC_TEST_SLOW_SECONDS"


class SlowLLM(OfflineLLM):
    """The offline LLM with a fixed latency per classify call (to kill a worker mid-chord)."""

    def classify(self, request: ClassifyRequest) -> list[Decision]:
        import time

        time.sleep(float(os.environ.get(SLOW_ENV, "0.05")))
        return super().classify(request)


def variants(entries: list[EntryIn], n: int, now: datetime) -> list[EntryIn]:
    """n distinct entries reworded from the given ones (fresh ids, same topics)."""
    return [
        e.model_copy(update={"id": uuid.uuid4(), "content": f"{e.content} Seen again on call {i}.", "created_at": now})
        for i, e in zip(range(n), entries * (n // max(1, len(entries)) + 1))
    ]


class TaggedLLM(OfflineLLM):
    """The offline LLM, except each callout body starts with its entries' short ids and a per-process
    nonce: a block written twice for the same entry is visible in the file, even with another body
    (a real LLM words the same entry differently each time)."""

    NONCE = uuid.uuid4().hex[:6]

    def write_callout(self, request):
        draft = super().write_callout(request)
        tags = " ".join(f"e{str(e.id)[:8]}" for e in request.entries)
        return draft.model_copy(update={"body": f"Ref {tags} n{self.NONCE}: {draft.body}"})


@contextmanager
def sql_statements(database_url: str) -> Iterator[list[str]]:
    """The SQL the block sends on the pooled engine every session of that URL shares, in order, each statement's
    whitespace folded to single spaces (clear the list to count per step)."""
    statements: list[str] = []
    engine = get_engine(database_url)

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
