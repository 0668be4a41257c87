"""The HTTP API's frame: health, the operator token, body limits, the serve command's refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi import Request
from pydantic import SecretStr

from playbook_sync import db
from playbook_sync.api import create_app
from tests.http import served

pytestmark = pytest.mark.integration


def test_healthz_answers_with_the_database(api):
    reply = api.get("/healthz")
    assert reply.status_code == 200 and reply.json()["status"] == "ok"
    assert api.get("/openapi.json").json()["info"]["title"] == "playbook-sync"


def test_operator_token_is_required_when_configured(settings):
    db.upgrade(settings.database_url)
    guarded = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    app = create_app(guarded)
    with served(app) as anonymous:
        assert anonymous.get("/healthz").status_code == 200  # health needs no token
        assert anonymous.get("/api/runs").status_code == 401
    with served(app, token="wrong") as wrong:
        assert wrong.get("/healthz").status_code == 200
        assert wrong.get("/api/runs").status_code == 401
    with served(app, token="s3cret-token") as operator:
        assert operator.get("/api/runs").status_code == 200


def test_oversized_bodies_get_413_declared_or_streamed(settings):
    db.upgrade(settings.database_url)
    app = create_app(settings.model_copy(update={"api_max_body_bytes": 1000}))

    @app.post("/echo")  # a route that reads its body, as every POST route of the API does
    async def echo(request: Request) -> dict:
        return {"size": len(await request.body())}

    with served(app) as client:
        assert client.post("/echo", content=b"x" * 999).json() == {"size": 999}
        declared = client.post("/healthz", content=b"x" * 5000)
        assert declared.status_code == 413 and "1000 bytes" in declared.json()["detail"]
        streamed = client.post("/echo", content=iter([b"x" * 600, b"y" * 600]))  # chunked: no Content-Length
        assert streamed.status_code == 413


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "playbook_sync.cli", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PLAYBOOK_SYNC_ENV_FILE": "/dev/null"})
    assert proc.returncode == 1
    assert "PLAYBOOK_SYNC_API_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("port", ["99999", "busy"])
def test_serve_says_in_one_line_when_it_cannot_listen(tmp_path, port):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        number = str(busy.getsockname()[1]) if port == "busy" else port
        proc = subprocess.run([sys.executable, "-m", "playbook_sync.cli", "serve", "--port", number],
                              capture_output=True, text=True, cwd=tmp_path, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PLAYBOOK_SYNC_ENV_FILE": "/dev/null"})
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{number}" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "API on" not in proc.stdout
