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
def run(wait: bool = typer.Option(False, help="Wait for the run to finish (always, on the embedded profile).")) -> None:
    """Enqueue a run; on the embedded profile a local worker runs it."""
    embedded = not get_settings().broker_url
    with services() as settings:
        from worker.app import app as celery_app
        from worker.tasks import start_run

        if not embedded and not wait:
            result = start_run.delay(trigger="manual")
            console.print(f"enqueued start_run (task {result.id})")
            return
        from worker.local import start_and_wait

        with _maybe_worker(celery_app, embedded, settings):
            _print_summary(start_and_wait(settings.database_url), settings)


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
        from worker.app import app as celery_app
        from worker.local import start_and_wait

        with _maybe_worker(celery_app, True, settings):
            outcome = start_and_wait(settings.database_url, trigger="demo")
        _print_summary(outcome, settings)
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


@app.command()
def runs(limit: int = 10) -> None:
    """Recent runs."""
    from sqlalchemy import select

    from playbook_sync.models import SyncRun

    with services() as settings, db.session_scope(settings.database_url) as session:
        table = Table("run", "started", "window end", "status", "entries", "enriched", "failed", "commit")
        for r in session.scalars(select(SyncRun).order_by(SyncRun.run_at.desc()).limit(limit)):
            table.add_row(str(r.id)[:8], f"{r.run_at:%Y-%m-%d %H:%M}", f"{r.window_end:%Y-%m-%d %H:%M}", r.status,
                          str(r.entries_processed), str(r.entries_enriched), str(r.entries_failed), (r.commit_sha or "")[:10])
        console.print(table)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
