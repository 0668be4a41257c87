"""Prompt files: one per step, parts and variables checked when loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from playbook_sync import prompts
from playbook_sync.config import Settings
from playbook_sync.prompts import PromptError
from playbook_sync.providers.anthropic import AnthropicLLM

pytestmark = pytest.mark.unit


def test_every_step_has_a_prompt_file_that_loads():
    loaded = prompts.load_all()
    names = ["build_modules", "build_playbook", "classify_entry", "draft_sop", "extract_lessons", "generate_edit", "name_cluster"]
    assert sorted(loaded) == names
    assert {n: (p.path.parent, p.path.name) for n, p in loaded.items()} == {n: (prompts.default_dir(), f"{n}.md") for n in names}
    classify = loaded["classify_entry"]
    assert list(classify.parts) == ["system", "sop", "task"]  # stable parts first, for caching


def test_rendering_fills_variables_once_and_checks_them():
    prompt = prompts.load("name_cluster")
    text = prompt.render("task", entries="uses {{feedback}} literally", feedback="")
    assert "uses {{feedback}} literally" in text  # values are not expanded again
    with pytest.raises(PromptError, match=r"missing \['feedback'\]"):
        prompt.render("task", entries="x")


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    shutil.copytree(prompts.default_dir(), tmp_path / "prompts")
    return tmp_path / "prompts"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("{{sop_text}}", ""), r"classify_entry.md:\d+: part 'sop' must use .*missing \['sop_text'\]"),
    (lambda t: t.replace("{{content}}", "{{contnet}}"), r"missing \['content'\], unknown \['contnet'\]"),
    (lambda t: t.replace("<!-- part: task -->", "<!-- part: tasks -->"), "unexpected part 'tasks'"),
    (lambda t: t.replace("{{tags}}", "{{tags}} {{ 2x }}"), "malformed"),
    (lambda t: "preamble\n" + t, "text before the first"),
])
def test_a_broken_prompt_fails_at_load_not_at_call_time(prompt_dir: Path, edit, message):
    path = prompt_dir / "classify_entry.md"
    path.write_text(edit(path.read_text()))
    with pytest.raises(PromptError, match=message):
        prompts.load_all(prompt_dir)
    # the provider loads its prompts when it is built, so a worker fails at start-up
    settings = Settings(_env_file=None, anthropic_api_key="sk-ant-test-000000", prompts_dir=prompt_dir)
    with pytest.raises(PromptError, match=message):
        AnthropicLLM(settings)


def test_a_missing_prompt_file_names_the_setting(prompt_dir: Path):
    (prompt_dir / "draft_sop.md").unlink()
    with pytest.raises(PromptError, match="draft_sop.md.*PLAYBOOK_SYNC_PROMPTS_DIR"):
        prompts.load_all(prompt_dir)
