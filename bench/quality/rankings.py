"""Ranking ceilings on the quality corpus, outside the pipeline: `python -m bench.quality.rankings`.

For every labelled entry, whether its home SOP is first / in the top 3 (best section per SOP,
no gate, no classifier) by: BM25 with the entry's words and word pairs weighed by their IDF over
the sections and over the knowledge entries (retrieval.py's lexical side, with the offline
tokenizer and stemmer instead of PostgreSQL's), the offline embedder alone, and reciprocal rank fusion at section level
(pools of 200, as retrieval.py) and at SOP level.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np

from bench.quality.entries import build
from bench.quality.playbook import playbook_files
from playbook_sync.providers.offline import OfflineEmbedder, phrase_pairs
from playbook_sync.providers.offline import terms as words
from playbook_sync.sops import parse_sop, section_embedding_text


def _text(entry) -> str:
    return entry.content + ("\n" + entry.context if entry.context else "")


def terms(text: str) -> list[str]:
    """Its words and word pairs (lexicon.pairs: next to each other in a clause, stopwords skipped)."""
    return words(text) + phrase_pairs(text)


def _by_sop(docs: list, scores: dict[int, float]) -> list[str]:
    best: dict[str, float] = {}
    for j, score in scores.items():
        best[docs[j][0]] = max(best.get(docs[j][0], -1e9), score)
    return sorted(best, key=lambda p: -best[p])


def main() -> int:
    corpus, embedder = build(datetime.now(UTC)), OfflineEmbedder()
    docs, texts = [], []
    for path, data in playbook_files().items():
        if path.endswith(".md"):
            doc = parse_sop(path, data)
            for section in doc.sections:
                texts.append(section_embedding_text(doc, section))
                docs.append((path, Counter(terms(texts[-1]))))
    vectors = np.array(embedder.embed(texts))
    n, avg = len(docs), sum(sum(tf.values()) for _, tf in docs) / len(docs)
    df = Counter(w for _, tf in docs for w in tf)
    idf = {w: math.log(1 + (n - k + 0.5) / (k + 0.5)) for w, k in df.items()}
    everyone = corpus.week1 + corpus.week2
    edf = Counter(w for e in everyone for w in set(terms(_text(e))))
    homed = [e for e in everyone if corpus.labels[str(e.id)].home_sop]
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry, vector in zip(homed, np.array(embedder.embed([_text(e) for e in homed])), strict=True):
        words = set(terms(_text(entry)))
        lexical = {}
        for j, (_path, tf) in enumerate(docs):
            length = sum(tf.values())
            score = sum(idf[w] * math.log(1 + len(everyone) / edf[w]) * tf[w] * 2.2 / (tf[w] + 1.2 * (0.25 + 0.75 * length / avg))
                        for w in words if w in tf)
            if score > 0:
                lexical[j] = score
        similarity = vectors @ vector
        lex_rank = {j: r for r, j in enumerate(sorted(lexical, key=lambda j: -lexical[j])[:200], 1)}
        vec_rank = {int(j): r for r, j in enumerate(np.argsort(-similarity)[:200], 1)}
        fused = {j: (1 / (60 + lex_rank[j]) if j in lex_rank else 0) + (1 / (60 + vec_rank[j]) if j in vec_rank else 0)
                 for j in set(lex_rank) | set(vec_rank)}
        rankings = {"lexical (both IDFs)": _by_sop(docs, lexical), "embedder alone": _by_sop(docs, dict(enumerate(similarity))),
                    "section-level RRF": _by_sop(docs, fused)}
        lex, vec = rankings["lexical (both IDFs)"], rankings["embedder alone"]
        sop_fused = {p: (1 / (61 + lex.index(p)) if p in lex else 0) + 1 / (61 + vec.index(p)) for p in vec}
        rankings["SOP-level RRF"] = sorted(sop_fused, key=lambda p: -sop_fused[p])
        home = corpus.labels[str(entry.id)].home_sop
        for name, ranked in rankings.items():
            hits[name][0] += ranked[0] == home
            hits[name][1] += home in ranked[:3]
    for name, (at1, at3) in hits.items():
        print(f"{name:20s} recall@1 {at1 / len(homed):.3f}  recall@3 {at3 / len(homed):.3f}  ({len(homed)} entries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
