"""The quality benchmark: `python -m bench.quality` (or `make quality`) → QUALITY.md.

Builds the labelled playbook repository and two weeks of labelled entries (bench/quality/),
runs the real pipeline on the embedded profile — PostgreSQL+pgvector and Redis from their
wheels, a real Celery worker process, the configured providers (offline by default) — week 1,
then week 2, and measures from the database and the committed files how well entries found
their home SOP and section, what became of orphans and planted topics, and whether
knowledge already written was written again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out" / "quality"
COMMAND = "make quality   # = .venv/bin/python -m bench.quality"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="work directory (wiped first)")
    parser.add_argument("--report", type=Path, default=ROOT / "QUALITY.md", help="where to write the report")
    parser.add_argument("--label", default="", help="a note recorded with the results (e.g. 'baseline')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from bench.quality.report import render

    results = run(args.out.resolve())
    results["label"] = args.label
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    history = _history(ROOT / "bench" / "quality" / "history.jsonl", results)
    args.report.write_text(render(results, history))
    print(f"wrote {args.report} and {args.out / 'results.json'}")
    return 0


def run(out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    data = out / "data"
    data.mkdir(parents=True)
    # Embedded services and offline providers unless the caller chose otherwise; never a stray .env.
    for name in ("PLAYBOOK_SYNC_DATABASE_URL", "PLAYBOOK_SYNC_BROKER_URL", "PLAYBOOK_SYNC_RESULT_BACKEND"):
        os.environ.pop(name, None)
    os.environ["PLAYBOOK_SYNC_DATA_DIR"] = str(data)
    os.environ.pop("PLAYBOOK_SYNC_REPO_PATH", None)
    os.environ.setdefault("PLAYBOOK_SYNC_LOG_FORMAT", "text")

    from bench.quality.entries import build
    from bench.quality.playbook import playbook_files
    from playbook_sync import db, store
    from playbook_sync.config import get_settings
    from playbook_sync.local_services import local_services
    from playbook_sync.providers.localgit import init_repo

    get_settings.cache_clear()
    started = time.perf_counter()
    t1 = datetime.now(UTC)
    corpus = build(t1 - timedelta(minutes=1))
    (out / "labels.json").write_text(json.dumps(corpus.labels_json(), indent=2))
    with local_services(data, None, None):
        get_settings.cache_clear()
        settings = get_settings()
        db.upgrade(settings.database_url)
        repo_path = settings.playbook_path
        init_repo(repo_path, playbook_files(), branch=settings.branch, message="RevOps playbook")
        base = _git(repo_path, "rev-parse", "HEAD")
        from playbook_sync.cli.follow import start_and_follow
        from playbook_sync.worker.app import app as celery_app
        from playbook_sync.worker.local import worker_process

        with worker_process(celery_app, log_file=data / "worker.log"):
            with db.session_scope(settings.database_url) as session:
                store.upsert_entries(session, entries=corpus.week1)
            week1 = start_and_follow(settings, trigger="quality-week-1")
            week2_at = datetime.now(UTC)
            corpus2 = build(t1 - timedelta(minutes=1), week2_at=week2_at)
            with db.session_scope(settings.database_url) as session:
                store.upsert_entries(session, entries=corpus2.week2)
            week2 = start_and_follow(settings, trigger="quality-week-2")
        results = measure(settings.database_url, corpus2.labels, [week1, week2], repo_path, base)
        _release(celery_app)
    from bench.quality.metrics import embedder_alone
    from playbook_sync.deps import build_embedder

    results["embedder_alone"] = embedder_alone(build_embedder(settings), playbook_files(),
                                               corpus2.week1 + corpus2.week2, corpus2.labels)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["corpus"] = _corpus_shape(corpus2, playbook_files())
    results["providers"] = {"embedder": settings.embedder, "llm": settings.llm, "embedding_model": settings.embedding_model}
    results["commit"] = _git(ROOT, "rev-parse", "--short", "HEAD")
    results["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def measure(database_url: str, labels: dict, outcomes: list[dict], repo: Path, base: str) -> dict:
    from bench.quality import metrics
    from playbook_sync.db import session_scope

    run_ids = [uuid.UUID(o["run_id"]) for o in outcomes if "run_id" in o]
    with session_scope(database_url) as session:
        return {
            "runs": [{k: o.get(k) for k in ("run_id", "status", "entries", "enriched", "redundant", "orphaned",
                                            "deferred", "failed", "sops_enriched", "sops_created")} for o in outcomes],
            "retrieval": metrics.retrieval(session, labels, run_ids),
            "placement": metrics.placement(session, labels, run_ids, repo, base),
        }


def _corpus_shape(corpus, files: dict[str, bytes]) -> dict:
    from collections import Counter

    sops = {p: c for p, c in files.items() if p.startswith("docs/sops/") and p.endswith(".md")}
    kinds = Counter(lab.kind for lab in corpus.labels.values())
    return {
        "sops": len(sops), "modules": len({p.split("/")[2] for p in sops}),
        "min_words": min(len(c.decode().split()) for c in sops.values()),
        "week1": len(corpus.week1), "week2": len(corpus.week2),
        "week1_by_category": dict(Counter(str(e.category) for e in corpus.week1)),
        "week1_by_transcript": dict(Counter(str(e.transcript_type) for e in corpus.week1)),
        "kinds": dict(kinds),
    }


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _release(app) -> None:
    """Let go of task results Celery still tracks while Redis is up (not in __del__ at exit)."""
    from bench.run import release_results

    release_results(app)


def _history(path: Path, results: dict) -> list[dict]:
    """Every run's headline numbers, newest last, so QUALITY.md can show before/after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"measured_at": results["measured_at"], "commit": results["commit"], "label": results.get("label", ""),
            **headline(results)}
    with path.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def headline(results: dict) -> dict:
    r, p = results["retrieval"], results["placement"]
    topics = p["topics"]
    return {
        "recall@1": r["recall_at_1"]["value"], "recall@3": r["recall_at_3"]["value"],
        "sop_precision": p["sop_precision"]["value"], "section_precision": p["section_precision"]["value"],
        "orphan_precision": p["orphan_precision"]["value"], "orphan_recall": p["orphan_recall"]["value"],
        "topics_to_one_sop": sum(1 for t in topics.values() if len(t["new_sops"]) == 1),
        "topics_right_folder": sum(1 for t in topics.values() if len(t["new_sops"]) == 1 and t["in_right_folder"] == 1),
        "noise_promoted": p["noise_promoted"], ">2_sops": p["entries_in_more_than_two_sops"],
        "restated_again": p["restatements_written_again"],
    }


if __name__ == "__main__":
    sys.exit(main())
