"""Each test's Celery app talks to the Redis its fixtures name, whatever a test before it built (conftest.redis_url)."""

from __future__ import annotations

import pytest

from playbook_sync.worker.app import app

pytestmark = pytest.mark.integration


def test_a_test_without_redis_builds_the_backend_of_the_default_url():
    # What some tests do without asking for redis_url: Celery builds app.backend once, for this URL.
    assert app.backend.url == app.conf.result_backend


def test_the_next_test_with_redis_url_gets_a_backend_for_its_redis(redis_url):
    # (runs after the one above: same file, same process) Before, the backend built above stayed, and the
    # chord of test_publish_batch failed on 127.0.0.1:6379 when it ran after such a test.
    assert app.backend.url == redis_url
    assert app.backend.client.ping()
