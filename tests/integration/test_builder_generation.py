"""Playbook generation as Celery jobs on a real worker: the offline provider, and the real Anthropic and
OpenAI SDKs against the local fakes. A job completes, its sources are stored per module, cost is
metered, and a module a person edited survives regeneration unless overwrite is asked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import demo, store
from playbook_sync.api import create_app
from playbook_sync.builder import generation, grounding
from playbook_sync.builder.models import GenerateRequest
from playbook_sync.builder.tables import GenerationJob, PlaybookRow
from playbook_sync.builder.users import local_user_id
from playbook_sync.models import LlmCall
from playbook_sync.worker.app import app
from playbook_sync.worker.local import worker_process
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.http import served
from tests.integration.test_faults import worker_env
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
ASK = {"title": "Enterprise data platform", "target_persona": "CTO", "industry": "Fintech",
       "product_line": "Platform", "goals": "Shorten onboarding. Win against Snowflake and Databricks.", "scenarios": 4}


@pytest.fixture
def knowledge(deps):
    """The sample playbook's SOP sections and the sample entries, searchable."""
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
        grounding.index(s, deps)
    return deps


def finished(client, job_id: str, timeout: float = 90) -> dict:
    def done():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None
    return wait_for(done, timeout=timeout, what=f"job {job_id}", poll=0.1)


def edit_regenerate_and_overwrite(client, pid: str, sid: str) -> None:
    """A person's objection survives regeneration; overwrite=true replaces it."""
    scenario = next(s for s in client.get(f"/api/playbooks/{pid}").json()["scenarios"] if s["id"] == sid)
    modules = scenario["content_modules"] | {"objection_handling": [
        {"objection": "Your price is {too} high <b>!</b> ```", "response": "Ours, written by a person."}]}
    edited = client.put(f"/api/playbooks/{pid}/scenarios/{sid}", json={"content_modules": modules},
                        headers={"If-Match": "*"})
    assert edited.status_code == 200 and "objection_handling" in edited.json()["edited"], edited.text
    job = finished(client, client.post(f"/api/playbooks/{pid}/scenarios/{sid}/generate", json={}).json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["kept_edited"] == ["objection_handling"]
    after = client.get(f"/api/playbooks/{pid}").json()["scenarios"]
    ours = next(s for s in after if s["id"] == sid)
    assert ours["content_modules"]["objection_handling"][0]["response"] == "Ours, written by a person."
    job = finished(client, client.post(f"/api/playbooks/{pid}/scenarios/{sid}/generate",
                                       json={"modules": ["objection_handling"], "overwrite": True}).json()["id"])
    assert job["status"] == "succeeded" and job["result"]["written"] == ["objection_handling"], job
    ours = next(s for s in client.get(f"/api/playbooks/{pid}").json()["scenarios"] if s["id"] == sid)
    assert ours["content_modules"]["objection_handling"][0]["response"] != "Ours, written by a person."
    assert "objection_handling" not in ours["edited"]


def test_offline_generation_on_a_real_worker(knowledge, settings, redis_url, tmp_path):
    log = tmp_path / "worker.log"
    with worker_process(app, env=worker_env(settings), log_file=log, name="builder"), \
            served(create_app(settings)) as client:
        accepted = client.post("/api/playbooks/generate", json=ASK)
        assert accepted.status_code == 202, accepted.text
        job = finished(client, accepted.json()["id"])
        assert job["status"] == "succeeded", (job, log.read_text()[-2000:])
        assert job["progress"] == 100 and job["sources"], job
        playbook = client.get(f"/api/playbooks/{job['playbook_id']}").json()
        assert len(playbook["scenarios"]) == 4 and playbook["description"]
        assert [s["deal_stage"] for s in playbook["scenarios"]] == ["discovery", "demo", "proposal", "negotiation"]
        first = playbook["scenarios"][0]
        assert first["content_modules"]["objection_handling"] and first["content_modules"]["key_messages"]
        assert first["competitors"] == ["Snowflake", "Databricks"]
        cited = {s["type"] for sources in first["sources"].values() for s in sources}
        assert {"sop_section", "entry"} <= cited, first["sources"]
        edit_regenerate_and_overwrite(client, playbook["id"], first["id"])


@pytest.mark.parametrize("vendor", ["anthropic", "openai"])
def test_generation_through_the_real_sdks_against_the_fakes(vendor, knowledge, settings, redis_url, tmp_path):
    fake_class = FakeAnthropic if vendor == "anthropic" else FakeOpenAI
    with fake_class() as fake:
        url = fake.base_url if vendor == "anthropic" else fake.api_url
        env = worker_env(settings) | {"PLAYBOOK_SYNC_LLM": vendor, f"PLAYBOOK_SYNC_{vendor.upper()}_API_KEY": fake.api_key,
                                      f"PLAYBOOK_SYNC_{vendor.upper()}_BASE_URL": url,
                                      "PLAYBOOK_SYNC_LLM_RETRY_BASE_SECONDS": "0.01"}
        with worker_process(app, env=env, log_file=tmp_path / "worker.log", name=vendor), \
                served(create_app(settings)) as client:
            job = finished(client, client.post("/api/playbooks/generate", json=ASK | {"scenarios": 3}).json()["id"])
            assert job["status"] == "succeeded", (job, (tmp_path / "worker.log").read_text()[-2000:])
            playbook = client.get(f"/api/playbooks/{job['playbook_id']}").json()
            assert len(playbook["scenarios"]) == 3 and "fake model" in playbook["description"]
            first = playbook["scenarios"][0]
            assert first["content_modules"]["key_messages"] == ["Fake model message one.", "Fake model message two."]
            assert all(len(first["sources"][m]) == 2 for m in ("opening_strategy", "objection_handling"))
            assert job["cost_usd"] > 0
            edit_regenerate_and_overwrite(client, playbook["id"], first["id"])
        posts = fake.posts("/v1/messages" if vendor == "anthropic" else "/v1/chat/completions")
    names = [p["tools"][0]["name"] if vendor == "anthropic" else p["response_format"]["json_schema"]["name"] for p in posts]
    assert names.count("draft_playbook") == 1 and names.count("write_content_modules") == 3 + 2
    strict = [p["tools"][0]["strict"] if vendor == "anthropic" else p["response_format"]["json_schema"]["strict"]
              for p in posts]
    assert all(strict)
    with knowledge.session() as s:
        assert s.scalar(select(func.count()).select_from(LlmCall).where(LlmCall.step.like("builder_%"))) == len(posts)


def test_deleting_a_playbook_during_generation_fails_the_job_with_a_sentence(knowledge):
    d = knowledge
    with d.session() as s:
        job = generation.start_playbook_job(s, local_user_id(s), GenerateRequest(**ASK))
        job_id, pid = job.id, job.playbook_id

    class DeletingLLM:  # the person deletes the playbook while the model is answering
        def generate_outline(self, request):
            with d.session() as s:
                s.delete(s.get(PlaybookRow, pid))
            return d.llm.generate_outline(request)

    outcome = generation.run_job(d.session, d.embedder, DeletingLLM(), d.ledger, job_id)
    assert outcome["status"] == "failed"
    with d.session() as s:
        job = generation.get_job(s, local_user_id(s), job_id)
        assert job.error == "the playbook was deleted during generation" and job.playbook_id is None


def test_a_job_failed_by_a_serve_while_its_orphaned_worker_ran_on_stays_failed(knowledge):
    d = knowledge
    with d.session() as s:
        job_id = generation.start_playbook_job(s, local_user_id(s), GenerateRequest(**ASK)).id
    said = "the serve that queued this job stopped before the job finished; generate again to retry"

    class OrphanedLLM:  # its serve was killed; the next serve failed the job while the model was still answering
        def generate_outline(self, request):
            with d.session() as s:
                generation.fail_unfinished(s, error=said)
            return d.llm.generate_outline(request)

        def generate_modules(self, request):
            return d.llm.generate_modules(request)

    assert generation.run_job(d.session, d.embedder, OrphanedLLM(), d.ledger, job_id)["status"] == "failed"
    with d.session() as s:
        job = s.get(GenerationJob, job_id)
        assert (job.status, job.error) == ("failed", said)  # was flipped to succeeded: the page had shown it failed


def test_the_demo_leaves_one_generated_sample_playbook(deps):
    from playbook_sync.builder.demo import sample_playbook

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    first, made = sample_playbook(deps)
    again, made_again = sample_playbook(deps)
    assert made and not made_again and again == first
    with deps.session() as s:
        row = s.get(PlaybookRow, first)
        assert len(row.scenarios) == 4 and all(sc.content_modules.get("objection_handling") for sc in row.scenarios)


def test_a_redelivered_playbook_job_continues_without_duplicating_scenarios(knowledge):
    d = knowledge
    with d.session() as s:
        job = generation.start_playbook_job(s, local_user_id(s), GenerateRequest(**ASK))
        job_id, pid = job.id, job.playbook_id

    class DyingLLM:  # the worker is lost after the outline and one scenario
        calls = 0

        def generate_outline(self, request):
            return d.llm.generate_outline(request)

        def generate_modules(self, request):
            DyingLLM.calls += 1
            if DyingLLM.calls > 1:
                raise RuntimeError("worker lost")
            return d.llm.generate_modules(request)

    assert generation.run_job(d.session, d.embedder, DyingLLM(), d.ledger, job_id)["status"] == "failed"
    with d.session() as s:
        s.get(GenerationJob, job_id).status = "running"  # as the broker redelivers an unacknowledged task
    assert generation.run_job(d.session, d.embedder, d.llm, d.ledger, job_id)["status"] == "succeeded"
    with d.session() as s:
        scenarios = s.get(PlaybookRow, pid).scenarios
        assert len(scenarios) == 4 and all(sc.content_modules.get("next_steps") for sc in scenarios)


def test_a_failed_job_shows_its_error_on_the_builder_page(knowledge, settings):
    from playbook_sync.builder import service
    from playbook_sync.builder.models import PlaybookIn, ScenarioGenerateRequest, ScenarioIn

    d = knowledge
    with d.session() as s:
        user = local_user_id(s)
        pid = service.create_playbook(s, user, PlaybookIn(title="Doomed")).id
        keep = service.add_scenario(s, user, pid, ScenarioIn(title="Stays")).id
        sid = service.add_scenario(s, user, pid, ScenarioIn(title="Goes")).id
        job_id = generation.start_scenario_job(s, user, pid, sid, ScenarioGenerateRequest()).id
        service.delete_scenario(s, user, pid, sid)  # deleted before the worker picks the job up
    assert generation.run_job(d.session, d.embedder, d.llm, d.ledger, job_id)["status"] == "failed"
    with served(create_app(settings)) as client:
        page = client.get(f"/playbooks/{pid}", params={"scenario": str(keep), "job": str(job_id)})
        assert page.status_code == 200 and 'role="alert">Generation failed: the scenario was deleted' in page.text
        assert client.get(f"/api/jobs/{job_id}").json()["error"] == "the scenario was deleted before generation started"


def test_add_and_generate_a_scenario_in_one_request(knowledge, settings, redis_url):
    with served(create_app(settings)) as client:  # the task waits in Redis; the job is run here instead
        pid = client.post("/api/playbooks", json={"title": "One call", "target_persona": "CFO"}).json()["id"]
        accepted = client.post(f"/api/playbooks/{pid}/scenarios/generate",
                               json={"title": "Proposal Review with CFO", "deal_stage": "proposal",
                                     "content_modules": {"next_steps": ["Ours."]}})
        assert accepted.status_code == 202 and accepted.json()["status"] == "queued", accepted.text
        job = accepted.json()
        d = knowledge
        assert generation.run_job(d.session, d.embedder, d.llm, d.ledger, uuid.UUID(job["id"]))["status"] == "succeeded"
        scenario = client.get(f"/api/playbooks/{pid}").json()["scenarios"][0]
        assert scenario["id"] == job["scenario_id"] and scenario["content_modules"]["next_steps"] == ["Ours."]
        assert scenario["content_modules"]["discovery_questions"] and scenario["sources"]
    app.control.purge()  # the task left in Redis is done; no later test's worker should meet it
