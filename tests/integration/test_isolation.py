"""Order independence: only a test that asks for the broker gets one, whatever ran before it."""

from __future__ import annotations

import os

import pytest

from playbook_sync.worker.app import app

pytestmark = pytest.mark.integration


def test_a_test_without_redis_url_has_no_broker(settings):
    # Before: the session fixture set PLAYBOOK_SYNC_BROKER_URL for good, so this held or not
    # depending on whether a broker test had run earlier in the session.
    assert settings.broker_url is None and "PLAYBOOK_SYNC_BROKER_URL" not in os.environ
    assert app.conf.broker_url == "redis://127.0.0.1:6379/0"  # the app's default, not the session Redis


def test_a_test_with_redis_url_gets_it_in_settings_env_and_app(settings, redis_url):
    assert settings.broker_url == redis_url == os.environ["PLAYBOOK_SYNC_BROKER_URL"]
    assert app.conf.broker_url == redis_url and app.conf.result_backend == redis_url
