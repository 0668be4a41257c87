"""Orphans persist across runs; a cluster of >=3 from >=2 sources becomes one new SOP."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from playbook_sync import pipeline, store
from playbook_sync.models import OrphanCluster
from playbook_sync.sops import parse_sop
from tests.support import entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WEBINAR = [
    ("Webinar funnels convert best when the registration page promises one concrete takeaway and a replay.", "call-a"),
    ("Our webinar funnel doubled show-up rate after sending a replay link and two reminder emails before the webinar.", "call-b"),
    ("Webinar funnel attendees who get a replay and a follow-up offer within an hour book more calls.", "call-a"),
]


def run_with(deps, texts, day):
    store_ids = []
    with deps.session() as s:
        batch = [entry(t, source=src, created_at=T0 + timedelta(days=day, hours=i), tags=["webinar"]) for i, (t, src) in enumerate(texts)]
        store.upsert_entries(s, entries=batch)
        store_ids = [e.id for e in batch]
    return store_ids, pipeline.run_inline(deps, now=T0 + timedelta(days=day + 1))


def test_three_orphans_over_two_runs_make_exactly_one_sop(deps):
    _, run1 = run_with(deps, WEBINAR[:2], day=0)
    assert run1["orphaned"] == 2 and run1["sops_created"] == []  # two do not make an SOP
    _, run2 = run_with(deps, WEBINAR[2:], day=2)
    assert len(run2["sops_created"]) == 1
    path = run2["sops_created"][0]
    tree = deps.repo.read_tree("docs")
    doc = parse_sop(path, tree[path])
    module = doc.module
    number = max(int(p.rsplit("/", 1)[1].split("-")[2]) for p in tree if f"/{module}/sop-" in p and p != path) + 1
    assert path.startswith(f"docs/sops/{module}/sop-{module[7:]}-{number}-")
    assert doc.sop_id == path.rsplit("/", 1)[1][:-3]
    assert doc.title.startswith(f"SOP {module[7:]}.{number}: ")
    headings = [s.heading for s in doc.sections]
    assert [h for h in headings if h in ("Overview", "Steps", "Key Lessons")] == ["Overview", "Steps", "Key Lessons"]
    assert ":::info Auto-Generated" in doc.content
    with deps.session() as s:
        clusters = list(s.scalars(select(OrphanCluster)))
    assert [c.status for c in clusters if c.sop_file_path] == ["promoted"]
    # A third run with nothing new creates nothing more.
    run3 = pipeline.run_inline(deps, now=T0 + timedelta(days=5))
    assert run3["sops_created"] == [] and run3["commit_sha"] is None
    log = subprocess.run(["git", "-C", str(deps.settings.playbook_path), "log", "--format=%s"], capture_output=True, text=True).stdout
    assert sum("new SOP" in line for line in log.splitlines()) == 1


def test_three_orphans_from_one_source_do_not(deps):
    same = [(t, "call-a") for t, _ in WEBINAR]
    _, run = run_with(deps, same, day=0)
    assert run["orphaned"] == 3 and run["sops_created"] == []


def test_orphans_whose_shared_words_a_homed_entry_also_uses_make_no_sop(deps):
    # A matched entry that happens to use the orphans' words: they are how calls talk, not a topic the
    # playbook lacks (orphan_topics), so the three orphans stay orphans.
    # The webinar words are outside its lead sentence, so the callout (the offline LLM writes lead sentences)
    # does not bring them into the playbook: only the homed-entry rule keeps them from being a topic.
    homed = ("Cold email subject lines that name the prospect's main competitor got twice the opens of our generic "
             "two-word subject lines. Keep it to the competitor's name plus one word, like 'gong vs you'. "
             "Webinar funnel replay invitations too.")
    with deps.session() as s:
        store.upsert_entries(s, entries=[entry(homed, source="call-z", created_at=T0 - timedelta(days=1))])
    first = pipeline.run_inline(deps, now=T0)
    assert first["enriched"] == 1, first
    _, run = run_with(deps, WEBINAR, day=0)
    assert run["orphaned"] == 3 and run["sops_created"] == []


def test_two_odd_words_chained_by_one_orphan_make_no_sop(deps):
    # "zorbit" in three orphans, "quandle" in three others, one orphan using both: two ways of naming things
    # the playbook may have, chained into one group, not a subject told with words of its own (orphan_topics).
    chained = [("Our zorbit and the quandle both went missing before the audit this spring.", "call-a"),
               ("Procurement wanted the zorbit before signing the yearly renewal of their legal paperwork.", "call-b"),
               ("Nobody could find the zorbit in the shared drive when the auditors visited.", "call-c"),
               ("The quandle keeps the tax forms tidy for the finance team every quarter.", "call-d"),
               ("Legal asked for the quandle twice during the security questionnaire.", "call-e")]
    _, run = run_with(deps, chained, day=0)
    assert run["orphaned"] == 5 and run["sops_created"] == []
    # Once more notes use the two words together, they are a subject: one SOP.
    together = [("The zorbit quandle review is where finance signs off each quarter.", "call-f"),
                ("Ask who owns the zorbit quandle before the renewal meeting.", "call-g")]
    _, run = run_with(deps, together, day=2)
    assert len(run["sops_created"]) == 1, run


SPREAD = [  # "zorbit" in notes 1-3, "quandle" in 2-4: a subject told across four notes from two sources
    ("The zorbit launch needs a named owner before anyone books the venue.", "call-a"),
    ("Our zorbit and quandle checklist saved the second launch from chaos.", "call-b"),
    ("Run the quandle dry-run a week before the zorbit goes live.", "call-a"),
    ("Without the quandle rehearsal the speakers missed their cues.", "call-b"),
]
PODCASTS = [  # "podcast" in four notes, "episode" in three, two notes with both
    ("Pitching ourselves as a podcast guest brought three inbound leads last quarter.", "call-a"),
    ("Before a podcast interview, send the host a one-page bio and three talking points.", "call-b"),
    ("Clip the podcast episode into short videos for LinkedIn the same week.", "call-c"),
    ("Ask the host for the episode's download numbers before agreeing to a second appearance.", "call-a"),
    ("One podcast episode with a niche audience beat ten generic interviews.", "call-b"),
]


@pytest.mark.parametrize("texts", [SPREAD, PODCASTS], ids=["spread", "podcasts"])
def test_a_subject_told_in_varied_words_makes_one_sop(deps, texts):
    # Its words are used together by more than one note, though no three notes share the same two.
    _, run = run_with(deps, texts, day=0)
    assert len(run["sops_created"]) == 1, run


def test_three_orphans_sharing_one_odd_word_stay_an_open_cluster(deps):
    # "zorbit" is the only word the three share that the playbook and homed entries lack: one word is as
    # often another way of naming something the playbook has, so no SOP is built on it (orphan_topics).
    odd = [("Our zorbit keeps the tax forms tidy for the finance team every quarter.", "call-a"),
           ("Procurement wanted the zorbit before signing the yearly renewal of their legal paperwork.", "call-b"),
           ("Nobody could find the zorbit in the shared drive when the auditors visited this spring.", "call-c")]
    _, run = run_with(deps, odd, day=0)
    assert run["orphaned"] == 3 and run["sops_created"] == []
    with deps.session() as s:
        assert {c.status for c in s.scalars(select(OrphanCluster))} == {"open"}
