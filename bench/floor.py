"""The floor of per-entry orchestration CPU: the run's Celery machinery with tasks that do nothing.

DESIGN §1 fans a run out as one process_entry per entry in a chord. bench/floor_tasks.py has the
same shape with empty bodies (a start task that publishes the header in batches, header tasks
that ignore their result, an immutable callback), registered on the real app and run by real
worker processes with the bench's settings: what remains is what Celery, kombu and Redis cost
per entry before our code does anything. `make bench BENCH_ARGS=--cpu` measures it beside the
real runs at zero latency; alone:

    .venv/bin/python -m bench.floor [--entries 1000] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from bench import scenario

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


def run_floor(ws: scenario.Workspace, url: str, *, entries: int, workers: int) -> dict:
    """CPU seconds per group, and per entry, of one empty chord of `entries` tasks on `workers` workers."""
    from bench.floor_tasks import floor_start
    from playbook_sync.worker.local import task_result

    logs = ws.root / "logs" / f"floor_{entries}_w{workers}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    env = scenario.env_for(ws, url, ws.root / "no-repo")
    with ExitStack() as stack:
        pids = scenario._start_workers(stack, ws, env, workers, logs, include=("bench.floor_tasks",))
        probe, t0 = scenario.CpuProbe(pids, ws.pg.pid(), ws.redis_pid), time.perf_counter()
        started = task_result(floor_start.delay(str(uuid.uuid4()), entries), timeout=600, poll=0.01)
        _wait_stored(ws, started["callback"], timeout=600)
        wall, cpu = time.perf_counter() - t0, probe.delta()
    return {"entries": entries, "workers": workers, "wall": wall, "cpu_s": cpu,
            "cpu_ms_per_entry": {g: round(1000 * c / entries, 2) for g, c in cpu.items()}}


def measure(ws: scenario.Workspace, p: scenario.Prepared, *, workers: list[int]) -> dict:
    """The floor beside a zero-latency scenario: the empty chord of as many entries on each worker count, one
    Messages API call through the SDK, and the hybrid statement's execution on the scenario's own database."""
    name = ws.pg.create(template=p.template)
    try:
        chords = {str(w): run_floor(ws, ws.pg.url(name), entries=p.entries, workers=w) for w in workers}
        hybrid = hybrid_ms(ws, ws.pg.url(name), p.repo)
    finally:
        ws.pg.drop(name)
    sdk = sdk_call_ms(ws.fakes)
    celery = min(sum(c["cpu_ms_per_entry"].get(g, 0) for g in ("workers", "redis")) for c in chords.values())
    parts = {"celery": celery, "sdk_call": sdk, "hybrid": hybrid}
    return {"chords": chords, "per_entry_ms": {k: round(v, 2) for k, v in (parts | {"total": sum(parts.values())}).items()}}


def hybrid_ms(ws: scenario.Workspace, url: str, repo: Path, entries: int = 50) -> float:
    """Median execution time of the plan a worker runs for one entry (prepared.explain: the generic plan
    under the same SET LOCALs), for `entries` of the scenario's entries embedded as a run's start does."""
    from sqlalchemy import text

    from bench.hybrid_query import explain
    from playbook_sync import lexicon, pipeline
    from playbook_sync.db import get_engine, session_scope
    from playbook_sync.deps import Deps

    embedder = Deps.from_settings(scenario.settings_for(scenario.env_for(ws, url, repo))).embedder
    ws.fakes.reset(message_latency=0, embedding_latency=0)
    try:
        with session_scope(url) as s:
            ids = s.scalars(text("SELECT id FROM cp_knowledge_entries ORDER BY id LIMIT :n"), {"n": entries}).all()
            pipeline.embed_entries(s, embedder, ids)
            lexicon.refresh_entry_lexicon(s)
        with session_scope(url) as s:
            times = [explain(s, i)["Execution Time"] for i in ids]
    finally:
        get_engine(url).dispose()
    if not times:
        raise RuntimeError("no entries to time the hybrid statement on")
    return statistics.median(times[5:] or times)  # the first ones warm the caches


def _wait_stored(ws: scenario.Workspace, task_id: str, timeout: float) -> None:
    """Until the callback's result is in the backend, polling its key (no subscription: the run's own
    driver polls the database, not the backend, and should not pay more here)."""
    import redis

    client, deadline = redis.Redis.from_url(ws.broker_url), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if client.exists(f"celery-task-meta-{task_id}"):
                return
            time.sleep(0.02)
    finally:
        client.close()
    raise TimeoutError(f"the empty chord's callback {task_id} did not finish in {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from bench.pg import bench_postgres
    from bench.run import workspace

    out = ROOT / "bench" / "out" / "floor"
    out.mkdir(parents=True, exist_ok=True)
    with bench_postgres(out) as pg, workspace(pg, out) as ws:
        name = pg.create()  # the workers' settings need a database; the empty tasks never use it
        runs = [run_floor(ws, pg.url(name), entries=args.entries, workers=args.workers) for _ in range(args.repeats)]
        pg.drop(name)
    for r in runs:
        print(json.dumps(r))
    return 0


def sdk_call_ms(fakes, calls: int = 300) -> float:
    """This thread's CPU per Messages API call through the real SDK at zero latency, as the provider
    makes it (raw response, read once): what one classify call costs before our prompt and parsing."""
    import anthropic

    fakes.reset(message_latency=0, embedding_latency=0)
    env = fakes.env()
    client = anthropic.Anthropic(api_key=env["PLAYBOOK_SYNC_ANTHROPIC_API_KEY"], base_url=env["PLAYBOOK_SYNC_ANTHROPIC_BASE_URL"])
    tool = {"name": "classify", "description": "Decide.", "strict": True, "input_schema": {
        "type": "object", "properties": {"decisions": {"type": "array", "items": {"type": "object"}}},
        "required": ["decisions"], "additionalProperties": False}}
    params = {"model": "claude-opus-4-1", "max_tokens": 512, "system": "You classify knowledge.",
              "messages": [{"role": "user", "content": "An entry and three candidate SOPs."}],
              "tools": [tool], "tool_choice": {"type": "tool", "name": "classify"}}

    def call() -> None:
        client.messages.with_raw_response.create(**params).read()

    for _ in range(10):  # connection, imports, the SDK's first-call setup
        call()
    started = time.thread_time()
    for _ in range(calls):
        call()
    client.close()
    return (time.thread_time() - started) / calls * 1000


if __name__ == "__main__":
    raise SystemExit(main())
