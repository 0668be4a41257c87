"""CPU per entry of the per-entry task's body, in this process: pipeline.process_entry in a loop.

    .venv/bin/python -m bench.entry_cpu [--entries 300] [--repeats 3] [--profile out.prof]
    .venv/bin/python -m bench.entry_cpu --start --entries 980 --repeats 5   # a run's start instead, wall time
    valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file=/tmp/cg.%p \
        .venv/bin/python -m bench.entry_cpu --entries 100 --repeats 1 --callgrind   # instructions, not time

The bench's `--cpu` profile measures whole runs on real workers (start, fan-out, finalize,
Celery, the broker); on a shared machine its figures move by more than one change saves.
This measures only what process_entry costs, with the same state (bench/scenario.py: 42
SOPs, last week's run, a week of entries) and the same fakes answering at once: the calling
thread's CPU time (time.thread_time: the fakes' server threads are not in it) and the
PostgreSQL backends' CPU, per entry, after a few warm-up entries (--stop: stop the server after). On a busy machine CPU time
moves with the neighbours' load; under callgrind (--callgrind) instrumentation is switched on
for the measured entries only, and the main thread's instruction count (its own output file,
thread 1) divided by the entries is a figure that does not. The prepared state is kept
in bench/out/entry_cpu (server left running, databases reused) so repeats start fast.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench import scenario
from bench.fakes import Fakes
from bench.pg import BenchPostgres
from playbook_sync import pipeline
from playbook_sync.db import get_engine
from playbook_sync.deps import Deps

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "out" / "entry_cpu"
SOPS = 42
WARMUP = 20  # entries first processed unmeasured: connections, prepared statements, the per-run caches


def _postgres_cpu(pg: BenchPostgres) -> float:
    total = 0.0
    for proc in psutil.Process(pg.pid()).children(recursive=True):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _prepared(ws: scenario.Workspace, n: int, sops: int = SOPS) -> scenario.Prepared:
    """The scenario's template database and repository, made once and reused."""
    name, repo = f"scn_{sops}_{n}", ws.root / f"repo_{sops}"
    if ws.pg.admin("SELECT 1 FROM pg_database WHERE datname = %s", (name,)) and repo.exists():
        return scenario.Prepared(n, sops, name, repo, 0, 0)
    return scenario.prepare(ws, scenario.prepare_base(ws, sops), n)


def measure(ws: scenario.Workspace, p: scenario.Prepared, profile: cProfile.Profile | None, callgrind: bool = False) -> dict:
    """One run started on a fresh copy; its entries processed one by one; CPU of the measured ones."""
    with _copy(ws, p, "cpu", latency=0, embedding_latency=0) as deps:
        with deps.session() as session:
            started = pipeline.start_run(session, deps, trigger="bench-entry-cpu")
        ids = started.entry_ids
        for entry_id in ids[:WARMUP]:
            with deps.session() as session:
                pipeline.process_entry(session, deps, run_id=started.run_id, entry_id=entry_id)
        measured, statuses = ids[WARMUP:], {}
        pg0, t0, w0 = _postgres_cpu(ws.pg), time.thread_time(), time.perf_counter()
        if profile:
            profile.enable()
        if callgrind:
            subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
        for entry_id in measured:
            with deps.session() as session:
                out = pipeline.process_entry(session, deps, run_id=started.run_id, entry_id=entry_id)
            statuses[out["status"]] = statuses.get(out["status"], 0) + 1
        if callgrind:
            subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], check=True, capture_output=True)
        if profile:
            profile.disable()
        worker, wall, postgres = time.thread_time() - t0, time.perf_counter() - w0, _postgres_cpu(ws.pg) - pg0
        n = len(measured)
        return {"entries": n, "worker_ms": 1000 * worker / n, "postgres_ms": 1000 * postgres / n,
                "wall_ms": 1000 * wall / n, "statuses": statuses}


def start_wall(ws: scenario.Workspace, p: scenario.Prepared) -> float:
    """Wall seconds of one run's start (pipeline.start_run) on a fresh copy, the fakes at the bench's latencies."""
    with _copy(ws, p, "start", latency=0.3, embedding_latency=0.15) as deps:
        started = time.perf_counter()
        with deps.session() as session:
            pipeline.start_run(session, deps, trigger="bench-start")
        return time.perf_counter() - started


@contextmanager
def _copy(ws: scenario.Workspace, p: scenario.Prepared, tag: str, *, latency: float, embedding_latency: float) -> Iterator[Deps]:
    """Deps over a fresh copy of the prepared database and repository (dropped after), the fakes at these latencies."""
    name, repo = scenario._clone(ws, p, tag)
    url = ws.pg.url(name)
    try:
        ws.fakes.reset(message_latency=latency, embedding_latency=embedding_latency)
        yield Deps.from_settings(scenario.settings_for(scenario.env_for(ws, url, repo)))
    finally:
        get_engine(url).dispose()
        scenario._cleanup(ws, name, repo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sops", type=int, default=SOPS, help="SOPs in the playbook (the bench's generated ones)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured entries (all repeats) here")
    parser.add_argument("--callgrind", action="store_true", help="running under valgrind --tool=callgrind "
                        "--instr-atstart=no: instrument the measured entries only")
    parser.add_argument("--start", action="store_true", help="time the run's start instead (start_run, in-process, "
                        "embedding requests at 150 ms; --entries entries, --repeats starts)")
    parser.add_argument("--stop", action="store_true", help="stop the PostgreSQL server at the end (kept running by default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)
    pg = BenchPostgres(WORK)
    fakes = Fakes()
    profile = cProfile.Profile(time.thread_time) if args.profile else None  # CPU, not waits
    try:
        ws = scenario.Workspace(pg, fakes, "redis://127.0.0.1:1/0", WORK)  # no broker: nothing is enqueued
        p = _prepared(ws, args.entries + WARMUP, args.sops)
        if args.start:
            walls = [start_wall(ws, p) for _ in range(args.repeats)]
        else:
            runs = [measure(ws, p, profile, args.callgrind) for _ in range(args.repeats)]
    finally:
        fakes.stop()
        if args.stop:
            pg.stop()  # else it stays up for the next invocation (bench/out/entry_cpu/pg)
    if args.start:
        print(f"start_run over {args.entries + WARMUP} entries x {args.sops} SOPs: {' '.join(f'{w:.2f}' for w in walls)} s; "
              f"median {statistics.median(walls):.2f} s")
        return 0
    for r in runs:
        print(f"worker {r['worker_ms']:6.2f} ms  postgres {r['postgres_ms']:6.2f} ms  wall {r['wall_ms']:6.2f} ms"
              f"  per entry over {r['entries']} entries {r['statuses']}")
    print(f"median: worker {statistics.median(r['worker_ms'] for r in runs):.2f} ms, "
          f"postgres {statistics.median(r['postgres_ms'] for r in runs):.2f} ms per entry")
    if profile:
        profile.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
