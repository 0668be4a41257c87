"""Run the benchmarks; write bench/out/results.json, then BENCHMARKS.md from it.

    .venv/bin/python -m bench.run            # the whole matrix up to 10,000 entries x 1,000 SOPs (about 40 minutes)
    .venv/bin/python -m bench.run --full     # the same, baselines measured in full up to 1,000 entries (over an hour)
    .venv/bin/python -m bench.run --smoke    # a couple of minutes, tiny sizes: checks the harness

Everything runs on this machine: embedded PostgreSQL+pgvector and Redis, real Celery
worker processes, the fake OpenAI/Anthropic servers on 127.0.0.1 with latency.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
log = logging.getLogger("bench")


@dataclass
class Profile:
    """What one invocation measures."""

    name: str
    scenarios: list[tuple[int, int]]  # (entries, SOPs), each with every worker count and a baseline
    workers: list[int]
    latency: float  # seconds per model call (message)
    embedding_latency: float  # seconds per embedding request
    baseline_full_up_to: int  # baselines run in full up to this many entries; bigger ones extrapolate the largest
    zero_latency: list[tuple[int, int]]  # (entries, SOPs) also run with the fakes answering at once
    matching_sizes: list[int]
    matching_queries: int = 300
    matching_builds: list[tuple[int, int]] = field(default_factory=lambda: [(16, 64)])
    matching_ef_searches: list[int] = field(default_factory=lambda: [40, 100])
    main: tuple[int, int] = (1000, 42)  # the scenario measured `repeats` times (median and spread reported)
    repeats: int = 3
    baselines: bool = True
    curve_threads: list[int] = field(default_factory=list)  # the main scenario again, one worker, per thread count
    # (entries, SOPs, words per SOP) weeks priced through the real SDKs (bench/cost.py): the first is the target's
    costs: list[tuple[int, int, int]] = field(default_factory=list)


_MATRIX = [(100, 42), (1000, 42), (10_000, 42), (100, 1000), (1000, 1000), (10_000, 1000)]
_CURVE = [16, 32, 64]
_COSTS = [(50, 40, 7_000), (1000, 42, 300)]  # the realistic week, then the 1,000-entry bench week
PROFILES = {
    # The whole matrix, baselines in full at 100 entries (extrapolated above): about 40 minutes on 2 cores.
    "default": Profile("default", _MATRIX, [1, 2], 0.3, 0.15, 100, [(1000, 42)], [1_000, 10_000, 100_000],
                       curve_threads=_CURVE, costs=_COSTS),
    "full": Profile("full", _MATRIX, [1, 2], 0.3, 0.15, 1000, [(1000, 42), (1000, 1000)], [1_000, 10_000, 100_000],
                    matching_builds=[(16, 64), (16, 128)], curve_threads=_CURVE, costs=_COSTS),
    # Orchestration CPU only: 1,000 x 42 with the fakes answering at once (a few minutes).
    "cpu": Profile("cpu", [], [1, 2], 0.3, 0.15, 0, [(1000, 42)], []),
    # Threads per worker at 1,000 x 42 with latency (run once per --threads value), no baseline.
    "curve": Profile("curve", [(1000, 42)], [1], 0.3, 0.15, 0, [], [], repeats=1, baselines=False),
    "smoke": Profile("smoke", [(40, 42), (80, 42)], [1], 0.05, 0.025, 40, [(40, 42)], [1_000], matching_queries=50,
                     matching_ef_searches=[40], main=(80, 42), curve_threads=[4, 8], costs=[(10, 6, 1_000)]),
}


def machine() -> dict:
    """The machine and software the figures come from."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {
        "cpu": cpu, "cores": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
    }


def matcher() -> dict:
    """The matcher as shipped: the HNSW index's build parameters (models.py) and its ef_search."""
    from playbook_sync import matching
    from playbook_sync.models import SopSection

    index = next(ix for ix in SopSection.__table__.indexes if ix.dialect_options["postgresql"].get("using") == "hnsw")
    return {"ef_search": matching.EF_SEARCH} | dict(index.dialect_options["postgresql"]["with"])


def release_results(app) -> None:
    """Let go of the task results Celery still tracks, while Redis is up (not in __del__ at exit)."""
    try:
        held = [r for waiters in app.backend._pending_results[0].values() for r in list(waiters.values())]
        for result in held:
            app.backend.remove_pending_result(result)
        del held
        gc.collect()
    except Exception:  # a private structure: only tidiness at exit depends on it
        log.debug("could not release pending results", exc_info=True)


def git_commit() -> str:
    """HEAD, marked dirty when the work tree has changes."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def workspace(pg, work: Path) -> Iterator:
    """A bench Workspace on `pg`: an embedded Redis under `work` as broker and backend (here and in the
    workers' environment) and the fake OpenAI/Anthropic servers; all stopped on exit."""
    from bench.fakes import Fakes
    from bench.scenario import Workspace
    from playbook_sync.local_services import start_redis
    from playbook_sync.worker.app import app

    redis, broker = start_redis(work)
    os.environ["PLAYBOOK_SYNC_BROKER_URL"] = broker
    app.conf.update(broker_url=broker, result_backend=broker)
    fakes = Fakes()
    try:
        yield Workspace(pg, fakes, broker, work, redis_pid=redis_pid(broker))
    finally:
        fakes.stop()
        release_results(app)
        redis.stop()


def redis_pid(broker_url: str) -> int | None:
    """The embedded Redis (Valkey) server's pid, found by its port (it is not our child)."""
    port = broker_url.rsplit(":", 1)[1].split("/")[0]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if ("valkey-server" in cmd or "redis-server" in cmd) and f":{port}" in cmd:
            return proc.pid
    return None


def extrapolate(sample: dict, fanout: dict, *, entries: int, changed_texts: int, latency: float,
                embedding_latency: float) -> dict:
    """The baseline's wall time for the whole scenario from a measured sample of its entries.

    The baseline is sequential, so its wall time is the sum of its requests' latencies plus
    the time between them. The requests are known exactly: one embedding request per entry
    and per changed SOP text, and the same model calls as the chord made for the same
    entries (same code, same answers). The time between requests is the sample's: the
    entry loop's per entry, the start's and the callback's once (so the estimate is low).
    """
    n, steps = sample["entries"], sample["calls_by_step"]
    classify, other = steps.get("classify", 0), sample["model_calls"] - steps.get("classify", 0)
    start = sample["phase_start"] - sample["embedding_requests"] * embedding_latency
    loop = sample["phase_entries"] - max(0, classify - 1) * latency  # first → last classify call: n-1 calls between
    finish = sample["phase_finalize"] - (other + 1) * latency + (sample["wall"] - sample["db_wall"])
    embeds, calls = entries + changed_texts, fanout["model_calls"]
    latency_sum = embeds * embedding_latency + calls * latency
    wall = latency_sum + max(0.0, start) + max(0.0, finish) + max(0.0, loop) / n * entries
    return {"method": "extrapolated", "sample_entries": n, "sample_wall": sample["wall"], "wall": wall,
            "entries_per_s": entries / wall, "model_calls": calls, "embedding_requests": embeds,
            "latency_sum": latency_sum, "concurrency": 1, "parallel_efficiency": latency_sum / wall,
            "between_requests_s": {"start": round(start, 2), "per_entry": round(loop / n, 4), "finalize": round(finish, 2)}}


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, with every repeat's wall time (the spread) when there are several."""
    ranked = sorted(runs, key=lambda r: r["wall"])
    middle = ranked[(len(ranked) - 1) // 2]
    return middle | ({"repeats": [round(r["wall"], 2) for r in runs]} if len(runs) > 1 else {})


def run_scenarios(ws, profile: Profile, results: dict, save) -> None:
    """Every (entries, SOPs) scenario: the chord per worker count, then the baseline (measured or extrapolated)."""
    from bench import scenario

    for m in dict.fromkeys(m for _, m in profile.scenarios):
        started = time.perf_counter()
        base = scenario.prepare_base(ws, m)
        log.info("base %d SOPs ready in %.1fs (%d changed SOPs, %d texts)", m, time.perf_counter() - started,
                 base.changed_sops, base.changed_texts)
        sample = None  # the largest baseline measured in full for these SOPs
        for n in sorted(n for n, mm in profile.scenarios if mm == m):
            prepared = scenario.prepare(ws, base, n)
            row = {"entries": n, "sops": m, "changed_sops": base.changed_sops, "changed_texts": base.changed_texts,
                   "latency": profile.latency, "embedding_latency": profile.embedding_latency, "fanout": {}}
            results["scenarios"].append(row)
            for w in profile.workers:
                runs = []
                for _ in range(profile.repeats if (n, m) == profile.main else 1):
                    runs.append(scenario.run_fanout(ws, prepared, workers=w, message_latency=profile.latency,
                                                    embedding_latency=profile.embedding_latency))
                    log.info("%d entries x %d SOPs, %d worker(s): %.1fs", n, m, w, runs[-1]["wall"])
                row["fanout"][str(w)] = median_run(runs)
                save()
            if profile.baselines and (n <= profile.baseline_full_up_to or sample is None):
                row["baseline"] = sample = scenario.run_baseline(ws, prepared, message_latency=profile.latency,
                                                                 embedding_latency=profile.embedding_latency) | {"method": "measured"}
            elif profile.baselines:
                row["baseline"] = extrapolate(sample, row["fanout"][str(profile.workers[0])], entries=n,
                                              changed_texts=base.changed_texts, latency=profile.latency,
                                              embedding_latency=profile.embedding_latency)
            if "baseline" in row:
                log.info("%d entries x %d SOPs, baseline (%s): %.1fs", n, m, row["baseline"]["method"], row["baseline"]["wall"])
            save()
            ws.pg.admin(f'DROP DATABASE IF EXISTS "{prepared.template}" WITH (FORCE)')
        ws.pg.admin(f'DROP DATABASE IF EXISTS "{base.template}" WITH (FORCE)')


def call_bound_violations(results: dict) -> list[str]:
    """Runs whose model calls exceed entries + enriched SOPs + new SOPs (+ cluster names): the bench fails on any."""
    rows = [(r, f"{w} worker(s)", m) for part in ("scenarios", "zero_latency") for r in results[part]
            for w, m in r["fanout"].items()] + [(r, "baseline", r["baseline"]) for r in results["scenarios"]
                                               if r.get("baseline", {}).get("method") == "measured"]
    return [f"{r['entries']} x {r['sops']}, {what}: {m['model_calls']} model calls > bound {m['model_call_bound']}"
            for r, what, m in rows if "model_call_bound" in m and m["model_calls"] > m["model_call_bound"]]


def run_zero_latency(ws, profile: Profile, results: dict, save) -> None:
    """Orchestration overhead: the same runs with the fakes answering at once, and the floor under them."""
    from bench import floor, scenario

    for n, m in profile.zero_latency:
        base = scenario.prepare_base(ws, m)
        prepared = scenario.prepare(ws, base, n)
        row = {"entries": n, "sops": m, "fanout": {}}
        results["zero_latency"].append(row)
        for w in profile.workers:
            row["fanout"][str(w)] = scenario.run_fanout(ws, prepared, workers=w, message_latency=0, embedding_latency=0)
            log.info("zero latency, %d entries x %d SOPs, %d worker(s): %.1fs", n, m, w, row["fanout"][str(w)]["wall"])
            save()
        row["baseline"] = scenario.run_baseline(ws, prepared, message_latency=0, embedding_latency=0) | {"method": "measured"}
        save()
        row["floor"] = floor.measure(ws, prepared, workers=profile.workers)
        log.info("floor, %d entries x %d SOPs: %s", n, m, row["floor"]["per_entry_ms"])
        save()
        for name in (prepared.template, base.template):
            ws.pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scenario_threads() -> int:
    from bench import scenario

    return scenario.THREADS


def run_curve(ws, profile: Profile, results: dict, save) -> None:
    """The main scenario with one worker at each thread count (no baseline, no repeats): how the LLM queue's
    threads should be sized on this machine."""
    from bench import scenario

    if not profile.curve_threads:
        return
    n, m = profile.main
    base = scenario.prepare_base(ws, m)
    prepared = scenario.prepare(ws, base, n)
    default = scenario.THREADS
    try:
        for threads in profile.curve_threads:
            scenario.THREADS = threads
            row = scenario.run_fanout(ws, prepared, workers=1, message_latency=profile.latency,
                                      embedding_latency=profile.embedding_latency)
            results["curve"].append({"entries": n, "sops": m, "threads": threads} | row)
            log.info("curve, %d entries x %d SOPs, 1 worker x %d threads: %.1fs", n, m, threads, row["wall"])
            save()
    finally:
        scenario.THREADS = default
        for name in (prepared.template, base.template):
            ws.pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the profile's parts, write the results and the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="the matrix with baselines in full up to 1,000 entries")
    group.add_argument("--smoke", action="store_true", help="tiny sizes, to check the harness")
    group.add_argument("--curve", action="store_true", help="1,000 x 42 with latency, one worker, no baseline (see --threads)")
    group.add_argument("--cpu", action="store_true", help="orchestration CPU per entry only (1,000 x 42, fakes at zero latency)")
    parser.add_argument("--only", choices=["matching", "scenarios", "cost"], help="run one part")
    parser.add_argument("--threads", type=int, default=scenario_threads(), help="threads per worker process (-P threads -c N; "
                        "default: what docker-compose.yml ships)")
    parser.add_argument("--sops", type=int, metavar="M", help="with --curve: a playbook of M SOPs instead of 42 "
                        "(one row of the matrix alone, e.g. --curve --sops 1000)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each measured run, wait up to this long for the machine's CPU to be mostly idle")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md", help="'-' to skip the report")
    args = parser.parse_args(argv)
    profile = PROFILES["full" if args.full else "smoke" if args.smoke else "cpu" if args.cpu else "curve" if args.curve else "default"]
    if args.sops is not None:
        if not args.curve or args.sops < 1:
            parser.error("--sops takes a number of SOPs (1 or more) and goes with --curve")
        profile = replace(profile, scenarios=[(n, args.sops) for n, _ in profile.scenarios], main=(profile.main[0], args.sops))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)  # ours (bench.*) only: the library's run logs go to the workers' log files

    from bench import scenario

    scenario.QUIET["max_wait"] = args.wait_quiet
    scenario.THREADS = args.threads
    OUT.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    meta = {
        "profile": profile.name, "command": "make bench" + ("" if profile.name == "default" else f" BENCH_ARGS='--{profile.name}"
                                     + (f" --sops {args.sops}" if args.sops else "") + "'"),
        "argv": shlex.join(["-m", "bench.run", *(sys.argv[1:] if argv is None else argv)]), "commit": git_commit(),
        "results": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "load_average_start": os.getloadavg(),
        "probe_ms_start": scenario.python_speed(),
        "threads": args.threads,
        "machine": machine(), "matcher": matcher(),
    }
    results: dict = {"meta": meta, "profile": asdict(profile), "matching": [], "scenarios": [], "zero_latency": [],
                     "curve": [], "costs": []}

    def save() -> None:  # after every run: a long bench that stops early keeps what it measured
        args.out.write_text(json.dumps(results, indent=1, default=str))

    started = time.perf_counter()
    from bench.pg import bench_postgres

    with bench_postgres(OUT) as pg:
        results["meta"]["postgres"] = pg.admin("SHOW server_version")[0][0]
        results["meta"]["pgvector"] = pg.query(pg.template_url, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if args.only in (None, "matching"):
            from bench.matching import bench_matching

            results["matching"] = bench_matching(pg, profile.matching_sizes, queries=profile.matching_queries,
                                                 builds=profile.matching_builds, ef_searches=profile.matching_ef_searches)
            save()
        if args.only in (None, "scenarios", "cost"):
            work = OUT / "work"
            work.mkdir(exist_ok=True)
            with workspace(pg, work) as ws:
                from bench import cost

                # The matrix last: its largest scenario is the longest part, and a bench stopped early
                # still has everything else in results.json (python -m bench.report renders it).
                if args.only != "cost":
                    run_zero_latency(ws, profile, results, save)
                    run_curve(ws, profile, results, save)
                for entries, sops, words in profile.costs:
                    results["costs"].append({"entries": entries, "sops": sops, "words": words, "results": cost.run(
                        entries, sops, words, OUT / f"cost-{entries}x{sops}", pg=pg, fakes=ws.fakes)})
                    save()
                if args.only != "cost":
                    run_scenarios(ws, profile, results, save)
    results["meta"] |= {"finished": datetime.now(UTC).isoformat(timespec="seconds"),
                        "duration_s": round(time.perf_counter() - started), "load_average_end": os.getloadavg(),
                        "probe_ms_end": scenario.python_speed()}
    save()
    log.info("results in %s (%.0f s)", args.out, time.perf_counter() - started)
    if str(args.report) != "-":
        from bench.report import write

        write(results, args.report)
        log.info("report in %s", args.report)
    if violations := call_bound_violations(results):
        log.error("model calls above the bound:\n  %s", "\n  ".join(violations))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
