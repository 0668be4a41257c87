"""What the commands share: the console, the services block, the local worker, run summaries, errors.

Every command module imports this one; nothing here imports a command module or the package
`__init__` (which registers the commands), so the CLI's imports form no loop.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table

from playbook_sync import db
from playbook_sync.config import Settings, get_settings
from playbook_sync.errors import explain
from playbook_sync.local_services import local_services

console = Console(soft_wrap=True)  # paths and file:line errors must stay on one line

# Read from the environment directly: Settings may be the very thing that fails. --debug adds to it.
_debug = os.environ.get("PLAYBOOK_SYNC_DEBUG", "").strip().lower() in ("1", "true", "yes")


def set_debug(on: bool) -> None:
    """--debug: show tracebacks instead of sentences."""
    global _debug
    _debug = _debug or on


def sentence(exc: BaseException) -> str | None:
    """The one line a known failure becomes, or None (unknown, or --debug): then the traceback shows."""
    return None if _debug else explain(exc)


def print_error(message: str) -> None:
    """An error line on stderr, printed as is."""
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", highlight=False, markup=False)


@contextmanager
def services(*, broker: bool = True, playbook: bool = False) -> Iterator[Settings]:
    """Configured services, or embedded ones when no URL is set; settings re-read with the URLs.

    The configuration is checked first (providers, configured services, and the playbook when
    the command reads it), so a wrong setting is one line before anything starts. broker=False
    for commands that never send a task (ingest keeps working while Redis is down).
    """
    import playbook_sync.cli.preflight as preflight

    base = get_settings()
    preflight.check_data_dir(base)
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


# -- the local worker ----------------------------------------------------------------------


@contextmanager
def maybe_worker(celery_app, embedded: bool, settings: Settings):
    """On the embedded profile a local worker for as long as the block runs; elsewhere None."""
    if not embedded:
        yield None
        return
    with local_worker_guard(settings), local_worker(celery_app, settings) as proc:
        yield proc


def local_worker(celery_app, settings: Settings):
    """The local worker process (a context manager: started, ready, stopped at exit); its log in DATA_DIR."""
    from playbook_sync.worker.local import worker_process

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The worker runs in the project's directory: give it our absolute paths and .env file.
    return worker_process(celery_app, log_file=settings.data_dir / "worker.log", env=settings.worker_env())


@contextmanager
def local_worker_guard(settings: Settings) -> Iterator[None]:
    """On the embedded profile: end runs left 'running' by a command that is gone, then hold the claim.

    The embedded broker and worker live only as long as the command that started them, so
    a run still 'running' while no such command is alive can never finish. Each command
    that starts a local worker holds an exclusive lock on DATA_DIR/local-worker.lock (the
    OS drops it when the process dies, even by SIGKILL); whoever gets the lock knows no
    other command's local worker is alive, and ends (adopting a landed commit) every
    running run. A command that cannot get the lock leaves runs alone.
    """
    import fcntl

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "local-worker.lock", "w") as lock:  # noqa: PTH123
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield  # another command's local worker is alive: its run is not ours to judge
            return
        _reap_abandoned(settings)
        yield


def _reap_abandoned(settings: Settings) -> None:
    from playbook_sync import store

    with db.session_scope(settings.database_url) as session:
        running = store.running_run_since(session, since=None)
    if running is None:
        return
    ended = end_run(settings, running, "abandoned: the command whose local worker ran it is gone")
    if ended is None:
        return
    short = str(running)[:8]
    if ended.get("adopted"):
        console.print(f"run {short} was left running by a command that is gone, after its commit "
                      f"{ended['adopted'][:12]} landed; adopted it (run {ended['status']})", highlight=False)
    else:
        console.print(f"run {short} was left running by a command that is gone; marked it failed "
                      "(its entries are owed to the next run)", highlight=False)


def end_run(settings: Settings, run_id: uuid.UUID, error: str, by: str | None = None) -> dict | None:
    """finalize.fail_run with providers from settings: adopt a landed commit, else fail the run (by: who ends it)."""
    from playbook_sync.deps import Deps
    from playbook_sync.finalize import fail_run

    return fail_run(Deps.from_settings(settings), run_id=run_id, error=error, by=by)


# -- a run's outcome -----------------------------------------------------------------------

EXIT_CODES = {"success": 0, "failed": 1, "partial": 2}  # documented in the README (Commands)


def exit_for(outcome: dict) -> None:
    """Exit 1 for a failed run, 2 for a partial one; return for success."""
    code = EXIT_CODES.get(str(outcome.get("status")), 1)
    if code:
        raise typer.Exit(code)


def print_summary(outcome: dict, settings: Settings) -> None:
    """The run's counts, SOPs, commit, pull request and cost (a refused run: why, and exit 1)."""
    if "run_id" not in outcome:
        console.print(f"[yellow]run refused:[/yellow] {outcome.get('reason')}")
        raise typer.Exit(1)
    table = Table(title=f"run {outcome['run_id']} — {outcome['status']}")
    columns = ("entries", "enriched", "redundant", "orphaned", "deferred", "failed")
    # Held entries (learning.py) have no counter of their own on the run: they are the rest of a finished run's entries.
    held = (outcome["entries"] or 0) - sum(outcome[c] or 0 for c in columns[1:])
    for column in (*columns, "held"):
        table.add_column(column, justify="right")
    table.add_row(*(str(outcome[c]) for c in columns), str(held))
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


def print_report_path(outcome: dict, settings: Settings) -> None:
    """Where the run's HTML report is, when it was written."""
    from playbook_sync.report import paths_for

    if "run_id" in outcome:
        html = paths_for(settings, outcome["run_id"])[1]
        if html.exists():
            console.print(f"report: {html}", highlight=False)


# -- ingesting files -----------------------------------------------------------------------


def open_input(file) -> object:
    """The file opened for reading, before any service starts: a wrong path is one line, at once."""
    try:
        return file.open("rb")
    except OSError as exc:
        reasons = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory", PermissionError: "permission denied"}
        print_error(f"cannot read {file}: {reasons.get(type(exc), exc.strerror or str(exc))}")
        raise typer.Exit(1) from None


def print_ingested(parsed, summary: str, settings: Settings, source: str) -> None:
    """Warnings, rejected lines and the summary of an ingest; rejected lines kept in a file; exit 1 if any."""
    from rich.markup import escape

    from playbook_sync.ingest import write_rejects

    for warning in parsed.warnings:
        console.print(f"[yellow]{escape(warning)}[/yellow]", highlight=False)
    for error in parsed.errors:
        console.print(f"[red]rejected[/red] {escape(error)}", highlight=False)
    console.print(summary + (f", {len(parsed.warnings)} warnings" if parsed.warnings else ""), highlight=False)
    kept = write_rejects(parsed, settings.data_dir / "rejected", source)
    if kept:
        console.print(f"rejected lines kept with their reasons in {kept}", markup=False, highlight=False)
    if parsed.errors:
        raise typer.Exit(1)
