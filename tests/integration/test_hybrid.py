"""Hybrid retrieval in PostgreSQL (issue 11 #1) and the run's calibration (#2), on the real database."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from playbook_sync import db, lexicon, matching, pipeline, retrieval, store
from playbook_sync.models import DIMENSIONS, KnowledgeEntry, SopLexicon, SopSearchStats, SopSection, SyncRun
from playbook_sync.schemas import EntryIn
from playbook_sync.sops import parse_sop

pytestmark = pytest.mark.integration


@contextmanager
def cli_on(settings, monkeypatch):
    """invoke(*args): the real CLI (in process) on this test's database and data dir, settings read afresh."""
    from typer.testing import CliRunner

    from playbook_sync.cli import app
    from playbook_sync.config import get_settings

    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PLAYBOOK_SYNC_BROKER_URL", settings.broker_url or "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        yield lambda *args: CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def vec(*head: float) -> list[float]:
    return list(head) + [0.0] * (DIMENSIONS - len(head))


def sop(path: str, title: str, sections: dict[str, str]) -> bytes:
    body = "".join(f"## {heading}\n\n{text}\n\n" for heading, text in sections.items())
    return f"---\nid: {path.rsplit('/', 1)[-1][:-3]}\ntitle: \"{title}\"\n---\n\n{body}".encode()


def load(url: str, docs: dict[str, tuple[bytes, list[list[float]]]], entry: str, vector: list[float]) -> uuid.UUID:
    entry_id = uuid.uuid4()
    with db.session_scope(url) as session:
        for path, (content, vectors) in docs.items():
            doc = parse_sop(path, content)
            store.replace_sop(session, doc=doc, model="m", whole=vectors[0], sections=vectors)
        session.flush()
        lexicon.refresh_lexicon(session)
        store.upsert_entries(session, entries=[EntryIn(id=entry_id, category="insight", content=entry, transcript_type="sales")])
        session.flush()
        row = session.get(KnowledgeEntry, entry_id)
        row.embedding, row.embedding_model = vector, "m"
    return entry_id


def test_lexical_ranking_finds_the_sop_the_vectors_miss(database_url):
    # The entry names a rare process term that only one SOP's section uses; the vectors point elsewhere.
    alpha = sop("docs/sops/module-1-a/sop-1-1-alpha.md", "SOP 1.1: Alpha",
                {"1a. Escrow Reconciliation": "Match the escrow ledger to the bank statement every Friday.",
                 "Glossary": "Escrow: money held by a third party."})
    beta = sop("docs/sops/module-1-a/sop-1-2-beta.md", "SOP 1.2: Beta", {"1a. Weekly Meeting": "Hold the team meeting."})
    entry_id = load(database_url, {"docs/sops/module-1-a/sop-1-1-alpha.md": (alpha, [vec(0, 1), vec(0, 1)]),
                                   "docs/sops/module-1-a/sop-1-2-beta.md": (beta, [vec(1, 0.2)])},
                    "The escrow reconciliation broke again before the meeting.", vec(1, 0.1))
    with db.session_scope(database_url) as session:
        vector_only = matching.nearest_sops(session, vector=store.embedding_of(entry_id), k=1)
        hits, level, *_ = retrieval.hybrid_sops(session, entry_id=entry_id, k=2)
    assert [p for p, _, _ in vector_only] == ["docs/sops/module-1-a/sop-1-2-beta.md"]
    assert hits[0].sop_path == "docs/sops/module-1-a/sop-1-1-alpha.md"  # two lexical hits outrank one vector hit
    assert hits[0].section == "1a. Escrow Reconciliation"  # never the glossary, though it names the term too
    assert hits[0].similarity == pytest.approx(0.1 / 1.01 ** 0.5, abs=1e-5)  # the embedder's own score, for the bands
    assert not hits[0].agreed and [h.rank for h in hits] == [1, 2]
    assert level is None  # two SOPs, none after the top 2: no baseline


def test_the_planner_settings_of_the_hybrid_statement_do_not_outlive_it(database_url):
    # The statement turns enable_seqscan back on itself (no SET of its own after it); with no SOP at all it
    # returns no row, and the setting is restored apart.
    from sqlalchemy import text

    alpha = sop("docs/sops/module-1-a/sop-1-1-alpha.md", "SOP 1.1: Alpha", {"1a. Escrow": "Match the escrow ledger."})
    entry_id = load(database_url, {"docs/sops/module-1-a/sop-1-1-alpha.md": (alpha, [vec(0, 1)])},
                    "The escrow ledger broke.", vec(1, 0.1))
    with db.session_scope(database_url) as session:
        assert retrieval.hybrid_sops(session, entry_id=entry_id, k=2).hits
        assert session.execute(text("SHOW enable_seqscan")).scalar() == "on"
        session.execute(text("DELETE FROM cp_sop_sections"))
        assert retrieval.hybrid_sops(session, entry_id=entry_id, k=2).hits == []
        assert session.execute(text("SHOW enable_seqscan")).scalar() == "on"
        session.rollback()


def test_the_lexical_evidence_and_its_null_come_from_the_same_bm25(database_url):
    # Six SOPs: the entry shares its rare words with one of them only; the others share a common word.
    docs = {f"docs/sops/module-1-a/sop-1-{i}-s{i}.md": (sop(f"docs/sops/module-1-a/sop-1-{i}-s{i}.md", f"SOP 1.{i}: S{i}",
                                                             {"1a. Step": f"Review the pipeline weekly. Topic {name}."}), [vec(1, 0.1 * i)])
            for i, name in enumerate(["escrow reconciliation ledger", "hiring", "pricing", "renewals", "forecast", "routing"], start=1)}
    entry_id = load(database_url, docs, "Our escrow reconciliation ledger review slipped in the pipeline meeting.", vec(1, 0))
    with db.session_scope(database_url) as session:
        ranking = retrieval.hybrid_sops(session, entry_id=entry_id, k=2)
        null, _ = retrieval.chance_nulls(session, entry_ids=[entry_id], k=2)
    assert ranking.hits[0].sop_path.endswith("sop-1-1-s1.md")
    # The best SOP by BM25 stands far above the SOPs after the top 2 (they share only "pipeline", "review"), while the
    # SOP ranked 3rd, the null's order statistic, stands at their median: the same scores, read at two ranks.
    assert ranking.lexical is not None and ranking.lexical > 1.0
    assert null == [pytest.approx(0.0, abs=1e-9)]


def test_an_sop_with_many_similar_sections_does_not_crowd_out_the_others(database_url):
    big = sop("docs/sops/module-2-b/sop-2-1-big.md", "SOP 2.1: Big", {f"Part {i}": "Words." for i in range(retrieval.POOL + 20)})
    small = sop("docs/sops/module-2-b/sop-2-2-small.md", "SOP 2.2: Small", {"1a. Only": "Other."})
    entry_id = load(database_url, {"docs/sops/module-2-b/sop-2-1-big.md": (big, [vec(1, 0.01 * (i % 7)) for i in range(retrieval.POOL + 20)]),
                                   "docs/sops/module-2-b/sop-2-2-small.md": (small, [vec(0.6, 0.8)])},
                    "Nothing in common with either text.", vec(1, 0))
    with db.session_scope(database_url) as session:
        hits = retrieval.hybrid_sops(session, entry_id=entry_id, k=2).hits
    assert [h.sop_path for h in hits] == ["docs/sops/module-2-b/sop-2-1-big.md", "docs/sops/module-2-b/sop-2-2-small.md"]
    assert hits[1].similarity == pytest.approx(0.6, abs=1e-5)


def test_a_run_refreshes_the_lexicon_and_records_its_calibration(deps):
    from datetime import UTC, datetime

    from playbook_sync import demo

    with deps.session() as session:
        store.upsert_entries(session, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as session:
        started = pipeline.start_run(session, deps)
    with deps.session() as session:
        run = session.get(SyncRun, started.run_id)
        assert session.scalar(select(func.count()).select_from(SopLexicon)) > 100
        assert session.scalar(select(func.count()).where(SopSection.body.is_(None))) == 0
        # The welcome page (`slug: /`) is read but is not a procedure: never matched, never given callouts.
        cached = set(session.scalars(select(SopSection.file_path)))
        assert "docs/intro.md" not in cached and len(cached) == 9
        record = run.calibration
    assert record["mode"] == "excess" and record["null"]["n"] > 0
    assert record["lexical_ask"] >= 0 and record["null"]["lexical_n"] >= 30  # the lexical side's null, from the same entries
    # The standing null: the hybrid statement's own standing of each sampled entry's SOP ranked k+1 (chance).
    assert isinstance(record["standing_ask"], float) and record["null"]["standing_n"] >= 30
    assert record["strong"] >= record["weak"] and record["source"].startswith("calibrated on")
    with deps.session() as session:
        result = pipeline.process_entry(session, deps, run_id=started.run_id, entry_id=started.entry_ids[0])
    assert result["status"] in ("matched", "redundant", "orphaned")


def test_calibrate_command_prints_histogram_null_and_bands(deps, monkeypatch):
    from datetime import UTC, datetime

    from playbook_sync import demo

    with cli_on(deps.settings, monkeypatch) as invoke:
        before = invoke("calibrate")
        assert before.exit_code == 1 and "no run has recorded a calibration" in before.output
        empty = invoke("calibrate", "--dry-run")
        assert empty.exit_code == 1 and "nothing to calibrate on: no embedded entries yet" in empty.output
        with deps.session() as session:
            store.upsert_entries(session, entries=demo.entries(datetime.now(UTC)))
        outcome = pipeline.run_inline(deps)
        last = invoke("calibrate")
        dry = invoke("calibrate", "--dry-run")
    assert last.exit_code == 0, last.output
    assert "bands: strong" in last.output and "best-match similarity per entry" in last.output
    assert "null distribution" in last.output and "#" in last.output
    assert dry.exit_code == 0 and "dry run over" in dry.output and "bands: strong" in dry.output
    assert "fused standing" in last.output and "fused standing" in dry.output  # the standing null's bar (standing_ask)

    # Provenance (issue 11 #8): every block ends with who said it, on what kind of call, when; the
    # commit lists the entry ids of each block.
    import re
    import subprocess

    from playbook_sync.models import InsertedCallout

    with deps.session() as session:
        blocks = list(session.scalars(select(InsertedCallout)))
    assert blocks and outcome["commit_sha"]
    for block in blocks:
        credit = block.block.splitlines()[-2]  # the line before the closing :::
        # who, what kind of call or report, when (a speaker named after the source is not said twice)
        assert re.fullmatch(r"— (.+, (coaching call|sales call|execution report)|Execution report), \d{4}-\d{2}-\d{2}.*", credit), credit
    message = subprocess.run(["git", "-C", str(deps.settings.playbook_path), "log", "-1", "--format=%B", outcome["commit_sha"]],
                             capture_output=True, text=True, check=True).stdout
    assert all(str(e) in message for block in blocks for e in block.entry_ids)



def test_words_most_calls_use_weigh_less_than_the_one_this_entry_is_about(database_url):
    # Both SOPs share one word with the entry. "dashboard" is how half the knowledge base talks; "escrow"
    # is what this entry is about. Once the entry lexicon is counted, the SOP that names escrow ranks first.
    dash = sop("docs/sops/module-3-c/sop-3-1-dash.md", "SOP 3.1: Dash", {"1a. Views": "Open the dashboard. The dashboard shows totals."})
    esc = sop("docs/sops/module-3-c/sop-3-2-esc.md", "SOP 3.2: Esc", {"1a. Ledger": "Reconcile the escrow with the statement."})
    entry_id = load(database_url, {"docs/sops/module-3-c/sop-3-1-dash.md": (dash, [vec(1, 0)]),
                                   "docs/sops/module-3-c/sop-3-2-esc.md": (esc, [vec(1, 0)])},
                    "The dashboard hides the escrow line.", vec(1, 0))
    with db.session_scope(database_url) as session:
        before = [h.sop_path for h in retrieval.hybrid_sops(session, entry_id=entry_id, k=2)[0]]
        store.upsert_entries(session, entries=[EntryIn(id=uuid.uuid4(), category="insight", transcript_type="sales",
                                                       content=f"Call {i}: the dashboard was slow again.") for i in range(12)])
        session.flush()
        lexicon.refresh_entry_lexicon(session)
        after = [h.sop_path for h in retrieval.hybrid_sops(session, entry_id=entry_id, k=2)[0]]
        counted = session.scalar(select(SopSearchStats.entries))
    assert before[0] == "docs/sops/module-3-c/sop-3-1-dash.md"  # BM25 alone: two mentions beat one
    assert after[0] == "docs/sops/module-3-c/sop-3-2-esc.md"
    assert counted == 13


@pytest.mark.parametrize("others", [2, 5])
def test_the_sop_only_bm25_finds_stays_a_candidate_when_the_lexical_null_has_no_spread(database_url, others):
    """An entry whose words only one SOP shares: BM25 has no SOPs after its top k, so no null and no say in the
    standing, while the vectors point at the others; each ranker's best SOP is still kept among the k (hostile round 5)."""
    alpha = "docs/sops/module-1-a/sop-1-1-alpha.md"
    docs = {alpha: (sop(alpha, "SOP 1.1: Alpha", {"1a. Escrow Reconciliation": "Match the escrow ledger to the bank statement every Friday."}),
                    [vec(0, 1)])}
    for i in range(2, others + 2):
        path = f"docs/sops/module-1-a/sop-1-{i}-s{i}.md"
        docs[path] = (sop(path, f"SOP 1.{i}: S{i}", {"1a. Weekly Meeting": f"Hold the team meeting number {i}."}), [vec(1, 0.05 * i)])
    entry_id = load(database_url, docs, "Escrow reconciliation broke.", vec(1, 0.1))
    with db.session_scope(database_url) as session:
        hits = retrieval.hybrid_sops(session, entry_id=entry_id, k=3).hits
    assert len(hits) == 3 and alpha in [h.sop_path for h in hits]


def test_calibrate_dry_run_on_a_playbook_of_top_k_sops_says_the_configured_bands_apply(settings, monkeypatch):
    # Three SOPs and TOP_K=3: no SOP after any entry's top k, so no null: that is an answer (the configured bands
    # apply), not "no embedded entries", which there are.
    from datetime import UTC, datetime

    from playbook_sync import demo
    from playbook_sync.deps import Deps
    from playbook_sync.providers.localgit import init_repo

    files = {p: b for p, b in demo.playbook_files().items() if "/module-2/" not in p and "/module-3/" not in p}
    init_repo(settings.playbook_path, files, branch=settings.branch)
    d = Deps.from_settings(settings)
    with d.session() as session:
        store.upsert_entries(session, entries=demo.entries(datetime.now(UTC)))
    pipeline.run_inline(d)
    with cli_on(settings, monkeypatch) as invoke:
        dry = invoke("calibrate", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run over" in dry.output and "configured bands" in dry.output and "no embedded entries" not in dry.output


def test_after_a_run_start_bm25_reads_the_postings_by_an_index_only_scan(deps):
    # The run start vacuums the postings it added (lexicon.vacuum_postings): the first entry's BM25 reads tf and
    # length from the key's index, not a heap page per posting (the scale cost at 1,000 SOPs).
    import re
    from datetime import UTC, datetime

    from playbook_sync import demo
    from playbook_sync.models import KnowledgeEntry

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        pipeline.start_run(s, deps, trigger="test")
    with deps.session() as s:
        entry_id = s.scalars(select(KnowledgeEntry.id).limit(1)).one()
        s.execute(text(retrieval.PLANNER_SETTINGS.format(pool=retrieval.POOL)))  # as a worker runs it
        plan = "\n".join(r[0] for r in s.execute(text("EXPLAIN (ANALYZE) " + retrieval.HYBRID_SQL), {
            "entry_id": entry_id, "pool": retrieval.POOL, "max_terms": retrieval.MAX_TERMS, "k": 3, "by_rrf": False}))
    scan = re.search(r"Index Only Scan using cp_sop_postings_pkey.*\n\s*(?:Index Cond.*\n\s*)?Heap Fetches: (\d+)", plan)
    assert scan and scan.group(1) == "0", plan


def test_the_vacuum_skips_postings_another_session_holds_and_a_huge_top_k_still_ranks(deps):
    # A run start must not wait on a vacuum or index build holding the postings (it would hold up the fan-out), and
    # a TOP_K past pgvector's ef_search limit (1,000 / 12) must not make the hybrid statement refuse to run.
    import threading
    from datetime import UTC, datetime

    from playbook_sync import demo

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    holder = db.get_engine(deps.settings.database_url).connect()
    holder.execute(text("LOCK TABLE cp_sop_postings IN SHARE UPDATE EXCLUSIVE MODE"))
    try:
        started = []
        with deps.session() as s:
            thread = threading.Thread(target=lambda: started.append(pipeline.start_run(s, deps, trigger="test")))
            thread.start()
            thread.join(120)
        assert not thread.is_alive() and started and started[0].entry_ids
    finally:
        holder.rollback()
        holder.close()
    with deps.session() as s:
        ranking = retrieval.hybrid_sops(s, entry_id=started[0].entry_ids[0], k=100)
    assert len(ranking.hits) == 9  # every SOP of the demo playbook, ranked


def test_bm25_looks_up_only_the_entry_terms_postings_whatever_the_statistics_say(deps):
    # The per-connection generic plan of the hybrid statement is made from whatever statistics autovacuum has left.
    # With the lexicon and postings analyzed and the one-row stats table not, the planner guessed thousands of terms
    # and joined them to every posting: 5x the CPU per entry at 1,000 SOPs. Each term's postings come by its key.
    from datetime import UTC, datetime

    from playbook_sync import demo, prepared
    from playbook_sync.models import KnowledgeEntry

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        pipeline.start_run(s, deps, trigger="test")
    with db.get_engine(deps.settings.database_url).connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE cp_sop_sections; ANALYZE cp_sop_embeddings; ANALYZE cp_sop_lexicon; ANALYZE cp_sop_postings"))
    with deps.session() as s:
        entry_id = s.scalars(select(KnowledgeEntry.id).limit(1)).one()
        postings = s.scalar(text("SELECT count(*) FROM cp_sop_postings"))
        plan = prepared.explain(s, retrieval.HYBRID_SQL, {"entry_id": entry_id, "pool": retrieval.POOL,
                                                          "max_terms": retrieval.MAX_TERMS, "k": 3, "by_rrf": False},
                                settings=retrieval.PLANNER_SETTINGS.format(pool=retrieval.POOL))

    def scans(node):
        if node.get("Relation Name") == "cp_sop_postings":
            yield node
        for child in node.get("Plans", []):
            yield from scans(child)

    found = list(scans(plan[0]["Plan"]))
    assert found and postings > 50
    for scan in found:
        assert "word" in scan.get("Index Cond", ""), scan
        assert scan["Actual Rows"] * scan["Actual Loops"] < postings, scan  # (Actual Rows is per loop)


def test_the_calibration_null_searches_the_index_whatever_the_statistics_say(deps):
    # Once autovacuum has analyzed the sections, the planner costs an exact search (a sequential scan and a sort
    # per sampled entry) below the HNSW index at the null's ef_search: at 1,000 SOPs the run's start then spent
    # 18 s instead of 2 s in calibration.null_scores, whenever autovacuum happened to get there first.
    from datetime import UTC, datetime

    from playbook_sync import calibration, demo

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        ids = pipeline.start_run(s, deps, trigger="test").entry_ids
    with db.get_engine(deps.settings.database_url).connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE cp_sop_sections; ANALYZE cp_knowledge_entries"))
    scans = text("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'cp_sop_sections'")
    with deps.session() as s:
        before = s.execute(scans).one()
        raw, excess = calibration.null_scores(s, entry_ids=ids, k=3)
        after = s.execute(scans).one()
        assert s.scalar(text("SHOW enable_seqscan")) == "on"  # only for that statement: the transaction goes on
    assert raw and excess
    assert after.seq_scan == before.seq_scan and after.idx_scan > before.idx_scan, (before, after)


def test_the_two_nulls_measured_at_once_are_the_ones_measured_in_turn(deps):
    # A run's start measures the vector null on a second connection while its own measures the hybrid one
    # (retrieval.nulls); a dry run's session, joined to one connection, measures them in turn. Same numbers.
    from datetime import UTC, datetime

    from playbook_sync import calibration, demo

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        ids = pipeline.start_run(s, deps, trigger="test").entry_ids
    with deps.session() as s:
        together = retrieval.nulls(s, entry_ids=ids, k=3)
        assert s.get_bind() is db.get_engine(deps.settings.database_url)  # the concurrent path, on the engine
    with db.get_engine(deps.settings.database_url).connect() as connection, \
            Session(bind=connection) as joined:
        in_turn = retrieval.nulls(joined, entry_ids=ids, k=3)
        assert in_turn == retrieval.Nulls(*calibration.null_scores(joined, entry_ids=ids, k=3),
                                          *retrieval.chance_nulls(joined, entry_ids=ids, k=3))
    assert together == in_turn
    assert together.raw and together.excess and together.lexical and together.standing
