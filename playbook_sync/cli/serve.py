"""`playbook-sync serve`: the HTTP API and the Playbook Builder pages (uvicorn)."""

from __future__ import annotations

import socket
import sys
from contextlib import nullcontext

import typer

from playbook_sync.cli.shared import console, services
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
        from playbook_sync.cli.supervise import supervised_worker
        from playbook_sync.worker.app import app as celery_app

        api = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="warning"))
        # Embedded: the worker is ours to keep alive (see cli/supervise.py); elsewhere workers are deployed apart.
        worker = supervised_worker(celery_app, settings, stopping=lambda: server.should_exit) if embedded \
            else nullcontext()
        with worker as supervisor:
            if supervisor is not None:
                api.state.worker_problem = supervisor.problem
            if settings.api_token is None:
                console.print("no PLAYBOOK_SYNC_API_TOKEN: listening on 127.0.0.1 only, without authentication",
                              highlight=False)
            console.print(f"playbook-sync API on http://{host}:{port} (docs: /docs, pages: /playbooks; Ctrl-C stops it)",
                          highlight=False)
            try:
                server.run()
            except KeyboardInterrupt:
                pass
            if not server.started:  # as uvicorn.run: the port was taken between the check and now
                sys.exit(3)


def _check_port(host: str, port: int) -> None:
    """Before any service starts: a port out of range was a uvicorn traceback, one in use a log line
    after the banner had announced the API there."""
    try:
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("PLAYBOOK_SYNC_API_PORT", f"cannot listen on {host}:{port}: {reason}") from None
