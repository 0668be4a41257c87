"""`playbook-sync users add NAME | list`: the Playbook Builder's people and their API tokens."""

from __future__ import annotations

import typer

from playbook_sync import db
from playbook_sync.cli.shared import console, services

users_app = typer.Typer(help="Users of the HTTP API and the Playbook Builder (per-user tokens).", no_args_is_help=True)


@users_app.command("add")
def add(name: str = typer.Argument(..., help="the person's name (unique)")) -> None:
    """Create a user and print their API token once (only its hash is stored)."""
    from playbook_sync.builder.users import UserError, add_user

    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        try:
            user, token = add_user(session, name)
        except UserError as exc:
            console.print(f"refused: {exc}", highlight=False, markup=False)
            raise typer.Exit(1) from None
        console.print(f"user {user.name} (id {user.id}) created; their token, shown only now:", highlight=False,
                      markup=False)
        console.print(token, highlight=False, markup=False)


@users_app.command("list")
def list_() -> None:
    """Every user: id, name, created (tokens are never shown again)."""
    from playbook_sync.builder.users import list_users

    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        rows = list_users(session)
        if not rows:
            console.print("no users yet: add one with `playbook-sync users add NAME`", highlight=False, markup=False)
        for user in rows:
            kind = "token" if user.token_hash else "local operator, no token"
            console.print(f"{user.id}\t{user.name}\t{user.created_at:%Y-%m-%d %H:%M}\t{kind}", highlight=False, markup=False)
