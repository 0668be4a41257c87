"""Time the hybrid retrieval query alone: one process, embedded PostgreSQL, the bench's generated playbook.

    .venv/bin/python -m bench.hybrid_query --sops 1000 --entries 200

Prints the sections, the mean wall time of retrieval.hybrid_sops per entry (SQL and Python, and the
client's CPU of it), the execution time of the plan a worker runs for one entry (prepared.explain: the
prepared generic plan under the same SET LOCALs, not the custom plan a plain EXPLAIN of the SQL would show)
with the plan nodes that took most of it, and the time of the run start's lexical and standing nulls
(retrieval.chance_nulls: one pass over a sample), and the time to index every section for BM25
(lexicon.refresh_lexicon over a playbook with no index yet: what a fresh install pays once; after SOP
changes a run's start indexes only their sections, and counts the lexicon again).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench import generate
from playbook_sync import db, lexicon, pipeline, prepared, retrieval, store
from playbook_sync.local_services import start_postgres
from playbook_sync.providers.offline import OfflineEmbedder
from playbook_sync.sops import parse_sop, section_embedding_text, whole_embedding_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hybrid_query", description=__doc__.splitlines()[0])
    parser.add_argument("--sops", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_postgres(Path(tmp))
        try:
            ids, indexed = _load(url, args.sops, args.entries)
            with db.session_scope(url) as s:
                for i in ids[:5]:  # warm the caches and the plan
                    retrieval.hybrid_sops(s, entry_id=i, k=3)
                started, cpu = time.perf_counter(), time.process_time()
                for i in ids:
                    retrieval.hybrid_sops(s, entry_id=i, k=3)
                per_entry = (time.perf_counter() - started) / len(ids) * 1000
                client_cpu = (time.process_time() - cpu) / len(ids) * 1000  # this process: SQLAlchemy, psycopg2, Python
                started = time.perf_counter()
                null, standing = retrieval.chance_nulls(s, entry_ids=ids, k=3)  # what a run's start pays once, for the gate
                null_ms = (time.perf_counter() - started) * 1000
                plan = explain(s, ids[0])
                sections = s.scalar(text("SELECT count(*) FROM cp_sop_sections"))
            db.get_engine(url).dispose()
        finally:
            server.cleanup()
    print(f"{args.sops} SOPs, {sections} sections, {args.entries} entries: hybrid_sops {per_entry:.1f} ms per entry "
          f"({client_cpu:.2f} ms of it client CPU); "
          f"generic plan {plan['Execution Time']:.1f} ms (one entry); "
          f"lexical and standing nulls over {len(null)} / {len(standing)} entries {null_ms:.0f} ms; "
          f"BM25 index (postings and lexicon of every section) built in {indexed:.1f} s")
    for ms, node in slowest(plan["Plan"]):
        print(f"  {ms:7.2f} ms  {node}")
    return 0


def explain(session, entry_id, k: int = 3) -> dict:
    """EXPLAIN ANALYZE of the hybrid statement for one entry as a worker runs it: the generic plan, same SET LOCALs."""
    params = {"entry_id": entry_id, "pool": retrieval.POOL, "max_terms": retrieval.MAX_TERMS, "k": k, "by_rrf": False}
    return prepared.explain(session, retrieval.HYBRID_SQL, params, settings=retrieval.PLANNER_SETTINGS.format(pool=retrieval.POOL))[0]


def slowest(plan: dict, top: int = 8) -> list[tuple[float, str]]:
    """The plan's nodes by their own time (their total over all loops, less their children's), largest first.
    Approximate: a CTE's work is counted at the CTE's own nodes, not at the CTE Scans that read it, so a node
    above both can show less than it took."""
    out: list[tuple[float, str]] = []

    def walk(node: dict) -> float:
        total = node.get("Actual Total Time", 0.0) * node.get("Actual Loops", 1)
        children = sum(walk(child) for child in node.get("Plans", ()))
        if node["Node Type"] != "CTE Scan":
            label = " ".join(str(node[k]) for k in ("Node Type", "Relation Name", "Index Name", "Subplan Name") if k in node)
            out.append((max(total - children, 0.0), f"{label} (rows {node.get('Actual Rows')} x {node.get('Actual Loops')} loops)"))
        return total

    walk(plan)
    return sorted(out, reverse=True)[:top]


def _load(url: str, sops: int, entries: int) -> list:
    db.upgrade(url)
    embedder = OfflineEmbedder()
    with db.session_scope(url) as s:
        for path, data in generate.playbook(sops).items():
            if path.endswith((".md", ".mdx")):
                doc = parse_sop(path, data)
                vectors = embedder.embed([whole_embedding_text(doc)] + [section_embedding_text(doc, x) for x in doc.sections])
                store.replace_sop(s, doc=doc, model=embedder.model, whole=vectors[0], sections=vectors[1:])
        s.flush()
        started = time.perf_counter()
        lexicon.refresh_lexicon(s)
        indexed = time.perf_counter() - started
        batch = generate.entries(entries, sops, datetime.now(UTC))
        store.upsert_entries(s, entries=batch)
        s.flush()
        pipeline.embed_entries(s, embedder, [e.id for e in batch])
        s.flush()
        lexicon.refresh_entry_lexicon(s)
    lexicon.vacuum_postings(s)  # after the commit, as a run's start does
    return [e.id for e in batch], indexed


if __name__ == "__main__":
    raise SystemExit(main())
