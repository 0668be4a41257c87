"""Fixtures for pipeline tests: a local playbook repository with the sample SOPs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from playbook_sync import demo
from playbook_sync.deps import Deps
from playbook_sync.providers.localgit import init_repo


@pytest.fixture
def deps(settings) -> Deps:
    """Deps over a fresh sample playbook repository and a fresh database."""
    init_repo(settings.playbook_path, demo.playbook_files(), branch=settings.branch)
    return Deps.from_settings(settings)


@pytest.fixture
def api(settings):
    """The real FastAPI app on a real server over the test database, no token: (client, settings)."""
    from playbook_sync import db
    from playbook_sync.api import create_app
    from tests.http import served

    db.upgrade(settings.database_url)
    with served(create_app(settings)) as client:
        yield client


@pytest.fixture
def data() -> Path:
    """A data dir for the CLI tests, outside pytest's tmp dirs: pytest prunes old ones (other sessions' too) while a
    server in them may still be running."""
    path = Path(tempfile.mkdtemp(prefix="playbook-sync-cli-")) / "data"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)
