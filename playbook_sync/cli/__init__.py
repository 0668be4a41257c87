"""The `playbook-sync` command line (typer): the app, every command registered in one place, main().

Commands live in their modules (run: starting runs; history: what runs did; playbook: the
playbook and the services); what they share is in shared. Only this module knows them all,
and none of them imports it, so the CLI's imports form no loop.
"""

from __future__ import annotations

import logging
import sys

import typer

from playbook_sync.cli import calibrate, history, playbook, reports, run, serve, sops, users
from playbook_sync.cli.shared import console, print_error, sentence, set_debug

app = typer.Typer(help="Keep a Docusaurus playbook alive from captured call knowledge.", no_args_is_help=True)
app.add_typer(playbook.db_app, name="db")
app.command()(playbook.ingest)
app.command()(run.run)
app.command()(run.demo)
app.add_typer(history.runs_app, name="runs")
app.add_typer(run.enqueue_app, name="enqueue")
app.command()(history.report)
app.command()(playbook.validate)
app.command()(playbook.flower)
app.command()(calibrate.calibrate)
app.command()(serve.serve)
app.command("ingest-reports")(reports.ingest_reports)
app.command()(reports.search)
sops.sops_app.command("stats")(reports.sops_stats)
app.add_typer(sops.sops_app, name="sops")
app.add_typer(users.users_app, name="users")


def _print_version(value: bool) -> None:
    if value:
        from playbook_sync import __version__

        console.print(f"playbook-sync {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the installed version and exit."),
             debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (or PLAYBOOK_SYNC_DEBUG=1).")) -> None:
    """Keep a Docusaurus playbook alive from captured call knowledge."""
    set_debug(debug)


def main() -> None:
    """The console script: known configuration and service errors become one line and exit code 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except Exception as exc:  # the ONE place a known failure becomes a sentence
        message = sentence(exc)
        if message is None:
            raise
        print_error(message)
        sys.exit(1)
