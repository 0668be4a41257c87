"""Operator commands: runs / runs show, report, enqueue, validate, flower (registered on cli.app)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from playbook_sync.cli_runs import end_run, start_and_follow
from playbook_sync.config import Settings, get_settings

runs_app = typer.Typer(help="Run history: `runs` lists recent runs, `runs show RUN_ID` one run in detail.",
                       invoke_without_command=True)
enqueue_app = typer.Typer(help="Reprocess by hand: named entries, a window, or a failed run's window.", no_args_is_help=True)


def _cli():
    from playbook_sync import (
        cli,  # late: cli imports this module to register the commands
    )

    return cli


# -- enqueue ---------------------------------------------------------------------------


def _run_or_enqueue(scope: dict | Callable[[Settings], dict], wait: bool) -> None:
    """Ad-hoc runs go through the same chord; on the embedded profile a local worker runs them.

    scope may be a function of the settings (it needs the database to resolve): one
    services block serves the whole command.
    """
    cli = _cli()
    embedded = not get_settings().broker_url
    with cli.services(playbook=True) as settings:
        from worker.app import app as celery_app
        from worker.tasks import start_run

        scope = scope(settings) if callable(scope) else scope
        _check_scope(settings, scope)
        if not embedded and not wait:
            result = start_run.delay(trigger="enqueue", scope=scope)
            cli.console.print(f"enqueued start_run (task {result.id})")
            return
        with cli._maybe_worker(celery_app, embedded, settings) as worker:
            outcome = start_and_follow(settings, trigger="enqueue", scope=scope, worker=worker)
        cli._print_summary(outcome, settings)
    cli.exit_for(outcome)


def _check_scope(settings: Settings, scope: dict) -> None:
    """Refuse a bad request here, with its reason, before anything is sent."""
    from playbook_sync import adhoc, store
    from playbook_sync.db import session_scope

    with session_scope(settings.database_url) as session:
        try:
            planned = adhoc.plan(session, adhoc.Scope.from_dict(scope), watermark=store.last_window_end(session),
                                 now=datetime.now(UTC))
        except adhoc.ScopeError as exc:
            _cli().console.print(f"[red]refused:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    moves = "moves the weekly window" if not planned.trigger.startswith(adhoc.NON_ADVANCING) else "leaves the weekly window alone"
    _cli().console.print(f"{len(planned.entry_ids)} entries; this run {moves}", highlight=False)


@enqueue_app.command("entries")
def enqueue_entries(entry_ids: list[str] = typer.Argument(..., help="knowledge entry ids"),
                    wait: bool = typer.Option(False, help="Wait for the run (always, on the embedded profile).")) -> None:
    """Run exactly these entries through the chord (the weekly window does not move)."""
    try:
        ids = [str(uuid.UUID(e)) for e in entry_ids]
    except ValueError as exc:
        raise typer.BadParameter(f"not an entry id: {exc}") from None
    _run_or_enqueue({"kind": "entries", "entry_ids": ids}, wait)


@enqueue_app.command("window")
def enqueue_window(since: str = typer.Option(..., help="start (exclusive), ISO date or date-time, UTC"),
                   until: str = typer.Option(None, help="end (inclusive); default now"),
                   wait: bool = typer.Option(False, help="Wait for the run (always, on the embedded profile).")) -> None:
    """Run the entries created in (SINCE, UNTIL]; moves the weekly window only if SINCE is at or before its start."""
    from playbook_sync.adhoc import parse_when

    try:
        start, end = parse_when(since), parse_when(until) if until else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _run_or_enqueue({"kind": "window", "since": start.isoformat(), "until": end.isoformat() if end else None}, wait)


@enqueue_app.command("run")
def enqueue_run(run_id: str = typer.Argument(..., help="a run id or unique prefix (as `runs` shows)"),
                wait: bool = typer.Option(False, help="Wait for the run (always, on the embedded profile).")) -> None:
    """Re-run a (failed) run: its entries and its window's, through the same chord."""
    def resolve(settings: Settings) -> dict:
        from playbook_sync.db import session_scope
        from playbook_sync.report import find_run

        with session_scope(settings.database_url) as session:
            try:
                return {"kind": "run", "run_id": str(find_run(session, run_id).id)}
            except LookupError as exc:
                raise typer.BadParameter(str(exc)) from None

    _run_or_enqueue(resolve, wait)


# -- history and reports ---------------------------------------------------------------


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
    from sqlalchemy import select

    from playbook_sync import store
    from playbook_sync.db import session_scope
    from playbook_sync.models import SyncRun

    cli = _cli()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  caption="counts: entries = enriched redundant orphaned deferred failed; times UTC")
    wide = cli.console.width >= 110  # narrow terminals: no trigger column, window as dates
    for name in ("run", "started", "trigger", "window", "status", "counts", "cost", "commit"):
        if wide or name != "trigger":
            table.add_column(name, justify="right" if name in ("counts", "cost") else "left", no_wrap=True)
    with cli.services() as settings, session_scope(settings.database_url) as session:
        recent = list(session.scalars(select(SyncRun).order_by(SyncRun.run_at.desc()).limit(limit)))
        counted = store.item_counts(session, run_ids=[r.id for r in recent])
        for r in recent:
            color = {"success": "green", "partial": "yellow", "failed": "red"}.get(r.status, "blue")
            n = counted.get(r.id, {})  # from the items: a run that ended any way shows what happened to them
            counts = (f"{sum(n.values())} = {n.get('enriched', 0)} {n.get('redundant', 0)} {n.get('orphaned', 0)} "
                      f"{n.get('deferred', 0)} {n.get('failed', 0)}")
            commit = (r.commit_sha or "—")[:8] + (" +PR" if r.pull_request_url else "")
            row = [str(r.id)[:8], f"{r.run_at:%m-%d %H:%M}", r.trigger, _window(r, fmt="%m-%d %H:%M" if wide else "%m-%d"),
                   f"[{color}]{r.status}[/{color}]", counts, f"${r.cost_usd or 0:.2f}", commit]
            table.add_row(*(row if wide else row[:2] + row[3:]))
    cli.console.print(table)


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="a run id or unique prefix")) -> None:
    """One run: window, counts, SOPs, commit, and every failed or deferred entry with its reason."""
    from playbook_sync import store
    from playbook_sync.db import session_scope
    from playbook_sync.models import KnowledgeEntry
    from playbook_sync.report import find_run, paths_for

    cli, out = _cli(), _cli().console
    with cli.services() as settings, session_scope(settings.database_url) as session:
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
                  f"{n.get('orphaned', 0)} orphaned, {n.get('deferred', 0)} deferred, {n.get('failed', 0)} failed"
                  + (f", {n['pending'] + n.get('matched', 0)} in progress" if n.get("pending") else ""), highlight=False)
        out.print(f"cost    ${r.cost_usd or 0:.4f}", highlight=False)
        for path in r.sops_enriched or []:
            out.print(f"  enriched {path}", highlight=False)
        for path in r.sops_created or []:
            out.print(f"  created  {path}", highlight=False)
        out.print(f"commit  {r.commit_sha or 'none'}", highlight=False)
        if r.pull_request_url:
            out.print(f"pull request {r.pull_request_url}", highlight=False)
        problems = [i for i in store.items(session, run_id=r.id) if i.status in ("failed", "deferred")]
        if problems:
            contents = {e.id: e.content for e in session.query(KnowledgeEntry).filter(KnowledgeEntry.id.in_([i.entry_id for i in problems]))}
            out.print(f"[bold]failed and deferred entries ({len(problems)})[/bold]")
            for i in problems:
                out.print(f"  {i.status:<8} {i.entry_id}  {i.error or '(no reason recorded)'}", highlight=False, markup=False)
                out.print(f"           “{' '.join(contents.get(i.entry_id, '').split())[:100]}”", highlight=False, markup=False)
        for line in (r.error_log or "").splitlines():
            out.print(f"  log: {line}", highlight=False, markup=False)
        html = paths_for(settings, str(r.id))[1]
        out.print(f"report  {html if html.exists() else f'playbook-sync report {str(r.id)[:8]} --html FILE'}", highlight=False)


@runs_app.command("fail")
def runs_fail(run_id: str = typer.Argument(..., help="a running run's id or unique prefix")) -> None:
    """Fail a running run whose workers are gone: adopts its commit if it landed; otherwise the window stays
    and its entries are owed to the next run."""
    from playbook_sync.db import session_scope
    from playbook_sync.report import find_run

    cli = _cli()
    with cli.services() as settings:
        with session_scope(settings.database_url) as session:
            try:
                r = find_run(session, run_id)
            except LookupError as exc:
                raise typer.BadParameter(str(exc)) from None
            full, status = r.id, r.status
        ended = end_run(settings, full, "failed by an operator (playbook-sync runs fail)") if status == "running" else None
    if ended is None:
        cli.console.print(f"run {full} is not running (it is {status}); nothing to fail", highlight=False)
        raise typer.Exit(1)
    if ended.get("adopted"):
        cli.console.print(f"run {full}: its commit {ended['adopted'][:12]} had landed; adopted it, run {ended['status']}",
                          highlight=False)
    else:
        cli.console.print(f"run {full} failed; the window stays and its {ended['entries']} entries are owed to the next run",
                          highlight=False)


def report(run_id: str = typer.Argument(..., help="a run id or unique prefix (dry runs: their stored report)"),
           html: Path = typer.Option(None, help="write the HTML page here"),
           json_file: Path = typer.Option(None, "--json", help="write the JSON here")) -> None:
    """Build a run's report (HTML page and/or JSON) from the database and the repository."""
    from playbook_sync import report as reports
    from playbook_sync.db import session_scope
    from playbook_sync.runtime import Deps

    cli = _cli()
    with cli.services() as settings, session_scope(settings.database_url) as session:
        try:
            data = reports.build(session, Deps.from_settings(settings), reports.find_run(session, run_id))
        except LookupError as exc:
            data = reports.load(settings, run_id)  # a dry run left only its files
            if data is None:
                raise typer.BadParameter(str(exc)) from None
    if json_file:
        reports.write(data, json_file)
        cli.console.print(f"wrote {json_file}", highlight=False)
    if html:
        from playbook_sync.report_html import render

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render(data), encoding="utf-8")
        cli.console.print(f"wrote {html}", highlight=False)
    if not html and not json_file:
        c = data["counts"]
        cli.console.print(f"run {data['run']['id']} {data['run']['status']}: " + ", ".join(f"{v} {k}" for k, v in c.items()),
                          highlight=False)


# -- validate and flower -----------------------------------------------------------------


def validate(repo: Path = typer.Option(None, help="a checked-out playbook directory (default: the configured playbook)"),
             build: bool = typer.Option(False, "--build", help="also run the site's own Docusaurus build (needs Node and "
                                        "its package.json) in a temporary checkout")) -> None:
    """Lint the playbook: frontmatter, id/title, unique ids, admonitions, MDX hazards; path:line: message."""
    from playbook_sync.sitebuild import read_site
    from playbook_sync.validate import check_tree, read_directory

    settings, out = get_settings(), _cli().console
    if repo is not None:
        try:
            files, unread = read_directory(repo, settings.docs_root, max_bytes=settings.max_sop_bytes)
            site = read_site(repo) if build else None  # the build needs the whole site, not only the docs
        except FileNotFoundError as exc:
            raise typer.BadParameter(str(exc)) from None
    else:
        from playbook_sync.providers.base import ProviderError
        from playbook_sync.runtime import build_repo

        try:
            playbook = build_repo(settings)
            files, unread = playbook.read_tree(settings.docs_root), []
            site = playbook.read_tree("") if build else None
        except (ProviderError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read the configured playbook: {exc}") from None
    problems = sorted(unread + check_tree(files, settings.docs_root, max_bytes=settings.max_sop_bytes))
    for problem in problems:
        out.print(str(problem), highlight=False, markup=False)
    docs = sum(1 for p in files if p.endswith((".md", ".mdx")))
    out.print(f"{docs} docs checked, {len(problems)} error{'s' if len(problems) != 1 else ''}", highlight=False)
    if build and not _site_build(site, settings, out):
        raise typer.Exit(1)
    if problems:
        raise typer.Exit(1)


def _site_build(files: dict[str, bytes], settings, out) -> bool:
    """validate --build: the site's own build on these files; print what failed and where."""
    from playbook_sync import sitebuild
    from playbook_sync.sops import is_doc

    try:
        result = sitebuild.build(files, settings.build_cache_dir or settings.data_dir / "site-build", settings.build_timeout_seconds)
    except sitebuild.BuildUnavailable as exc:
        raise typer.BadParameter(f"--build cannot run: {exc}") from None
    for path in sitebuild.blame(result, {p: c for p, c in files.items() if is_doc(p, settings.docs_root)}):
        out.print(f"{path}: the site build fails on this page", highlight=False, markup=False)
    out.print("site build: ok" if result.ok else f"site build failed: {result.summary()}", highlight=False, markup=False)
    return result.ok


def flower(port: int = typer.Option(5555, help="HTTP port"), address: str = typer.Option("127.0.0.1", help="listen address")) -> None:
    """Start Flower against the configured broker (embedded profile: with embedded services and a local worker)."""
    from playbook_sync.db import ROOT

    settings = get_settings()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "flower", f"--port={port}", f"--address={address}",
           "--persistent=False", "--purge_offline_workers=300"]
    if settings.flower_basic_auth:  # Flower reads FLOWER_BASIC_AUTH; on argv, `ps` would show it
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    elif address in ("127.0.0.1", "localhost", "::1"):
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only: on a real interface the API needs auth
    if settings.broker_url:  # production shape: Flower is all this process is
        os.chdir(ROOT)
        os.execvpe(cmd[0], cmd, env)
    cli = _cli()
    with cli.services() as local:  # embedded: Flower, the services and a worker live as long as this command
        from worker.app import app as celery_app

        env.update({k: v for k, v in os.environ.items() if k.startswith("PLAYBOOK_SYNC_")})
        with cli._maybe_worker(celery_app, True, local):
            cli.console.print("embedded services; point other shells at them with:\n"
                              f"  export PLAYBOOK_SYNC_BROKER_URL={local.broker_url}\n"
                              f"  export PLAYBOOK_SYNC_DATABASE_URL='{local.database_url}'", highlight=False)
            cli.console.print(f"Flower on http://{address}:{port} (Ctrl-C stops it)", highlight=False)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
            signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop Flower with us, then clean up
            try:
                code = proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
                code = proc.wait(10)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the main app."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(enqueue_app, name="enqueue")
    app.command()(report)
    app.command()(validate)
    app.command()(flower)
