"""The `playbook-sync` command line (typer)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from playbook_sync import db, store
from playbook_sync.config import Settings, get_settings
from playbook_sync.embedded import local_services
from playbook_sync.ingest import write_rejects

app = typer.Typer(help="Keep a Docusaurus playbook alive from captured call knowledge.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(soft_wrap=True)  # paths and file:line errors must stay on one line


def _print_version(value: bool) -> None:
    if value:
        from playbook_sync import __version__

        console.print(f"playbook-sync {__version__}", highlight=False)
        raise typer.Exit()




@contextmanager
def services(*, broker: bool = True, playbook: bool = False) -> Iterator[Settings]:
    """Configured services, or embedded ones when no URL is set; settings re-read with the URLs.

    The configuration is checked first (providers, configured services, and the playbook when
    the command reads it), so a wrong setting is one line before anything starts. broker=False
    for commands that never send a task (ingest keeps working while Redis is down).
    """
    from playbook_sync import preflight

    base = get_settings()
    preflight.check_providers(base)
    preflight.check_services(base, broker=broker)
    if playbook:
        preflight.check_playbook(base)
    try:
        with local_services(base.data_dir, base.database_url, base.broker_url):
            get_settings.cache_clear()  # pick up the URLs the embedded services exported
            settings = get_settings()
            db.upgrade(settings.database_url)
            yield settings
    finally:
        get_settings.cache_clear()  # the exported URLs are gone again; so are the services


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (creates the pgvector extension first)."""
    with services(broker=False):
        console.print(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(None, help="target revision, e.g. -1 or base (base drops every table)"),
                 yes: bool = typer.Option(False, "--yes", "-y", help="do it without asking")) -> None:
    """Revert migrations: drops the tables (and their data) of every later revision."""
    # Downgrading destroys data; it needs a revision typed out and a confirmation.
    if not revision:
        console.print("refused: name the revision to go down to (e.g. `db downgrade -1 --yes`; `base` drops every table)",
                      highlight=False, markup=False)
        raise typer.Exit(1)
    if not yes:
        answer = typer.prompt(f"this drops tables and data down to {revision}; type the revision to confirm",
                              default="", show_default=False) if sys.stdin.isatty() else None
        if answer != revision:
            console.print("refused: downgrading drops data; pass --yes (or confirm on a terminal)", highlight=False,
                          markup=False)
            raise typer.Exit(1)
    with services(broker=False) as settings:
        db.downgrade(settings.database_url, revision)
        console.print(f"database downgraded to {revision}")


@app.command()
def ingest(file: Path) -> None:
    """Load knowledge entries from JSONL; malformed lines are rejected with line number and reason."""
    from rich.markup import escape

    from playbook_sync.ingest import load, read_lines

    try:
        handle = file.open("rb")  # before any service starts: a wrong path is one line, at once
    except OSError as exc:
        reasons = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory", PermissionError: "permission denied"}
        console.print(f"cannot read {file}: {reasons.get(type(exc), exc.strerror or str(exc))}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    with handle, services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        loaded = load(session, read_lines(handle), str(file))
    parsed = loaded.parsed
    for warning in parsed.warnings:
        console.print(f"[yellow]{escape(warning)}[/yellow]", highlight=False)
    for error in parsed.errors:
        console.print(f"[red]rejected[/red] {escape(error)}", highlight=False)
    console.print(f"{loaded.added} new entries, {loaded.present} already present, {len(parsed.errors)} rejected"
                  + (f", {len(parsed.warnings)} warnings" if parsed.warnings else ""))
    kept = write_rejects(parsed, settings.data_dir / "rejected", str(file))
    if kept:
        console.print(f"rejected lines kept with their reasons in {kept}", markup=False, highlight=False)
    if parsed.errors:
        raise typer.Exit(1)


@app.command()
def run(wait: bool = typer.Option(False, help="Wait for the run, with a progress bar (always, on the embedded profile)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Run every step, commit nothing, keep no run state; "
                                     "print the diff of every SOP it would change or create.")) -> None:
    """Enqueue a run; on the embedded profile a local worker runs it."""
    if dry_run:
        _dry_run()
        return
    embedded = not get_settings().broker_url
    with services(playbook=True) as settings:
        from worker.app import app as celery_app
        from worker.tasks import start_run

        if not embedded and not wait:
            result = start_run.delay(trigger="manual")
            console.print(f"enqueued start_run (task {result.id})")
            return
        from playbook_sync.cli_runs import start_and_follow

        with _maybe_worker(celery_app, embedded, settings) as worker:
            outcome = start_and_follow(settings, trigger="manual", worker=worker)
        _print_summary(outcome, settings)
        _print_report_path(outcome, settings)
    exit_for(outcome)


def _dry_run() -> None:
    from playbook_sync.dryrun import dry_run
    from playbook_sync.store import RunLocked

    with services(playbook=True) as settings:
        try:
            result = dry_run(settings)
        except RunLocked as exc:
            console.print(f"[yellow]dry run refused:[/yellow] {exc}", highlight=False)
            raise typer.Exit(1) from None
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for path, diff in result.diffs.items():
        for line in diff.splitlines():
            style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1])
            console.print(line, style=style, markup=False, highlight=False)
        console.print()
    console.print(f"[bold]dry run[/bold]: {len(result.diffs)} file(s) would change; nothing was committed or recorded")
    _print_summary(result.summary | {"commit_sha": None}, settings)
    _print_report_path(result.summary, settings)
    if result.summary.get("status") == "failed":
        raise typer.Exit(1)


def _print_report_path(outcome: dict, settings: Settings) -> None:
    from playbook_sync.report import paths_for

    if "run_id" in outcome:
        html = paths_for(settings, outcome["run_id"])[1]
        if html.exists():
            console.print(f"report: {html}", highlight=False)


@contextmanager
def _maybe_worker(celery_app, embedded: bool, settings: Settings):
    if not embedded:
        yield None
        return
    from playbook_sync.cli_runs import local_worker_guard
    from worker.local import worker_process

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The worker runs in the project's directory: give it our absolute paths and .env file.
    with local_worker_guard(settings), worker_process(celery_app, log_file=settings.data_dir / "worker.log",
                                                      env=settings.worker_env()) as proc:
        yield proc


EXIT_CODES = {"success": 0, "failed": 1, "partial": 2}  # documented in the README (Commands)


def exit_for(outcome: dict) -> None:
    """Exit 1 for a failed run, 2 for a partial one; return for success."""
    code = EXIT_CODES.get(str(outcome.get("status")), 1)
    if code:
        raise typer.Exit(code)


@app.command()
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
        from playbook_sync.cli_runs import start_and_follow
        from worker.app import app as celery_app

        with _maybe_worker(celery_app, True, settings) as worker:
            outcome = start_and_follow(settings, trigger="demo", worker=worker)
        _print_summary(outcome, settings)
        _print_report_path(outcome, settings)
        console.print(f"playbook repository: {repo_path.resolve()}")
        console.print(f"look at it with: git -C {repo_path} log --stat")
    exit_for(outcome)


def _print_summary(outcome: dict, settings: Settings) -> None:
    if "run_id" not in outcome:
        console.print(f"[yellow]run refused:[/yellow] {outcome.get('reason')}")
        raise typer.Exit(1)
    table = Table(title=f"run {outcome['run_id']} — {outcome['status']}")
    for column in ("entries", "enriched", "redundant", "orphaned", "deferred", "failed"):
        table.add_column(column, justify="right")
    table.add_row(*(str(outcome[c]) for c in ("entries", "enriched", "redundant", "orphaned", "deferred", "failed")))
    console.print(table)
    for path in outcome["sops_enriched"]:
        console.print(f"  enriched {path}")
    for path in outcome["sops_created"]:
        console.print(f"  created  {path}")
    console.print(f"commit: {outcome['commit_sha'] or 'none (nothing to change)'}")
    if outcome.get("pull_request_url"):
        console.print(f"pull request: {outcome['pull_request_url']}", highlight=False)
    from playbook_sync.costs import summarize

    console.print(f"cost: {summarize(outcome.get('usage'))}", highlight=False)


from playbook_sync import cli_ops  # noqa: E402  (operator commands; imports this module lazily)

cli_ops.register(app)


# Read from the environment directly: Settings may be the very thing that fails.
_debug = os.environ.get("PLAYBOOK_SYNC_DEBUG", "").strip().lower() in ("1", "true", "yes")


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the installed version and exit."),
             debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (or PLAYBOOK_SYNC_DEBUG=1).")) -> None:
    """Keep a Docusaurus playbook alive from captured call knowledge."""
    global _debug
    _debug = _debug or debug


def main() -> None:
    """The console script: known configuration and service errors become one line and exit code 1."""
    from playbook_sync.errors import explain

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except Exception as exc:  # the ONE place a known failure becomes a sentence
        message = None if _debug else explain(exc)
        if message is None:
            raise
        Console(stderr=True, soft_wrap=True).print(f"error: {message}", highlight=False, markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
