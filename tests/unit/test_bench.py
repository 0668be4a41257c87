"""The bench's generator, baseline extrapolation and report writer (no services, no timings asserted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench import generate
from bench.report import render
from bench.run import extrapolate
from playbook_sync.sops import parse_sop

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_playbook_is_deterministic_and_parses_like_a_real_one():
    files = generate.playbook(42)
    assert files == generate.playbook(42)
    sops = {p: c for p, c in files.items() if p.startswith("docs/sops/") and p.endswith(".md")}
    assert len(sops) == 42 and len({p.split("/")[2] for p in sops}) == 8  # the spec's 42 SOPs in 8 modules
    for path, content in sops.items():
        doc = parse_sop(path, content)
        assert 2_000 < len(content) < 8_000 and 8 <= len(doc.sections) <= 15, path


def test_large_playbooks_have_distinct_topics():
    paths = [t.path for t in generate.topics(1000)]
    assert len(set(paths)) == 1000


def test_entries_are_valid_deterministic_and_from_the_past_week():
    entries = generate.entries(300, 42, NOW)
    assert [e.model_dump() for e in entries] == [e.model_dump() for e in generate.entries(300, 42, NOW)]
    assert len({e.id for e in entries}) == 300
    assert all(NOW - timedelta(days=7) < e.created_at < NOW for e in entries)
    orphan_tags = {label.replace(" ", "-") for label, _ in generate.ORPHAN_TOPICS}
    orphans = [e for e in entries if set(e.tags) & orphan_tags]
    assert 0.05 < len(orphans) / len(entries) < 0.3  # enough to cluster into new SOPs
    assert len({e.source_ref for e in orphans}) > 2


def test_touch_changes_a_share_of_the_sops_additively():
    files = generate.playbook(42)
    changed = generate.touch(files, 0.05)
    assert len(changed) == 2
    for path, content in changed.items():
        assert len(content) > len(files[path]) and parse_sop(path, content)


def _run(wall: float, calls: int, **extra) -> dict:
    return {"wall": wall, "entries_per_s": 100 / wall, "model_calls": calls, "model_call_bound": 150,
            "embedding_requests": 2, "embedding_bound": 2, "input_tokens": 1000, "cached_tokens": 500, "cost_usd": 1.5,
            "parallel_efficiency": 0.8, "latency_sum": calls * 0.3, "sops_enriched": 40, "sops_created": 1,
            "calls_by_step": {"classify": calls - 50, "edit": 50}, "cpu_ms_per_entry": {"workers": 12.0},
            "machine_busy": 0.5, "cpu_s": {"workers": 1.2}, "cores": 2, "phase_start": 1, "phase_entries": 2,
            "phase_finalize": 1} | extra


def test_extrapolated_baseline_is_latency_sum_plus_time_between_requests():
    # 10 entries: 15 embedding requests (1.0 s between them), 8 classify calls (0.5 s between), 4 more calls (0.3 s).
    sample = {"entries": 10, "embedding_requests": 15, "model_calls": 12, "calls_by_step": {"classify": 8, "edit": 4},
              "phase_start": 15 * 0.15 + 1.0, "phase_entries": 7 * 0.3 + 0.5, "phase_finalize": 5 * 0.3 + 0.2,
              "db_wall": 10.0, "wall": 10.1}
    est = extrapolate(sample, {"model_calls": 120}, entries=100, changed_texts=5, latency=0.3, embedding_latency=0.15)
    assert est["embedding_requests"] == 105 and est["model_calls"] == 120
    assert est["wall"] == pytest.approx(105 * 0.15 + 120 * 0.3 + 1.0 + 0.5 * 100 / 10 + 0.3)


def test_report_renders_tables_and_judges_targets_from_the_results():
    results = {
        "meta": {"profile": "default", "command": "make bench", "commit": "abc1234", "started": "2026-03-01T00:00:00+00:00",
                 "duration_s": 1200, "load_average_start": [0.5], "load_average_end": [0.7], "postgres": "18",
                 "probe_ms_start": 14.8, "probe_ms_end": 25.1,
                 "pgvector": "0.8.6", "machine": {"cpu": "test cpu", "cores": 2, "memory_gb": 24, "os": "Linux", "python": "3.11"}},
        "profile": {"latency": 0.3, "embedding_latency": 0.15, "baseline_full_up_to": 100},
        "scenarios": [{"entries": 1000, "sops": 42, "latency": 0.3, "fanout": {"1": _run(20.0, 140), "2": _run(15.0, 140)},
                       "baseline": _run(500.0, 140, method="extrapolated", parallel_efficiency=0.95)}],
        "zero_latency": [{"entries": 1000, "sops": 42, "fanout": {"1": _run(8.0, 140, probe_ms=16.2)}, "baseline": _run(30.0, 140)}],
        "curve": [{"entries": 1000, "sops": 42, "threads": t} | _run(w, 140, limit=19.7) for t, w in ((16, 24.6), (32, 27.0))],
        "costs": [{"entries": 50, "sops": 40, "words": 7000, "results": {
            mode: {"status": "success", "entries": 50, "enriched": 45, "sops_enriched": 24, "sops_created": 1,
                   "model_call_bound": 76, "steps": {}, "total": {"calls": 72, "input": 1, "cache_write": 0, "cache_read": 0,
                                                                   "output": 1, "usd": usd, "cached_share": 0.0,
                                                                   "reads_per_write": None}}
            for mode, usd in (("direct", 1.37), ("batch", 0.85))}}],
        "matching": [{"vectors": 100_000, "sops": 10_000, "m": 16, "ef_construction": 64, "build_seconds": 40.0, "ef_search": 40,
                      "hnsw_plan": "index", "hnsw_p50_ms": 4.0, "hnsw_p95_ms": 7.0, "exact_plan": "sequential",
                      "exact_p50_ms": 250.0, "exact_p95_ms": 400.0, "recall_at_3": 0.84, "recall_at_3_matched": 0.99,
                      "exact_recall_check": 1.0}],
    }
    text = render(results)
    assert "| 1,000 | 42 | chord, 1 worker × 16 threads | 20.0 |" in text and "25.0×" in text
    assert ("1,000 entries × 42 SOPs, 1 worker(s)**: 25.0× the baseline (extrapolated), parallel efficiency 80%, "
            "against ≥ 20× and ≥ 70% efficiency — **met**") in text
    # Two workers must reach 30×: 33.3× here is met, whatever the efficiency.
    assert "2 worker(s)**: 33.3× the baseline (extrapolated), parallel efficiency 80%, against ≥ 30× — **met**" in text
    assert "1 of 2" not in text and "2 of 2 chord runs within the bound — **met**" in text
    assert "12.0 ms (workers 12.0, PostgreSQL 0.0, Redis 0.0) against < 5 ms — **missed**" in text
    assert "0.990 for entries with a match above the weak band" in text
    assert "$1.37 (batch mode $0.85) — **met**" in text and "| direct | **total** | 72 / bound 76 |" in text
    # The speed probe: at the bench's start and end, and per run.
    assert "| 0.5 → 0.7 | 14.8 → 25.1 |" in text and "| 50% | 42% | 16.2 |" in text
    assert "## Threads per LLM worker" in text and "| 16 | 24.6 | 19.7 | 80% |" in text and "| 32 | 27.0 | 19.7 | 73% |" in text


def test_the_speed_probe_times_a_fixed_piece_of_python():
    from bench.scenario import python_speed

    probes = [python_speed() for _ in range(3)]
    assert all(isinstance(p, float) and 0 < p < 10_000 for p in probes)


def test_the_bench_fails_on_model_calls_above_the_bound():
    from bench.run import call_bound_violations

    ok = {"model_calls": 10, "model_call_bound": 10}
    over = {"model_calls": 12, "model_call_bound": 10}
    results = {"scenarios": [{"entries": 5, "sops": 42, "fanout": {"1": ok, "2": over}, "baseline": ok | {"method": "measured"}}],
               "zero_latency": []}
    assert call_bound_violations(results) == ["5 x 42, 2 worker(s): 12 model calls > bound 10"]


@pytest.mark.parametrize("argv", [["--sops", "1000"], ["--full", "--sops", "1000"], ["--curve", "--sops", "0"]])
def test_sops_goes_with_the_curve_only(argv, capsys):
    from bench.run import main

    with pytest.raises(SystemExit) as stop:  # refused before anything starts
        main(argv)
    assert stop.value.code == 2 and "--sops takes a number of SOPs" in capsys.readouterr().err


@pytest.mark.parametrize(("hybrid", "total", "verdict"), [(3.2, "6.4", "more"), (0.5, "3.7", "less")])
def test_report_states_the_floor_under_the_cpu_target(hybrid, total, verdict):
    from bench.report import _floor_line

    chords = {"1": {"cpu_ms_per_entry": {"workers": 2.2, "redis": 0.2, "postgres": 0.0}},
              "2": {"cpu_ms_per_entry": {"workers": 2.0, "redis": 0.2, "postgres": 0.0}}}
    floor = {"chords": chords, "per_entry_ms": {"celery": 2.2, "sdk_call": 0.95, "hybrid": hybrid,
                                                "total": 2.2 + 0.95 + hybrid + 0.01}}
    line = _floor_line(floor)
    assert "1 worker(s) 2.4 ms, 2 worker(s) 2.2 ms" in line and "SDK 0.95 ms" in line
    assert f"{total} ms per entry" in line and "leave 1.8 ms for reading the item" in line
    assert line.endswith(f"the hybrid statement alone takes {verdict}.")
