"""`playbook-sync sops`: what the learning loop knows about each SOP (issue 14).

A typer group whose default (`sops`, or `sops list`) prints the confidences; other SOP
commands (e.g. a `sops stats`) can join the same group.
"""

from __future__ import annotations

import json

import typer

from playbook_sync import db
from playbook_sync.cli.shared import console, services

sops_app = typer.Typer(help="SOPs as the learning loop sees them: `sops` (or `sops list`) prints confidences.",
                       invoke_without_command=True)


@sops_app.callback()
def sops(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Per SOP: confidence per category and per section, callout states, strongest callouts, lessons."""
    if ctx.invoked_subcommand is None:
        show(as_json)


@sops_app.command("list")
def sops_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Per SOP: confidence per category and per section, callout states, strongest callouts, lessons."""
    show(as_json)


def show(as_json: bool) -> None:
    from playbook_sync.learning_metrics import overview

    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        data = overview(session)
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    if not data:
        console.print("no callouts tracked yet: run playbook-sync first", highlight=False)
    for sop, v in data.items():
        states = ", ".join(f"{k} {n}" for k, n in sorted(v["callouts"].items()))
        console.print(f"[bold]{sop}[/bold]  callouts: {states}", highlight=False)
        for name in ("category", "section"):
            for key, c in sorted(v[name].items(), key=lambda kv: kv[1]["confidence"]):
                console.print(f"  {name:<8} {key[:48]:<48} confidence {c['confidence']:.3f}  "
                              f"(kept {c['kept']}, declined {c['declined']})", highlight=False, markup=False)
        for s in v["strongest"]:
            console.print(f"  strongest helpful {s['helpful']}, sources {s['sources']}: {s['text'][:90]}",
                          highlight=False, markup=False)
        for lesson in v["lessons"]:
            console.print(f"  lesson   {lesson[:110]}", highlight=False, markup=False)
