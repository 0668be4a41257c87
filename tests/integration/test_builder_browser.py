"""The Playbook Builder in a real browser: headless Chromium from the system's packages, driven by Playwright.

Create a playbook, add a scenario, generate its content (real worker, offline provider), edit an
objection, reload and see the edit, export Markdown, publish; the builder page's screenshot is
saved to tests/artifacts/builder.png. Chromium is installed here when missing (never skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from playbook_sync.api import create_app
from playbook_sync.worker.app import app
from playbook_sync.worker.local import worker_process
from tests.http import served
from tests.integration.test_builder_generation import knowledge  # noqa: F401  (fixture)
from tests.integration.test_faults import worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
OBJECTION = "Your price is {too} high <b>really</b> ``` — ¿por qué? 日本語"


def system_chromium() -> str:
    """The Debian package's Chromium, installed with apt-get when it is missing."""
    if not Path(CHROMIUM).exists():
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env, timeout=600)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, timeout=1200)
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def _commits(repo) -> int:
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True,
                              check=True).stdout)


def test_build_a_playbook_in_the_browser(knowledge, settings, redis_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    executable = system_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with worker_process(app, env=worker_env(settings), log_file=tmp_path / "worker.log", name="browser"), \
            served(create_app(settings)) as client, sync_playwright() as pw:
        base = str(client.base_url).rstrip("/")
        browser = pw.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        page = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{base}/playbooks")
        page.get_by_text("Create new").click()
        page.get_by_label("Title", exact=True).first.fill("Enterprise SaaS for CTOs")
        page.get_by_label("Target persona").first.fill("CTO")
        page.get_by_role("button", name="Create playbook").click()
        expect(page.get_by_label("Playbook title")).to_have_value("Enterprise SaaS for CTOs")
        page.get_by_label("New scenario").fill("Discovery Call with CTO")
        page.get_by_role("button", name="Add scenario").click()
        expect(page.get_by_role("link", name="Discovery Call with CTO")).to_be_visible()
        page.get_by_role("button", name="Generate content").click()
        expect(page.get_by_label("Key messages (one per line)")).not_to_have_value("", timeout=90_000)
        expect(page.locator("#job")).to_contain_text("done")
        first = page.get_by_label("Objection 1")
        first.fill(OBJECTION)
        page.get_by_role("button", name="Save scenario").click()
        expect(page.get_by_role("status").first).to_contain_text("Saved")
        page.reload()
        expect(page.get_by_label("Objection 1")).to_have_value(OBJECTION)
        with page.expect_download() as download:
            page.get_by_role("link", name="Export Markdown").click()
        markdown = Path(download.value.path()).read_text(encoding="utf-8")
        assert OBJECTION in markdown and "## Discovery Call with CTO" in markdown
        shot = ARTIFACTS / "builder.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"builder screenshot: {shot}")
        before = _commits(settings.playbook_path)
        page.get_by_role("button", name="Publish to the playbook").click()
        expect(page.locator(".sidebar")).to_contain_text("Published as docs/sops/")
        assert _commits(settings.playbook_path) == before + 1
        # Generate with AI from the library: the builder page follows the job, then lists 3 scenarios.
        page.goto(f"{base}/playbooks")
        page.get_by_text("Generate with AI").click()
        form = page.locator("form[action='/playbooks/generate']")
        form.get_by_label("Title").fill("Mid-market retainer")
        form.get_by_label("Target persona").fill("Founder")
        form.get_by_label("Scenarios (3 to 6)").fill("3")
        form.get_by_role("button", name="Generate playbook").click()
        expect(page.locator("ol.scenarios li")).to_have_count(3, timeout=90_000)
        page.goto(f"{base}/playbooks")
        expect(page.locator("li.playbook")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)
        browser.close()
