"""Split a list of inputs into requests under a count limit and a size (token) budget."""

from __future__ import annotations

from collections.abc import Sequence


def spans(sizes: Sequence[int], *, max_items: int, max_total: int | None = None) -> list[tuple[int, int]]:
    """Greedy consecutive [start, end) spans of at most max_items items and max_total summed size.

    Order is kept, so results map back by position. An item bigger than max_total on its
    own still gets a span of its own (the provider truncates or refuses it).
    """
    if max_items < 1:
        raise ValueError("max_items must be >= 1")
    out: list[tuple[int, int]] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        full = index - start >= max_items or (max_total is not None and index > start and total + size > max_total)
        if full:
            out.append((start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out


def embed_all(embedder, texts: Sequence[str]) -> list[list[float]]:
    """Embed texts in as few requests as the embedder allows: ≤ max_batch inputs and, when the
    embedder has a token budget (providers.base.TokenBudget), ≤ that many tokens each."""
    from playbook_sync.providers.base import TokenBudget

    budget = embedder.max_batch_tokens if isinstance(embedder, TokenBudget) else None
    sizes = [embedder.count_tokens(t) for t in texts] if budget else [0] * len(texts)
    vectors: list[list[float]] = []
    for start, end in spans(sizes, max_items=embedder.max_batch, max_total=budget):
        vectors.extend(embedder.embed(texts[start:end]))
    return vectors
