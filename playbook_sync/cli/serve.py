"""`playbook-sync serve`: the HTTP API and the Playbook Builder pages (uvicorn)."""

from __future__ import annotations

import socket

import typer

from playbook_sync.cli.shared import console, maybe_worker, services
from playbook_sync.config import get_settings
from playbook_sync.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(host: str = typer.Option(None, help="listen address (default PLAYBOOK_SYNC_API_HOST, 127.0.0.1)"),
          port: int = typer.Option(None, help="HTTP port (default PLAYBOOK_SYNC_API_PORT, 8000)")) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the pages; on the embedded profile with a local worker."""
    import uvicorn

    base = get_settings()
    host, port = host or base.api_host, port or base.api_port
    if base.api_token is None and host not in LOOPBACK:
        raise ConfigError("PLAYBOOK_SYNC_API_TOKEN", f"serving on {host} needs a bearer token: set it, "
                                                      "or serve on 127.0.0.1")
    _check_port(host, port)
    embedded = not base.broker_url
    with services() as settings:
        from playbook_sync.api import create_app
        from playbook_sync.worker.app import app as celery_app

        with maybe_worker(celery_app, embedded, settings):
            if settings.api_token is None:
                console.print("no PLAYBOOK_SYNC_API_TOKEN: listening on 127.0.0.1 only, without authentication",
                              highlight=False)
            console.print(f"playbook-sync API on http://{host}:{port} (docs: /docs, pages: /playbooks; Ctrl-C stops it)",
                          highlight=False)
            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """Before any service starts: a port out of range was a uvicorn traceback, one in use a log line
    after the banner had announced the API there."""
    try:
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("PLAYBOOK_SYNC_API_PORT", f"cannot listen on {host}:{port}: {reason}") from None
