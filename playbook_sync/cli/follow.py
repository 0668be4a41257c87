"""Starting a run and following it to its end with a progress bar (run, demo, enqueue).

The waiting itself is playbook_sync.worker.local's (await_task, follow_run); this module turns what they
report into a progress bar and sentences, and ends a run that can no longer finish.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from playbook_sync import db, store
from playbook_sync.cli.shared import console, end_run
from playbook_sync.config import Settings
from playbook_sync.errors import explain

STALL_NOTICE = 60.0  # seconds without progress before the CLI says what it is waiting for
RUN_TIMEOUT = 3600.0  # how long run --wait follows a run


def start_and_follow(settings: Settings, *, trigger: str, scope: dict | None = None, timeout: float | None = None,
                     worker=None) -> dict:
    """Send start_run, then show entries done / total while the chord runs; return the run summary.

    worker is the local worker process on the embedded profile: if it dies or the broker stops
    answering, the run can never finish, so it is ended here (adopting a commit that landed)
    and the command says so and exits 1. Elsewhere the wait is bounded by timeout and says
    what it is waiting for when nothing moves.
    """
    from playbook_sync.worker.local import Liveness, WorkerLost
    from playbook_sync.worker.tasks import start_run

    timeout = RUN_TIMEOUT if timeout is None else timeout
    check = Liveness(worker, settings.broker_url) if worker is not None else None
    sent_at = datetime.now(UTC)
    result = start_run.delay(trigger=trigger, scope=scope)
    deadline = time.monotonic() + timeout
    try:
        meta = _await_start(result, deadline=deadline, check=check, settings=settings)
    except WorkerLost as exc:
        return _lost(settings, _opened_since(settings, sent_at - timedelta(seconds=2)), str(exc))
    if meta["status"] != "SUCCESS":
        if isinstance(meta.get("result"), Exception) and explain(meta["result"]):  # e.g. no SOPs under DOCS_ROOT,
            raise meta["result"]  # a rejected key: cli.main prints the one line
        raise RuntimeError(f"start_run {meta['status'].lower()}: {meta.get('result')}")
    started = meta["result"]
    if "run_id" not in started:
        return started
    run_id = uuid.UUID(started["run_id"])
    try:
        return follow(settings, run_id, deadline=deadline, check=check)
    except WorkerLost as exc:
        return _lost(settings, run_id, str(exc))
    except TimeoutError:
        if worker is not None:  # our worker stops when this command ends: the run could never finish
            return _lost(settings, run_id, f"still running after {timeout:.0f}s")
        console.print(f"[yellow]run {run_id} still running after {timeout:.0f}s[/yellow]; it goes on in the "
                      f"background: `playbook-sync runs show {str(run_id)[:8]}`", highlight=False)
        raise typer.Exit(1) from None


def _await_start(result, *, deadline: float, check, settings: Settings) -> dict:
    """start_run's stored meta (playbook_sync.worker.local.await_task), with the CLI's sentences for a wait that stalls."""
    from playbook_sync.worker.local import BrokerSilent, await_task

    noticed = False

    def on_wait(waited: float) -> None:
        nonlocal noticed
        if check is None and not noticed and waited > STALL_NOTICE:  # a local worker is ours: nothing to ask
            noticed = True
            console.print(f"waiting for a worker to take start_run from queue {settings.queue} "
                          f"(is a worker running against this broker?)", highlight=False)

    try:
        return await_task(result, deadline=deadline, check=check, on_wait=on_wait)
    except BrokerSilent as exc:  # elsewhere the run (if any) is the workers' business, not ours to fail
        console.print(f"[red]the broker does not answer:[/red] {exc} (PLAYBOOK_SYNC_BROKER_URL)", highlight=False)
        raise typer.Exit(1) from None
    except TimeoutError:
        console.print(f"[yellow]no worker took start_run (task {result.id}) from queue {settings.queue} "
                      "in time[/yellow]; it stays queued and runs when a worker starts", highlight=False)
        raise typer.Exit(1) from None


def follow(settings: Settings, run_id: uuid.UUID, *, deadline: float, check=None, poll: float = 0.3) -> dict:
    """A live progress bar of the run's items until the run leaves 'running' (playbook_sync.worker.local.follow_run)."""
    from playbook_sync.worker.local import follow_run

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("entries"), TimeElapsedColumn())
    last = {"seen": None, "since": time.monotonic()}

    def progress_to(total: int, pending: int) -> None:
        progress.update(task, total=total, completed=total - pending,
                        description=f"run {str(run_id)[:8]}" + (" finalizing" if total and not pending else ""))
        if last["seen"] != (total, pending):
            last["seen"], last["since"] = (total, pending), time.monotonic()
        elif check is None and time.monotonic() - last["since"] > STALL_NOTICE:  # say what we are waiting for
            last["since"] = time.monotonic()
            what = f"{pending} of {total} entries still pending" if pending else "finalize_run (all entries done)"
            progress.console.print(f"run {str(run_id)[:8]}: no progress for {STALL_NOTICE:.0f}s; waiting for {what} "
                                   f"on queues {settings.queue}/{settings.llm_queue}; giving up in "
                                   f"{max(0, deadline - time.monotonic()):.0f}s", highlight=False)

    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(f"run {str(run_id)[:8]}", total=None)
        return follow_run(settings.database_url, run_id, deadline=deadline, poll=poll, on_progress=progress_to, check=check)


def _opened_since(settings: Settings, since: datetime) -> uuid.UUID | None:
    """The running run opened at or after since (the one our lost start_run opened), if any."""
    with db.session_scope(settings.database_url) as session:
        return store.running_run_since(session, since=since)


def _lost(settings: Settings, run_id: uuid.UUID | None, reason: str) -> dict:
    """End a run that can no longer finish; say so in one line. Exits 1 unless its commit had landed."""
    if run_id is None:
        console.print(f"[red]run not started:[/red] {reason}; no run was opened", highlight=False)
        raise typer.Exit(1)
    ended = end_run(settings, run_id, reason, by="the command that was following it")
    short = str(run_id)[:8]
    if ended is None:  # it finished after all
        from playbook_sync.lifecycle import summary
        from playbook_sync.report import find_run

        with db.session_scope(settings.database_url) as session:
            return summary(find_run(session, str(run_id)))
    if ended.get("adopted"):
        console.print(f"[yellow]run {short}:[/yellow] {reason} after its commit {ended['adopted'][:12]} landed; "
                      f"adopted it (run {ended['status']})", highlight=False)
        return ended
    console.print(f"[red]run {short} failed:[/red] {reason}; the window stays and its entries are owed to the next run",
                  highlight=False)
    raise typer.Exit(1)
