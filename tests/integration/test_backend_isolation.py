"""Each test's Celery app talks to the Redis its fixtures name, whatever a test before it built (conftest.redis_url)."""

from __future__ import annotations

import pytest

from playbook_sync.worker.app import app
from tests.conftest import _drop_stale_backend

pytestmark = pytest.mark.integration

DEFAULT = "redis://127.0.0.1:6379/0"


def test_a_backend_built_for_another_url_is_replaced_by_redis_urls(redis_url):
    # What a test without redis_url did before this one (in one test, so xdist's order cannot matter):
    # Celery builds app.backend once, for the URL configured at that moment.
    app.conf.update(result_backend=DEFAULT)
    _drop_stale_backend(app, redis_url)
    stale = app.backend
    assert stale.url == DEFAULT
    app.conf.update(result_backend=redis_url)
    assert app.backend is stale, "Celery keeps the backend it built: the reason redis_url must drop it"
    _drop_stale_backend(app, redis_url)
    # Before, the chord of test_publish_batch failed on 127.0.0.1:6379 when it ran after such a test.
    assert app.backend.url == redis_url
    assert app.backend.client.ping()


def test_a_backend_of_this_url_is_kept(redis_url):
    built = app.backend
    _drop_stale_backend(app, redis_url)
    assert app.backend is built
