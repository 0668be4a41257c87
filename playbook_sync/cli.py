"""The `playbook-sync` command line (typer)."""

from __future__ import annotations

import logging
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
from playbook_sync.ingest import parse_jsonl, write_rejects

app = typer.Typer(help="Keep a Docusaurus playbook alive from captured call knowledge.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(soft_wrap=True)  # paths and file:line errors must stay on one line


@contextmanager
def services() -> Iterator[Settings]:
    """Configured services, or embedded ones when no URL is set; settings re-read with the URLs."""
    base = get_settings()
    with local_services(base.data_dir, base.database_url, base.broker_url):
        get_settings.cache_clear()  # pick up the URLs the embedded services exported
        settings = get_settings()
        db.upgrade(settings.database_url)
        yield settings


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (creates the pgvector extension first)."""
    with services():
        console.print(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base")) -> None:
    """Revert migrations."""
    with services() as settings:
        db.downgrade(settings.database_url, revision)
        console.print(f"database downgraded to {revision}")


@app.command()
def ingest(file: Path) -> None:
    """Load knowledge entries from JSONL; malformed lines are rejected with line number and reason."""
    parsed = parse_jsonl(file.read_bytes(), str(file))
    with services() as settings, db.session_scope(settings.database_url) as session:
        added = store.upsert_entries(session, entries=parsed.entries)
    for error in parsed.errors:
        console.print(f"[red]rejected[/red] {error}", highlight=False)
    console.print(f"{added} new entries, {len(parsed.entries) - added} already present, {len(parsed.errors)} rejected")
    kept = write_rejects(parsed, settings.data_dir / "rejected", str(file))
    if kept:
        console.print(f"rejected lines kept with their reasons in {kept}")
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
    with services() as settings:
        from worker.app import app as celery_app
        from worker.tasks import start_run

        if not embedded and not wait:
            result = start_run.delay(trigger="manual")
            console.print(f"enqueued start_run (task {result.id})")
            return
        from playbook_sync.cli_ops import start_and_follow

        with _maybe_worker(celery_app, embedded, settings):
            outcome = start_and_follow(settings, trigger="manual")
        _print_summary(outcome, settings)
        _print_report_path(outcome, settings)


def _dry_run() -> None:
    from playbook_sync.dryrun import dry_run
    from playbook_sync.store import RunLocked

    with services() as settings:
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
    from worker.local import worker_process

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with worker_process(celery_app, log_file=settings.data_dir / "worker.log") as proc:
        yield proc


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
        from playbook_sync.cli_ops import start_and_follow
        from worker.app import app as celery_app

        with _maybe_worker(celery_app, True, settings):
            outcome = start_and_follow(settings, trigger="demo")
        _print_summary(outcome, settings)
        _print_report_path(outcome, settings)
        console.print(f"playbook repository: {repo_path.resolve()}")
        console.print(f"look at it with: git -C {repo_path} log --stat")
        if outcome.get("status") not in ("success", "partial"):
            raise typer.Exit(1)


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
from playbook_sync import cli_calibrate  # noqa: E402

cli_calibrate.register(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
