"""The offline providers: a deterministic lexical embedder, a heuristic LLM, and the demo routing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from playbook_sync.config import DEFAULT_BANDS, OFFLINE_EMBEDDING_MODEL, Settings
from playbook_sync.providers.base import LLM, Embedder, ProviderError
from playbook_sync.providers.offline import OfflineEmbedder, OfflineLLM, sentences, stem
from playbook_sync.schemas import (
    Action,
    CalloutKind,
    CalloutRequest,
    Candidate,
    ClassifyRequest,
    Decision,
    Entry,
    EntryIn,
    NewSopRequest,
    SopDoc,
    SopDraft,
)
from playbook_sync.sops import parse_sop, section_embedding_text

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "playbook_sync" / "demo"
BANDS = DEFAULT_BANDS[OFFLINE_EMBEDDING_MODEL]
CLUSTER_SIMILARITY = Settings.model_fields["cluster_similarity"].default


def _entry(content: str, **fields) -> Entry:
    defaults = {"id": uuid.uuid4(), "category": "insight", "transcript_type": "coaching"}
    return Entry(**(defaults | fields), content=content)


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- embedder -----------------------------------------------------------------------


def test_embedder_satisfies_protocol_shape_and_norm():
    embedder = OfflineEmbedder()
    assert isinstance(embedder, Embedder)
    assert (embedder.model, embedder.dimensions, embedder.max_batch) == (OFFLINE_EMBEDDING_MODEL, 1536, 2048)
    texts = ["Keep cold emails short.", "", "the and of to", "---", "Référence à l'équipe 42"]
    vectors = embedder.embed(texts)
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert isinstance(vector, list) and len(vector) == 1536 and isinstance(vector[0], float)
        assert np.linalg.norm(vector) == pytest.approx(1.0)
    assert embedder.embed([]) == []


def test_embedder_counts_calls_and_rejects_bad_batches():
    embedder = OfflineEmbedder(dimensions=64, max_batch=3)
    embedder.embed(["a b c", "d e f"])
    embedder.embed(["g h i"])
    assert (embedder.calls, embedder.inputs) == (2, 3)
    with pytest.raises(ProviderError, match=r"batch of 4 exceeds max_batch=3"):
        embedder.embed(["x"] * 4)
    with pytest.raises(ProviderError, match="takes a sequence of str"):
        embedder.embed("a single string is not a batch")
    with pytest.raises(ProviderError, match="takes a sequence of str"):
        embedder.embed(["ok", None])  # type: ignore[list-item]
    assert embedder.calls == 2  # rejected requests are not counted


def test_embedding_is_deterministic_across_processes():
    text = "Referral partners send warm introductions to our agency every month."
    here = OfflineEmbedder().embed([text])[0]
    assert OfflineEmbedder().embed([text])[0] == here
    code = (
        "import json; from playbook_sync.providers.offline import OfflineEmbedder; "
        f"print(json.dumps(OfflineEmbedder().embed([{text!r}])[0]))"
    )
    for seed in ("1", "12345"):  # Python's str hash() differs per seed; ours must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == here


def test_related_texts_score_higher_than_unrelated():
    embedder = OfflineEmbedder()
    anchor, related, unrelated = embedder.embed([
        "Write a short cold email subject line and a personalized opening line.",
        "Cold email subject lines work best short; personalize the opening line for each prospect.",
        "Our virtual assistant batches invoice reminders every Friday afternoon.",
    ])
    assert _cos(anchor, related) > 0.4
    assert _cos(anchor, unrelated) < 0.1
    assert _cos(anchor, related) > _cos(anchor, unrelated) + 0.3


def test_stemming_joins_inflections():
    assert stem("referrals") == stem("referral")
    assert stem("closing") == stem("closed") == stem("close")
    assert stem("pricing") == stem("prices")
    assert stem("companies") == stem("company")


# -- LLM ------------------------------------------------------------------------------

SOP_TEXT = (
    "# SOP 2.1: Write Cold Email Copy\n## Steps\n### Step 5: Cut it to under 100 words\n"
    "Keep cold emails under 100 words and end with a single low-friction question.\n"
    "### Step 1: Write the subject line\nKeep the subject line to two to four words, lowercase.\n"
)


def _candidate(band: str, similarity: float, path: str = "docs/sops/module-2/sop-2-1.md") -> Candidate:
    return Candidate(sop_path=path, title="SOP 2.1: Write Cold Email Copy", section="Step 5: Cut it to under 100 words",
                     similarity=similarity, band=band, sop_text=SOP_TEXT)


def _classify(content: str, *candidates: Candidate) -> list[Decision]:
    return OfflineLLM().classify(ClassifyRequest(entry=_entry(content), candidates=list(candidates)))


def test_an_entry_gets_one_home_from_the_offline_classifier():
    both = _classify("Lowercase cold email subject lines of four words get more opens.",
                     _candidate("strong", 0.5, "docs/a.md"), _candidate("strong", 0.45, "docs/b.md"))
    assert [d.action for d in both] == [Action.enrich, Action.tangential]
    assert "docs/a.md" in both[1].rationale


def test_the_offline_classifier_never_overrules_the_fused_ranking():
    # The first candidate is not on topic (low: under the weak band): a later one that shares words is no
    # better a home for a heuristic, so the entry enriches nothing.
    low_first = _classify("Lowercase cold email subject lines of four words get more opens.",
                          _candidate("low", 0.1, "docs/a.md"), _candidate("strong", 0.45, "docs/b.md"))
    assert [d.action for d in low_first] == [Action.tangential, Action.tangential]
    assert "docs/a.md" in low_first[1].rationale


def test_a_restated_callout_is_redundant_where_the_entry_belongs():
    text = SOP_TEXT + "\n:::tip From the Field\nNaming the competitor in the subject line doubled opens at Globex.\n" \
                      "— Dana Whitfield, coaching call, 2026-11-20\n:::\n"
    restated = Candidate(sop_path="docs/a.md", title="SOP 2.1: Write Cold Email Copy", section="Step 1: Write the subject line",
                         similarity=0.4, band="strong", sop_text=text)
    decisions = _classify("Again this week: a subject line with the competitor's name doubled opens.", restated)
    assert [d.action for d in decisions] == [Action.redundant] and "callout" in decisions[0].rationale


def test_classify_yields_each_action_on_crafted_inputs():
    assert isinstance(OfflineLLM(), LLM)
    redundant = _classify("Keep cold emails under 100 words and end with a single low-friction question.",
                          _candidate("strong", 0.8))
    enrich = _classify("Cold email subject lines naming a competitor doubled opens in our test.",
                       _candidate("strong", 0.45))
    weak_enrich = _classify("Lowercase cold email subject lines of four words get more opens.", _candidate("weak", 0.25))
    tangential = _classify("Our podcast guest booking spreadsheet needs a new owner.", _candidate("weak", 0.22))
    assert [d.action for d in redundant + enrich + weak_enrich + tangential] == [
        Action.redundant, Action.enrich, Action.enrich, Action.tangential]
    for decision in redundant + enrich + tangential:
        assert decision.section == "Step 5: Cut it to under 100 words"
        assert 0.0 <= decision.confidence <= 1.0
        assert len(sentences(decision.rationale)) == 1


def test_classify_answers_every_candidate_and_prefers_redundancy():
    paths = [f"docs/sops/module-2/sop-2-{n}.md" for n in range(1, 4)]
    decisions = _classify("Keep cold emails under 100 words and end with a single low-friction question.",
                          *(_candidate("strong", 0.8 - n / 10, p) for n, p in enumerate(paths)))
    assert [d.sop_path for d in decisions] == paths
    # Already covered by the first SOP: it is never copied into the others.
    assert decisions[0].action == Action.redundant
    assert all(d.action != Action.enrich for d in decisions)
    with pytest.raises(ProviderError, match="needs at least one candidate"):
        OfflineLLM().classify(ClassifyRequest(entry=_entry("anything"), candidates=[]))


def test_write_callout_merges_into_one_to_three_sentences():
    entries = [
        _entry("Name the competitor in the subject line. It doubled opens."),
        _entry("Name the competitor in the subject line! Opens doubled for us too."),  # near-duplicate
        _entry("Lowercase subject lines look internal."),
        _entry("Two-word subject lines beat long ones."),
        _entry("Plain text beats HTML in the first touch."),
    ]
    request = CalloutRequest(sop_path="p", sop_title="t", section="Step 1", kind=CalloutKind.field_tip, entries=entries)
    body = OfflineLLM().write_callout(request).body
    assert 1 <= len(sentences(body)) <= 3 and len(body) <= 400
    assert body.count("competitor") == 1
    long = _entry("word " * 200)
    one = OfflineLLM().write_callout(request.model_copy(update={"entries": [long]})).body
    assert len(one) <= 400 and len(sentences(one)) == 1
    with pytest.raises(ProviderError, match="needs at least one entry"):
        OfflineLLM().write_callout(request.model_copy(update={"entries": []}))


def test_name_cluster_and_draft_sop_on_the_demo_cluster():
    cluster = [e for e, want in _demo_entries() if want["outcome"] == "cluster"]
    llm = OfflineLLM()
    label = llm.name_cluster(cluster)
    assert label == "Referral Partnerships"
    assert llm.name_cluster(list(reversed(cluster))) == label  # order does not matter
    assert llm.name_cluster([e.model_copy(update={"tags": []}) for e in cluster]) == "Warm Introductions"
    draft = llm.draft_sop(NewSopRequest(module="module-1", cluster_label=label, entries=cluster))
    assert isinstance(draft, SopDraft) and draft.title == label
    assert len(draft.steps) == len(cluster) and draft.key_lessons
    assert all(not step.endswith("?") for step in draft.steps)  # questions become decisions
    assert draft.overview.startswith("How we approach referral partnerships")
    assert llm.draft_sop(NewSopRequest(module="module-1", cluster_label=label, entries=cluster)) == draft
    with pytest.raises(ProviderError, match="needs at least one entry"):
        llm.draft_sop(NewSopRequest(module="module-1", cluster_label=label, entries=[]))


# -- the demo data and its routing --------------------------------------------------------


@lru_cache
def _demo_sops() -> list[SopDoc]:
    root = DEMO / "playbook"
    return [parse_sop(p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted((root / "docs").rglob("*.md"))]


@lru_cache
def _demo_entries() -> list[tuple[Entry, dict]]:
    expected = json.loads((DEMO / "expected_routing.json").read_text())
    out = []
    for line in (DEMO / "entries.jsonl").read_text().splitlines():
        raw = EntryIn.model_validate_json(line)
        out.append((Entry(**raw.model_dump(exclude={"created_at"})), expected[str(raw.id)]))
    return out


@lru_cache
def _routing() -> dict[str, tuple[np.ndarray, list[tuple[float, SopDoc, str]], list[Decision]]]:
    """Embed exactly as matching does; per entry: vector, SOPs by best section, decisions."""
    embedder = OfflineEmbedder()
    owners = [(doc, s.heading) for doc in _demo_sops() for s in doc.sections]
    sections = np.asarray(embedder.embed([section_embedding_text(d, s) for d in _demo_sops() for s in d.sections]))
    entries = [e for e, _ in _demo_entries()]
    vectors = np.asarray(embedder.embed([f"{e.content}\n{e.context}" if e.context else e.content for e in entries]))
    out = {}
    for entry, vector in zip(entries, vectors):
        best: dict[str, tuple[float, SopDoc, str]] = {}
        for sim, (doc, heading) in zip(sections @ vector, owners):
            if doc.path not in best or sim > best[doc.path][0]:
                best[doc.path] = (float(sim), doc, heading)
        ranked = sorted(best.values(), key=lambda item: -item[0])
        candidates = [
            Candidate(sop_path=d.path, title=d.title, section=h, similarity=s, sop_text=d.content,
                      band="strong" if s >= BANDS.strong else "weak")
            for s, d, h in ranked[:3] if s >= BANDS.weak
        ]
        decisions = OfflineLLM().classify(ClassifyRequest(entry=entry, candidates=candidates)) if candidates else []
        out[str(entry.id)] = (vector, ranked, decisions)
    return out


def test_demo_playbook_layout():
    sops = [d for d in _demo_sops() if d.module]
    assert len(sops) >= 8 and len({d.module for d in sops}) >= 3
    for doc in sops:
        assert re.fullmatch(r"docs/sops/module-\d+/sop-\d+-\d+-[a-z0-9-]+\.md", doc.path)
        assert Path(doc.path).stem == doc.sop_id
        assert re.fullmatch(r"SOP \d+\.\d+: .+", doc.title)
        assert f"\n# {doc.title}\n" in doc.content
        assert 300 <= len(doc.content.split()) <= 900
        assert any(s.heading.startswith("Step 1") for s in doc.sections)
    for name in ("docusaurus.config.js", "sidebars.js", "docs/intro.md"):
        assert (DEMO / "playbook" / name).is_file()


def test_demo_entries_are_valid_and_cover_every_path():
    pairs = _demo_entries()
    ids = [e.id for e, _ in pairs]
    assert len(pairs) >= 30 and len(set(ids)) == len(ids)
    for line in (DEMO / "entries.jsonl").read_text().splitlines():
        raw = EntryIn.model_validate_json(line)
        assert raw.created_at is not None and (raw.created_at.year, raw.created_at.month) == (2026, 11)
        assert (raw.category == "outcome") == (raw.transcript_type == "report")
    outcomes = Counter(want["outcome"] for _, want in pairs)
    assert outcomes["redundant"] >= 3 and outcomes["tangential"] >= 2 and outcomes["orphan"] >= 2
    enrich = [(e, want) for e, want in pairs if want["outcome"] == "enrich"]
    assert {e.category.value for e, _ in enrich} == {"insight", "question", "product_intel", "outcome"}
    assert max(Counter(want["sop"] for _, want in enrich).values()) > 4  # exceeds the per-SOP cap
    cluster = [e for e, want in pairs if want["outcome"] == "cluster"]
    assert len(cluster) >= 3 and len({e.source_ref for e in cluster}) >= 2


@pytest.mark.parametrize("outcome", ["enrich", "redundant", "tangential"])
def test_demo_matched_entries_route_as_intended(outcome):
    routing = _routing()
    for entry, want in _demo_entries():
        if want["outcome"] != outcome:
            continue
        _, ranked, decisions = routing[str(entry.id)]
        score, doc, _ = ranked[0]
        assert doc.sop_id == want["sop"], want["key"]
        assert score >= BANDS.weak, want["key"]
        actions = {Path(d.sop_path).stem: d.action for d in decisions}
        if outcome == "tangential":
            assert score < BANDS.strong, want["key"]
            assert set(actions.values()) == {Action.tangential}, want["key"]
        else:
            assert actions[want["sop"]] == Action(outcome), want["key"]
            # Nothing else gets this entry: enriching a second SOP would duplicate it.
            assert all(a == Action.tangential for s, a in actions.items() if s != want["sop"]), want["key"]


def test_demo_orphans_stay_unmatched_and_the_cluster_holds_together():
    routing = _routing()
    cluster = [routing[str(e.id)][0] for e, want in _demo_entries() if want["outcome"] == "cluster"]
    loners = [routing[str(e.id)][0] for e, want in _demo_entries() if want["outcome"] in ("orphan", "tangential")]
    for entry, want in _demo_entries():
        if want["outcome"] in ("cluster", "orphan"):
            assert routing[str(entry.id)][1][0][0] < BANDS.weak, want["key"]
    matrix = np.asarray(cluster)
    pairwise = matrix @ matrix.T
    assert pairwise[np.triu_indices(len(cluster), 1)].min() >= CLUSTER_SIMILARITY
    centroid = matrix.mean(axis=0) / np.linalg.norm(matrix.mean(axis=0))
    for vector in loners:
        assert float(vector @ centroid) < CLUSTER_SIMILARITY
        assert (matrix @ vector).max() < CLUSTER_SIMILARITY
