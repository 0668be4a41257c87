"""The Playbook Builder's HTTP API on real PostgreSQL through a real HTTP client: CRUD, filters,
ownership between users, optimistic concurrency (409), bad bodies (422), hostile text."""

from __future__ import annotations

import threading

import pytest

from playbook_sync import db
from playbook_sync.api import create_app
from playbook_sync.builder.users import add_user
from tests.http import served

pytestmark = pytest.mark.integration
HOSTILE = "Price is {too} high <script>alert(1)</script> ```js\nboom``` :::danger — 日本語 ✓ ñ"


@pytest.fixture
def two_users(settings):
    """The app served once, and a client per user: (alice, bob, anonymous operator)."""
    db.upgrade(settings.database_url)
    with db.session_scope(settings.database_url) as session:
        _, alice = add_user(session, "Alice")
        _, bob = add_user(session, "Bob")
    app = create_app(settings)
    with served(app, token=alice) as a, served(app, token=bob) as b, served(app) as op:
        yield a, b, op


def _scenario(title="Discovery Call with CTO", **extra):
    return {"title": title, "deal_stage": "discovery", "customer_pain_points": ["Slow onboarding"], **extra}


def test_crud_filters_and_etags(two_users):
    alice, _, _ = two_users
    made = alice.post("/api/playbooks", json={"title": "Enterprise SaaS", "industry": "Fintech",
                                               "target_persona": "CTO", "product_line": "Platform"})
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    alice.post("/api/playbooks", json={"title": "Retail template", "industry": "Retail", "is_template": True})
    scenario = alice.post(f"/api/playbooks/{pid}/scenarios", json=_scenario())
    assert scenario.status_code == 201 and scenario.headers["ETag"] == '"1"'
    got = alice.get(f"/api/playbooks/{pid}")
    assert got.status_code == 200 and [s["title"] for s in got.json()["scenarios"]] == ["Discovery Call with CTO"]
    assert got.json()["owner"] == "Alice"
    assert [p["title"] for p in alice.get("/api/playbooks", params={"industry": "fintech"}).json()] == ["Enterprise SaaS"]
    assert [p["title"] for p in alice.get("/api/playbooks", params={"template": True}).json()] == ["Retail template"]
    assert [p["title"] for p in alice.get("/api/playbooks", params={"persona": "cto", "status": "draft"}).json()] == [
        "Enterprise SaaS"]
    assert [p["title"] for p in alice.get("/api/playbooks", params={"text": "platf"}).json()] == ["Enterprise SaaS"]
    assert alice.get("/api/playbooks", params={"text": "%"}).json() == []  # LIKE wildcards are literal
    changed = alice.put(f"/api/playbooks/{pid}", json={"description": "For CTOs."}, headers={"If-Match": got.headers["ETag"]})
    assert changed.status_code == 200 and changed.json()["description"] == "For CTOs."
    assert changed.headers["ETag"] != got.headers["ETag"]
    sid = scenario.json()["id"]
    assert alice.delete(f"/api/playbooks/{pid}/scenarios/{sid}").status_code == 204
    assert alice.get(f"/api/playbooks/{pid}").json()["scenarios"] == []
    assert alice.delete(f"/api/playbooks/{pid}").status_code == 204
    assert alice.get(f"/api/playbooks/{pid}").status_code == 404


def test_a_second_user_can_neither_read_a_draft_nor_edit(two_users):
    alice, bob, operator = two_users
    pid = alice.post("/api/playbooks", json={"title": "Alice's draft"}).json()["id"]
    sid = alice.post(f"/api/playbooks/{pid}/scenarios", json=_scenario()).json()["id"]
    assert bob.get(f"/api/playbooks/{pid}").status_code == 404
    assert bob.get("/api/playbooks").json() == []
    assert operator.get(f"/api/playbooks/{pid}").status_code == 404  # the operator is a user of its own
    assert bob.put(f"/api/playbooks/{pid}", json={"title": "mine now"}).status_code == 404
    assert bob.delete(f"/api/playbooks/{pid}").status_code == 404
    assert bob.post(f"/api/playbooks/{pid}/scenarios", json=_scenario()).status_code == 404
    assert bob.put(f"/api/playbooks/{pid}/scenarios/{sid}", json={"title": "x"}).status_code == 404
    assert bob.delete(f"/api/playbooks/{pid}/scenarios/{sid}").status_code == 404
    assert bob.post(f"/api/playbooks/{pid}/scenarios/{sid}/generate", json={}).status_code == 404
    # Published: readable by Bob, still not editable.
    assert alice.put(f"/api/playbooks/{pid}", json={"status": "published"}).status_code == 200
    assert bob.get(f"/api/playbooks/{pid}").json()["title"] == "Alice's draft"
    assert bob.put(f"/api/playbooks/{pid}", json={"title": "mine now"}).status_code == 404
    assert alice.get(f"/api/playbooks/{pid}").json()["title"] == "Alice's draft"


def test_wrong_tokens_are_401(settings):
    db.upgrade(settings.database_url)
    with served(create_app(settings), token="psu_not-a-real-token") as wrong:
        assert wrong.get("/api/playbooks").status_code == 401
    with served(create_app(settings), token="") as empty:
        assert empty.get("/api/playbooks").status_code == 200  # no token on a token-less local server: the operator


def test_stale_updates_get_409_and_change_nothing(two_users):
    alice, _, _ = two_users
    pid = alice.post("/api/playbooks", json={"title": "Original"}).json()["id"]
    first = alice.get(f"/api/playbooks/{pid}")
    tag, stamp = first.headers["ETag"], first.json()["updated_at"]
    assert alice.put(f"/api/playbooks/{pid}", json={"title": "Edit A"}, headers={"If-Match": tag}).status_code == 200
    stale = alice.put(f"/api/playbooks/{pid}", json={"title": "Edit B"}, headers={"If-Match": tag})
    assert stale.status_code == 409 and stale.headers["ETag"] != tag
    assert alice.put(f"/api/playbooks/{pid}", json={"title": "Edit C", "updated_at": stamp}).status_code == 409
    assert alice.get(f"/api/playbooks/{pid}").json()["title"] == "Edit A"
    sc = alice.post(f"/api/playbooks/{pid}/scenarios", json=_scenario()).json()
    # Concurrent edits holding the same version: exactly one wins.
    results = []

    def edit(title):
        results.append(alice.put(f"/api/playbooks/{pid}/scenarios/{sc['id']}", json={"title": title},
                                 headers={"If-Match": '"1"'}).status_code)

    threads = [threading.Thread(target=edit, args=(f"T{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409]


def test_bad_bodies_get_422(two_users):
    alice, _, _ = two_users
    assert alice.post("/api/playbooks", json={}).status_code == 422
    assert alice.post("/api/playbooks", json={"title": "   "}).status_code == 422
    assert alice.post("/api/playbooks", json={"title": "x", "status": "gone"}).status_code == 422
    assert alice.post("/api/playbooks", json={"title": "x", "owner_id": 3}).status_code == 422  # unknown keys
    assert alice.post("/api/playbooks", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    pid = alice.post("/api/playbooks", json={"title": "x"}).json()["id"]
    assert alice.post(f"/api/playbooks/{pid}/scenarios", json=_scenario(deal_stage="lunch")).status_code == 422
    bad_pair = {"content_modules": {"objection_handling": [{"response": "no objection"}]}}
    assert alice.post(f"/api/playbooks/{pid}/scenarios", json=_scenario(**bad_pair)).status_code == 422
    assert alice.get("/api/playbooks/not-a-uuid").status_code == 422
    assert alice.post("/api/playbooks/generate", json={"title": "x", "scenarios": 9}).status_code == 422
    assert alice.post(f"/api/playbooks/{pid}/scenarios/{pid}/generate",
                      json={"modules": ["jokes"]}).status_code == 422


def test_hostile_text_round_trips_unchanged(two_users):
    alice, _, _ = two_users
    pid = alice.post("/api/playbooks", json={"title": HOSTILE[:150]}).json()["id"]
    body = _scenario(content_modules={"objection_handling": [{"objection": HOSTILE, "response": "{x} <b>"}]})
    sid = alice.post(f"/api/playbooks/{pid}/scenarios", json=body).json()["id"]
    got = alice.get(f"/api/playbooks/{pid}").json()["scenarios"][0]
    assert got["content_modules"]["objection_handling"][0]["objection"] == HOSTILE.strip()
    assert got["edited"] == ["objection_handling"] and got["id"] == sid
    markdown = alice.get(f"/api/playbooks/{pid}/export.md")
    assert markdown.status_code == 200 and "日本語" in markdown.text


def test_pages_ask_for_a_token_when_one_is_set_and_keep_it_in_a_strict_cookie(settings):
    from pydantic import SecretStr

    db.upgrade(settings.database_url)
    with db.session_scope(settings.database_url) as session:
        _, alice = add_user(session, "Alice")
    app = create_app(settings.model_copy(update={"api_token": SecretStr("operator-secret")}))
    with served(app) as browser:
        assert browser.get("/playbooks").headers["location"] == "/login"
        assert browser.post("/login", data={"token": "psu_wrong"}).status_code == 401
        signed = browser.post("/login", data={"token": alice})
        assert signed.status_code == 303 and "samesite=strict" in signed.headers["set-cookie"].lower()
        assert "httponly" in signed.headers["set-cookie"].lower()
        created = browser.post("/playbooks/new", data={"title": "From the page"})
        assert created.status_code == 303
        page = browser.get(created.headers["location"])
        assert page.status_code == 200 and "From the page" in page.text and 'for="pb-title"' in page.text
        pid = created.headers["location"].rsplit("/", 1)[1]
        added = browser.post(f"/playbooks/{pid}/scenario", data={"title": "Discovery", "deal_stage": "discovery"})
        sid = dict(p.split("=") for p in added.headers["location"].split("?")[1].split("&"))["scenario"]
        form = {"title": "Discovery", "deal_stage": "discovery", "pairs": "0", "objection_0": "Too {pricey} <b>",
                "response_0": "Value.", "updated_at": "2000-01-01T00:00:00+00:00"}
        stale = browser.post(f"/playbooks/{pid}/scenarios/{sid}/save", data=form)
        assert "error=" in stale.headers["location"] and "changed+since" in stale.headers["location"]
        view = browser.get(stale.headers["location"])
        assert 'role="alert"' in view.text and "Too {pricey}" not in view.text
        saved = browser.post(f"/playbooks/{pid}/scenarios/{sid}/save", data=form | {"updated_at": ""})
        assert "saved=scenario" in saved.headers["location"]
        assert "Too {pricey} &lt;b&gt;" in browser.get(saved.headers["location"]).text  # escaped, not markup
    with served(app, token=alice) as api:
        assert api.get(f"/api/playbooks/{pid}").json()["owner"] == "Alice"


def test_another_users_published_playbook_page_is_read_only(settings):
    db.upgrade(settings.database_url)
    with db.session_scope(settings.database_url) as session:
        _, alice = add_user(session, "Alice")
    app = create_app(settings)
    with served(app, token=alice) as a, served(app) as operator:
        pid = a.post("/api/playbooks", json={"title": "Shared", "status": "published"}).json()["id"]
        page = operator.get(f"/playbooks/{pid}")
        assert page.status_code == 200 and "By Alice: you can read it, not change it." in page.text
        assert "Save playbook" not in page.text and "Publish to the playbook" not in page.text
        assert operator.post(f"/playbooks/{pid}/delete").status_code == 404
        assert a.get(f"/api/playbooks/{pid}").status_code == 200


def test_a_response_comes_after_its_commit(two_users):
    """The session commits before the response is sent: a client's next request sees its write
    (a DELETE's 204 then a GET is a 404, never the playbook it just deleted)."""
    alice, _, _ = two_users
    for _ in range(20):
        pid = alice.post("/api/playbooks", json={"title": "Gone soon"}).json()["id"]
        assert alice.get(f"/api/playbooks/{pid}").status_code == 200
        assert alice.delete(f"/api/playbooks/{pid}").status_code == 204
        assert alice.get(f"/api/playbooks/{pid}").status_code == 404


def test_the_new_playbook_form_says_what_is_wrong(api):
    too_long = api.post("/playbooks/new", data={"title": "x" * 500})
    assert too_long.status_code == 303 and "200+characters" in too_long.headers["location"], too_long.headers["location"]
    empty = api.post("/playbooks/new", data={"title": ""})
    assert "title" in empty.headers["location"]
