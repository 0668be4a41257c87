"""Bands that fit the playbook: a null distribution of similarities, measured per run.

An absolute band (0.75/0.60 for text-embedding-3-small, 0.35/0.20 offline) says nothing
about a given playbook: on long SOPs the right match of the offline embedder scored a
median 0.19 and off-topic text 0.11, so a 0.20 weak band cut half of the true matches. What
does transfer is the playbook's own contrast: how an entry scores against SOPs it is not
about. At the start of each run we take a sample of the run's entries and find, for each,
the best-section similarity of the SOPs beyond its top k (within its nearest sections).
Their median is that entry's baseline: text full of generic words resembles every SOP a
little, a terse note resembles none, and only how far a candidate stands above the entry's
own baseline says whether it is about that SOP. The null distribution is how far the best
of those unrelated SOPs (rank k+1) stands above its entry's baseline — the best, because a
candidate is itself the best of many SOPs, and the maximum of many unrelated scores stands
out by chance. It gives the bands:

- weak   = its 90th percentile: the candidate stands out more than the best unrelated SOP
           does for 9 in 10 entries;
- strong = its 99th percentile;
- ask    = its median: the entry's best candidate beats the best unrelated SOP more often than
           not. An entry whose best candidate clears it is worth the classifier's time, and the
           classifier then sees the whole fused top k (those under weak marked `low`): with a
           lexical embedder many true homes stand out from the null no more than chance does,
           and cutting them one by one lost the home SOP before anyone could pick it.

The quantiles are the conventional significance levels, not numbers fitted to one corpus;
the fused rank decides which SOPs are candidates and in what order (the classifier sees
the best first). Settings still pin bands: PLAYBOOK_SYNC_BANDS set → absolute bands, and
the run records that they were pinned.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from playbook_sync import db
from playbook_sync.config import Settings

SAMPLE = 200  # entries whose scores form the null (deterministic: the first by id)
POOL = 200  # nearest sections per sampled entry
MIN_NULL = 30  # fewer null scores than this: not enough to calibrate, the configured bands apply
ASK_QUANTILE, WEAK_QUANTILE, STRONG_QUANTILE = 0.50, 0.90, 0.99

_NULL_SQL = """
SELECT e.id, n.file_path, max(1 - n.distance) AS similarity
FROM cp_knowledge_entries e
CROSS JOIN LATERAL (
    SELECT s.file_path, s.embedding <=> e.embedding AS distance
    FROM cp_sop_sections s ORDER BY s.embedding <=> e.embedding LIMIT :pool) n
WHERE e.id = ANY(:ids) AND e.embedding IS NOT NULL
GROUP BY e.id, n.file_path
"""


def baseline(per_sop: Sequence[float], k: int) -> float | None:
    """An entry's own null level: the median best-section similarity of the SOPs after its top k."""
    rest = sorted(per_sop, reverse=True)[k:]
    return statistics.median(rest) if rest else None


def lexical_excess(scores: Sequence[float], k: int, *, rank: int = 0) -> float | None:
    """How far the SOP at `rank` by BM25 (0: the entry's best) stands above the median of the SOPs after its
    top k, in logs: BM25 has no fixed scale (an entry with more and rarer words scores higher everywhere),
    so only an SOP's score relative to the entry's other SOPs says anything, as with similarities."""
    logs = sorted((math.log(s) for s in scores if s > 0), reverse=True)
    level = baseline(logs, k)
    return logs[rank] - level if level is not None and rank < len(logs) else None


# A standard deviation this small relative to the scores is rounding, not spread: equal scores can come out of the
# arithmetic a few ulps apart, and dividing by that made one SOP's standing 10^12 (hypothesis found it).
NO_SPREAD = 1e-9


def standings(scores: Mapping[str, float], sops: Sequence[str], k: int) -> dict[str, float]:
    """One ranker's standing of each SOP (what the hybrid statement computes in SQL, retrieval.HYBRID_SQL):
    (score - median) / sample standard deviation of the scores of the SOPs after the ranker's top k. An SOP
    the ranker did not pool gets its lowest pooled score (at or below chance); with no spread, 0 (no say)."""
    rest = sorted(scores.values(), reverse=True)[k:]
    median = statistics.median(rest) if rest else 0.0
    if len(rest) < 2 or (sd := float(np.std(rest, ddof=1))) <= NO_SPREAD * max(abs(median), 1.0):
        return dict.fromkeys(sops, 0.0)
    low = min(scores.values())
    return {sop: (scores.get(sop, low) - median) / sd for sop in sops}


def fused_standing(rankers: Sequence[Mapping[str, float]], k: int) -> dict[str, float]:
    """Each pooled SOP's standing summed over the rankers (BM25 and vector): the order of the hybrid ranking."""
    sops = sorted(set().union(*rankers))
    total = dict.fromkeys(sops, 0.0)
    for scores in rankers:
        for sop, value in standings(scores, sops, k).items():
            total[sop] += value
    return total


def null_scores(session: Session, *, entry_ids: Sequence[uuid.UUID], k: int, sample: int = SAMPLE) -> tuple[list[float], list[float]]:
    """(similarities of the SOPs ranked after each sampled entry's top k, and per entry the excess of the
    best of them over that entry's baseline): entries that resemble everything (generic words) and
    entries that resemble little are put on one scale."""
    ids = sorted(entry_ids)[:sample]
    if not ids:
        return [], []
    # On the index: at 1,000 SOPs an exact search here cost a run's start 18 s instead of 2 s (db.on_hnsw_index).
    rows = db.on_hnsw_index(session, text(_NULL_SQL), {"ids": ids, "pool": POOL}, ef_search=POOL)
    per_entry: dict[uuid.UUID, list[float]] = {}
    for entry_id, _path, similarity in rows:
        per_entry.setdefault(entry_id, []).append(float(similarity))
    raw, excess = [], []
    for scores in per_entry.values():
        rest, level = sorted(scores, reverse=True)[k:], baseline(scores, k)
        raw += rest
        # The best unrelated SOP, not a typical one: a candidate is the maximum over many SOPs, so it
        # must be compared with the maximum of the null (its first order statistic), or chance wins.
        excess += [rest[0] - level] if level is not None else []
    return raw, excess


@dataclass(frozen=True)
class Gate:
    """How a candidate's similarity is banded: above the entry's baseline (calibrated) or absolute (pinned)."""

    mode: str  # excess | absolute
    strong: float
    weak: float
    ask: float | None = None  # excess mode: the entry is worth asking about once its best candidate clears this
    lexical_ask: float | None = None  # excess mode: ... or once its best SOP by BM25 stands out this much (lexical_excess)
    standing_ask: float | None = None  # excess mode: ... or once its best SOP's fused standing reaches this (retrieval.chance_nulls)

    def band(self, similarity: float, level: float | None) -> str:
        value = similarity - (level or 0.0) if self.mode == "excess" else similarity
        if value >= self.strong:
            return "strong"
        return "weak" if value >= self.weak else "none"

    def bands(self, similarities: Sequence[float], level: float | None, agreed: bool = False,
              lexical: float | None = None, standing: float | None = None) -> list[str]:
        """The band of each of an entry's fused top k (best first), or "none" for those not worth asking about.

        Pinned (absolute) bands judge each SOP alone. Calibrated ones judge the entry: when its
        best candidate stands above the null's median, its best SOP by BM25 stands out more than the
        lexical null's median (`lexical`: a lexical embedder's similarities are diluted by a long
        section's other words, the rare words an entry shares with it are not), or the lexical and
        vector rankings put the same section first (`agreed`), or its best SOP's fused standing (`standing`,
        retrieval.py) reaches the standing null's median (what the SOP ranked k+1 reaches by chance), the
        classifier sees all k, those
        under weak as `low`, and picks among them; the fused rank orders them."""
        own = [self.band(s, level) for s in similarities]
        if self.mode != "excess" or self.ask is None or not similarities:
            return own
        stands_out = ((lexical is not None and self.lexical_ask is not None and lexical >= self.lexical_ask)
                      or (standing is not None and self.standing_ask is not None and standing > self.standing_ask))
        # The standing must exceed its bar: with no spread (k+1 SOPs, identical ones) both are 0, and 0 stands out from nothing.
        if not agreed and not stands_out and max(similarities) - (level or 0.0) < min(self.ask, self.weak):
            return ["none"] * len(own)
        return ["low" if b == "none" else b for b in own]


def calibrate(raw: Sequence[float], excess: Sequence[float], *, model: str, settings: Settings,
              lexical: Sequence[float] = (), standing: Sequence[float] = ()) -> dict:
    """The run's calibration record: the null's summary and histogram, and the bands it gives.

    lexical: the lexical side's null (retrieval.chance_nulls), whose median is the second way to be worth asking;
    standing: the fused standing of each sampled entry's SOP ranked k+1 (retrieval.chance_nulls), the third."""
    pinned = "bands" in settings.model_fields_set
    # n counts SOP similarities (several per entry), entries the sampled entries that gave a null score.
    record: dict = {"model": model, "null": {"n": len(raw), "entries": len(excess)}, "pinned": pinned}
    if raw:
        values = np.asarray(raw, dtype=float)
        record["null"] |= {"median": round(statistics.median(raw), 4),
                           "p90": round(float(np.quantile(values, WEAK_QUANTILE)), 4),
                           "p99": round(float(np.quantile(values, STRONG_QUANTILE)), 4),
                           "histogram": _histogram(values)}
    configured = settings.bands_for(model)
    if pinned or len(excess) < MIN_NULL:
        record |= {"mode": "absolute", "strong": configured.strong, "weak": configured.weak,
                   "source": "pinned in settings" if pinned else
                   f"configured bands: only {len(excess)} entries gave a null score, {MIN_NULL} needed to calibrate"}
    else:
        values = np.asarray(excess, dtype=float)
        # "higher": an observed value (an order statistic), so at most 1 in 10 null scores exceeds weak.
        record |= {"mode": "excess", "strong": round(float(np.quantile(values, STRONG_QUANTILE, method="higher")), 4),
                   "weak": round(float(np.quantile(values, WEAK_QUANTILE, method="higher")), 4),
                   "ask": round(float(np.quantile(values, ASK_QUANTILE, method="higher")), 4),
                   "source": f"calibrated on the null scores of {len(excess)} entries"}
        if len(lexical) >= MIN_NULL:
            record["lexical_ask"] = round(float(np.quantile(np.asarray(lexical, dtype=float), ASK_QUANTILE, method="higher")), 4)
            record["null"]["lexical_n"] = len(lexical)
        if len(standing) >= MIN_NULL:
            record["standing_ask"] = round(float(np.quantile(np.asarray(standing, dtype=float), ASK_QUANTILE, method="higher")), 4)
            record["null"]["standing_n"] = len(standing)
    return record


def _histogram(values: np.ndarray, step: float = 0.05) -> dict:
    """Counts in fixed bins of `step` over [0, 1], the same shape as the run's best-match histogram."""
    bins = int(round(1 / step))
    counts = np.bincount(np.clip((values / step).astype(int), 0, bins - 1), minlength=bins)
    return {"step": step, "counts": counts.tolist(), "n": int(len(values))}


def gate_of(record: dict | None, settings: Settings, model: str) -> Gate:
    """The gate a run uses: its calibration record, else the configured bands."""
    if not record or "strong" not in record:
        configured = settings.bands_for(model)
        return Gate("absolute", configured.strong, configured.weak)
    weak = min(record["weak"], record["strong"])
    return Gate(record.get("mode", "absolute"), record["strong"], weak,
                min(record["ask"], weak) if record.get("ask") is not None else None, record.get("lexical_ask"),
                record.get("standing_ask"))


def describe(record: dict | None) -> list[str]:
    """Lines for the CLI and the report."""
    if not record:
        return ["no calibration recorded for this run"]
    null = record.get("null", {})
    above = " above the entry's baseline" if record.get("mode") == "excess" else ""
    lines = [f"embedding model: {record.get('model')}",
             f"bands: strong {record['strong']:+.3f}, weak {record['weak']:+.3f}{above}; {record['source']}"]
    if record.get("ask") is not None:
        lines.append(f"worth asking the classifier: best candidate {record['ask']:+.3f}{above} (the null's median)")
    if record.get("lexical_ask") is not None:
        lines.append(f"  or its best SOP by BM25 {record['lexical_ask']:+.3f} above the SOPs after its top k, in logs "
                     f"(the lexical null's median, n={record['null'].get('lexical_n')})")
    if record.get("standing_ask") is not None:
        lines.append(f"  or its best SOP's fused standing {record['standing_ask']:+.3f} (BM25 + vector, in null "
                     f"deviations; the median standing of the SOP ranked k+1, n={record['null'].get('standing_n')})")
    if null.get("n"):
        # Says what it counts: SOP similarities, several per entry (a record before "entries" was kept lacks it).
        over = f", over {null['entries']} entries" if null.get("entries") is not None else ""
        lines.append(f"null distribution: {null['n']} similarities of SOPs beyond each entry's top k{over}: "
                     f"median {null['median']:.3f}, p90 {null['p90']:.3f}, p99 {null['p99']:.3f}")
    return lines
