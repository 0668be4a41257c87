"""The cost of a realistic week: `python -m bench.cost` (about a minute).

~50 entries against a playbook of 40 long SOPs (~7,000 words each, bench/longsops.py), run
through the real providers (the Anthropic and OpenAI SDKs) against the fake services on
127.0.0.1, which count tokens as characters / 4 and account prompt caching as the service
does (tests/fakes/anthropic_server.py). Priced at list prices (config.DEFAULT_PRICES).
Two runs from the same state: direct calls, then batch mode (classifications as one
Message Batch at half price). Prints the command, commit, machine load and the figures;
writes bench/out/cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
STEPS = ("classify", "edit", "cluster", "new_sop", "embed")


def _run_direct(deps) -> uuid.UUID:
    from playbook_sync import pipeline

    return uuid.UUID(pipeline.run_inline(deps, trigger="bench-cost")["run_id"])


def _run_batch(deps) -> uuid.UUID:
    """start → every entry prepared → finalize submits the batch → poll until applied → finalize."""
    from playbook_sync import batch, pipeline
    from playbook_sync.finalize import finalize_or_fail

    with deps.session() as session:
        started = pipeline.start_run(session, deps, trigger="bench-cost-batch")
    for entry_id in started.entry_ids:
        with deps.session() as session:
            pipeline.process_entry(session, deps, run_id=started.run_id, entry_id=entry_id)
    finalize_or_fail(deps, run_id=started.run_id)
    for _ in range(20):
        with deps.session() as session:
            if started.run_id in batch.poll(session, deps.llm, deps.ledger):
                break
    finalize_or_fail(deps, run_id=started.run_id)
    return started.run_id


def measure(url: str, run_id: uuid.UUID) -> dict:
    """Per step: calls and tokens (plain input, cache writes, cache reads, output) and dollars; the run's outcome."""
    from sqlalchemy import select

    from playbook_sync.db import session_scope
    from playbook_sync.models import LlmCall, SyncRun

    with session_scope(url) as session:
        run = session.get(SyncRun, run_id)
        calls = list(session.scalars(select(LlmCall).where(LlmCall.run_id == run_id)))
        outcome = {"status": run.status, "entries": run.entries_processed, "enriched": run.entries_enriched,
                   "sops_enriched": len(run.sops_enriched or []), "sops_created": len(run.sops_created or [])}
    steps = {}
    for step in STEPS:
        mine = [c for c in calls if c.step == step]
        steps[step] = {"calls": len(mine), "batch_calls": sum(c.batch for c in mine),
                       "input": sum(c.input_tokens for c in mine), "cache_write": sum(c.cache_write_tokens for c in mine),
                       "cache_read": sum(c.cache_read_tokens for c in mine), "output": sum(c.output_tokens for c in mine),
                       "usd": round(sum(c.cost_usd for c in mine), 4)}
    model = [s for name, s in steps.items() if name != "embed"]
    total = {k: sum(s[k] for s in model) for k in ("calls", "input", "cache_write", "cache_read", "output")}
    total["usd"] = round(sum(s["usd"] for s in steps.values()), 4)
    prompt = total["input"] + total["cache_write"] + total["cache_read"]
    total["cached_share"] = round(total["cache_read"] / prompt, 3) if prompt else 0.0
    total["reads_per_write"] = round(total["cache_read"] / total["cache_write"], 2) if total["cache_write"] else None
    bound = outcome["entries"] + outcome["sops_enriched"] + outcome["sops_created"] + steps["cluster"]["calls"]
    return outcome | {"steps": steps, "total": total, "model_call_bound": bound}


def run(entries: int, sops: int, words: int, work: Path, *, pg=None, fakes=None) -> dict:
    """Both runs; on the given PostgreSQL and fakes (make bench's), else on ones started here."""
    from contextlib import ExitStack

    from bench import generate, longsops
    from bench.fakes import Fakes
    from bench.pg import bench_postgres
    from bench.scenario import settings_for
    from playbook_sync import pipeline, store
    from playbook_sync.db import get_engine, session_scope
    from playbook_sync.deps import Deps
    from playbook_sync.providers.localgit import init_repo

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict = {}
    with ExitStack() as stack:
        if fakes is None:
            fakes = Fakes()
            stack.callback(fakes.stop)
        if pg is None:
            pg = stack.enter_context(bench_postgres(work))
        base, repo = "cost_base", work / "repo"
        pg.create(name=base)
        init_repo(repo, longsops.playbook(sops, words=words))

        def env(url: str, path: Path, **extra: str) -> dict[str, str]:
            return {"PLAYBOOK_SYNC_DATABASE_URL": url, "PLAYBOOK_SYNC_REPO_PATH": str(path),
                    "PLAYBOOK_SYNC_DATA_DIR": str(work / "data"), "PLAYBOOK_SYNC_LOG_FORMAT": "text"} | fakes.env() | extra

        fakes.reset(message_latency=0, embedding_latency=0)
        warm = Deps.from_settings(settings_for(env(pg.url(base), repo)))
        pipeline.run_inline(warm, trigger="bench-warmup", now=datetime.now(UTC) - timedelta(days=8))  # last week: SOP cache
        with session_scope(pg.url(base)) as session:
            store.upsert_entries(session, entries=generate.entries(entries, sops, datetime.now(UTC) - timedelta(minutes=1)))
        get_engine(pg.url(base)).dispose()
        for mode, how in (("direct", _run_direct), ("batch", _run_batch)):
            name, path = pg.create(template=base), work / f"repo_{mode}"
            shutil.copytree(repo, path, symlinks=True)
            fakes.reset(message_latency=0, embedding_latency=0)
            deps = Deps.from_settings(settings_for(env(pg.url(name), path, PLAYBOOK_SYNC_LLM_BATCH=str(mode == "batch").lower())))
            results[mode] = measure(pg.url(name), how(deps))
            get_engine(pg.url(name)).dispose()
            pg.drop(name)
        pg.drop(base)
    return results


def render(meta: dict, results: dict) -> str:
    """The command, commit and load, then the figures."""
    head = (f"`{meta['command']}` at commit `{meta['commit']}`, {meta['started']}; {meta['entries']} entries, "
            f"{meta['sops']} SOPs of ~{meta['words']:,} words; load average {meta['load_start']} → {meta['load_end']} "
            "(cost figures do not depend on load).")
    return "\n".join([head, "", *table(results)]) + "\n"


def table(results: dict) -> list[str]:
    """The figures as Markdown lines (also BENCHMARKS.md's cost section)."""
    lines = ["| mode | step | calls | input | cache write | cache read | output | $ |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        for step, s in r["steps"].items():
            if s["calls"]:
                lines.append(f"| {mode} | {step} | {s['calls']:,}{' (batch)' if s['batch_calls'] else ''} | {s['input']:,} | "
                             f"{s['cache_write']:,} | {s['cache_read']:,} | {s['output']:,} | ${s['usd']:.3f} |")
        t = r["total"]
        lines.append(f"| {mode} | **total** | {t['calls']:,} / bound {r['model_call_bound']:,} | {t['input']:,} | "
                     f"{t['cache_write']:,} | {t['cache_read']:,} | {t['output']:,} | **${t['usd']:.2f}** |")
    lines.append("")
    for mode, r in results.items():
        t = r["total"]
        lines.append(f"- {mode}: {r['status']}, {r['enriched']} of {r['entries']} entries enriched {r['sops_enriched']} SOPs "
                     f"({r['sops_created']} new); {t['cached_share']:.0%} of prompt tokens read from cache; cache reads "
                     f"per cache write: {t['reads_per_write'] if t['reads_per_write'] is not None else 'no writes'}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    from bench.run import git_commit

    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--sops", type=int, default=40)
    parser.add_argument("--words", type=int, default=7_000)
    parser.add_argument("--out", type=Path, default=OUT / "cost.json")
    args = parser.parse_args(argv)
    meta = {"command": shlex.join(["python", "-m", "bench.cost", *(sys.argv[1:] if argv is None else argv)]),
            "commit": git_commit(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "entries": args.entries, "sops": args.sops, "words": args.words,
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    started = time.perf_counter()
    results = run(args.entries, args.sops, args.words, OUT / "cost")
    meta |= {"load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()), "duration_s": round(time.perf_counter() - started)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(render(meta, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
