"""Bands that fit the playbook: a null distribution of similarities, measured per run.

An absolute band (0.75/0.60 for text-embedding-3-small, 0.35/0.20 offline) says nothing
about a given playbook: on long SOPs the right match of the offline embedder scored a
median 0.19 and off-topic text 0.11, so a 0.20 weak band cut half of the true matches. What
does transfer is the playbook's own contrast: how an entry scores against SOPs it is not
about. At the start of each run we take a sample of the run's entries, find for each the
best-section similarity of the SOPs beyond its top k (within its nearest sections: the
competitors a true match must beat), and read the bands off that null distribution:

- weak   = its 90th percentile: a candidate scoring there beats 9 in 10 unrelated SOPs;
- strong = its 99th percentile.

The top fused candidate (both rankings agreed it is the best SOP) only has to stand above
the null's median. The quantiles are the conventional significance levels, not numbers
fitted to one corpus. Settings still pin bands: PLAYBOOK_SYNC_BANDS set → those are used,
and the run records that they were pinned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from playbook_sync.config import Bands, Settings

SAMPLE = 200  # entries whose scores form the null (deterministic: the first by id)
POOL = 200  # nearest sections per sampled entry
MIN_NULL = 30  # fewer null scores than this: not enough to calibrate, the configured bands apply
WEAK_QUANTILE, STRONG_QUANTILE = 0.90, 0.99

_NULL_SQL = """
SELECT e.id, n.file_path, max(1 - n.distance) AS similarity
FROM cp_knowledge_entries e
CROSS JOIN LATERAL (
    SELECT s.file_path, s.embedding <=> e.embedding AS distance
    FROM cp_sop_sections s ORDER BY s.embedding <=> e.embedding LIMIT :pool) n
WHERE e.id = ANY(:ids) AND e.embedding IS NOT NULL
GROUP BY e.id, n.file_path
"""


def null_scores(session: Session, *, entry_ids: Sequence[uuid.UUID], k: int, sample: int = SAMPLE) -> list[float]:
    """Best-section similarities of the SOPs ranked after each sampled entry's top k."""
    ids = sorted(entry_ids)[:sample]
    if not ids:
        return []
    session.execute(text(f"SET LOCAL hnsw.ef_search = {POOL}"))
    per_entry: dict[uuid.UUID, list[float]] = {}
    for entry_id, _path, similarity in session.execute(text(_NULL_SQL), {"ids": ids, "pool": POOL}):
        per_entry.setdefault(entry_id, []).append(float(similarity))
    return [s for scores in per_entry.values() for s in sorted(scores, reverse=True)[k:]]


def calibrate(scores: Sequence[float], *, model: str, settings: Settings) -> dict:
    """The run's calibration record: the null's summary and histogram, and the bands it gives."""
    pinned = "bands" in settings.model_fields_set
    record: dict = {"model": model, "null": {"n": len(scores)}, "pinned": pinned}
    if scores:
        values = np.asarray(scores, dtype=float)
        record["null"] |= {"median": round(float(np.median(values)), 4),
                           "p90": round(float(np.quantile(values, WEAK_QUANTILE)), 4),
                           "p99": round(float(np.quantile(values, STRONG_QUANTILE)), 4),
                           "histogram": _histogram(values)}
    configured = settings.bands_for(model)
    if pinned or len(scores) < MIN_NULL:
        record |= {"strong": configured.strong, "weak": configured.weak, "floor": configured.weak,
                   "source": "pinned in settings" if pinned else f"configured (only {len(scores)} null scores)"}
    else:
        null = record["null"]
        record |= {"strong": null["p99"], "weak": null["p90"], "floor": null["median"],
                   "source": f"calibrated on {len(scores)} null scores"}
    return record


def _histogram(values: np.ndarray, step: float = 0.05) -> dict:
    """Counts in fixed bins of `step` over [0, 1], the same shape as the run's best-match histogram."""
    bins = int(round(1 / step))
    counts = np.bincount(np.clip((values / step).astype(int), 0, bins - 1), minlength=bins)
    return {"step": step, "counts": counts.tolist(), "n": int(len(values))}


def bands_of(record: dict | None, settings: Settings, model: str) -> tuple[Bands, float]:
    """(bands, floor for the top fused candidate) from a run's calibration record."""
    if not record or "strong" not in record:
        configured = settings.bands_for(model)
        return configured, configured.weak
    return Bands(strong=record["strong"], weak=min(record["weak"], record["strong"])), record["floor"]


def band(similarity: float, rank: int, bands: Bands, floor: float) -> str:
    """strong | weak | none for a candidate at a fused rank: the top one needs only to clear the floor."""
    if similarity >= bands.strong:
        return "strong"
    if similarity >= bands.weak or (rank == 1 and similarity >= floor):
        return "weak"
    return "none"


def describe(record: dict | None) -> list[str]:
    """Lines for the CLI and the report."""
    if not record:
        return ["no calibration recorded for this run"]
    null = record.get("null", {})
    lines = [f"embedding model: {record.get('model')}",
             f"bands: strong {record['strong']:.3f}, weak {record['weak']:.3f}, top-candidate floor "
             f"{record['floor']:.3f} ({record['source']})"]
    if null.get("n"):
        lines.append(f"null distribution (SOPs beyond each entry's top k): n={null['n']}, median {null['median']:.3f}, "
                     f"p90 {null['p90']:.3f}, p99 {null['p99']:.3f}")
    return lines
