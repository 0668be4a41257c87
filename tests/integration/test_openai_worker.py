"""The OpenAI LLM path end to end on a real worker: classify and edit calls reach the (fake) OpenAI
API, its answers are what the run commits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import demo, store
from playbook_sync.models import RunItem
from playbook_sync.worker.app import app
from playbook_sync.worker.local import task_result, wait_for_run, worker_process
from tests.blocks import blocks_in
from tests.fakes.answers import default_answer
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_faults import worker_env
from tests.runs import summarize

pytestmark = pytest.mark.integration
MARK = "Heard on calls via OpenAI."  # only the fake's write_callouts answers say this


def test_a_run_on_the_openai_llm_and_embedder_commits_what_the_model_wrote(deps, settings, redis_url, tmp_path):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    base = deps.repo.head()

    def responder(name, schema, prompt):
        answer = default_answer(name, schema, prompt)
        if name != "write_callouts":
            return answer
        return {"callouts": [c | {"body": f"{MARK} {c['body']}"} for c in answer["callouts"]]}

    log = tmp_path / "worker.log"
    with FakeOpenAI(responder=responder) as fake:
        env = worker_env(settings) | {
            "PLAYBOOK_SYNC_LLM": "openai", "PLAYBOOK_SYNC_EMBEDDER": "openai",
            "PLAYBOOK_SYNC_EMBEDDING_MODEL": "text-embedding-3-small",
            "PLAYBOOK_SYNC_OPENAI_API_KEY": fake.api_key, "PLAYBOOK_SYNC_OPENAI_BASE_URL": fake.api_url,
            "PLAYBOOK_SYNC_LLM_RETRY_BASE_SECONDS": "0.01",
            # The fake embeds with the offline lexical vectors: the offline bands fit them.
            "PLAYBOOK_SYNC_BANDS": json.dumps({"text-embedding-3-small": {"strong": 0.35, "weak": 0.20}})}
        with worker_process(app, env=env, log_file=log, name="openai"):
            from playbook_sync.worker.tasks import start_run

            run_id = uuid.UUID(task_result(start_run.delay(trigger="test"), timeout=60, poll=0.2)["run_id"])
            outcome = wait_for_run(settings.database_url, run_id, timeout=180, poll=0.2, summarize=summarize)
        formats = [(b.get("response_format") or {}).get("json_schema", {}).get("name")
                   for b in fake.posts("/v1/chat/completions")]
        embedded = list(fake.embedding_requests)
    assert outcome["status"] == "success" and outcome["commit_sha"], log.read_text()[-3000:]
    with deps.session() as s:  # one classify call per entry that had candidates
        with_candidates = s.scalar(select(func.count()).select_from(RunItem).where(
            RunItem.run_id == run_id, RunItem.best_sop.is_not(None)))
    assert formats.count("record_classification") == with_candidates > 0
    assert formats.count("write_callouts") >= len(outcome["sops_enriched"]) > 0
    assert embedded and {r["model"] for r in embedded} == {"text-embedding-3-small"}
    # The committed callouts are the fake model's words.
    tree = deps.repo.read_tree("docs", outcome["commit_sha"])
    before = deps.repo.read_tree("docs", base)
    added = [b for path in outcome["sops_enriched"] for b in blocks_in(tree[path].decode())
             if b not in blocks_in(before[path].decode())]
    assert added and all(MARK in b for b in added), added[:3]
