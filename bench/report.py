"""BENCHMARKS.md from a results file (bench/out/results.json): tables and target checks, no typed-in figures.

    .venv/bin/python -m bench.report [bench/out/results.json] [BENCHMARKS.md]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EFFICIENCY_TARGET, CPU_TARGET_MS, RECALL_TARGET, COST_TARGET = 0.70, 5.0, 0.95, 1.50
SPEEDUP_TARGETS = {"1": 20.0, "2": 30.0}  # × the sequential baseline, by worker processes (efficiency: 1 worker only)


def _n(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _others_cpu(m: dict) -> float | None:
    """Share of the machine used by processes that are not part of the run (other jobs on the box)."""
    cpu = m.get("cpu_s")
    if not cpu or "machine_busy" not in m:
        return None
    cores = m.get("cores") or 2
    return max(0.0, m["machine_busy"] - sum(cpu.values()) / (m["wall"] * cores))


def _wall(m: dict) -> str:
    """The wall time; for a repeated run the median, with the spread of the repeats."""
    if len(m.get("repeats", [])) > 1:
        return f"{m['wall']:.1f} (median of {len(m['repeats'])}: {min(m['repeats']):.1f}–{max(m['repeats']):.1f})"
    return _n(m["wall"], 1)


def efficiency(m: dict) -> float | None:
    """Parallel efficiency as the issue defines it: the limit over the measured wall time."""
    return m["limit"] / m["wall"] if m.get("limit") else m.get("parallel_efficiency")


def scenario_rows(results: dict) -> list[list[str]]:
    """One row per run: baseline, then the chord per worker count."""
    rows = []
    for s in results["scenarios"]:
        base = s.get("baseline")
        runs = ([("baseline" + (" (extrapolated)" if base["method"] == "extrapolated" else ""), base)] if base else [])
        threads = results["meta"].get("threads", 16)
        runs += [(f"chord, {w} worker{'s' if w != '1' else ''} × {threads} threads", m) for w, m in s["fanout"].items()]
        for label, m in runs:
            speedup = base["wall"] / m["wall"] if base and m is not base else None
            measured = m.get("method") != "extrapolated"
            lim = m.get("limit")
            rows.append([
                _n(s["entries"]), _n(s["sops"]), label, _wall(m), _n(lim, 1), f"{m['wall'] / lim:.2f}×" if lim else "–",
                _pct(lim / m["wall"]) if lim else "–", _n(m["entries_per_s"], 1),
                f"{speedup:.1f}×" if speedup else "1×" if m is base else "–",
                f"{_n(m['model_calls'])} / {_n(m.get('model_call_bound'))}" if measured else _n(m["model_calls"]),
                f"{_n(m['embedding_requests'])} / {_n(m.get('embedding_bound'))}" if measured else _n(m["embedding_requests"]),
                _n(m.get("input_tokens")) if measured else "–", _n(m.get("cached_tokens")) if measured else "–",
                f"${m['cost_usd']:.2f}" if measured else "–",
            ])
    return rows


def phase_rows(results: dict) -> list[list[str]]:
    """Where a chord run's time goes, and whose CPU it used."""
    rows = []
    for section, latency in (("scenarios", None), ("zero_latency", 0.0)):
        for s in results.get(section, []):
            for w, m in s["fanout"].items():
                cpu = m.get("cpu_ms_per_entry", {})
                rows.append([_n(s["entries"]), _n(s["sops"]), f"{s.get('latency', latency) * 1000:.0f} ms", w,
                             _n(m.get("phase_start"), 1), _n(m.get("phase_entries"), 1), _n(m.get("phase_finalize"), 1),
                             _n(cpu.get("workers"), 1), _n(cpu.get("postgres"), 1), _n(cpu.get("driver_and_fakes"), 1),
                             _pct(m.get("machine_busy")), _pct(_others_cpu(m)), _n(m.get("probe_ms"), 1)])
    return rows


def zero_rows(results: dict) -> list[list[str]]:
    """Orchestration overhead per entry with the fakes answering at once."""
    rows = []
    for s in results.get("zero_latency", []):
        runs = [("baseline", s["baseline"])] if s.get("baseline") else []
        runs += [(f"chord, {w} worker{'s' if w != '1' else ''}", m) for w, m in s["fanout"].items()]
        for label, m in runs:
            cpu = m.get("cpu_ms_per_entry", {})
            rows.append([_n(s["entries"]), _n(s["sops"]), label, _n(m["wall"], 1), _n(1000 * m["wall"] / s["entries"], 1),
                         _n(cpu.get("workers") if label != "baseline" else cpu.get("driver_and_fakes"), 1),
                         _n(cpu.get("postgres"), 1), _pct(m.get("machine_busy")), _pct(_others_cpu(m)), _n(m.get("probe_ms"), 1)])
    return rows


def matching_rows(results: dict) -> list[list[str]]:
    """HNSW against exact search per corpus size, build and ef_search."""
    return [[_n(r["vectors"]), _n(r["sops"]), f"m={r['m']}, ef_construction={r['ef_construction']}", _n(r["build_seconds"], 1),
             str(r["ef_search"]), r["hnsw_plan"], _n(r["hnsw_p50_ms"], 1), _n(r["hnsw_p95_ms"], 1), r["exact_plan"],
             _n(r["exact_p50_ms"], 1), _n(r["exact_p95_ms"], 1), f"{r['recall_at_3']:.3f}", f"{r['recall_at_3_matched']:.3f}",
             f"{r['exact_recall_check']:.3f}"] for r in results.get("matching", [])]


def _find(results: dict, entries: int, sops: int) -> dict | None:
    return next((s for s in results["scenarios"] if s["entries"] == entries and s["sops"] == sops), None)


def _floor_line(f: dict) -> str:
    """What one entry costs before the rest of our code (bench/floor.py), against the CPU target."""
    p, chords = f["per_entry_ms"], f["chords"]
    each = ", ".join(f"{w} worker(s) {sum(c['cpu_ms_per_entry'].get(g, 0) for g in ('workers', 'redis')):.1f} ms"
                     for w, c in chords.items())
    rest = CPU_TARGET_MS - p["celery"] - p["sdk_call"]
    return (f"- **The floor under DESIGN's one `process_entry` per entry** (`bench/floor.py`, same invocation): "
            f"Celery, kombu and Redis with empty tasks in the same chord, {each}; one Messages API call through the "
            f"SDK {p['sdk_call']:.2f} ms; the hybrid statement's execution {p['hybrid']:.1f} ms (its generic plan, "
            f"median of the scenario's entries): {p['total']:.1f} ms per entry before any other statement or line of "
            f"ours, against < {CPU_TARGET_MS:.0f} ms. Celery and the SDK leave {rest:.1f} ms for reading the item, "
            f"retrieving, writing the outcome and our Python; the hybrid statement alone takes "
            f"{'more' if p['hybrid'] >= rest else 'less'}.")


def _bound_by(m: dict, workers: str) -> str:
    """Why a chord run is not faster: the cores, one process's GIL, or waiting on the calls."""
    cpu = m.get("cpu_ms_per_entry", {})
    busy, others = m.get("machine_busy") or 0, _others_cpu(m) or 0
    if busy >= 0.75:
        return (f"the machine was CPU-bound ({_pct(busy)} of its {m.get('cores', 2)} cores busy, {_pct(others)} by other "
                f"processes): per entry the workers used {cpu.get('workers', 0):.1f} ms of CPU, PostgreSQL "
                f"{cpu.get('postgres', 0):.1f} ms, the fakes {cpu.get('driver_and_fakes', 0):.1f} ms; more worker "
                "processes on the same cores add contention, not capacity")
    threads = (m.get("concurrency") or 16 * int(workers)) // int(workers)
    if workers == "1":
        return (f"one worker process runs its {threads} threads under one GIL: {cpu.get('workers', 0):.1f} ms of its CPU per "
                f"entry (Celery, SQLAlchemy, the SDK) queue behind each other while the machine was {_pct(busy)} busy")
    serial = (m.get("phase_start") or 0) + (m.get("phase_finalize") or 0)
    return (f"the start and the callback ({serial:.1f} s) run on one worker, so only the entries "
            f"({m.get('phase_entries') or 0:.1f} s) have all {int(workers) * threads} threads; the machine was {_pct(busy)} busy "
            f"({_pct(others)} by other processes)")


def targets(results: dict) -> list[str]:
    """Each target of the issue, the measured figure, met or missed, and why."""
    out = []
    s = _find(results, 1000, 42)
    if s and s.get("baseline"):
        for w, m in s["fanout"].items():
            if w not in SPEEDUP_TARGETS:
                continue
            speedup, eff = s["baseline"]["wall"] / m["wall"], efficiency(m)
            ok = speedup >= SPEEDUP_TARGETS[w] and (w != "1" or eff >= EFFICIENCY_TARGET)
            wanted = f"≥ {SPEEDUP_TARGETS[w]:.0f}×" + (f" and ≥ {EFFICIENCY_TARGET:.0%} efficiency" if w == "1" else "")
            line = (f"- **1,000 entries × 42 SOPs, {w} worker(s)**: {speedup:.1f}× the baseline "
                    f"({s['baseline']['method']}), parallel efficiency {_pct(eff)}, against {wanted} — "
                    f"**{'met' if ok else 'missed'}**.")
            if not ok:
                line += (f" Of {m['wall']:.1f} s, {m.get('phase_start', 0):.1f} s are the start (SOP sync, embedding the "
                         f"week, publishing the chord), {m.get('phase_entries', 0):.1f} s the entries and "
                         f"{m.get('phase_finalize', 0):.1f} s the callback (its edit calls, LLM_CONCURRENCY at a time, and the commit); "
                         f"{_bound_by(m, w)}. " + ("Less CPU per entry in the worker (or the work split over processes "
                         "on cores of their own) would close it." if w == "1" else "Spreading the callback's edit calls "
                         "over the workers (a second fan-out) and a shorter start would close it."))
            out.append(line)
    runs = [(s, w, m) for s in results["scenarios"] for w, m in s["fanout"].items()]
    bad_calls = [(s, w, m) for s, w, m in runs if m["model_calls"] > m["model_call_bound"]]
    line = (f"- **Model calls ≤ entries + enriched SOPs + new SOPs (+ cluster naming)**: "
            f"{len(runs) - len(bad_calls)} of {len(runs)} chord runs within the bound — **{'met' if not bad_calls else 'missed'}**.")
    if bad_calls:
        s, w, m = max(bad_calls, key=lambda r: r[2]["model_calls"] / r[2]["model_call_bound"])
        steps = m["calls_by_step"]
        line += (f" Worst: {s['entries']:,} × {s['sops']:,}, {m['model_calls']:,} calls against a bound of "
                 f"{m['model_call_bound']:,} — {steps.get('edit', 0):,} edit calls for {m['sops_enriched']:,} enriched SOPs "
                 "(one call per SOP, plus one per SOP whose anchors missed or whose edit was then refused).")
    out.append(line)
    bad_embeds = [m for _, _, m in runs if m["embedding_requests"] > m["embedding_bound"]]
    out.append(f"- **Embedding requests ≤ ⌈entries / 2048⌉ + ⌈changed SOPs / 2048⌉**: "
               f"{len(runs) - len(bad_embeds)} of {len(runs)} chord runs within the bound — **{'met' if not bad_embeds else 'missed'}**."
               + ("" if not bad_embeds else " A changed SOP is embedded whole and per section, and a request also "
                  "stops at 300,000 tokens, so a large change can take more requests than the bound counts."))
    for z in results.get("zero_latency", []):
        for w, m in z["fanout"].items():
            cpu = m.get("cpu_ms_per_entry", {})
            ours = sum(cpu.get(g, 0) for g in ("workers", "postgres", "redis"))
            line = (f"- **Orchestration CPU per entry (fakes at zero latency), {z['entries']:,} × {z['sops']:,}, {w} worker(s)**: "
                    f"{ours:.1f} ms (workers {cpu.get('workers', 0):.1f}, PostgreSQL {cpu.get('postgres', 0):.1f}, Redis "
                    f"{cpu.get('redis', 0):.1f}) against < {CPU_TARGET_MS:.0f} ms — **{'met' if ours < CPU_TARGET_MS else 'missed'}**; "
                    f"wall {1000 * m['wall'] / z['entries']:.1f} ms per entry.")
            if ours >= CPU_TARGET_MS:
                line += (f" With the model answering at once, {_bound_by(m, w)}. Per entry a worker makes 6 SQL round "
                         "trips (the pool's liveness check of its connection, BEGIN, the item and its entry, the hybrid "
                         "query with its planner settings, the item's state with its calls and matches in one statement, "
                         "the commit), one classify call through the SDK, and handles a Celery message, its ack and the "
                         "chord's counter; the hybrid BM25+vector query is most of PostgreSQL's share.")
            out.append(line)
        if f := z.get("floor"):
            out.append(_floor_line(f))
    if costs := _costs(results):
        week = costs[0]  # the realistic week comes first
        direct = week["results"]["direct"]["total"]
        batch = week["results"]["batch"]["total"]
        writes = direct["reads_per_write"]
        out.append(f"- **≤ ${COST_TARGET:.2f} per run for {week['entries']} entries × {week['sops']} long "
                   f"SOPs (list prices, no batch)**: ${direct['usd']:.2f} (batch mode ${batch['usd']:.2f}) — "
                   f"**{'met' if direct['usd'] <= COST_TARGET else 'missed'}**; cache reads per cache write: "
                   f"{writes if writes is not None else 'no cache writes (no repeated prefix reaches the 1,024-token minimum)'}.")
    shipped_cfg = results["meta"].get("matcher", {})
    big = [r for r in results.get("matching", []) if r["vectors"] >= 100_000]
    if big:
        shipped = next((r for r in big if r["m"] == shipped_cfg.get("m") and r["ef_construction"] == shipped_cfg.get(
            "ef_construction") and r["ef_search"] == shipped_cfg.get("ef_search")), None)
        best = max(big, key=lambda r: (r["recall_at_3_matched"], -r["hnsw_p95_ms"]))
        for label, r in (("as shipped", shipped), ("best measured", best)):
            if r is None or (label == "best measured" and r is shipped):
                continue
            ok = r["recall_at_3_matched"] >= RECALL_TARGET
            out.append(f"- **HNSW recall@3 at {r['vectors']:,} vectors, {label} (m={r['m']}, ef_construction="
                       f"{r['ef_construction']}, ef_search={r['ef_search']})**: {r['recall_at_3_matched']:.3f} for entries "
                       f"with a match above the weak band — **{'met' if ok else 'missed'}** — and {r['recall_at_3']:.3f} over "
                       "all queries: off-topic queries have no near SOP, their top 3 are near-ties among thousands of "
                       "SOPs well below the weak band, and no candidate reaches the classifier either way.")
    return out


def _costs(results: dict) -> list[dict]:
    """The weeks priced in this run (results of older runs hold a single "cost")."""
    return results.get("costs") or ([results["cost"]] if results.get("cost") else [])


def cost_section(results: dict) -> list[str]:
    """Each priced week (bench/cost.py), measured in the same invocation."""
    from bench.cost import table

    out = []
    for c in _costs(results):
        out += [f"## Cost of a week: {c['entries']:,} entries × {c['sops']} SOPs of ~{c['words']:,} words", "",
                f"{c['entries']:,} entries (`bench/generate.py`) against {c['sops']} SOPs of ~{c['words']:,} words "
                "(`bench/longsops.py`), `pipeline.run_inline` through the real SDKs against the fakes (tokens = characters / 4; "
                "prompt caching accounted as the service does, including its 1,024-token minimum and that an entry is "
                "readable only once its writer was answered), at list prices. Direct calls, then batch mode (classifications "
                f"as one Message Batch, half price). `python -m bench.cost --entries {c['entries']} --sops {c['sops']} "
                f"--words {c['words']}` runs this part alone.", "",
                *table(c["results"]), ""]
    return out


def curve_section(results: dict) -> list[str]:
    """The main scenario with one worker per thread count, measured in the same invocation."""
    rows = results.get("curve") or []
    if not rows:
        return []
    n, m = rows[0]["entries"], rows[0]["sops"]
    return ["## Threads per LLM worker", "",
            f"{n:,} entries × {m} SOPs, one worker process with N threads (`-P threads -c N`), fakes at the latencies "
            "above, one run each (no repeats, no baseline). The limit divides the model calls over the N threads.", "",
            *_table(["threads", "wall s", "limit s", "efficiency (limit ÷ wall)", "worker CPU ms/entry",
                     "PostgreSQL CPU ms/entry", "machine busy", "others", "speed probe ms"],
                    [[str(r["threads"]), _n(r["wall"], 1), _n(r.get("limit"), 1), _pct(efficiency(r)),
                      _n(r.get("cpu_ms_per_entry", {}).get("workers"), 1), _n(r.get("cpu_ms_per_entry", {}).get("postgres"), 1),
                      _pct(r.get("machine_busy")), _pct(_others_cpu(r)), _n(r.get("probe_ms"), 1)] for r in rows]), ""]


def render(results: dict) -> str:
    """The whole BENCHMARKS.md."""
    meta, mach, prof = results["meta"], results["meta"]["machine"], results["profile"]
    lat, elat = prof["latency"] * 1000, prof["embedding_latency"] * 1000
    lines = [
        "# Benchmarks", "",
        f"Generated by `bench/report.py` from `{meta.get('results', 'bench/out/results.json')}`, written by one run of `{meta['command']}` "
        f"(profile **{meta['profile']}**, commit `{meta['commit']}`, {meta['started']}, {meta.get('duration_s', 0) // 60} min). "
        "Every figure below comes from that run; ratios compare runs made in the same invocation.", "",
        *([f"**This run was stopped before it finished:** {meta['stopped']}. What it measured before that is below; "
           "the scenarios it did not reach have no row.", ""] if meta.get("stopped") else []),
        "## Machine", "",
        *_table(["CPU", "cores", "memory", "OS", "Python", "PostgreSQL", "pgvector", "load average (start → end)",
                 "speed probe ms (start → end)"],
                [[mach["cpu"], str(mach["cores"]), f"{mach['memory_gb']} GB", mach["os"], mach["python"],
                  str(meta.get("postgres")), str(meta.get("pgvector")),
                  f"{meta['load_average_start'][0]:.1f} → {(meta.get('load_average_end') or [0])[0]:.1f}",
                  f"{_n(meta.get('probe_ms_start'), 1)} → {_n(meta.get('probe_ms_end'), 1)}"]]), "",
        "Everything ran on this one machine: embedded PostgreSQL+pgvector and Redis (Valkey), real Celery worker "
        "processes, and the fake OpenAI/Anthropic servers on 127.0.0.1 that the real providers (the SDKs) were "
        "pointed at. The machine is shared with other work; the *others* column says how much of its CPU went to "
        "processes outside the run. The *speed probe* is a fixed piece of single-threaded Python (`scenario.python_speed`: "
        "JSON, a sort, a regex; the median of 5) timed at the bench's start and end and before each measured run (only the median run's of a repeated row is shown): the same commit has "
        "run the same scenario 1.7× slower on one hour than on the next on this kind of machine, with nothing else "
        "running, and the probe says which kind of hour a row comes from (lower is faster; compare rows, and runs, by it).", "",
        "## Reproduce", "", "```sh",
        "make bench                      # the whole matrix: writes bench/out/results.json and this file",
        "make bench BENCH_ARGS=--full    # the same with baselines measured in full up to 1,000 entries",
        "make bench BENCH_ARGS=--smoke   # a couple of minutes: checks the harness",
        "make bench BENCH_ARGS=--cpu     # orchestration CPU per entry only (fakes at zero latency)",
        "make bench BENCH_ARGS='--curve --threads 32'   # 1,000 x 42, one worker with 32 threads, no baseline",
        "make bench BENCH_ARGS='--curve --sops 1000'    # 1,000 x 1,000 alone, one worker, no baseline",
        "python -m bench.entry_cpu --sops 1000          # the per-entry task's CPU alone, one entry at a time",
        "python -m bench.cost            # the cost of a realistic week alone",
        "python -m bench.hybrid_query --sops 1000   # the hybrid retrieval query alone",
        "python -m bench.floor           # a 1,000-entry chord of empty tasks alone: Celery's share of the floor", "```", "",
        "## The weekly run against the sequential baseline", "",
        f"Fakes at {lat:.0f} ms per model call and {elat:.0f} ms per embedding request, with token usage and prompt "
        "caching as the services report them; prices from `config.DEFAULT_PRICES` (Opus to classify, edit and draft; "
        "Sonnet to name clusters). Each run starts from the same state: the SOP cache filled by last week's run, "
        "5% of the SOPs edited by a human since, and the week's entries from `bench/generate.py`.", "",
        "- **chord**: the real system — `start_run` embeds the week in batches and fans out one `process_entry` per "
        f"entry over worker processes (`-P threads -c {meta.get('threads', 16)}`); `finalize_run` writes the edits "
        "(concurrently) and commits.",
        "- **baseline**: the straightforward way, in one process — `pipeline.run_inline` with embedding batches of 1: "
        "one embedding request per entry (and per changed SOP text), one classify call per entry, one call per "
        "edit, one after another.",
        f"- **extrapolated** baselines (scenarios above {prof['baseline_full_up_to']:,} entries in this profile): the "
        "wall time is the sum of the requests' latencies (one embedding request per entry and changed SOP text, and "
        "exactly the model calls the chord made for the same entries) plus the time between requests measured in the "
        "largest baseline run in full for the same SOPs: per entry in the entry loop, once for the start and the "
        "callback (so the estimate errs low, against the chord's speedup).", "",
        "Calls and requests are shown against the issue's bounds (model calls ≤ entries + enriched SOPs + new SOPs + "
        "cluster names; embedding requests ≤ ⌈entries/2048⌉ + ⌈changed SOPs/2048⌉). Input tokens include cached ones. "
        f"The limit is the issue's: one embedding round trip + (entries + SOPs touched) × {lat:.0f} ms / C, with C the "
        f"model calls in flight (workers × {meta.get('threads', 16)} threads; 1 for the baseline); SOPs touched = enriched + new. "
        f"The {prof.get('main', [1000, 42])[0]:,} × {prof.get('main', [1000, 42])[1]} chord runs were repeated "
        f"{prof.get('repeats', 1)} times: the row is the median, with the spread.", "",
        *_table(["entries", "SOPs", "run", "wall s", "limit s", "wall ÷ limit", "efficiency (limit ÷ wall)", "entries/s",
                 "speedup", "model calls / bound", "embedding requests / bound", "input tokens", "cached tokens", "est. $"],
                scenario_rows(results)), "",
        "### Where a chord run's time goes", "",
        "Phases from the database's timestamps (start: run opened → first classify call; entries: first → last "
        "classify call; finalize: → run logged). CPU per entry by process group over the run.", "",
        *_table(["entries", "SOPs", "latency", "workers", "start s", "entries s", "finalize s", "worker CPU ms/entry",
                 "PostgreSQL CPU ms/entry", "fakes CPU ms/entry", "machine busy", "others", "speed probe ms"], phase_rows(results)), "",
        "## Orchestration overhead (fakes at zero latency)", "",
        *_table(["entries", "SOPs", "run", "wall s", "ms per entry", "our CPU ms/entry", "PostgreSQL CPU ms/entry",
                 "machine busy", "others", "speed probe ms"], zero_rows(results)), "",
        "## Matching at scale", "",
        "Structured random 1536-d section vectors (~10 per SOP: a shared direction, a module direction, an SOP direction, "
        "per-section noise) in `cp_sop_sections` of a migrated database; 80% of the queries are drawn near a section, 20% "
        "are off-topic. The index side runs the matcher's own query (`matching.nearest_sops`: nearest sections, best per "
        "SOP, top 3, kept on the HNSW index at its `ef_search`); exact search is the same query ordered by an expression "
        "the index cannot serve. Recall@3 compares the SOPs returned with the "
        "exhaustive top 3 (numpy): over all queries, and over the queries whose best SOP is above the weak band (0.60), "
        "the ones whose candidates reach the classifier.", "",
        *_table(["vectors", "SOPs", "HNSW build", "build s", "ef_search", "plan", "p50 ms", "p95 ms", "exact plan",
                 "exact p50 ms", "exact p95 ms", "recall@3", "recall@3 (matched)", "exact check"], matching_rows(results)), "",
        *curve_section(results),
        *cost_section(results),
        "## Targets", "", *targets(results), "",
    ]
    return "\n".join(lines)


def write(results: dict, path: Path) -> None:
    """Render results into path."""
    path.write_text(render(results))


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "out" / "results.json"
    write(json.loads(src.read_text()), Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "BENCHMARKS.md")
