"""Execution reports, search and outcome evidence: ingest-reports, search, sops stats."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from playbook_sync import db
from playbook_sync.cli.shared import console, open_input, print_error, print_ingested, services


def ingest_reports(file: Path) -> None:
    """Load execution reports from JSONL; a report_id already stored is updated, bad lines are rejected with a reason."""
    from playbook_sync.deps import build_embedder
    from playbook_sync.ingest import read_lines
    from playbook_sync.reports import load

    with open_input(file) as handle, services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        stored = load(session, build_embedder(settings), read_lines(handle), str(file))
    print_ingested(stored.parsed, f"{stored.added} new reports, {stored.updated} updated, {stored.kept} kept "
                                  f"(a later copy is stored), {len(stored.parsed.errors)} rejected", settings, str(file))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)", param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def search(query: str = typer.Argument(..., help="what to look for, in your own words"),
           type_: list[str] = typer.Option(None, "--type", help="sop, entry or report (repeatable; default all)"),
           customer: str = typer.Option(None, help="reports of this customer id only"),
           account: str = typer.Option(None, help="reports of this account id only"),
           playbook: str = typer.Option(None, help="reports of this playbook id only"),
           status: str = typer.Option(None, help="reports with this status only: completed, failed, in-progress"),
           since: str = typer.Option(None, help="only what is dated on or after this date (YYYY-MM-DD)"),
           limit: int = typer.Option(10, help="how many results (1-100)"),
           as_json: bool = typer.Option(False, "--json", help="print the results as JSON")) -> None:
    """Hybrid search (full text + vectors) across SOP sections, knowledge entries and execution reports."""
    from playbook_sync.deps import build_embedder
    from playbook_sync.ingest import clean
    from playbook_sync.search import KINDS, Filters, SearchError
    from playbook_sync.search import search as run_search

    try:
        filters = Filters(types=tuple(type_) if type_ else KINDS, customer=customer, account=account, playbook=playbook,
                          status=status, since=_since(since), limit=limit)
        if not clean(query).strip():  # before any service starts
            raise SearchError("the search query is empty")
    except SearchError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        try:
            results = run_search(session, build_embedder(settings), query, filters)
        except SearchError as exc:
            print_error(str(exc))
            raise typer.Exit(2) from None
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
        return
    if not results:
        console.print("no results", highlight=False)
    for n, r in enumerate(results, start=1):
        console.print(f"{n:>2}. [{r.type}] {r.title}  (score {r.score:.4f})", markup=False, highlight=False)
        console.print(f"    {r.link}", markup=False, highlight=False)
        console.print(f"    {r.snippet}", markup=False, highlight=False)


def sops_stats(sop: str = typer.Argument(None, help="an SOP's frontmatter id or path (default: every SOP with playbook_ids)"),
               as_json: bool = typer.Option(False, "--json", help="print the evidence as JSON")) -> None:
    """Outcome evidence per SOP from execution reports: executions, completion, median steps and per-metric deltas."""
    from playbook_sync.evidence import stats_line
    from playbook_sync.outcome_callouts import stats

    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        try:
            found = stats(session, settings, sop)
        except LookupError as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps(found, default=str))
        return
    if not found:
        console.print("no SOP maps a playbook yet (add `playbook_ids: [...]` to an SOP's frontmatter; a run syncs SOPs)",
                      markup=False, highlight=False)
    for s in found:
        rate = f"{s['completion_rate']:.0%}" if s["completion_rate"] is not None else "-"
        steps = s["median_steps_completed"] if s["median_steps_completed"] is not None else "-"
        console.print(f"{s['sop_id']} ({s['sop']}) ← {', '.join(s['playbook_ids'])}", markup=False, highlight=False)
        console.print(f"  last {s['period_days']} days: {s['executions']} executions, {rate} completed, "
                      f"median steps completed {steps}", markup=False, highlight=False)
        for m in s["metrics"]:
            console.print(f"  {stats_line(m)}", markup=False, highlight=False)
