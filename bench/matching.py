"""Matching at scale: top-3 latency and recall of the HNSW index against exact search.

Section vectors are random but structured like real ones: a shared direction (embeddings
are anisotropic), a module direction, an SOP direction and per-section noise, ~10 sections
per SOP. Queries are entries near one SOP's section (80%) or off-topic (20%). The index side
runs the matcher's own query (`matching.nearest_sops`, HNSW with its `ef_search`); exact
search is the same query ordered by an expression the index cannot serve.
"""

from __future__ import annotations

import io
import logging
import struct
import time
import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text

from bench.pg import BenchPostgres, connect
from playbook_sync import matching
from playbook_sync.db import session_scope
from playbook_sync.models import DIMENSIONS, SopSection

log = logging.getLogger(__name__)
SECTIONS_PER_SOP = 10
SOPS_PER_MODULE = 25
INDEX = "ix_cp_sop_sections_embedding_hnsw"
# Weights of the shared / module / SOP / section components of a section vector.
WEIGHTS = (0.35, 0.45, 0.55, 0.60)


@dataclass
class Corpus:
    """Section vectors with the SOP each belongs to, and the queries to run."""

    vectors: np.ndarray  # (n, d) float32, unit rows
    sop_of: np.ndarray  # (n,) int: SOP index of each section
    queries: np.ndarray  # (q, d) float32, unit rows
    on_topic: np.ndarray  # (q,) bool: the query was drawn near a section


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def _directions(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return _unit(rng.standard_normal((n, d), dtype=np.float32))


def corpus(n_sections: int, n_queries: int, seed: int = 7, d: int = DIMENSIONS) -> Corpus:
    """A deterministic structured corpus of n_sections vectors and n_queries queries."""
    rng = np.random.default_rng(seed)
    n_sops = max(1, n_sections // SECTIONS_PER_SOP)
    n_modules = max(1, n_sops // SOPS_PER_MODULE)
    g, (wg, wm, ws, we) = _directions(rng, 1, d)[0], WEIGHTS
    modules = _directions(rng, n_modules, d)
    sop_module = rng.integers(0, n_modules, n_sops)
    sops = _directions(rng, n_sops, d)
    sop_of = np.sort(rng.integers(0, n_sops, n_sections))  # uneven section counts per SOP
    base = wg * g + wm * modules[sop_module] + ws * sops  # (n_sops, d)
    vectors = np.empty((n_sections, d), dtype=np.float32)
    for start in range(0, n_sections, 20_000):  # chunks keep peak memory at a few hundred MB
        idx = slice(start, min(n_sections, start + 20_000))
        vectors[idx] = _unit(base[sop_of[idx]] + we * _directions(rng, idx.stop - idx.start, d))
    near = rng.random(n_queries) < 0.8
    target = rng.integers(0, n_sections, n_queries)
    noise = _directions(rng, n_queries, d)
    on_topic = base[sop_of[target]] + 0.45 * vectors[target] + 0.6 * noise
    off_topic = wg * g + wm * _directions(rng, n_queries, d) + 0.8 * noise
    queries = _unit(np.where(near[:, None], on_topic, off_topic))
    return Corpus(vectors, sop_of, queries, near)


# -- loading -------------------------------------------------------------------------


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _copy_binary(rows: list[bytes]) -> io.BytesIO:
    """A COPY ... (FORMAT binary) stream of pre-encoded tuples."""
    return io.BytesIO(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + b"".join(rows) + struct.pack(">h", -1))


def load(url: str, c: Corpus) -> None:
    """Bulk-load SOP rows and section vectors (index dropped first, rebuilt by build_index)."""
    n_sops = int(c.sop_of.max()) + 1
    sop_ids = [uuid.UUID(int=i + 1) for i in range(n_sops)]
    paths = [f"docs/sops/module-{i // SOPS_PER_MODULE + 1}/sop-{i}.md" for i in range(n_sops)]
    raw = connect(url)  # not a pooled connection: it ends in autocommit mode
    try:
        cur = raw.cursor()
        cur.execute(f"DROP INDEX IF EXISTS {INDEX}")
        sops = "".join(f"{sop_ids[i]}\t{paths[i]}\t{i:064x}\ttext-embedding-3-small\tSOP {i}\tSOP {i}\n" for i in range(n_sops))
        cur.copy_expert("COPY cp_sop_embeddings (id, file_path, content_hash, embedding_model, title, content) FROM STDIN",
                        io.StringIO(sops))
        big = c.vectors.astype(">f4")
        head = struct.pack(">HH", c.vectors.shape[1], 0)
        for start in range(0, len(big), 10_000):
            rows = []
            for i in range(start, min(len(big), start + 10_000)):
                s = int(c.sop_of[i])
                rows.append(struct.pack(">h", 6) + _field(uuid.UUID(int=(1 << 64) + i).bytes) + _field(sop_ids[s].bytes)
                            + _field(paths[s].encode()) + _field(f"Section {i}".encode()) + _field(struct.pack(">i", i))
                            + _field(head + big[i].tobytes()))
            cur.copy_expert("COPY cp_sop_sections (id, sop_embedding_id, file_path, heading, position, embedding) "
                            "FROM STDIN (FORMAT binary)", _copy_binary(rows))
        raw.commit()
        raw.autocommit = True
        raw.cursor().execute("VACUUM ANALYZE cp_sop_sections")
    finally:
        raw.close()


def build_index(url: str, m: int, ef_construction: int) -> float:
    """(Re)build the matcher's HNSW index with the given parameters; return seconds."""
    raw = connect(url)
    try:
        raw.autocommit = True
        cur = raw.cursor()
        cur.execute(f"DROP INDEX IF EXISTS {INDEX}")
        cur.execute("SET maintenance_work_mem = '4GB'")  # the graph must fit, or the build crawls
        cur.execute("SET max_parallel_maintenance_workers = 1")  # leader + 1 worker = the 2 cores
        started = time.perf_counter()
        cur.execute(f"CREATE INDEX {INDEX} ON cp_sop_sections USING hnsw (embedding vector_cosine_ops) "
                    f"WITH (m = {m}, ef_construction = {ef_construction})")
        elapsed = time.perf_counter() - started
        cur.execute("VACUUM ANALYZE cp_sop_sections")
        return elapsed
    finally:
        raw.close()


# -- querying ------------------------------------------------------------------------


def exact_sops(session, *, vector: list[float], k: int) -> list[tuple[str, str, float]]:
    """matching.nearest_sops without the index: ordered by an expression the index cannot serve."""
    limit = max(k * matching.SECTIONS_PER_SOP, 40)
    distance = (SopSection.embedding.cosine_distance(vector) + 0).label("distance")
    best: dict[str, tuple[str, str, float]] = {}
    for path, heading, d in session.execute(select(SopSection.file_path, SopSection.heading, distance)
                                            .order_by(distance).limit(limit)):
        best.setdefault(path, (path, heading, 1.0 - float(d)))
        if len(best) == k:
            break
    return list(best.values())


def run_queries(url: str, queries: np.ndarray, *, exact: bool, ef_search: int | None = None,
                k: int = 3) -> tuple[list[float], list[list[str]]]:
    """Latency (s) and top-k SOP paths per query: matching.nearest_sops, or exact_sops."""
    latencies, results = [], []
    saved = matching.EF_SEARCH
    matching.EF_SEARCH = ef_search or saved
    search = exact_sops if exact else matching.nearest_sops
    try:
        with session_scope(url) as session:
            for q in queries:
                vector = q.tolist()
                started = time.perf_counter()
                found = search(session, vector=vector, k=k)
                session.commit()  # the matcher's SET LOCALs are per transaction
                latencies.append(time.perf_counter() - started)
                results.append([p for p, _, _ in found])
    finally:
        matching.EF_SEARCH = saved
    return latencies, results


def plan(url: str, query: np.ndarray, *, exact: bool, ef_search: int) -> str:
    """The scan the planner chose for each side's query (index or sequential)."""
    literal = "[" + ",".join(f"{x:.6f}" for x in query) + "]"
    expr = f"(embedding <=> '{literal}') + 0" if exact else f"embedding <=> '{literal}'"
    with session_scope(url) as session:
        if not exact:
            session.execute(text(f"SET LOCAL hnsw.ef_search = {ef_search}; SET LOCAL enable_seqscan = off"))
        lines = session.execute(text(f"EXPLAIN SELECT file_path, heading, {expr} AS distance "
                                     "FROM cp_sop_sections ORDER BY distance LIMIT 40")).scalars().all()
    scan = next((line for line in lines if "Scan" in line), lines[0])
    return "index" if "Index Scan" in scan else "sequential"


@dataclass
class Truth:
    """Exhaustive (numpy) top-k SOPs per query and their best-section similarities."""

    sops: list[list[int]]
    sims: list[list[float]]


def exact_top_sops(c: Corpus, k: int = 3) -> Truth:
    """Ground truth: the k SOPs whose best section is nearest to each query."""
    sops, sims = [], []
    n_sops = int(c.sop_of.max()) + 1
    for start in range(0, len(c.queries), 64):
        section_sims = c.queries[start : start + 64] @ c.vectors.T  # (b, n)
        best = np.full((section_sims.shape[0], n_sops), -2.0, dtype=np.float32)
        for row in range(section_sims.shape[0]):
            np.maximum.at(best[row], c.sop_of, section_sims[row])
        top = np.argsort(-best, axis=1)[:, :k]
        sops.extend(top.tolist())
        sims.extend(np.take_along_axis(best, top, axis=1).tolist())
    return Truth(sops, sims)


def _sop_number(path: str) -> int:
    return int(path.rsplit("sop-", 1)[1].removesuffix(".md"))


def recall(found: list[list[str]], truth: Truth, *, min_similarity: float | None = None,
           queries: list[int] | None = None, k: int = 3) -> float:
    """Share of the true top-k SOPs returned (only those >= min_similarity when given)."""
    hits = total = 0
    for q in queries if queries is not None else range(len(found)):
        got = {_sop_number(p) for p in found[q][:k]}
        wanted = [s for s, sim in zip(truth.sops[q][:k], truth.sims[q][:k], strict=True)
                  if min_similarity is None or sim >= min_similarity]
        hits += len(got & set(wanted))
        total += len(wanted)
    return hits / total if total else float("nan")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile in milliseconds."""
    return round(float(np.percentile(values, q) * 1000), 2)


def bench_size(pg: BenchPostgres, n: int, *, queries: int, exact_queries: int, builds: list[tuple[int, int]],
               ef_searches: list[int], weak: float) -> list[dict]:
    """Load n section vectors once; per HNSW build and ef_search, latency and recall vs exact."""
    c = corpus(n, queries, seed=n)
    truth = exact_top_sops(c)
    with_match = [q for q in range(queries) if truth.sims[q][0] >= weak]
    rows = []
    with pg.database() as url:
        started = time.perf_counter()
        load(url, c)
        log.info("matching %d: loaded in %.1fs", n, time.perf_counter() - started)
        run_queries(url, c.queries[:2], exact=True)
        exact_lat, exact_found = run_queries(url, c.queries[:exact_queries], exact=True)
        exact = {"exact_queries": len(exact_lat), "exact_p50_ms": pct(exact_lat, 50), "exact_p95_ms": pct(exact_lat, 95),
                 "exact_plan": plan(url, c.queries[0], exact=True, ef_search=40),
                 "exact_recall_check": recall(exact_found, truth, queries=list(range(exact_queries)))}
        for m, ef_construction in builds:
            build = build_index(url, m, ef_construction)
            log.info("matching %d: HNSW m=%d ef_construction=%d built in %.1fs", n, m, ef_construction, build)
            for ef in ef_searches:
                run_queries(url, c.queries[:20], exact=False, ef_search=ef)  # warm the index into shared buffers
                lat, found = run_queries(url, c.queries, exact=False, ef_search=ef)
                rows.append({
                    "vectors": n, "sops": int(c.sop_of.max()) + 1, "m": m, "ef_construction": ef_construction,
                    "build_seconds": round(build, 1), "ef_search": max(ef, 40), "queries": len(lat),
                    "hnsw_p50_ms": pct(lat, 50), "hnsw_p95_ms": pct(lat, 95),
                    "hnsw_plan": plan(url, c.queries[0], exact=False, ef_search=max(ef, 40)),
                    "recall_at_3": recall(found, truth), "matched_queries": len(with_match),
                    "recall_at_3_matched": recall(found, truth, queries=with_match),
                    "recall_at_3_in_band": recall(found, truth, min_similarity=weak),
                } | exact)
                r = rows[-1]
                log.info("matching %d: ef_search=%d %s p50 %.1f ms, recall@3 %.3f (matched %.3f)", n, r["ef_search"],
                         r["hnsw_plan"], r["hnsw_p50_ms"], r["recall_at_3"], r["recall_at_3_matched"])
    return rows


def bench_matching(pg: BenchPostgres, sizes: list[int], *, queries: int = 300, weak: float = 0.60,
                   builds: list[tuple[int, int]] = ((16, 64), (16, 128)), ef_searches: list[int] = (40, 100)) -> list[dict]:
    """Every corpus size; exact search gets fewer queries at 100k (each one scans the table)."""
    out = []
    for n in sizes:
        out += bench_size(pg, n, queries=queries, exact_queries=queries if n <= 10_000 else min(queries, 60),
                          builds=list(builds), ef_searches=list(ef_searches), weak=weak)
    return out
