"""Persistent orphan clusters: orphans join the nearest open cluster, or start one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from playbook_sync import orphan_topics
from playbook_sync.models import DIMENSIONS, KnowledgeEntry, OrphanCluster, OrphanMember, SopEmbedding


@dataclass
class ClusterView:
    id: uuid.UUID
    label: str | None
    entries: list[KnowledgeEntry]
    sources: set[str]
    centroid: list[float]


def _unit(vector: np.ndarray) -> list[float]:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).tolist() if norm else vector.tolist()


def assign(session: Session, *, run_id: uuid.UUID, entries: Sequence[KnowledgeEntry], threshold: float) -> None:
    """Put each orphan (not yet in a cluster) into the nearest open cluster above threshold."""
    known = set(session.scalars(select(OrphanMember.entry_id).where(OrphanMember.entry_id.in_([e.id for e in entries]))))
    # Open clusters are compared in memory and each join folds one vector into a running mean:
    # a query and a re-aggregation per orphan made a big week's callback slow (bench/).
    clusters = list(session.scalars(select(OrphanCluster).where(OrphanCluster.status == "open")
                                    .order_by(OrphanCluster.created_at, OrphanCluster.id)))
    centroids = [_normed(c.centroid) for c in clusters]
    sums: dict[uuid.UUID, tuple[np.ndarray, int]] = {}  # members' vector sum and count, per cluster joined
    for entry in sorted(entries, key=lambda e: (e.created_at, str(e.id))):
        if entry.id in known or entry.embedding is None:
            continue
        vector = np.asarray(entry.embedding, dtype=float)
        sims = np.asarray(centroids) @ _normed(vector) if centroids else np.empty(0)
        best = int(np.argmax(sims)) if len(sims) else -1
        if best >= 0 and sims[best] >= threshold:
            cluster, similarity = clusters[best], float(sims[best])
        else:
            cluster, similarity, best = OrphanCluster(id=uuid.uuid4(), centroid=vector.tolist(), tags=[]), 1.0, len(clusters)
            session.add(cluster)
            clusters.append(cluster)
            centroids.append(_normed(vector))
            sums[cluster.id] = (np.zeros_like(vector), 0)
        session.add(OrphanMember(entry_id=entry.id, cluster_id=cluster.id, run_id=run_id, similarity=similarity))
        _join(session, cluster, entry, sums)
        centroids[best] = _normed(cluster.centroid)
    session.flush()
    _merge_close(session, threshold)


def _normed(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


def _join(session: Session, cluster: OrphanCluster, entry: KnowledgeEntry, sums: dict) -> None:
    """Fold a new member into its cluster's centroid and tags without re-reading the other members."""
    if cluster.id in sums:
        total, count = sums[cluster.id]
        total, count = total + np.asarray(entry.embedding, dtype=float), count + 1
        cluster.centroid = _unit(total / count)
        cluster.tags = sorted(set(cluster.tags or ()) | set(entry.tags or ()))
    else:
        session.flush()
        total, count = _refresh(session, cluster)  # first join in this call: from all members
    sums[cluster.id] = (total, count)


def _merge_close(session: Session, threshold: float) -> None:
    """Merge open clusters whose centroids have come within threshold of each other.

    Joining is greedy in arrival order, so two early orphans can start separate
    clusters that a later one bridges; merging makes the result order-independent.
    """
    while True:
        clusters = list(session.scalars(select(OrphanCluster).where(OrphanCluster.status == "open").order_by(OrphanCluster.created_at, OrphanCluster.id)))
        if len(clusters) < 2:
            return
        matrix = np.asarray([c.centroid for c in clusters], dtype=float)
        sims = matrix @ matrix.T
        np.fill_diagonal(sims, -1.0)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[i, j] < threshold:
            return
        keep, gone = clusters[min(i, j)], clusters[max(i, j)]
        for member in session.scalars(select(OrphanMember).where(OrphanMember.cluster_id == gone.id)):
            member.cluster_id = keep.id
        session.flush()
        session.delete(gone)
        session.flush()
        _refresh(session, keep)


def _refresh(session: Session, cluster: OrphanCluster) -> tuple[np.ndarray, int]:
    """Recompute centroid (the normalized mean) and tags from the members; return their vector sum and count."""
    # Aggregated in the database, not by loading every member's vector into Python.
    members = (select(KnowledgeEntry.embedding, KnowledgeEntry.tags)
               .join(OrphanMember, OrphanMember.entry_id == KnowledgeEntry.id)
               .where(OrphanMember.cluster_id == cluster.id).subquery())
    mean, count = session.execute(select(func.avg(members.c.embedding, type_=Vector(DIMENSIONS)), func.count())).one()
    mean = np.asarray(mean, dtype=float)
    cluster.centroid = _unit(mean)
    cluster.tags = sorted(set(session.scalars(select(func.unnest(members.c.tags)).distinct())))
    return mean * count, count


def _members(session: Session, cluster_id: uuid.UUID) -> list[KnowledgeEntry]:
    return list(
        session.scalars(
            select(KnowledgeEntry).options(defer(KnowledgeEntry.embedding))  # callers read text, not vectors
            .join(OrphanMember, OrphanMember.entry_id == KnowledgeEntry.id)
            .where(OrphanMember.cluster_id == cluster_id)
            .order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)
        )
    )


def promotable(session: Session, *, min_entries: int, min_sources: int) -> list[ClusterView]:
    """Open orphans that share a topic the playbook lacks (orphan_topics), with enough entries from
    enough distinct sources to become an SOP: each topic gathered into one open cluster of its own."""
    out = []
    for group in orphan_topics.topic_groups(session, min_entries=min_entries, min_sources=min_sources):
        cluster = _gather(session, group)
        members = _members(session, cluster.id)
        sources = {m.source_ref or f"entry:{m.id}" for m in members}
        out.append(ClusterView(cluster.id, cluster.label, members, sources, list(cluster.centroid)))
    return out


def _gather(session: Session, entry_ids: list[uuid.UUID]) -> OrphanCluster:
    """The open cluster holding exactly these orphans: an existing one, else a new one they move into
    (clusters they leave are refreshed, or dropped once empty)."""
    rows = list(session.scalars(select(OrphanMember).where(OrphanMember.entry_id.in_(entry_ids))))
    holders = sorted({r.cluster_id for r in rows}, key=str)
    for cluster_id in holders:
        if set(session.scalars(select(OrphanMember.entry_id).where(OrphanMember.cluster_id == cluster_id))) == set(entry_ids):
            return session.get(OrphanCluster, cluster_id)
    cluster = OrphanCluster(id=uuid.uuid4(), tags=[])
    session.add(cluster)
    session.flush()
    for row in rows:
        row.cluster_id = cluster.id
    session.flush()
    for cluster_id in holders:
        left = session.get(OrphanCluster, cluster_id)
        if session.scalar(select(func.count()).where(OrphanMember.cluster_id == cluster_id)):
            _refresh(session, left)
        else:
            session.delete(left)
    _refresh(session, cluster)
    session.flush()
    return cluster


def nearest_module(session: Session, *, centroid: Sequence[float], modules: set[str]) -> str | None:
    """The module of the SOP nearest to a cluster, among the modules that exist."""
    distance = SopEmbedding.embedding.cosine_distance(list(centroid))
    for module in session.scalars(
        select(SopEmbedding.module).where(SopEmbedding.module.in_(modules)).order_by(distance).limit(1)
    ):
        return module
    return min(modules, key=lambda m: int(m.split("-")[1])) if modules else None


def open_cluster_sizes(session: Session) -> list[tuple[uuid.UUID, int]]:
    """(cluster, members) of open clusters, for reports."""
    rows = session.execute(
        select(OrphanMember.cluster_id, func.count())
        .join(OrphanCluster, OrphanCluster.id == OrphanMember.cluster_id)
        .where(OrphanCluster.status == "open")
        .group_by(OrphanMember.cluster_id)
    )
    return [(cid, n) for cid, n in rows]
