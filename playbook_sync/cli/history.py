"""Run history: runs, runs show, runs fail, report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from playbook_sync import db, store
from playbook_sync.cli.shared import console, end_run, services

runs_app = typer.Typer(help="Run history: `runs` lists recent runs, `runs show RUN_ID` one run in detail.",
                       invoke_without_command=True)


def _window(r, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if r.trigger.startswith("adhoc:entries"):
        return f"{r.entries_processed} named entries"
    start = r.window_start.strftime(fmt) if r.window_start else "start"
    return f"{start}→{r.window_end.strftime(fmt)}" if len(fmt) < 6 else f"{start} → {r.window_end.strftime(fmt)}"


@runs_app.callback()
def runs(ctx: typer.Context, limit: int = typer.Option(10, help="how many runs")) -> None:
    """Recent runs: when, window, status, counts, cost, commit."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  caption="counts: entries = enriched redundant orphaned deferred failed held; times UTC")
    wide = console.width >= 110  # narrow terminals: no trigger column, window as dates
    for name in ("run", "started", "trigger", "window", "status", "counts", "cost", "commit"):
        if wide or name != "trigger":
            table.add_column(name, justify="right" if name in ("counts", "cost") else "left", no_wrap=True)
    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        recent = store.recent_runs(session, limit=limit)
        counted = store.item_counts(session, run_ids=[r.id for r in recent])
        for r in recent:
            color = {"success": "green", "partial": "yellow", "failed": "red"}.get(r.status, "blue")
            n = counted.get(r.id, {})  # from the items: a run that ended any way shows what happened to them
            counts = (f"{sum(n.values())} = {n.get('enriched', 0)} {n.get('redundant', 0)} {n.get('orphaned', 0)} "
                      f"{n.get('deferred', 0)} {n.get('failed', 0)} {n.get('held', 0)}")  # held: so the parts add up
            commit = (r.commit_sha or "—")[:8] + (" +PR" if r.pull_request_url else "")
            row = [str(r.id)[:8], f"{r.run_at:%m-%d %H:%M}", r.trigger, _window(r, fmt="%m-%d %H:%M" if wide else "%m-%d"),
                   f"[{color}]{r.status}[/{color}]", counts, f"${r.cost_usd or 0:.2f}", commit]
            table.add_row(*(row if wide else row[:2] + row[3:]))
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="a run id or unique prefix")) -> None:
    """One run: window, counts, SOPs, commit, and every failed or deferred entry with its reason."""
    from playbook_sync import learning_metrics, learning_report
    from playbook_sync.report import find_run, paths_for

    out = console
    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        try:
            r = find_run(session, run_id)
        except LookupError as exc:
            raise typer.BadParameter(str(exc)) from None
        out.print(f"[bold]run {r.id}[/bold]  {r.status}  (trigger {r.trigger})", highlight=False)
        out.print(f"started {r.run_at:%Y-%m-%d %H:%M:%S} UTC, finished "
                  f"{f'{r.finished_at:%Y-%m-%d %H:%M:%S} UTC' if r.finished_at else '—'}", highlight=False)
        out.print(f"window  {_window(r)} UTC", highlight=False)
        n = store.item_counts(session, run_ids=[r.id]).get(r.id, {})
        out.print(f"entries {sum(n.values())}: {n.get('enriched', 0)} enriched, {n.get('redundant', 0)} redundant, "
                  f"{n.get('orphaned', 0)} orphaned, {n.get('deferred', 0)} deferred, {n.get('failed', 0)} failed, {n.get('held', 0)} held"
                  + (f", {n['pending'] + n.get('matched', 0)} in progress" if n.get("pending") else ""), highlight=False)
        out.print(f"cost    ${r.cost_usd or 0:.4f}", highlight=False)
        for path in r.sops_enriched or []:
            out.print(f"  enriched {path}", highlight=False)
        for path in r.sops_created or []:
            out.print(f"  created  {path}", highlight=False)
        out.print(f"commit  {r.commit_sha or 'none'}", highlight=False)
        if r.pull_request_url:
            out.print(f"pull request {r.pull_request_url}", highlight=False)
        problems = [i for i in store.items(session, run_id=r.id) if i.status in ("failed", "deferred", "held")]
        if problems:
            contents = store.entry_contents(session, entry_ids=[i.entry_id for i in problems])
            out.print(f"[bold]failed, deferred and held entries ({len(problems)})[/bold]")
            for i in problems:
                out.print(f"  {i.status:<8} {i.entry_id}  {i.error or '(no reason recorded)'}", highlight=False, markup=False)
                out.print(f"           “{' '.join(contents.get(i.entry_id, '').split())[:100]}”", highlight=False, markup=False)
        for line in learning_report.lines(learning_metrics.section(session, r)):  # issue 14
            out.print(f"learning {line}", highlight=False, markup=False)
        for line in (r.error_log or "").splitlines():
            out.print(f"  log: {line}", highlight=False, markup=False)
        html = paths_for(settings, str(r.id))[1]
        out.print(f"report  {html if html.exists() else f'playbook-sync report {str(r.id)[:8]} --html FILE'}", highlight=False)


@runs_app.command("fail")
def runs_fail(run_id: str = typer.Argument(..., help="a running run's id or unique prefix")) -> None:
    """Fail a running run whose workers are gone: adopts its commit if it landed; otherwise the window stays
    and its entries are owed to the next run."""
    from playbook_sync.report import find_run

    with services(broker=False) as settings:
        with db.session_scope(settings.database_url) as session:
            try:
                r = find_run(session, run_id)
            except LookupError as exc:
                raise typer.BadParameter(str(exc)) from None
            full, status = r.id, r.status
        ended = end_run(settings, full, "failed by an operator (playbook-sync runs fail)") if status == "running" else None
    if ended is None:
        console.print(f"run {full} is not running (it is {status}); nothing to fail", highlight=False)
        raise typer.Exit(1)
    if ended.get("adopted"):
        console.print(f"run {full}: its commit {ended['adopted'][:12]} had landed; adopted it, run {ended['status']}",
                      highlight=False)
    else:
        console.print(f"run {full} failed; the window stays and its {ended['entries']} entries are owed to the next run",
                      highlight=False)


def report(run_id: str = typer.Argument(..., help="a run id or unique prefix (dry runs: their stored report)"),
           html: Path = typer.Option(None, help="write the HTML page here"),
           json_file: Path = typer.Option(None, "--json", help="write the JSON here")) -> None:
    """Build a run's report (HTML page and/or JSON) from the database and the repository."""
    from playbook_sync import report as reports
    from playbook_sync.deps import Deps

    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        try:
            data = reports.build(session, settings, Deps.from_settings(settings).repo, reports.find_run(session, run_id))
        except LookupError as exc:
            data = reports.load(settings, run_id)  # a dry run left only its files
            if data is None:
                raise typer.BadParameter(str(exc)) from None
    if json_file:
        reports.write(data, json_file)
        console.print(f"wrote {json_file}", highlight=False)
    if html:
        from playbook_sync.report_html import render

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render(data), encoding="utf-8")
        console.print(f"wrote {html}", highlight=False)
    if not html and not json_file:
        c = data["counts"]
        console.print(f"run {data['run']['id']} {data['run']['status']}: " + ", ".join(f"{v} {k}" for k, v in c.items()),
                      highlight=False)
