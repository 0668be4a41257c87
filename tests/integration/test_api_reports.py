"""Issue 13's HTTP API through a real client against the real app on real PostgreSQL: every endpoint,
auth on and off, 422 naming the field, 413 for oversized bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from playbook_sync import demo, pipeline
from playbook_sync.api import create_app
from playbook_sync.models import KnowledgeEntry
from playbook_sync.models_reports import PlaybookExecution, PlaybookReport
from tests.http import served

pytestmark = pytest.mark.integration

TOKEN = "operator-t0ken"
ENDPOINTS = [("post", "/api/entries"), ("post", "/api/reports"), ("get", "/api/search?q=reply"),
             ("get", "/api/context?customer_id=cust-acme"), ("get", "/api/runs"), ("get", "/api/runs/RUN"),
             ("get", "/api/sops/sop-3-1-run-a-discovery-call/stats")]
ENTRY = {"category": "insight", "content": "Naming the prospect's competitor in the subject line doubled opens.",
         "transcript_type": "coaching", "speaker": "Zoë Ærø", "tags": ["cold-email"]}


def _demo_reports() -> list[dict]:
    return [json.loads(r.model_dump_json(exclude_none=True)) for r in demo.reports(datetime.now(UTC))]


@pytest.fixture
def synced(deps):
    """A demo playbook with its SOP cache synced by a run's start (what search and stats read); the run is then
    ended (failed), which is all /api/runs needs and far quicker than a whole run."""
    from playbook_sync.finalize import fail_run

    with deps.session() as s:
        run_id = pipeline.start_run(s, deps).run_id
    fail_run(deps, run_id=run_id, error="test: the start is all these tests need")
    return deps, str(run_id)


def test_every_endpoint_without_a_token_configured(synced):
    deps, run_id = synced
    with served(create_app(deps.settings)) as api:
        posted = api.post("/api/reports", json=_demo_reports())
        assert posted.status_code == 200 and posted.json()["added"] == 9
        again = api.post("/api/reports", json=_demo_reports()[0])  # the same report: updated, never duplicated
        assert again.json()["updated"] == 1 and again.json()["added"] == 0
        assert api.post("/api/entries", json=[ENTRY, ENTRY | {"content": "Second one, with a\u200b zero-width space."}]).json()["added"] == 2
        with deps.session() as s:
            assert s.scalar(select(func.count()).select_from(PlaybookReport)) == 9
            assert s.scalar(select(func.count()).select_from(PlaybookExecution)) == 9
            assert s.scalar(select(func.count()).where(KnowledgeEntry.content.like("Second one, with a zero-width%"))) == 1

        found = api.get("/api/search", params={"q": "how much did replies go up after the outbound emails", "limit": 5}).json()
        assert found["results"] and {"type", "score", "title", "snippet", "link"} <= set(found["results"][0])
        only = api.get("/api/search", params={"q": "win rate discovery", "type": "report", "customer": "cust-acme",
                                              "since": "2026-01-01"}).json()
        assert only["results"] and {r["link"] for r in only["results"]} == {"report:rpt-acme-cold-1", "report:rpt-acme-disc-1"}
        sops = api.get("/api/search", params={"q": "discovery call agenda", "type": "sop", "limit": 3}).json()["results"]
        assert sops[0]["link"].startswith("docs/sops/module-3/sop-3-1-run-a-discovery-call.md#")

        ctx = api.get("/api/context", params={"customer_id": "cust-acme", "query": "raise the win rate in discovery"}).json()
        assert ctx["text"].startswith("RECENT PLAYBOOK INSIGHTS (customer cust-acme)")
        assert {r["report_id"] for r in ctx["recent"]} == {"rpt-acme-cold-1", "rpt-acme-disc-1"}
        assert ctx["similar"] and all(r["customer_id"] != "cust-acme" and r["status"] == "completed" for r in ctx["similar"])
        assert ctx["similar"][0]["report_id"] == "rpt-umbrella-disc-1"  # the other discovery reset that worked
        umbrella = ctx["similar"][0]["evidence"]
        assert {"metric": "Win rate", "before": 21.0, "after": 26.0, "delta": 5.0, "unit": "%", "status": "increased"} in umbrella

        runs = api.get("/api/runs").json()["runs"]
        assert runs[0]["run_id"] == run_id
        assert api.get(f"/api/runs/{run_id[:8]}").json()["run"]["id"] == run_id
        assert api.get("/api/runs/ffffffff").status_code == 404
        stats = api.get("/api/sops/sop-3-1-run-a-discovery-call/stats").json()
        assert stats["executions"] == 3 and stats["completed"] == 2
        by_path = api.get("/api/sops/docs/sops/module-3/sop-3-1-run-a-discovery-call.md/stats").json()
        assert by_path["sop_id"] == "sop-3-1-run-a-discovery-call" and by_path["executions"] == 3
        assert api.get("/api/sops/no-such-sop/stats").status_code == 404
        paths = api.get("/openapi.json").json()["paths"]
        assert {"/api/entries", "/api/reports", "/api/search", "/api/context", "/api/runs", "/api/runs/{run_id}",
                "/api/sops/{sop}/stats"} <= set(paths)
        assert api.get("/docs").status_code == 200


def test_every_endpoint_needs_the_operator_token_when_one_is_set(synced):
    deps, run_id = synced
    app = create_app(deps.settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    bodies = {"/api/entries": ENTRY, "/api/reports": _demo_reports()[0]}
    with served(app) as anonymous, served(app, token="wrong") as wrong, served(app, token=TOKEN) as operator:
        for method, path in ENDPOINTS:
            path = path.replace("RUN", run_id)
            kwargs = {"json": bodies[path]} if method == "post" else {}
            assert getattr(anonymous, method)(path, **kwargs).status_code == 401, path
            assert getattr(wrong, method)(path, **kwargs).status_code == 401, path
            assert getattr(operator, method)(path, **kwargs).status_code == 200, path


def test_bad_bodies_get_422_naming_the_field_and_big_ones_413(synced):
    deps, _ = synced
    good = _demo_reports()[0]
    app = create_app(deps.settings.model_copy(update={"api_max_body_bytes": 4000}))
    with served(app) as api:
        bad = api.post("/api/reports", json=[good, good | {"report_id": "r2", "status": "done"},
                                             good | {"report_id": "r3", "steps_completed": 9, "total_steps": 5}])
        assert bad.status_code == 422
        detail = bad.json()["detail"]
        assert [(d["loc"][:2], d["field"]) for d in detail] == [(["body", 1], "status"), (["body", 2], "report")]
        assert "steps_completed (9) is more than total_steps (5)" in detail[1]["msg"]
        with deps.session() as s:  # all or nothing: the good one was not stored either
            assert s.scalar(select(func.count()).select_from(PlaybookReport)) == 0
        assert list((deps.settings.data_dir / "rejected").glob("*api-reports.rejected.jsonl"))  # kept for the operator

        entry = api.post("/api/entries", json={"content": "no category", "transcript_type": "sales", "mood": 1})
        (why,) = entry.json()["detail"]
        assert entry.status_code == 422 and why["loc"][:2] == ["body", 0] and why["field"] == "category"
        assert "category: Field required" in why["msg"] and "mood: Extra inputs are not permitted" in why["msg"]
        assert api.post("/api/entries", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        assert api.post("/api/reports", json=[]).status_code == 422
        missing = api.get("/api/search")
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "q"]
        assert api.get("/api/search", params={"q": "x", "type": "video"}).json()["detail"][0]["loc"][:2] == ["query", "type"]
        assert api.get("/api/search", params={"q": "x", "limit": 0}).status_code == 422
        assert api.get("/api/context").json()["detail"][0]["loc"] == ["query", "customer_id"]
        assert api.post("/api/reports", json=good).status_code == 200
        taken = api.post("/api/reports", json=[good | {"report_id": "other-1", "execution_id": None},
                                               good | {"report_id": "other-2"}])  # its execution has a report already
        assert taken.status_code == 422 and taken.json()["detail"][0]["loc"][:2] == ["body", 1]
        assert f"already has report {good['report_id']}" in taken.json()["detail"][0]["msg"]
        assert taken.json()["detail"][0]["field"] == "execution_id"
        with deps.session() as s:  # the whole request was undone, the earlier report is intact
            assert list(s.scalars(select(PlaybookReport.report_id))) == [good["report_id"]]
        huge = api.post("/api/reports", json=good | {"report_data": {"executive_summary": "x" * 5000}})
        assert huge.status_code == 413
