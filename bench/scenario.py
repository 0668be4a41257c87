"""One weekly run, measured: the chord on real worker processes, or the sequential baseline in-process.

A scenario's state is prepared once and cloned for every measured run: a playbook of M
SOPs whose cache was filled by last week's run (a run with no entries), 5% of the SOPs
edited by a human since, and N entries from the past week. Runs start from identical
copies (a database cloned from a template, a copy of the repository) and the same
cold prompt cache on the fakes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psutil
from sqlalchemy import func, select

from bench import generate
from bench.fakes import Fakes
from bench.pg import BenchPostgres
from playbook_sync import pipeline, store
from playbook_sync.config import Settings
from playbook_sync.db import get_engine, session_scope
from playbook_sync.deps import Deps
from playbook_sync.models import LlmCall, SyncRun
from playbook_sync.providers.localgit import init_repo
from playbook_sync.sops import parse_sop

log = logging.getLogger(__name__)
THREADS = 32  # -P threads -c 32 per worker process, as docker-compose.yml ships LLM_WORKER_THREADS
CHANGED_FRACTION = 0.05  # SOPs edited by a human since last week's run


@dataclass
class Workspace:
    """The long-lived parts of a bench invocation."""

    pg: BenchPostgres
    fakes: Fakes
    broker_url: str
    root: Path  # scratch: repositories, worker logs, run reports
    redis_pid: int | None = None


@dataclass
class Prepared:
    """A scenario's starting state: a template database and a pristine repository."""

    entries: int
    sops: int
    template: str
    repo: Path
    changed_sops: int
    changed_texts: int  # SOP texts (whole + sections) to re-embed for the changed SOPs


def env_for(ws: Workspace, database_url: str, repo: Path, **extra: str) -> dict[str, str]:
    """The environment a worker (or the in-process baseline) runs with."""
    return {
        "PLAYBOOK_SYNC_DATABASE_URL": database_url,
        "PLAYBOOK_SYNC_BROKER_URL": ws.broker_url,
        "PLAYBOOK_SYNC_REPO_PATH": str(repo),
        "PLAYBOOK_SYNC_DATA_DIR": str(ws.root / "data"),
        "PLAYBOOK_SYNC_LOG_FORMAT": "text",
    } | ws.fakes.env() | extra


def settings_for(env: dict[str, str]) -> Settings:
    """Settings parsed from env exactly as a worker parses its environment."""
    with mock.patch.dict(os.environ, env):
        return Settings(_env_file=None)


# -- preparing -------------------------------------------------------------------------


def prepare_base(ws: Workspace, m: int, seed: int = 1) -> Prepared:
    """M SOPs, last week's (empty) run to fill the SOP cache, then a week of human edits."""
    name, repo = f"base_{m}", ws.root / f"repo_{m}"
    ws.pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ws.pg.create(name=name)
    shutil.rmtree(repo, ignore_errors=True)
    files = generate.playbook(m, seed)
    init_repo(repo, files)
    deps = Deps.from_settings(settings_for(env_for(ws, ws.pg.url(name), repo)))
    ws.fakes.reset(message_latency=0, embedding_latency=0)
    last_week = datetime.now(UTC) - timedelta(days=8)
    outcome = pipeline.run_inline(deps, trigger="bench-warmup", now=last_week)
    if outcome.get("status") != "success":
        raise RuntimeError(f"warm-up run failed: {outcome}")
    changed = generate.touch(files, CHANGED_FRACTION, seed)
    deps.repo.commit(changed, "Human edits during the week", parent=deps.repo.head())
    texts = sum(1 + len(parse_sop(p, c).sections) for p, c in changed.items())
    get_engine(ws.pg.url(name)).dispose()
    return Prepared(0, m, name, repo, len(changed), texts)


def prepare(ws: Workspace, base: Prepared, n: int, seed: int = 1) -> Prepared:
    """The base state plus N entries from the past week."""
    name = f"scn_{base.sops}_{n}"
    ws.pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ws.pg.create(template=base.template, name=name)
    url = ws.pg.url(name)
    entries = generate.entries(n, base.sops, datetime.now(UTC) - timedelta(minutes=1), seed)
    with session_scope(url) as session:
        for start in range(0, n, 1000):
            store.upsert_entries(session, entries=entries[start : start + 1000])
    get_engine(url).dispose()
    return Prepared(n, base.sops, name, base.repo, base.changed_sops, base.changed_texts)


def _clone(ws: Workspace, p: Prepared, tag: str) -> tuple[str, Path]:
    name = ws.pg.create(template=p.template)
    repo = ws.root / f"run_{tag}_{uuid.uuid4().hex[:6]}"
    shutil.copytree(p.repo, repo, symlinks=True)
    return name, repo


def _cleanup(ws: Workspace, name: str, repo: Path) -> None:
    ws.pg.drop(name)
    shutil.rmtree(repo, ignore_errors=True)


# -- measuring ---------------------------------------------------------------------------


class CpuProbe:
    """CPU seconds per process group (workers, PostgreSQL, this process with the fakes, Redis) over a run."""

    def __init__(self, worker_pids: list[int], postmaster_pid: int, redis_pid: int | None) -> None:
        self.workers, self.postmaster, self.redis = set(worker_pids), postmaster_pid, redis_pid
        self.start = self._snapshot()

    def _groups(self) -> dict[str, list[psutil.Process]]:
        me = psutil.Process()
        pg = psutil.Process(self.postmaster)
        workers = [psutil.Process(p) for p in self.workers]
        return {"workers": [p for w in workers for p in (w, *w.children(recursive=True))],
                "postgres": [pg, *pg.children(recursive=True)], "driver_and_fakes": [me],
                "redis": [psutil.Process(self.redis)] if self.redis else []}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for group, procs in self._groups().items():
            out[group] = {}
            for proc in procs:
                try:
                    t = proc.cpu_times()  # children_*: exited children it waited for (git, backends)
                    out[group][proc.pid] = t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
                except psutil.NoSuchProcess:
                    pass
        return out

    def delta(self) -> dict[str, float]:
        """CPU seconds used since the probe was made (new processes count in full)."""
        end = self._snapshot()
        return {g: round(sum(c - self.start.get(g, {}).get(pid, 0.0) for pid, c in pids.items()), 2) for g, pids in end.items()}


QUIET = {"max_wait": 0.0, "threshold": 0.25}  # set by bench.run --wait-quiet


def wait_quiet() -> dict:
    """Before a measured run: wait (up to QUIET's max_wait) until the machine's CPU is mostly idle, then
    time the speed probe."""
    started = time.perf_counter()
    busy = psutil.cpu_percent(interval=1.0) / 100
    while busy > QUIET["threshold"] and time.perf_counter() - started < QUIET["max_wait"]:
        time.sleep(5)
        busy = psutil.cpu_percent(interval=1.0) / 100
    waited = round(time.perf_counter() - started - 1.0, 1)
    return {"waited_s": waited, "busy_before": round(busy, 2), "probe_ms": python_speed()}


PROBE_ROUNDS = 5


def python_speed() -> float:
    """Milliseconds for a fixed single-threaded piece of Python (JSON, sorting, a regex: what a worker spends
    its CPU on), the median of PROBE_ROUNDS: how fast this machine ran Python just before a measured run.
    The same commit on the same kind of machine ran the main scenario in 23 s one hour and 14 s the next, with
    nothing else running (no steal, no other processes); this says which kind of hour a figure comes from."""
    payload = [{"id": i, "text": f"entry {i} about discovery calls " * 4, "score": i / 7} for i in range(2000)]
    times = []
    for _ in range(PROBE_ROUNDS):
        t0 = time.perf_counter()
        decoded = json.loads(json.dumps(payload))
        decoded.sort(key=lambda d: (d["score"] % 1, d["text"]))
        re.findall(r"\w+", " ".join(d["text"] for d in decoded))
        times.append(time.perf_counter() - t0)
    return round(1000 * sorted(times)[len(times) // 2], 1)


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def collect(url: str, run_id: uuid.UUID) -> dict:
    """The run's outcome, usage per step (cp_llm_calls) and phase boundaries (DB timestamps)."""
    with session_scope(url) as session:
        run = session.get(SyncRun, run_id)
        usage = run.usage or {"total": {}, "steps": {}}
        first_classify, last_classify = session.execute(
            select(func.min(LlmCall.created_at), func.max(LlmCall.created_at))
            .where(LlmCall.run_id == run_id, LlmCall.step == "classify")).one()
        db_wall = (run.finished_at - run.run_at).total_seconds()
        out = {
            "status": run.status, "entries": run.entries_processed, "enriched": run.entries_enriched,
            "redundant": run.entries_redundant, "orphaned": run.entries_orphaned, "deferred": run.entries_deferred,
            "failed": run.entries_failed, "sops_enriched": len(run.sops_enriched or []),
            "sops_created": len(run.sops_created or []), "cost_usd": float(run.cost_usd or 0), "db_wall": db_wall,
            "steps": {k: v for k, v in usage.get("steps", {}).items()}, "total": usage.get("total", {}),
            "error_log": (run.error_log or "")[:500],
        }
        if first_classify is not None:
            out["phase_start"] = (first_classify - run.run_at).total_seconds()
            out["phase_entries"] = (last_classify - first_classify).total_seconds()
            out["phase_finalize"] = (run.finished_at - last_classify).total_seconds()
    return out


def limit(*, n: int, sops_touched: int, message_latency: float, embedding_latency: float, concurrency: int) -> float:
    """The wall time no implementation with `concurrency` calls in flight can beat (the issue's formula)."""
    return embedding_latency + (n + sops_touched) * message_latency / concurrency


def derive(m: dict, *, n: int, changed_sops: int, message_latency: float, embedding_latency: float,
           concurrency: int) -> dict:
    """Rates, the call bounds of the issue, and parallel efficiency from a run's raw figures."""
    steps = m["steps"]
    calls = lambda step: steps.get(step, {}).get("calls", 0)  # noqa: E731
    model_calls = sum(calls(s) for s in steps if s != "embed")
    latency_sum = model_calls * message_latency + calls("embed") * embedding_latency
    total = m.get("total", {})
    return m | {
        "entries_per_s": n / m["wall"], "model_calls": model_calls, "embedding_requests": calls("embed"),
        "calls_by_step": {s: calls(s) for s in sorted(steps)},
        "input_tokens": total.get("input_tokens", 0) + total.get("cache_write_tokens", 0) + total.get("cache_read_tokens", 0),
        "cached_tokens": total.get("cache_read_tokens", 0), "output_tokens": total.get("output_tokens", 0),
        "model_call_bound": n + m["sops_enriched"] + m["sops_created"] + calls("cluster"),
        "embedding_bound": math.ceil(n / 2048) + math.ceil(changed_sops / 2048),
        "latency_sum": latency_sum, "concurrency": concurrency,
        # The limit: one embedding round trip + N x latency / C + SOPs touched x latency / C.
        "limit": limit(n=n, sops_touched=m["sops_enriched"] + m["sops_created"], message_latency=message_latency,
                       embedding_latency=embedding_latency, concurrency=concurrency),
        "cpu_ms_per_entry": {g: round(1000 * c / n, 2) for g, c in m.get("cpu_s", {}).items()},
        "parallel_efficiency": (latency_sum / concurrency) / m["wall"] if latency_sum else None,
        "overhead_ms_per_entry": 1000 * (m["wall"] - latency_sum / concurrency) / n,
    }


def _start_workers(stack: ExitStack, ws: Workspace, env: dict[str, str], workers: int, logs: Path,
                   include: tuple[str, ...] = ()) -> list[int]:
    """Start worker processes one by one; each builds its providers on a warm-up task, alone."""
    from playbook_sync.worker.app import app
    from playbook_sync.worker.local import task_result, worker_process
    from playbook_sync.worker.tasks import watchdog

    queue, hosts, pids = settings_for(env).queue, [], []
    for i in range(workers):
        proc = stack.enter_context(worker_process(app, concurrency=THREADS, name=f"bench{i}", env=env,
                                                  log_file=logs / f"worker{i}.log", include=include))
        pids.append(proc.pid)
        new = _new_host(app, hosts)
        for host in hosts:  # only the new worker may take the warm-up task
            app.control.cancel_consumer(queue, destination=[host], reply=True)
        task_result(watchdog.apply_async(), timeout=120, poll=0.05)
        for host in hosts:
            app.control.add_consumer(queue, destination=[host], reply=True)
        hosts.append(new)
    return pids


def _new_host(app, known: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reply in app.control.ping(timeout=0.5) or []:
            host = next(iter(reply))
            if host not in known:
                return host
    raise TimeoutError("new worker did not answer ping")


def run_fanout(ws: Workspace, p: Prepared, *, workers: int, message_latency: float, embedding_latency: float,
               timeout: float = 3600) -> dict:
    """The chord on `workers` real worker processes (threads pool of 16 each); wall time from enqueue to logged."""
    from playbook_sync.worker.local import task_result, wait_for_run
    from playbook_sync.worker.tasks import start_run

    name, repo = _clone(ws, p, f"w{workers}")
    url, logs = ws.pg.url(name), ws.root / "logs" / f"{p.sops}_{p.entries}_w{workers}_{message_latency}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    env = env_for(ws, url, repo)
    try:
        with ExitStack() as stack:
            pids = _start_workers(stack, ws, env, workers, logs)
            ws.fakes.reset(message_latency=message_latency, embedding_latency=embedding_latency)
            quiet = wait_quiet()
            probe, busy0, t0 = CpuProbe(pids, ws.pg.pid(), ws.redis_pid), _busy(), time.perf_counter()
            started = task_result(start_run.delay(trigger="bench"), timeout=timeout, poll=0.01)
            run_id = uuid.UUID(started["run_id"])
            wait_for_run(url, run_id, timeout=timeout, poll=0.02, summarize=lambda r: r.status)
            wall = time.perf_counter() - t0
            cpu, busy = probe.delta(), _busy() - busy0
        counts = ws.fakes.counts()
        m = collect(url, run_id) | quiet | {"wall": wall, "cpu_s": cpu, "machine_busy": busy / (wall * psutil.cpu_count()), "cores": psutil.cpu_count(),
                                    "fake_messages": counts.messages, "fake_embedding_requests": counts.embedding_requests}
    finally:
        get_engine(url).dispose()
        _cleanup(ws, name, repo)
    return derive(m, n=p.entries, changed_sops=p.changed_sops, message_latency=message_latency,
                  embedding_latency=embedding_latency, concurrency=workers * THREADS)


def run_baseline(ws: Workspace, p: Prepared, *, message_latency: float, embedding_latency: float) -> dict:
    """The straightforward way: one process, entry by entry, one embedding request per text.

    pipeline.run_inline with embedding batches of 1 and LLM concurrency 1: every entry (and
    changed SOP text) is its own embedding request, each entry's classify call waits for the
    previous one, and finalize writes the edits one call after another.
    """
    name, repo = _clone(ws, p, "base")
    url = ws.pg.url(name)
    n = p.entries
    try:
        env = env_for(ws, url, repo, PLAYBOOK_SYNC_EMBEDDING_BATCH_SIZE="1", PLAYBOOK_SYNC_LLM_CONCURRENCY="1")
        deps = Deps.from_settings(settings_for(env))
        ws.fakes.reset(message_latency=message_latency, embedding_latency=embedding_latency)
        quiet = wait_quiet()
        probe, busy0, t0 = CpuProbe([], ws.pg.pid(), ws.redis_pid), _busy(), time.perf_counter()
        outcome = pipeline.run_inline(deps, trigger="bench-baseline")
        wall = time.perf_counter() - t0
        cpu, busy = probe.delta(), _busy() - busy0
        counts = ws.fakes.counts()
        m = collect(url, uuid.UUID(outcome["run_id"])) | quiet | {
            "wall": wall, "cpu_s": cpu, "machine_busy": busy / (wall * psutil.cpu_count()), "cores": psutil.cpu_count(),
            "fake_messages": counts.messages, "fake_embedding_requests": counts.embedding_requests}
    finally:
        get_engine(url).dispose()
        _cleanup(ws, name, repo)
    return derive(m, n=n, changed_sops=p.changed_sops, message_latency=message_latency,
                  embedding_latency=embedding_latency, concurrency=1)
