"""Commands that start runs: run (and run --dry-run), demo, enqueue entries|window|run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import typer

from playbook_sync import db, store
from playbook_sync.cli.follow import start_and_follow
from playbook_sync.cli.shared import console, exit_for, maybe_worker, print_report_path, print_summary, services
from playbook_sync.config import Settings, get_settings

enqueue_app = typer.Typer(help="Reprocess by hand: named entries, a window, or a failed run's window.", no_args_is_help=True)


def run(wait: bool = typer.Option(False, help="Wait for the run, with a progress bar (always, on the embedded profile)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Run every step, commit nothing, keep no run state; "
                                     "print the diff of every SOP it would change or create.")) -> None:
    """Enqueue a run; on the embedded profile a local worker runs it."""
    if dry_run:
        _dry_run()
        return
    embedded = not get_settings().broker_url
    with services(playbook=True) as settings:
        from playbook_sync.worker.app import app as celery_app
        from playbook_sync.worker.tasks import start_run

        if not embedded and not wait:
            result = start_run.delay(trigger="manual")
            console.print(f"enqueued start_run (task {result.id})")
            return
        with maybe_worker(celery_app, embedded, settings) as worker:
            outcome = start_and_follow(settings, trigger="manual", worker=worker)
        print_summary(outcome, settings)
        print_report_path(outcome, settings)
    exit_for(outcome)


def _dry_run() -> None:
    from playbook_sync.dryrun import dry_run

    with services(playbook=True) as settings:
        try:
            result = dry_run(settings)
        except store.RunLocked as exc:
            console.print(f"[yellow]dry run refused:[/yellow] {exc}", highlight=False)
            raise typer.Exit(1) from None
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for diff in result.diffs.values():
        for line in diff.splitlines():
            style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1])
            console.print(line, style=style, markup=False, highlight=False)
        console.print()
    console.print(f"[bold]dry run[/bold]: {len(result.diffs)} file(s) would change; nothing was committed or recorded")
    print_summary(result.summary | {"commit_sha": None}, settings)
    print_report_path(result.summary, settings)
    if result.summary.get("status") == "failed":
        raise typer.Exit(1)


def demo() -> None:
    """Run the real chord on a real worker over embedded services against the sample playbook."""
    from playbook_sync import demo as sample
    from playbook_sync.providers.localgit import init_repo

    with services() as settings:
        if settings.playbook != "local":
            raise typer.BadParameter("the demo uses a local playbook repository (PLAYBOOK_SYNC_PLAYBOOK=local)")
        repo_path = settings.playbook_path
        if not (repo_path / ".git").exists():
            init_repo(repo_path, sample.playbook_files(), branch=settings.branch, message="Sample playbook")
            console.print(f"created the sample playbook repository at {repo_path}")
        with db.session_scope(settings.database_url) as session:
            added = store.upsert_entries(session, entries=sample.entries(datetime.now(UTC)))
        console.print(f"ingested {added} new sample knowledge entries")
        reports_added = sample.ingest_reports(settings, datetime.now(UTC))  # execution reports (issue 13)
        console.print(f"stored {reports_added} sample execution reports (new or refreshed)")
        from playbook_sync.worker.app import app as celery_app

        with maybe_worker(celery_app, True, settings) as worker:
            outcome = start_and_follow(settings, trigger="demo", worker=worker)
        print_summary(outcome, settings)
        print_report_path(outcome, settings)
        _sample_playbook(settings)
        console.print(f"playbook repository: {repo_path.resolve()}")
        console.print(f"look at it with: git -C {repo_path} log --stat")
    exit_for(outcome)


def _sample_playbook(settings) -> None:
    """The Playbook Builder's sample, generated over the same knowledge (see builder/demo.py)."""
    from playbook_sync.builder.demo import sample_playbook
    from playbook_sync.deps import Deps

    playbook_id, made = sample_playbook(Deps.from_settings(settings))
    console.print(f"{'generated' if made else 'kept'} the sample playbook: open it with `playbook-sync serve`, then "
                  f"http://127.0.0.1:{settings.api_port}/playbooks/{playbook_id}", highlight=False)


# -- enqueue ---------------------------------------------------------------------------


def _run_or_enqueue(scope: dict | Callable[[Settings], dict], wait: bool) -> None:
    """Ad-hoc runs go through the same chord; on the embedded profile a local worker runs them.

    scope may be a function of the settings (it needs the database to resolve): one
    services block serves the whole command.
    """
    embedded = not get_settings().broker_url
    with services(playbook=True) as settings:
        from playbook_sync.worker.app import app as celery_app
        from playbook_sync.worker.tasks import start_run

        scope = scope(settings) if callable(scope) else scope
        _check_scope(settings, scope)
        if not embedded and not wait:
            result = start_run.delay(trigger="enqueue", scope=scope)
            console.print(f"enqueued start_run (task {result.id})")
            return
        with maybe_worker(celery_app, embedded, settings) as worker:
            outcome = start_and_follow(settings, trigger="enqueue", scope=scope, worker=worker)
        print_summary(outcome, settings)
    exit_for(outcome)


def _check_scope(settings: Settings, scope: dict) -> None:
    """Refuse a bad request here, with its reason, before anything is sent."""
    from playbook_sync import adhoc

    with db.session_scope(settings.database_url) as session:
        try:
            planned = adhoc.plan(session, adhoc.Scope.from_dict(scope), watermark=store.last_window_end(session),
                                 now=datetime.now(UTC))
        except adhoc.ScopeError as exc:
            console.print(f"[red]refused:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    moves = "moves the weekly window" if not planned.trigger.startswith(adhoc.NON_ADVANCING) else "leaves the weekly window alone"
    console.print(f"{len(planned.entry_ids)} entries; this run {moves}", highlight=False)


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
        from playbook_sync.report import find_run

        with db.session_scope(settings.database_url) as session:
            try:
                return {"kind": "run", "run_id": str(find_run(session, run_id).id)}
            except LookupError as exc:
                raise typer.BadParameter(str(exc)) from None

    _run_or_enqueue(resolve, wait)
