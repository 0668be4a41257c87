"""Tune the offline embedder's bands on the demo playbook and entries.

Embeds the demo SOP sections and entries exactly as matching does, then prints each
entry's best SOP, section and score, the classifier's answers, the score distribution
per intended outcome, and the orphans' mutual similarities.

    .venv/bin/python bench/tune_offline.py [--strong 0.4 --weak 0.25 --cluster 0.3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playbook_sync.config import DEFAULT_BANDS, OFFLINE_EMBEDDING_MODEL, Settings  # noqa: E402
from playbook_sync.providers.offline import (  # noqa: E402
    OfflineEmbedder,
    OfflineLLM,
    containment,
)
from playbook_sync.schemas import (  # noqa: E402
    Action,
    Candidate,
    ClassifyRequest,
    Entry,
    EntryIn,
    SopDoc,
)
from playbook_sync.sops import parse_sop, section_embedding_text  # noqa: E402

DEMO = ROOT / "playbook_sync" / "demo"


@dataclass
class Scored:
    """One entry's matches: best section score per SOP, and what the classifier said."""

    entry: Entry
    vector: np.ndarray
    per_sop: list[tuple[float, SopDoc, str]]  # (score, doc, section heading), best first
    decisions: dict[str, Action] = field(default_factory=dict)
    outcome: str = "orphan"

    @property
    def best(self) -> tuple[float, SopDoc, str]:
        return self.per_sop[0]


def load_sops(root: Path = DEMO / "playbook") -> list[SopDoc]:
    """Every markdown file under docs/, parsed the way the pipeline parses it."""
    docs = sorted((root / "docs").rglob("*.md"))
    return [parse_sop(p.relative_to(root).as_posix(), p.read_bytes()) for p in docs]


def load_entries(path: Path = DEMO / "entries.jsonl") -> list[Entry]:
    """The demo entries as the providers see them."""
    entries = []
    for line in path.read_text().splitlines():
        if line.strip():
            raw = EntryIn.model_validate_json(line)
            entries.append(Entry(**raw.model_dump(exclude={"created_at"})))
    return entries


def entry_text(entry: Entry) -> str:
    """What matching embeds for an entry: content, plus context when present."""
    return f"{entry.content}\n{entry.context}" if entry.context else entry.content


def band_of(score: float, strong: float, weak: float) -> str | None:
    """strong | weak | None for a similarity score."""
    return "strong" if score >= strong else "weak" if score >= weak else None


def score_all(
    sops: list[SopDoc], entries: list[Entry], embedder: OfflineEmbedder
) -> list[Scored]:
    """Best-section similarity of every entry to every SOP, best SOP first."""
    owners: list[tuple[SopDoc, str]] = []
    texts: list[str] = []
    for doc in sops:
        for section in doc.sections:
            owners.append((doc, section.heading))
            texts.append(section_embedding_text(doc, section))
    sections = np.asarray(embedder.embed(texts))
    vectors = np.asarray(embedder.embed([entry_text(e) for e in entries]))
    out = []
    for entry, vector in zip(entries, vectors):
        sims = sections @ vector  # unit vectors: dot product is cosine similarity
        best: dict[str, tuple[float, SopDoc, str]] = {}
        for sim, (doc, heading) in zip(sims, owners):
            if doc.path not in best or sim > best[doc.path][0]:
                best[doc.path] = (float(sim), doc, heading)
        ranked = sorted(best.values(), key=lambda item: -item[0])
        out.append(Scored(entry=entry, vector=vector, per_sop=ranked))
    return out


def classify_all(scored: list[Scored], strong: float, weak: float, top_k: int = 3) -> None:
    """Run the offline classifier on the banded top-k candidates, as the pipeline does."""
    llm = OfflineLLM()
    for item in scored:
        candidates = [
            Candidate(
                sop_path=doc.path,
                title=doc.title,
                section=heading,
                similarity=score,
                band=band,
                sop_text=doc.content,
            )
            for score, doc, heading in item.per_sop[:top_k]
            if (band := band_of(score, strong, weak))
        ]
        if not candidates:
            item.outcome = "orphan"
            continue
        decisions = llm.classify(ClassifyRequest(entry=item.entry, candidates=candidates))
        item.decisions = {d.sop_path: d.action for d in decisions}
        actions = set(item.decisions.values())
        item.outcome = (
            "enrich" if Action.enrich in actions
            else "redundant" if Action.redundant in actions
            else "tangential"
        )


def _sop_id(path: str | None) -> str:
    return Path(path).stem if path else "-"


def report(scored: list[Scored], expected: dict[str, dict], strong: float, weak: float,
           cluster: float) -> int:
    """Print the per-entry table and distributions; return the number of misroutes."""
    misses = 0
    print(f"bands: strong >= {strong}, weak >= {weak}; cluster_similarity {cluster}\n")
    print(f"{'entry':38} {'intended':26} {'got':26} {'best':>5} {'2nd':>5} {'cont':>4}  section")
    groups: dict[str, list[float]] = {}
    for item in scored:
        want = expected.get(str(item.entry.id), {})
        score, doc, heading = item.best
        got_sop = next(
            (p for p, a in item.decisions.items() if a in (Action.enrich, Action.redundant)),
            doc.path if item.outcome == "tangential" else None,
        )
        intended = f"{want.get('outcome', '?')}:{_sop_id(want.get('sop'))}"
        got = f"{item.outcome}:{_sop_id(got_sop)}"
        want_outcome = {"cluster": "orphan"}.get(want.get("outcome", ""), want.get("outcome"))
        ok = want_outcome == item.outcome and (
            want.get("sop") is None or _sop_id(got_sop) == want.get("sop")
        )
        misses += not ok
        groups.setdefault(want.get("outcome", "?"), []).append(score)
        flag = "  " if ok else "!!"
        print(f"{flag}{want.get('key', str(item.entry.id))[:36]:36} {intended[:26]:26} "
              f"{got[:26]:26} {score:5.3f} {item.per_sop[1][0]:5.3f} "
              f"{containment(item.entry.content, doc.content):4.2f}  {heading[:28]}")
    print("\nbest-match score by intended outcome (min / median / max):")
    for name, values in sorted(groups.items()):
        print(f"  {name:11} n={len(values):2}  {min(values):.3f} / "
              f"{statistics.median(values):.3f} / {max(values):.3f}")
    _orphan_report(scored, expected, cluster)
    print(f"\nmisrouted: {misses} of {len(scored)}")
    return misses


def _orphan_report(scored: list[Scored], expected: dict[str, dict], cluster: float) -> None:
    members = [s for s in scored if expected.get(str(s.entry.id), {}).get("outcome") == "cluster"]
    others = [s for s in scored if s.outcome in ("orphan", "tangential") and s not in members]
    if not members:
        return
    mat = np.asarray([m.vector for m in members])
    pair = mat @ mat.T
    upper = pair[np.triu_indices(len(members), 1)]
    centroid = mat.mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    print(f"\ncluster members: pairwise min {upper.min():.3f} median {np.median(upper):.3f}; "
          f"to centroid min {(mat @ centroid).min():.3f}")
    if others:
        to_centroid = [(float(o.vector @ centroid), o) for o in others]
        worst, who = max(to_centroid, key=lambda item: item[0])
        key = expected.get(str(who.entry.id), {}).get("key", who.entry.id)
        pairs = [float(a.vector @ b.vector) for i, a in enumerate(others) for b in others[i + 1:]]
        print(f"other orphans to cluster centroid: max {worst:.3f} ({key}); "
              f"max pairwise among others {max(pairs, default=0.0):.3f}")


def main() -> int:
    """Parse arguments, score the demo, print the report; exit 1 on misroutes."""
    bands = DEFAULT_BANDS[OFFLINE_EMBEDDING_MODEL]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strong", type=float, default=bands.strong)
    parser.add_argument("--weak", type=float, default=bands.weak)
    parser.add_argument("--cluster", type=float, default=Settings().cluster_similarity)
    args = parser.parse_args()
    expected_path = DEMO / "expected_routing.json"
    expected = json.loads(expected_path.read_text()) if expected_path.exists() else {}
    scored = score_all(load_sops(), load_entries(), OfflineEmbedder())
    classify_all(scored, args.strong, args.weak)
    return 1 if report(scored, expected, args.strong, args.weak, args.cluster) else 0


if __name__ == "__main__":
    raise SystemExit(main())
