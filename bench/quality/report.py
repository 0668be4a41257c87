"""QUALITY.md from a quality benchmark result (and the history of earlier results)."""

from __future__ import annotations

from pathlib import Path

WORDING = {"playbook": "with at least one of its concepts in the playbook's own words",
           "field, shared word": "in field wording only, sharing a word (stemmed) with the SOP's title, subject, step headings or concepts",
           "field, no shared word": "in field wording only, sharing no word with the SOP's title, subject, step headings or concepts"}
TARGETS = {"recall@1": 0.85, "recall@3": 0.95, "sop_precision": 0.90, "section_precision": 0.80}


def _r(ratio: dict) -> str:
    if ratio["value"] is None:
        return f"n/a (0 of {ratio['den']})"
    return f"{ratio['value']:.3f} ({ratio['num']} of {ratio['den']})"


def render(results: dict, history: list[dict]) -> str:
    r, p, c, e = results["retrieval"], results["placement"], results["corpus"], results["embedder_alone"]
    topics = p["topics"]
    lines = [
        "# Quality benchmark",
        "",
        "How well the weekly run puts knowledge where it belongs, on a labelled playbook of realistic",
        "shape. Produced by:",
        "",
        "```",
        "make quality        # = .venv/bin/python -m bench.quality  (about "
        f"{max(1, round(results['wall_seconds'] / 60))} min on this machine)",
        "```",
        "",
        f"Measured {results['measured_at']} at commit `{results['commit']}`, providers: embedder "
        f"`{results['providers']['embedder']}` ({results['providers']['embedding_model']}), LLM "
        f"`{results['providers']['llm']}`. Real pipeline: embedded PostgreSQL+pgvector and Redis, a real Celery worker "
        "process, week 1 then week 2. Every number below is read back from the database (run items, match log, "
        "inserted callouts, orphan clusters) and the committed playbook repository.",
        "",
        "## The corpus (bench/quality/, deterministic)",
        "",
        f"- {c['sops']} SOPs in {c['modules']} module folders named like `docs/sops/module-2-lead-management/`, each "
        f"at least {c['min_words']:,} words: purpose, roles table, two phases of steps (\"1a. ...\"), tables, YAML/SQL/"
        "text code blocks, and the generic sections real playbooks carry (Metrics & KPIs, Templates, "
        "\"4a. Maintenance Schedule\", Glossary, References, Appendix, Revision History); some have Key Principles, "
        "Common Mistakes or Why This Matters.",
        f"- Week 1: {c['week1']} entries — by category {c['week1_by_category']}, by transcript "
        f"{c['week1_by_transcript']}. Each labelled entry names its home SOP and section (the step it is about; a "
        "question may also sit in Common Mistakes and product intel in Why This Matters when the SOP has them). "
        "Entries are written the way people talk on calls: they name the step's concepts mostly in field wording "
        "(\"joint close plan\" for \"mutual action plan\"), never copying the SOP's sentences.",
        "- Two planted topics the playbook does not cover (cloud-marketplace buying → module 3; trade-show booths → "
        "module 2), 4 entries from 3 calls each; 5 noise entries.",
        f"- Week 2: {c['week2']} entries — 6 restatements of week-1 insights in other words, the marketplace topic "
        "growing by 2 entries from 2 new calls, 12 new labelled entries of which 4 back-dated (captured 30+ days "
        "before week 1, ingested only now).",
        "",
        "## Results",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| recall@1: best candidate is the home SOP | {_r(r['recall_at_1'])} | ≥ 0.85 |",
        f"| recall@3: home SOP among the run's candidates | {_r(r['recall_at_3'])} | ≥ 0.95 |",
        f"| entries with no candidate at all | {_r(r['no_candidate'])} | |",
        *(f"| diagnostic: recall@1 / @3 of entries that name their step {WORDING[w]} | {_r(g['recall_at_1'])} / "
          f"{_r(g['recall_at_3'])} | |" for w, g in r.get("by_wording", {}).items()),
        f"| diagnostic: the embedder alone ranks the home SOP 1st / in its top 3 (original playbook, best section "
        f"per SOP, no bands) | {_r(e['at_1'])} / {_r(e['at_3'])} | |",
        f"| diagnostic: embedder similarity, median of the home SOP / of other SOPs (95th percentile) | "
        f"{e['home_median']} / {e['other_median']} ({e['other_p95']}) | |",
        f"| SOP placement precision (entry placements in the labelled SOP / all) | {_r(p['sop_precision'])} | ≥ 0.90 |",
        f"| section placement precision (of those in the right SOP) | {_r(p['section_precision'])} | ≥ 0.80 |",
        f"| placements in generic sections (References, Glossary, Maintenance, ...) | {p['generic_section_placements']} of {p['entry_placements']} | 0 |",
        f"| orphan precision (orphans that are planted/noise) | {_r(p['orphan_precision'])} | |",
        f"| orphan recall (planted/noise entries orphaned) | {_r(p['orphan_recall'])} | |",
        f"| entries with a home SOP that were orphaned | {_r(p['homed_entries_orphaned'])} | |",
        *(f"| planted topic `{k}` ({t['entries']} entries) → new SOPs | {len(t['new_sops'])} "
          f"({', '.join('`' + s + '`' for s in t['new_sops']) or 'none'}); right folder: {t['in_right_folder']}; "
          f"committed: {t['committed']}; open clusters holding it: {t['open_clusters_holding_it']}; written into "
          f"existing SOPs: {t['written_into_existing_sops']} | exactly 1, in `{t['expected_folder']}/` |"
          for k, t in topics.items()),
        f"| noise entries promoted into a new SOP | {p['noise_promoted']} | 0 |",
        f"| entries with a home SOP promoted into a new SOP | {p['homed_entries_in_new_sops']} | 0 |",
        f"| entries written into more than one SOP | {p['entries_in_more_than_one_sop']} | |",
        f"| entries written into more than two SOPs | {p['entries_in_more_than_two_sops']} | 0 |",
        f"| restatements written again where the original was written | {p['restatements_written_again']} of "
        f"{p['restatements']} | 0 |",
        f"| restatements written anywhere | {p['restatements_written_anywhere']} of {p['restatements']} | |",
        f"| back-dated entries settled (enriched/redundant/orphaned) | {p['backdated_settled']} of {p['backdated']} | all |",
        "",
        f"Callout blocks written: {p['callouts']} ({p['entry_placements']} entry placements). New SOP files committed: "
        f"{', '.join('`' + s + '`' for s in p['new_sops_committed']) or 'none'}. Entry outcomes (first final status): "
        f"{p['statuses']}.",
        "",
        "| run | status | entries | enriched | redundant | orphaned | deferred | failed |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| week {k} | {run['status']} | {run['entries']} | {run['enriched']} | {run['redundant']} | {run['orphaned']} | "
          f"{run['deferred']} | {run['failed']} |" for k, run in enumerate(results["runs"], 1)),
        "",
        "## History (each `make quality`, newest last)",
        "",
        "| measured | commit | note | r@1 | r@3 | SOP prec. | section prec. | orphan P | orphan R | topics → 1 SOP | "
        "right folder | noise promoted | >2 SOPs | restated again |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(f"| {h['measured_at']} | `{h['commit']}` | {h.get('label', '')} | {h['recall@1']} | {h['recall@3']} | "
          f"{h['sop_precision']} | {h['section_precision']} | {h['orphan_precision']} | {h['orphan_recall']} | "
          f"{h['topics_to_one_sop']} | {h['topics_right_folder']} | {h['noise_promoted']} | {h['>2_sops']} | "
          f"{h['restated_again']} |" for h in history),
        "",
        "Definitions: recall counts entries with a home SOP (labelled and restatements) in the first run that "
        "processed them; the candidates are the SOPs the run logged for the entry (cp_knowledge_sop_matches), "
        "the best one is the run item's best_sop. Placement counts (entry, SOP) pairs of the inserted callouts; "
        "a planted-topic entry is placed right only in the new SOP made from its topic. Orphan measures use "
        "each entry's first final status.",
        "",
    ]
    notes = Path(__file__).with_name("notes.md")  # hand-written closing notes, kept with the numbers
    return "\n".join(lines) + ("\n" + notes.read_text() if notes.exists() else "")
