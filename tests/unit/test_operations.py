"""Operations plumbing without services: compose + .env.example agree with Settings; structured logs."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from playbook_sync import logs
from playbook_sync.config import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_compose_brings_up_the_whole_stack_from_one_env_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "worker", "worker-llm", "beat", "flower", "api"} <= set(services)
    assert services["postgres"]["image"].startswith("pgvector/pgvector")
    app = [s for s in services.values() if s.get("build") == "."]
    assert {n for n, s in services.items() if s.get("build") == "."} == {"migrate", "worker", "worker-llm", "beat", "flower", "api"}
    assert not any("env_file" in s for s in app)  # .env feeds interpolation; no container gets all of it
    defaults = Settings(_env_file=None)
    llm = " ".join(services["worker-llm"]["command"])
    assert "-P threads" in llm and f"-Q ${{PLAYBOOK_SYNC_LLM_QUEUE:-{defaults.llm_queue}}}" in llm
    assert f"-Q ${{PLAYBOOK_SYNC_QUEUE:-{defaults.queue}}}" in " ".join(services["worker"]["command"])
    assert services["flower"]["command"][:2] == ["playbook-sync", "flower"]
    assert services["api"]["command"][:2] == ["playbook-sync", "serve"]
    assert services["migrate"]["restart"] == "no" and services["migrate"]["command"] == ["playbook-sync", "db", "upgrade"]
    # Every variable compose interpolates is in the committed example, and every PLAYBOOK_SYNC_ one is a setting.
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    assert used <= defined, used - defined
    fields = {f"PLAYBOOK_SYNC_{name.upper()}" for name in Settings.model_fields}
    assert {v for v in defined if v.startswith("PLAYBOOK_SYNC_")} <= fields


def test_logs_carry_run_and_entry_ids_as_json():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    try:
        log = logging.getLogger("playbook_sync.test")
        with logs.bind(run_id="r-1"):
            with logs.bind(entry_id="e-1"):
                log.info("classified %s", "x")
            log.warning("after", extra={"run_id": "explicit"})
        log.info("outside")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["message"], r.get("run_id"), r.get("entry_id")) for r in records] == [
        ("classified x", "r-1", "e-1"), ("after", "explicit", None), ("outside", None, None)]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "playbook_sync.test" and "ts" in records[0]
