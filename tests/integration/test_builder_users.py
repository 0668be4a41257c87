"""`playbook-sync users add NAME` prints a token once, stores only its hash; the token acts as that user."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from playbook_sync import db
from playbook_sync.api import create_app
from playbook_sync.builder.users import UserError, add_user
from tests.http import served

pytestmark = pytest.mark.integration


def _cli(settings, *args):
    env = {"PATH": os.environ["PATH"], "PLAYBOOK_SYNC_ENV_FILE": os.devnull,
           "PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "playbook_sync.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_users_add_and_list_and_the_token_works(settings):
    added = _cli(settings, "users", "add", "Zoë Ångström")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("psu_")
    with db.get_engine(settings.database_url).connect() as conn:
        stored = conn.execute(text("SELECT name, token_hash FROM cp_users")).all()
    assert stored == [("Zoë Ångström", hashlib.sha256(token.encode()).hexdigest())]  # the hash, never the token
    with db.session_scope(settings.database_url) as session, pytest.raises(UserError, match="exists already"):
        add_user(session, "Zoë  Ångström")  # the same name, spaced differently
    listed = _cli(settings, "users", "list")
    assert "Zoë Ångström" in listed.stdout and token not in listed.stdout
    with served(create_app(settings), token=token) as client:
        made = client.post("/api/playbooks", json={"title": "Mine"})
        assert made.status_code == 201 and made.json()["owner"] == "Zoë Ångström"


def test_a_user_name_that_only_looks_different_is_refused(settings):
    db.upgrade(settings.database_url)
    with db.session_scope(settings.database_url) as session:
        add_user(session, "zoë")
        add_user(session, "Bob")
        for lookalike in ("zoe\u0308", "zoë\u200b", "BOB", " bob\n", "Operator"):
            with pytest.raises(UserError):
                add_user(session, lookalike)


def test_the_local_user_is_looked_up_not_reinserted(settings):
    from playbook_sync.builder.users import local_user_id

    db.upgrade(settings.database_url)
    with db.session_scope(settings.database_url) as session:
        first = local_user_id(session)
        assert all(local_user_id(session) == first for _ in range(5))
        user, _ = add_user(session, "Next")
    assert user.id == first + 1  # no sequence values burnt by the lookups
