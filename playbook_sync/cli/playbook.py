"""The playbook and the services around runs: db upgrade|downgrade, ingest, validate, flower."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

from playbook_sync import db
from playbook_sync.cli.shared import console, maybe_worker, open_input, print_ingested, sentence, services
from playbook_sync.config import get_settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (creates the pgvector extension first): this version's code needs the latest."""
    with services(broker=False) as settings:  # (which upgrades)
        console.print(f"database upgraded to head ({db.current_revision(settings.database_url)})")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(None, help="target revision, e.g. -1 or base (base drops every table)"),
                 yes: bool = typer.Option(False, "--yes", "-y", help="do it without asking")) -> None:
    """Revert migrations: drops the tables (and their data) of every later revision."""
    # Downgrading destroys data; it needs a revision typed out and a confirmation.
    if not revision:
        console.print("refused: name the revision to go down to (e.g. `db downgrade --yes -- -1`; `base` drops every table)",
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
        console.print(f"database downgraded to {db.current_revision(settings.database_url) or 'base'}")


def ingest(file: Path) -> None:
    """Load knowledge entries from JSONL; malformed lines are rejected with line number and reason."""
    from playbook_sync.ingest import load, read_lines

    with open_input(file) as handle, services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        loaded = load(session, read_lines(handle), str(file))
    print_ingested(loaded.parsed, f"{loaded.added} new entries, {loaded.present} already present, "
                                  f"{len(loaded.parsed.errors)} rejected", settings, str(file))


def validate(repo: Path = typer.Option(None, help="a checked-out playbook directory (default: the configured playbook)"),
             build: bool = typer.Option(False, "--build", help="also run the site's own Docusaurus build (needs Node and "
                                        "its package.json) in a temporary checkout")) -> None:
    """Lint the playbook: frontmatter, id/title, unique ids, admonitions, MDX hazards; path:line: message."""
    from playbook_sync.sitebuild import read_site
    from playbook_sync.validate import check_tree, read_directory

    settings, out = get_settings(), console
    if repo is not None:
        try:
            files, unread = read_directory(repo, settings.docs_root, max_bytes=settings.max_sop_bytes)
            site = read_site(repo) if build else None  # the build needs the whole site, not only the docs
        except FileNotFoundError as exc:
            raise typer.BadParameter(str(exc)) from None
    else:
        from playbook_sync.deps import build_repo
        from playbook_sync.providers.base import ProviderError

        try:
            playbook = build_repo(settings)
            files, unread = playbook.read_tree(settings.docs_root), []
            site = playbook.read_tree("") if build else None
        except (ProviderError, ValueError) as exc:
            if sentence(exc):
                raise  # a wrong setting: main() says it in one line naming the variable, exit 1 (was a usage box, 2)
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


def _enable_events() -> None:
    """Turn task events on in the running workers now (off by default: settings.task_events), so Flower sees the
    first tasks after it starts; Flower itself re-enables them every few seconds for workers started later."""
    from playbook_sync.worker.app import app as celery_app

    celery_app.control.enable_events()


def flower(port: int = typer.Option(5555, help="HTTP port"), address: str = typer.Option("127.0.0.1", help="listen address")) -> None:
    """Start Flower against the configured broker (embedded profile: with embedded services and a local worker)."""
    settings = get_settings()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "celery", "-A", "playbook_sync.worker.app", "flower", f"--port={port}", f"--address={address}",
           "--persistent=False", "--purge_offline_workers=300"]
    if settings.flower_basic_auth:  # Flower reads FLOWER_BASIC_AUTH; on argv, `ps` would show it
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    elif address in ("127.0.0.1", "localhost", "::1"):
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only: on a real interface the API needs auth
    if settings.broker_url:  # production shape: Flower is all this process is
        _enable_events()
        os.chdir(db.ROOT)
        os.execvpe(cmd[0], cmd, env)
    with services() as local:  # embedded: Flower, the services and a worker live as long as this command
        from playbook_sync.worker.app import app as celery_app

        env.update({k: v for k, v in os.environ.items() if k.startswith("PLAYBOOK_SYNC_")})
        with maybe_worker(celery_app, True, local):
            console.print("embedded services; point other shells at them with:\n"
                          f"  export PLAYBOOK_SYNC_BROKER_URL={local.broker_url}\n"
                          f"  export PLAYBOOK_SYNC_DATABASE_URL='{local.database_url}'", highlight=False)
            console.print(f"Flower on http://{address}:{port} (Ctrl-C stops it)", highlight=False)
            _enable_events()
            proc = subprocess.Popen(cmd, cwd=db.ROOT, env=env)
            signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop Flower with us, then clean up
            try:
                code = proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
                code = proc.wait(10)
    raise typer.Exit(code)
