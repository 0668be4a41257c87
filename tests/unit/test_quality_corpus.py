"""The quality benchmark's labelled corpus has the shape issue 11 asks for, and stays the same."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.quality.entries import build
from bench.quality.playbook import playbook_files, sop_path, step_headings
from bench.quality.topics import SOPS
from playbook_sync.providers.offline import terms
from playbook_sync.sops import parse_sop

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return playbook_files()


@pytest.fixture(scope="module")
def corpus():
    return build(NOW, week2_at=NOW + timedelta(days=7))


def test_playbook_has_twenty_long_sops_in_named_module_folders(files):
    sops = {p: parse_sop(p, c) for p, c in files.items() if p.startswith("docs/sops/") and p.endswith(".md")}
    assert len(sops) >= 20
    folders = {p.split("/")[2] for p in sops}
    assert len(folders) >= 5 and all(re.fullmatch(r"module-\d+-[a-z-]+", f) for f in folders)
    for path, doc in sops.items():
        assert len(doc.content.split()) >= 3000, path
        assert re.fullmatch(r"sop-\d+-\d+-[a-z0-9-]+", doc.sop_id) and re.fullmatch(r"SOP \d+\.\d+: .+", doc.title)
        headings = [s.heading for s in doc.sections]
        assert {"References", "Glossary", "4a. Maintenance Schedule"} <= set(headings), path
        assert any(re.match(r"\d[a-z]\. ", h) for h in headings)
        assert "```" in doc.content and "|---|" in doc.content


def test_entries_cover_every_category_and_transcript_and_name_a_real_home(corpus, files):
    week1 = corpus.week1
    assert all(n >= 60 for n in Counter(e.category.value for e in week1).values())
    assert all(n >= 60 for n in Counter(e.transcript_type.value for e in week1).values())
    docs = {p: parse_sop(p, c) for p, c in files.items() if p.endswith(".md") and p.startswith("docs/sops/")}
    for entry in week1 + corpus.week2:
        label = corpus.labels[str(entry.id)]
        if label.home_sop:
            assert label.home_sections[0] in {s.heading for s in docs[label.home_sop].sections}


def test_entries_paraphrase_rather_than_copy_the_playbook(corpus, files):
    # No entry carries a run of eight words from any SOP: matching must find topics, not copied text.
    text = " ".join(c.decode().lower() for p, c in files.items() if p.endswith(".md"))
    words = re.findall(r"[a-z']+", text)
    shingles = {" ".join(words[i:i + 8]) for i in range(len(words) - 7)}
    for entry in corpus.week1 + corpus.week2:
        ew = re.findall(r"[a-z']+", entry.content.lower())
        assert not any(" ".join(ew[i:i + 8]) in shingles for i in range(len(ew) - 7)), entry.content


def test_planted_topics_noise_and_second_week(corpus):
    kinds = Counter(lab.kind for lab in corpus.labels.values())
    assert kinds["noise"] >= 3 and kinds["restatement"] >= 2 and kinds["growth"] == 2
    for topic in {lab.topic for lab in corpus.labels.values() if lab.kind == "planted"}:
        members = [e for e in corpus.week1 if corpus.labels[str(e.id)].topic == topic]
        assert len(members) == 4 and len({e.source_ref for e in members}) == 3
    growth = [e for e in corpus.week2 if corpus.labels[str(e.id)].kind == "growth"]
    planted_sources = {e.source_ref for e in corpus.week1 if corpus.labels[str(e.id)].topic == corpus.labels[str(growth[0].id)].topic}
    assert len({e.source_ref for e in growth} - planted_sources) == 2
    backdated = [e for e in corpus.week2 if corpus.labels[str(e.id)].backdated]
    assert backdated and all(e.created_at < min(w.created_at for w in corpus.week1) for e in backdated)
    restated = {lab.restates for lab in corpus.labels.values() if lab.restates}
    assert restated <= {str(e.id) for e in corpus.week1}


def test_corpus_is_deterministic(corpus):
    again = build(NOW, week2_at=NOW + timedelta(days=7))
    assert [e.model_dump() for e in again.week1 + again.week2] == [e.model_dump() for e in corpus.week1 + corpus.week2]
    assert len(step_headings(SOPS[0])) == len(SOPS[0].steps)


def test_every_homed_entry_says_how_it_names_its_step(corpus):
    # The diagnostic that splits recall by wording. "playbook": one of the step's concepts as the SOP words it;
    # otherwise whether any stemmed word of the entry is one of the SOP's concept words (title, subject, step
    # headings, concepts): "field, no shared word" entries share none, and only a model of synonyms relates them.
    by_path = {sop_path(sop): sop for sop in SOPS}
    groups = Counter()
    for entry in corpus.week1 + corpus.week2:
        label = corpus.labels[str(entry.id)]
        if not label.home_sop:
            assert label.wording is None
            continue
        sop = by_path[label.home_sop]
        groups[label.wording] += 1
        named = any(t.sop in entry.content for step in sop.steps for t in step.terms)
        assert named == (label.wording == "playbook"), entry.content
        own = set(terms(" ".join([sop.title, sop.subject, *(s.heading for s in sop.steps),
                                  *(t.sop for s in sop.steps for t in s.terms)])))
        shared = own & set(terms(f"{entry.content} {entry.context}"))
        assert named or bool(shared) == (label.wording == "field, shared word"), (entry.content, shared)
    assert set(groups) == {"playbook", "field, shared word", "field, no shared word"}
