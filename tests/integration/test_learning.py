"""Issue 14: the learning loop over real runs on a real git repository and real PostgreSQL.

Between runs a person deletes some callouts and rewrites others with git; the next run sees
it (survival), its confidence for that (SOP, category) drops, and below the floor it writes
fewer callouts of that kind there, holding the entries for review instead.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from playbook_sync import demo, learning, pipeline, report, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings
from playbook_sync.models import InsertedCallout, KnowledgeSopMatch, RunItem, SyncRun
from playbook_sync.models_learning import CalloutState, Lesson, RunLearning
from playbook_sync.providers.offline import OfflineLLM
from tests.support import entry

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
COLD = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"


def _items(deps, run_id):
    with deps.session() as s:
        return [(i.status, i.error) for i in s.scalars(select(RunItem).where(RunItem.run_id == run_id))] + [
            (m.sop_file_path, m.action, m.rationale) for m in s.scalars(select(KnowledgeSopMatch).where(KnowledgeSopMatch.sync_run_id == run_id))]


def add(deps, *entries):
    with deps.session() as s:
        store.upsert_entries(s, entries=list(entries))
    return [e.id for e in entries]


def git(deps, *args: str) -> str:
    return subprocess.run(["git", "-C", str(deps.settings.playbook_path), *args], capture_output=True, text=True,
                          check=True).stdout


def edit_by_hand(deps, path: str, change) -> None:
    """A person edits one file in the checkout and commits it on the branch."""
    file = Path(deps.settings.playbook_path) / path
    file.write_text(change(file.read_text(encoding="utf-8")), encoding="utf-8")
    git(deps, "add", "-A")
    git(deps, "-c", "user.name=Editor", "-c", "user.email=editor@example.com", "commit", "-qm", "editor's changes")


def callouts_of(deps, run_id) -> list[InsertedCallout]:
    with deps.session() as s:
        return list(s.scalars(select(InsertedCallout).where(InsertedCallout.run_id == run_id)))


def states(deps) -> dict:
    with deps.session() as s:
        return {c.callout_id: (c.state, c.current_text) for c in s.scalars(select(CalloutState))}


def drop_block(block: str):
    return lambda text: text.replace(block, "").replace("\n\n\n", "\n\n")


TIP = "From the Field"


def tips_in(blocks: list[InsertedCallout], path: str) -> list[InsertedCallout]:
    return [c for c in blocks if c.sop_file_path == path and c.block.startswith(":::tip")]


def test_three_runs_editors_decline_and_rewrite_then_the_loop_writes_fewer(deps, settings, redis_url, tmp_path, monkeypatch, api):
    # Floor between two declines (0.0867) and one (0.095) of a fresh (SOP, category): confidence.py by hand.
    deps.settings.min_callout_confidence = settings.min_callout_confidence = 0.09
    discovery = "Discovery calls go better with a written agenda sent the day before."
    add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0),
        entry("How do we personalize the first line of a cold email at scale?", created_at=T0, category="question"),
        entry("Cold email openers that mention a recent hire lifted replies from 2% to 6%.", created_at=T0, category="outcome"),
        entry(discovery, created_at=T0))
    r1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    first = callouts_of(deps, r1["run_id"])
    assert len(first) == 4 and len(tips_in(first, COLD)) == 1
    tip1 = tips_in(first, COLD)[0]
    question = next(c for c in first if c.block.startswith(":::warning"))
    kept = [c for c in first if c not in (tip1, question)]

    # The editor deletes the cold-email tip and rewrites the question callout.
    rewritten = ":::warning Common Question\nPersonalize the first line from one public signal, such as a recent hire.\n:::"
    edit_by_hand(deps, COLD, lambda t: drop_block(tip1.block)(t).replace(question.block.rstrip("\n"), rewritten))

    # Run 2: a second cold-email tip (the pair has one decline: 0.095, above the floor) and a repeat of the discovery tip.
    add(deps, entry("Cold email subject lines that name a mutual connection got more opens than generic ones.", created_at=T0 + timedelta(days=8)),
        entry(discovery, created_at=T0 + timedelta(days=9), source="call-2"))
    r2 = pipeline.run_inline(deps, now=T0 + timedelta(days=14))
    seen = states(deps)
    assert seen[tip1.id] == ("declined", None)
    assert seen[question.id] == ("edited", rewritten)
    assert all(seen[c.id][0] == "kept" for c in kept)
    second = callouts_of(deps, r2["run_id"])
    assert len(tips_in(second, COLD)) == 1 and r2["redundant"] == 1
    assert [c.sop_file_path for c in second] == [COLD]  # the repeat added no block...
    with deps.session() as s:
        d1 = s.get(CalloutState, next(c.id for c in kept if "agenda" in c.block))
        assert (d1.helpful, len(d1.sources)) == (1, 2)  # ...it strengthened the callout it repeats
        metrics2 = s.get(RunLearning, r2["run_id"]).metrics
        confidence2 = learning.tables(s)["category"][(COLD, "insight")][0]
    # 4 callouts decided: 2 kept, 1 edited, 1 declined
    assert metrics2["decided"] == 4 and metrics2["acceptance_rate"] == 0.75
    assert metrics2["edit_rate"] == 0.25 and metrics2["decline_rate"] == 0.25
    assert confidence2 == pytest.approx(0.9 * 0.1 + 0.1 * (0.1 / 2), abs=1e-4)  # 0.095

    # The editor deletes the second tip too; run 3 (on the real worker) has two more cold-email tips.
    edit_by_hand(deps, COLD, drop_block(tips_in(second, COLD)[0].block))
    held = add(deps, entry("Cold email subject lines with the prospect's company name got more opens in our test.", created_at=T0 + timedelta(days=15)),
               entry("Cold email subject lines that ask a short question got more opens than statements.", created_at=T0 + timedelta(days=16)))
    add(deps, entry("Discovery calls that open by restating the prospect's goal run shorter.", created_at=T0 + timedelta(days=16),
                    source="call-3"))
    from playbook_sync.worker.app import app
    from playbook_sync.worker.local import start_and_wait, worker_process
    from tests.integration.test_worker import worker_env

    env = worker_env(settings) | {"PLAYBOOK_SYNC_MIN_CALLOUT_CONFIDENCE": "0.09"}
    with worker_process(app, env=env, log_file=tmp_path / "worker.log"):
        r3 = start_and_wait(settings.database_url, timeout=120)
    assert r3["status"] == "success", (tmp_path / "worker.log").read_text()[-3000:]
    third = callouts_of(deps, r3["run_id"])
    # Cold-email tips written: run 2 wrote 1, run 3 writes 0; its 2 such entries are held for review, not lost.
    assert tips_in(third, COLD) == [] and len(tips_in(third, "docs/sops/module-3/sop-3-1-run-a-discovery-call.md")) == 1
    with deps.session() as s:
        items = {i.entry_id: i for i in s.scalars(select(RunItem).where(RunItem.run_id == r3["run_id"]))}
        assert {items[e].status for e in held} == {"held"}
        assert all("below 0.09" in items[e].error for e in held)
        assert not set(held) & set(store.owed_entry_ids(s))  # final: owed to nobody
        assert learning.tables(s)["category"][(COLD, "insight")][0] == pytest.approx(0.8 * 0.1 + 0.2 * (0.1 / 3), abs=1e-4)
        data = report.build(s, settings, deps.repo, s.get(SyncRun, r3["run_id"]))
        lessons = list(s.scalars(select(Lesson).where(Lesson.sop_file_path == COLD)))
    learned = data["learning"]
    # 5 decided: 2 kept, 1 edited, 2 declined
    assert (learned["decided"], learned["acceptance_rate"], learned["edit_rate"], learned["decline_rate"]) == (5, 0.6, 0.2, 0.4)
    assert {h["entry_id"] for h in learned["held"]} == {str(e) for e in held}
    assert [t["acceptance_rate"] for t in learned["trend"]] == [None, 0.75, 0.6]
    assert learned["freshness_lag_days"] is not None and learned["freshness_lag_days"] > 0
    assert any(x["helpful"] == 1 for x in learned["strongest"]["docs/sops/module-3/sop-3-1-run-a-discovery-call.md"])
    # One declined-tip lesson (the run-3 repeat is within the 5-minute dampener), one from the rewrite.
    assert sorted(x.kind for x in lessons) == ["declined", "edited"] and all(x.strength == 1.0 for x in lessons)
    # The same numbers in the HTML report, `runs show` and `playbook-sync sops`.
    from playbook_sync.report_html import render

    assert "What editors kept" in render(data) and "acceptance 60%" in render(data)
    for key, value in (worker_env(settings) | {"COLUMNS": "200"}).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(cli_app, ["runs", "show", r3["run_id"][:8]])
        listed = CliRunner().invoke(cli_app, ["sops", "--json"])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0 and "acceptance 60%, edited 20%, declined 40%" in shown.output, shown.output
    assert "trend (acceptance): — → 75% → 60%" in shown.output
    assert shown.output.count("held     ") == 2 and "below 0.09" in shown.output  # each held entry, with why
    cold = json.loads(listed.output)[COLD]
    assert cold["category"]["insight"]["confidence"] == pytest.approx(0.0867, abs=1e-4)
    assert cold["callouts"] == {"declined": 2, "edited": 1, "kept": 1}
    # ...and over HTTP.
    assert api.get("/api/learning/sops").json()[COLD]["category"]["insight"] == cold["category"]["insight"]
    assert api.get(f"/api/learning/runs/{r3['run_id'][:8]}").json()["acceptance_rate"] == 0.6
    assert api.get("/api/learning/runs/ffffffff").status_code == 404


def test_pull_request_mode_removed_before_merge_or_closed_unmerged_is_declined(settings, tmp_path):
    from tests.fakes.github_server import FakeGitHub
    from tests.integration.test_pull_requests import BRANCH, TOKEN, fresh, pr_deps

    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=demo.playbook_files()) as gh:
        deps = pr_deps(settings, gh, None)
        sent = fresh(datetime.now(UTC))
        add(deps, *sent)
        first = pipeline.run_inline(deps)
        written = callouts_of(deps, first["run_id"])
        assert len(written) == 4 and gh.pulls[0]["state"] == "open"
        backed = next(c for c in written if sent[2].id in c.entry_ids)
        removed, rewritten = [c for c in written if c is not backed][:2]
        # The reviewer removes one callout and rewrites another on the review branch.
        head = deps.repo.base.branch_head(BRANCH)
        shorter = " ".join(rewritten.block.split("\n")[1].split()[:7]).rstrip(",;.")
        new = rewritten.block.split("\n")[0] + f"\n{shorter}, as the reviewer put it.\n:::"
        files = {removed.sop_file_path: deps.repo.read_file(removed.sop_file_path, head).decode().replace(removed.block, "")}
        other = files.get(rewritten.sop_file_path) or deps.repo.read_file(rewritten.sop_file_path, head).decode()
        files[rewritten.sop_file_path] = other.replace(rewritten.block.rstrip("\n"), new)
        deps.repo.work.commit({p: t.encode() for p, t in files.items()}, "review", parent=head)

        # Two more calls repeat one callout; a new entry makes the run commit and append to the pull request.
        add(deps, *(entry(sent[2].content, created_at=datetime.now(UTC), source=f"call-repeat-{i}") for i in range(2)),
            entry("Proposals that restate the prospect's cost of inaction in the first paragraph close faster.",
                  created_at=datetime.now(UTC), source="call-new"))
        second = pipeline.run_inline(deps)  # the pull request is still open: removed = declined, the rest pending
        seen = states(deps)
        assert seen[removed.id][0] == "declined"
        assert {seen[c.id][0] for c in written if c is not removed} == {"pending"}
        with deps.session() as s:
            strong = s.get(CalloutState, backed.id)
            assert (strong.helpful, len(strong.sources)) == (2, 3)
        assert second["commit_sha"] and second["redundant"] == 2
        body = gh.pulls[0]["body"]
        assert "**Suggested step-text changes** (not committed" in body and "backed by 3 independent sources" in body
        head = deps.repo.base.branch_head(BRANCH)
        assert not any(b"Suggested step-text" in t for t in deps.repo.read_tree("docs", head).values())

        gh.close_pull(1, merge=True)
        add(deps, entry("Objection calls where the rep repeats the concern back in the buyer's words before answering end calmer.",
                        created_at=datetime.now(UTC)))
        third = pipeline.run_inline(deps)  # merged: what is on main landed
        seen = states(deps)
        assert seen[removed.id][0] == "declined" and seen[rewritten.id] == ("edited", new)
        assert {seen[c.id][0] for c in written if c not in (removed, rewritten)} == {"kept"}
        late = callouts_of(deps, third["run_id"])
        with deps.session() as s:
            decided = [*written, *callouts_of(deps, second["run_id"])]
            metrics = s.get(RunLearning, third["run_id"]).metrics
        # run 1's four and run 2's one landed or not: 1 declined, 1 edited, the rest kept
        assert metrics["decided"] == len(decided) and metrics["callouts"]["declined"] == 1
        assert metrics["acceptance_rate"] == round((len(decided) - 1) / len(decided), 4)
        assert metrics["freshness_lag_days"] is not None
        assert late and len(gh.pulls) == 2, _items(deps, third['run_id'])

        gh.close_pull(2)  # closed unmerged: everything it proposed is declined
        pipeline.run_inline(deps)
        seen = states(deps)
        assert {seen[c.id][0] for c in late} == {"declined"}


def test_force_pushed_history_and_a_deleted_sop_are_judged_by_the_tree(deps):
    """Matching is by content: a squash that keeps the callouts keeps them; a deleted SOP counts neither way
    (not decided); a reset that drops the callouts declines them."""
    base = git(deps, "rev-parse", "HEAD").strip()
    add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0),
        entry("Discovery calls go better with a written agenda sent the day before.", created_at=T0))
    written = callouts_of(deps, pipeline.run_inline(deps)["run_id"])
    assert len(written) == 2
    git(deps, "reset", "-q", "--soft", base)  # rewrite history: our commit is gone, its content stays
    git(deps, "-c", "user.name=Editor", "-c", "user.email=editor@example.com", "commit", "-qm", "squashed")
    pipeline.run_inline(deps)
    assert {states(deps)[c.id][0] for c in written} == {"kept"}
    discovery = next(c for c in written if c.sop_file_path != COLD)
    git(deps, "rm", "-q", discovery.sop_file_path)
    git(deps, "-c", "user.name=Editor", "-c", "user.email=editor@example.com", "commit", "-qm", "drop an SOP")
    deleted = pipeline.run_inline(deps)
    assert states(deps)[discovery.id][0] == "sop_deleted"
    with deps.session() as s:
        metrics = s.get(RunLearning, deleted["run_id"]).metrics
    assert (metrics["decided"], metrics["acceptance_rate"], metrics["callouts"]["sop_deleted"]) == (1, 1.0, 1)
    git(deps, "reset", "-q", "--hard", base)  # force the branch back to before the run
    pipeline.run_inline(deps)
    assert {states(deps)[c.id][0] for c in written} == {"declined"}


def test_a_repeated_lesson_strengthens_once_past_the_dampener_and_decays(deps):
    from playbook_sync.lessons import remember, top

    said = "Editors removed {} field tip callouts from this SOP: propose one here only when the entry adds a step detail."
    with deps.session() as s:
        assert remember(s, sop_path=COLD, category="insight", kind="declined", text=said.format(2), now=T0) == 1
        s.flush()
        # a repeat (>= 0.9 similar) 2 minutes later is refused by the 5-minute dampener
        assert remember(s, sop_path=COLD, category="insight", kind="declined", text=said.format(3), now=T0 + timedelta(minutes=2)) == 0
        # a week later it strengthens the same lesson: 1 decayed by one period (0.95), + 0.5
        assert remember(s, sop_path=COLD, category="insight", kind="declined", text=said.format(3), now=T0 + timedelta(days=7)) == 1
        s.flush()
        (lesson,) = s.scalars(select(Lesson)).all()
        assert lesson.strength == pytest.approx(1.45) and lesson.confirmations == 2 and lesson.text == said.format(3)
        remember(s, sop_path=COLD, category="insight", kind="edited", text="Editors rewrote a field tip callout here.", now=T0)
        s.flush()
        assert top(s, COLD, now=T0 + timedelta(days=7)) == [said.format(3), "Editors rewrote a field tip callout here."]
        assert top(s, COLD, now=T0, category="question") == []


class _Sure(OfflineLLM):
    """The offline classifier, with its confidence per entry fixed by the test (the slot order must
    not hang on the heuristic's scores)."""

    def __init__(self, sure: dict[str, float]) -> None:
        super().__init__()
        self.sure = sure

    def classify(self, request):
        conf = self.sure.get(request.entry.content)
        return [d.model_copy(update={"confidence": conf}) if conf is not None else d for d in super().classify(request)]


def test_the_more_trusted_category_takes_the_sops_slot(deps):
    """max_enrichments_per_sop = 1: after editors declined the SOP's tip and kept its results note, a new
    results entry takes the one slot although the classifier is surer of the new tip (0.9 against
    0.6: without the ranking by confidence the tip would take it)."""
    add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0),
        entry("Cold email openers that mention a recent hire lifted replies from 2% to 6%.", created_at=T0, category="outcome"))
    first = callouts_of(deps, pipeline.run_inline(deps)["run_id"])
    edit_by_hand(deps, COLD, drop_block(tips_in(first, COLD)[0].block))
    deps.settings.max_enrichments_per_sop = 1
    new_tip = "Cold email calls to action that offer two concrete time slots booked more meetings than an open question."
    new_note = "Cold email openers that cite one customer result lifted the reply rate from 3% to 5%."
    deps = dataclasses.replace(deps, llm=_Sure({new_tip: 0.9, new_note: 0.6}))
    tip, note = add(deps, entry(new_tip, created_at=T0 + timedelta(days=1)),
                    entry(new_note, created_at=T0 + timedelta(days=2), category="outcome"))
    second = pipeline.run_inline(deps)
    with deps.session() as s:
        items = {i.entry_id: i for i in s.scalars(select(RunItem).where(RunItem.run_id == second["run_id"]))}
    assert items[note].status == "enriched" and items[tip].status == "deferred", {k: (v.status, v.error) for k, v in items.items()}
    assert "reached 1 enrichments" in items[tip].error


def test_real_provider_lessons_are_one_structured_call_per_sop(deps):
    """Anthropic (real SDK, fake server): the SOP with a declined callout gets one metered `lessons` call."""
    from playbook_sync.models import LlmCall
    from tests.fakes.answers import default_answer
    from tests.fakes.anthropic_server import FakeAnthropic
    from tests.fakes.wiring import real_deps

    asked = []
    taught = "Propose field tips here only for steps the SOP leaves vague."

    def responder(name, schema, prompt):
        if name != "record_lessons":
            return default_answer(name, schema, prompt)
        asked.append(prompt)
        return {"lessons": [{"category": "insight", "kind": "declined", "text": taught}]}

    add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0))
    (tip,) = callouts_of(deps, pipeline.run_inline(deps)["run_id"])
    edit_by_hand(deps, COLD, drop_block(tip.block))
    with FakeAnthropic(responder=responder) as fake:
        run = pipeline.run_inline(real_deps(deps, fake, None))
    assert len(asked) == 1 and "insight callout declined: we wrote" in asked[0]
    with deps.session() as s:
        assert [x.text for x in s.scalars(select(Lesson))] == [taught]
        steps = list(s.scalars(select(LlmCall.step).where(LlmCall.run_id == run["run_id"])))
    assert steps == ["lessons"]


def test_a_run_ended_from_outside_still_reinforces_and_records_its_metrics(deps):
    """A run ended by the watchdog, `runs fail` or a killed command's reaper (finalize.fail_run) never reached
    after_run: its redundant entries (a final outcome, owed to nobody) never strengthened the callout they repeat,
    and the run had no learning metrics."""
    discovery = "Discovery calls go better with a written agenda sent the day before."
    add(deps, entry(discovery, created_at=T0))
    r1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    add(deps, entry("Sales calls close faster with a clear next step.", created_at=T0 + timedelta(days=8)))
    pipeline.run_inline(deps, now=T0 + timedelta(days=14))  # observes run 1's callout: kept
    add(deps, entry(discovery, created_at=T0 + timedelta(days=15), source="call-2"))
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=21))
    for entry_id in started.entry_ids:
        with deps.session() as s:
            pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=entry_id)
    from playbook_sync import finalize

    finalize.fail_run(deps, run_id=started.run_id, error="ended by an operator")
    (written,) = callouts_of(deps, r1["run_id"])
    with deps.session() as s:
        assert s.get(RunItem, (started.run_id, started.entry_ids[0])).status == "redundant"
        assert s.get(CalloutState, written.id).helpful == 1
        assert s.get(RunLearning, started.run_id) is not None


def test_a_callout_deleted_before_the_next_run_still_counts_for_freshness(deps):
    """Commit mode: a callout removed before the next run looked had landed all the same (the run committed it),
    but it never got landed_at, so the freshness lag left out exactly the callouts editors were quickest to judge."""
    (tip,) = add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0))
    r1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    (written,) = callouts_of(deps, r1["run_id"])
    edit_by_hand(deps, written.sop_file_path, drop_block(written.block))
    add(deps, entry("Sales calls close faster with a clear next step.", created_at=T0 + timedelta(days=8)))
    pipeline.run_inline(deps, now=T0 + timedelta(days=14))
    with deps.session() as s:
        state = s.get(CalloutState, written.id)
        assert state.state == "declined" and state.landed_at == written.created_at


def test_a_decline_stands_when_its_sop_is_deleted_later(deps):
    """An editor removed a callout (declined), later deleted or renamed the SOP: the decline turned into
    sop_deleted, which counts neither way, so the earlier decline vanished from the confidence and the rates."""
    add(deps, entry("Cold email subject lines naming the prospect's competitor got twice the opens.", created_at=T0))
    r1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    (written,) = callouts_of(deps, r1["run_id"])
    edit_by_hand(deps, written.sop_file_path, drop_block(written.block))
    pipeline.run_inline(deps, now=T0 + timedelta(days=14))
    assert states(deps)[written.id] == ("declined", None)
    git(deps, "rm", "-q", written.sop_file_path)
    git(deps, "-c", "user.name=Editor", "-c", "user.email=editor@example.com", "commit", "-qm", "drop the SOP")
    pipeline.run_inline(deps, now=T0 + timedelta(days=21))
    assert states(deps)[written.id] == ("declined", None)

