"""Settings refuse values that cannot work, with one line naming the variable; BANDS merge like PRICES."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import SettingsError

from playbook_sync.config import DEFAULT_BANDS, OFFLINE_EMBEDDING_MODEL, Bands, Settings
from playbook_sync.deps import build_embedder, build_llm, build_repo
from playbook_sync.errors import ConfigError, explain
from playbook_sync.sops import is_doc

pytestmark = pytest.mark.unit


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def refusal(**values) -> str:
    """The one line a user sees for these settings (they must be refused)."""
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    line = explain(caught.value)
    assert line is not None and "\n" not in line
    return line


def test_readme_bands_example_merges_over_the_built_in_bands():
    s = settings(bands={"text-embedding-3-small": {"strong": 0.8, "weak": 0.65}})
    assert s.bands_for("text-embedding-3-small") == Bands(strong=0.8, weak=0.65)
    # The offline model's bands were not replaced by the override of another model.
    assert s.bands_for(OFFLINE_EMBEDDING_MODEL) == DEFAULT_BANDS[OFFLINE_EMBEDDING_MODEL]


def test_a_partial_override_keeps_the_models_other_default():
    s = settings(bands={OFFLINE_EMBEDDING_MODEL: {"strong": 0.5}})
    assert s.bands_for(OFFLINE_EMBEDDING_MODEL) == Bands(strong=0.5, weak=DEFAULT_BANDS[OFFLINE_EMBEDDING_MODEL].weak)


def test_bands_without_a_model_name_are_refused_with_an_example():
    line = refusal(bands={"strong": 75, "weak": 60})
    assert line.startswith("PLAYBOOK_SYNC_BANDS: ") and '"text-embedding-3-small"' in line


@pytest.mark.parametrize("bands, expected", [
    ({"text-embedding-3-small": {"strong": 75, "weak": 60}}, "need 0 < weak <= strong <= 1"),
    ({"m": {"strong": 0.5, "weak": 0.6}}, "need 0 < weak <= strong <= 1"),
    ({"m": {"stong": 0.8, "weak": 0.6}}, "m.stong: unknown key (allowed: strong, weak)"),
])
def test_impossible_or_misspelt_bands_are_refused(bands, expected):
    line = refusal(bands=bands)
    assert line.startswith("PLAYBOOK_SYNC_BANDS: ") and expected in line


# Around the interval's edges, plus the values a typo or a percent makes.
unit_floats = st.floats(min_value=-2, max_value=2) | st.sampled_from([0.0, -0.0, 1.0, 75.0, math.nan, math.inf])


@given(strong=unit_floats, weak=unit_floats)
def test_bands_are_accepted_exactly_when_0_lt_weak_le_strong_le_1(strong, weak):
    ok = 0 < weak <= strong <= 1  # False for NaN
    try:
        s = settings(bands={"some-model": {"strong": strong, "weak": weak}})
    except ValidationError as exc:
        assert not ok, (strong, weak)
        assert explain(exc).startswith("PLAYBOOK_SYNC_BANDS: some-model: need 0 < weak <= strong <= 1")
    else:
        assert ok, (strong, weak)
        assert s.bands_for("some-model") == Bands(strong=strong, weak=weak)
        assert set(DEFAULT_BANDS) < set(s.bands)


@pytest.mark.parametrize("field, bad, good", [
    ("top_k", 0, 1),
    ("max_enrichments_per_sop", 0, 1),
    ("cluster_min_entries", 1, 2),
    ("cluster_similarity", 0.0, 1.0),
    ("cluster_similarity", 1.5, 0.3),
    ("llm_concurrency", 0, 1),
    ("embedding_batch_size", 0, 1),
    ("embedding_batch_size", 2049, 2048),
    ("llm_timeout_seconds", 0.0, 0.5),
    ("llm_max_tokens", 0, 1),
    ("llm_max_retries", -1, 0),
    ("run_deadline_seconds", 0, 1),
    ("watchdog_interval_seconds", -5, 60),
    ("visibility_timeout", 0, 60),
    ("batch_poll_seconds", 0, 1),
    ("embedding_dimensions", 3, 8),  # the offline embedder's floor, named as the setting (was its own error)
])
def test_numeric_settings_out_of_range_are_one_line_naming_the_variable(field, bad, good):
    line = refusal(**{field: bad})
    assert line.startswith(f"PLAYBOOK_SYNC_{field.upper()}: must be ")
    assert getattr(settings(**{field: good}), field) == good  # the boundary that works is accepted


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_cluster_similarity_accepted_exactly_in_0_exclusive_to_1(value):
    ok = 0 < value <= 1
    try:
        settings(cluster_similarity=value)
    except ValidationError as exc:
        assert not ok and "PLAYBOOK_SYNC_CLUSTER_SIMILARITY: must be above 0 and at most 1" in explain(exc)
    else:
        assert ok and not math.isnan(value)


@pytest.mark.parametrize("field", ["llm_timeout_seconds", "llm_retry_base_seconds", "llm_retry_max_seconds",
                                   "task_retry_backoff", "cluster_similarity", "min_callout_confidence"])
@pytest.mark.parametrize("typed", ["inf", "-inf", "nan", "Infinity"])
def test_float_settings_refuse_values_that_are_not_finite(field, typed, monkeypatch):
    # Typed into the environment as text, as a user would: "inf" passed "above 0" before.
    monkeypatch.setenv(f"PLAYBOOK_SYNC_{field.upper()}", typed)
    with pytest.raises(ValidationError) as caught:
        settings()
    assert explain(caught.value).startswith(f"PLAYBOOK_SYNC_{field.upper()}: must be ")


@pytest.mark.parametrize("price, why", [
    ('{"m": {"input": -1, "output": 2}}', "m.input: Input should be greater than or equal to 0"),
    ('{"m": {"input": "nan"}}', "m.input: Input should be a finite number"),
    ('{"m": {"input": 1e309}}', "m.input: Input should be a finite number"),
    ('{"m": {"input": 1, "cache_read": "inf"}}', "m.cache_read: Input should be a finite number"),
])
def test_prices_below_zero_or_not_finite_are_refused(price, why, monkeypatch):
    # A negative or infinite price made every cost figure, and the report's total, nonsense.
    monkeypatch.setenv("PLAYBOOK_SYNC_PRICES", price)
    with pytest.raises(ValidationError) as caught:
        settings()
    assert explain(caught.value) == f"PLAYBOOK_SYNC_PRICES: {why}"


def test_a_free_model_is_a_price_of_zero(monkeypatch):
    monkeypatch.setenv("PLAYBOOK_SYNC_PRICES", '{"local-model": {"input": 0}}')
    assert settings().prices["local-model"].input == 0 and "claude-opus-4-6" in settings().prices


@pytest.mark.parametrize("cron, why", [
    ("99 * * * *", "Invalid end range: 99 > 59"),
    ("0 25 * * *", "Invalid end range: 25 > 23"),
    ("0 0 0 * *", "Invalid beginning range: 0 < 1"),
    ("0 0 * 13 *", "Invalid end range: 13 > 12"),
    ("0 0 * * 8", "Invalid end range: 8 > 6"),
    ("0 0 31 2 *", "never occurs"),
    ("0,,5 * * * *", "empty part"),
    ("x * * * *", "Invalid weekday literal"),
])
def test_a_cron_beat_would_refuse_is_refused_at_start_in_one_sentence(cron, why):
    line = refusal(schedule_cron=cron)
    assert line.startswith("PLAYBOOK_SYNC_SCHEDULE_CRON: not a schedule Celery beat accepts: ") and why in line


@pytest.mark.parametrize("cron", ["0 0 * * 0", "*/15 6 * * mon-fri", "30 6 1,15 * *", "0 0 29 2 *"])
def test_crons_beat_accepts_are_accepted(cron):
    from playbook_sync.worker.schedule import beat_schedule

    assert beat_schedule(settings(schedule_cron=cron))["weekly-playbook-sync"]["schedule"] is not None


@pytest.mark.parametrize("limit", ["fast", "60/x", "/m", "60 per minute", "-1/m", "inf", "nan/s"])
def test_a_rate_limit_celery_cannot_read_is_refused(limit):
    line = refusal(llm_rate_limit=limit)
    assert line.startswith("PLAYBOOK_SYNC_LLM_RATE_LIMIT: not a rate limit: ") and "60/m" in line


@pytest.mark.parametrize("limit, per_second", [("60/m", 1.0), ("10/s", 10.0), ("100/h", 100 / 3600), ("5", 5.0),
                                               ("0.5/s", 0.5), (" 120/m ", 2.0)])
def test_rate_limits_celery_reads_are_accepted(limit, per_second):
    from celery.utils.time import rate

    value = settings(llm_rate_limit=limit).llm_rate_limit
    assert rate(value) == pytest.approx(per_second)  # what the worker's token bucket will use


def test_an_empty_rate_limit_means_none():
    assert settings(llm_rate_limit="").llm_rate_limit is None


@pytest.mark.parametrize("root", ["../..", "..", "/etc", ".", "", "docs/../..", ".git", "a\\b", "docs\tx"])
def test_docs_root_must_be_a_folder_inside_the_repository(root):
    assert refusal(docs_root=root).startswith("PLAYBOOK_SYNC_DOCS_ROOT: must be a folder inside the playbook repository")


def test_docs_root_is_normalised_and_may_be_nested():
    s = settings(docs_root="website/docs/")
    assert s.docs_root == "website/docs"
    assert is_doc("website/docs/sops/a.md", s.docs_root) and not is_doc("website/blog/a.md", s.docs_root)
    assert not is_doc("docs/a.md", s.docs_root)


@pytest.mark.parametrize("field, value, setting", [
    ("playbook", "svn", "PLAYBOOK_SYNC_PLAYBOOK"),
    ("embedder", "nope", "PLAYBOOK_SYNC_EMBEDDER"),
    ("llm", "claude", "PLAYBOOK_SYNC_LLM"),
    ("schedule_cron", "0 0 *", "PLAYBOOK_SYNC_SCHEDULE_CRON"),
    ("broker_url", "junk", "PLAYBOOK_SYNC_BROKER_URL"),
    ("database_url", "junk", "PLAYBOOK_SYNC_DATABASE_URL"),
])
def test_names_and_urls_that_cannot_work_are_refused(field, value, setting):
    assert refusal(**{field: value}).startswith(f"{setting}: ")


def test_a_url_with_a_password_is_not_echoed():
    line = refusal(broker_url="redis:/:hunter2@host")
    assert "hunter2" not in line


def test_plain_postgresql_urls_use_the_shipped_driver():
    assert settings(database_url="postgresql://u:p@h:5432/d").database_url == "postgresql+psycopg2://u:p@h:5432/d"
    assert settings(database_url="postgres://u@h/d").database_url == "postgresql+psycopg2://u@h/d"
    assert settings(database_url="").database_url is None  # empty: the embedded service


def test_invalid_json_names_the_variable(monkeypatch):
    monkeypatch.setenv("PLAYBOOK_SYNC_BANDS", "{bad")
    with pytest.raises(SettingsError) as caught:
        settings()
    assert explain(caught.value).startswith("PLAYBOOK_SYNC_BANDS: not valid JSON (")


def test_several_errors_stay_on_one_line():
    line = refusal(top_k=0, llm_concurrency=0)
    assert "PLAYBOOK_SYNC_TOP_K: " in line and "PLAYBOOK_SYNC_LLM_CONCURRENCY: " in line and "\n" not in line


@pytest.mark.parametrize("build, values, setting", [
    (build_llm, {"llm": "nomodule:Thing"}, "PLAYBOOK_SYNC_LLM"),
    (build_embedder, {"embedder": "playbook_sync.config:NoSuchClass"}, "PLAYBOOK_SYNC_EMBEDDER"),
    (build_llm, {"llm_batch": True}, "PLAYBOOK_SYNC_LLM_BATCH"),
    (build_repo, {"playbook": "github"}, "PLAYBOOK_SYNC_GITHUB_REPO"),
])
def test_providers_that_cannot_be_built_name_their_setting(build, values, setting):
    with pytest.raises(ConfigError) as caught:
        build(settings(**values))
    assert caught.value.setting == setting and str(caught.value).startswith(f"{setting}: ")
    assert explain(caught.value) == str(caught.value)


def test_config_error_survives_a_round_trip_through_its_args():
    # Celery rebuilds a task's exception as cls(*args): the setting must survive it.
    error = ConfigError("PLAYBOOK_SYNC_DOCS_ROOT", "nope/ has no SOPs")
    again = type(error)(*error.args)
    assert str(again) == "PLAYBOOK_SYNC_DOCS_ROOT: nope/ has no SOPs" and again.setting == error.setting


def test_an_unknown_exception_is_not_explained():
    assert explain(KeyError("bug")) is None and explain(ValueError("bug")) is None


@pytest.mark.parametrize(("name", "value"), [("PLAYBOOK_SYNC_API_PORT", "70000"), ("PLAYBOOK_SYNC_API_PORT", "0"),
                                             ("PLAYBOOK_SYNC_API_MAX_BODY_BYTES", "0")])
def test_api_settings_out_of_range_are_refused(name, value, monkeypatch):
    from pydantic import ValidationError

    from playbook_sync.config import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("PLAYBOOK_SYNC_").lower()):
        Settings(_env_file=None)
