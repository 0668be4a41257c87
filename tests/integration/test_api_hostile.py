"""What a hostile tester sent the API (round 3): a NUL or a lone surrogate anywhere, reports re-sent without a
date or with another execution, run-id prefixes with LIKE wildcards. Each is a sentence or stored right, never a 500."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from playbook_sync import db, ingest, pipeline, report
from playbook_sync.api import create_app
from playbook_sync.builder.models import GenerateRequest
from playbook_sync.builder.users import add_user
from playbook_sync.finalize import fail_run
from playbook_sync.models_reports import PlaybookExecution, PlaybookReport
from tests.http import served

pytestmark = pytest.mark.integration
REPORT = {"report_id": "h3-r1", "customer_id": "c", "account_id": "a", "playbook_id": "p", "status": "completed"}


@pytest.fixture
def api(deps):
    """The app, served with one builder user's token, over a data dir whose run was opened and ended."""
    db.upgrade(deps.settings.database_url)
    with deps.session() as s:
        run_id = pipeline.start_run(s, deps).run_id
        _, token = add_user(s, "Alice")
    fail_run(deps, run_id=run_id, error="test: the start is all these tests need")
    with served(create_app(deps.settings), token=token) as client:
        yield client, str(run_id)


@pytest.mark.parametrize("path", ["/api/runs/%00", "/api/runs/a%00b", "/api/sops/%00/stats", "/api/learning/runs/%00",
                                  "/api/search?q=x&customer=%00", "/api/context?customer_id=%00&query=x",
                                  "/api/playbooks?text=%00", "/api/playbooks?industry=%00"])
def test_a_nul_in_the_path_or_query_is_a_sentence_not_a_500(api, path):
    client, _ = api
    answer = client.get(path)
    assert answer.status_code == 422 and "NUL character" in answer.json()["detail"], answer.text  # was 500


@pytest.mark.parametrize("route, body, field", [
    ("/api/entries", {"category": "insight", "content": "x \ud800", "transcript_type": "coaching"}, "content"),
    ("/api/reports", REPORT | {"report_data": {"executive_summary": "x \udc00"}}, "report_data.executive_summary"),
])
def test_a_lone_surrogate_in_a_body_names_its_field(api, route, body, field):
    client, _ = api
    answer = client.post(route, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text  # was a 500 (UnicodeEncodeError) that reset the connection
    [refused] = answer.json()["detail"]
    assert refused["field"] == field and "unpaired UTF-16 surrogate" in refused["msg"], refused
    assert client.get("/healthz").status_code == 200  # the connection is still good


def test_nan_or_infinity_in_a_report_names_its_field(api):
    client, _ = api
    answer = client.post("/api/reports", content=b'{"report_id": "n", "customer_id": "c", "account_id": "a", '
                         b'"playbook_id": "p", "status": "completed", "report_data": {"x": Infinity}}',
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    [refused] = answer.json()["detail"]
    assert refused["field"] == "report_data.x" and refused["msg"].startswith("report_data.x: Infinity is not valid JSON")


def test_builder_text_drops_control_characters_and_refuses_a_lone_surrogate(api):
    client, _ = api
    made = client.post("/api/playbooks", json={"title": "a\u0000b\u0001 ok", "description": "d\u0000"})
    assert made.status_code == 201, made.text  # was a 500 (PostgreSQL refuses NUL)
    assert made.json()["title"] == "ab ok" and made.json()["description"] == "d"
    assert client.post("/api/playbooks", json={"title": "\u0000"}).status_code == 422  # nothing left of it
    sur = client.post("/api/playbooks", content=json.dumps({"title": "sur \ud800"}).encode(),
                      headers={"content-type": "application/json"})
    assert sur.status_code == 422 and "unpaired UTF-16 surrogate" in sur.text, sur.text
    assert GenerateRequest(title="g\u0000", goals="win\u0007").model_dump()["goals"] == "win"  # every text field


def test_a_report_resent_without_a_date_keeps_the_stored_date_so_an_older_copy_stays_out(api, deps):
    client, _ = api
    dated = REPORT | {"report_id": "h3-gen"}
    assert client.post("/api/reports", json=dated | {"report_generated_at": "2026-11-20T00:00:00Z",
                                                      "report_data": {"executive_summary": "v-nov20"}}).json()["added"] == 1
    assert client.post("/api/reports", json=dated | {"report_data": {"executive_summary": "v-nogen"}}).json()["updated"] == 1
    late = client.post("/api/reports", json=dated | {"report_generated_at": "2026-10-01T00:00:00Z",
                                                      "report_data": {"executive_summary": "v-oct01"}}).json()
    assert late["kept"] == 1, late  # before: the undated copy had erased the date, and the oldest copy won
    with deps.session() as s:
        stored = s.get(PlaybookReport, "h3-gen")
        assert stored.report_generated_at.isoformat().startswith("2026-11-20") and "v-nogen" in stored.body


def test_a_report_moved_to_another_execution_or_kept_out_leaves_no_execution_behind(api, deps):
    client, _ = api
    first = client.post("/api/reports", json=REPORT | {"report_generated_at": "2026-11-01T00:00:00Z"}).json()
    moved = client.post("/api/reports", json=REPORT | {"execution_id": "22222222-2222-2222-2222-222222222222",
                                                        "report_generated_at": "2026-11-02T00:00:00Z"}).json()
    late = client.post("/api/reports", json=REPORT | {"execution_id": "33333333-3333-3333-3333-333333333333",
                                                       "report_generated_at": "2026-10-01T00:00:00Z"}).json()
    assert (first["added"], moved["updated"], late["kept"]) == (1, 1, 1)
    with deps.session() as s:
        executions = set(s.scalars(select(PlaybookExecution.execution_id)))
        assert executions == {"22222222-2222-2222-2222-222222222222"}, executions  # was 3 rows for 1 report


def test_a_run_id_prefix_is_a_prefix_not_a_pattern(api, deps):
    client, run_id = api
    assert client.get(f"/api/runs/{run_id[:8]}").status_code == 200
    for pattern in ("%", "_", f"%{run_id[-4:]}", f"{run_id[:4]}%"):
        assert client.get("/api/runs/" + pattern.replace("%", "%25")).status_code == 404, pattern
    with deps.session() as s, pytest.raises(LookupError):
        report.find_run(s, f"%{run_id[-4:]}")


def test_ingest_names_the_field_holding_nan():
    parsed = ingest.Parsed()
    got = list(ingest.json_objects([b'{"a": 1, "b": [1, {"c": NaN}]}', b'{"ok": -Infinity}'], "t", parsed))
    assert got == [] and parsed.errors == ["t:1: b.1.c: NaN is not valid JSON (write a number or null)",
                                           "t:2: ok: -Infinity is not valid JSON (write a number or null)"], parsed.errors
