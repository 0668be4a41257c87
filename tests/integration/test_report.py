"""The run report of a demo run: well-formed, self-contained HTML with counts, histogram and diffs; and the CLI views."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from playbook_sync import demo, pipeline, report, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings

pytestmark = pytest.mark.integration
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Strict(HTMLParser):
    """Well-formedness: every element closed in order, no external resource, plus what the test inspects."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.doctype = False
        self.stats: dict[str, int] = {}
        self.bars = 0
        self.edges: dict[str, float] = {}
        self.diff_lines: list[tuple[str, str]] = []
        self._text: list[str] = []
        self._in: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe") or (a.get("src") or "").startswith("http"):
            self.errors.append(f"external or active content: <{tag}>")
        if tag not in VOID:
            self.stack.append(tag)
        cls = a.get("class") or ""
        if tag == "div" and cls in ("n", "l") or (tag == "div" and self.stack[-2:-1] == ["pre"]):
            self._in, self._text = cls or "ctx", []

    def handle_startendtag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        if tag == "line" and a.get("class") == "band-edge":
            self.edges[a["data-band"]] = float(a["x1"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "rect" and self.stack and self.stack[-1] == "rect":
            self.bars += 1
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if self._in and tag == "div":
            text = "".join(self._text)
            if self._in == "n":
                self._number = int(text)
            elif self._in == "l":
                self.stats[text] = self._number
            else:
                self.diff_lines.append((self._in, text))
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)


def demo_run(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    return pipeline.run_inline(deps, trigger="demo")


def test_demo_run_report_is_valid_html_with_counts_histogram_and_diffs(deps, settings):
    outcome = demo_run(deps)
    json_path, html_path = report.paths_for(settings, outcome["run_id"])
    assert json_path.exists() and html_path.exists()  # written at the end of the run
    data = json.loads(json_path.read_text())
    page = html_path.read_text()
    # The page is about this run: its id, outcome and commit, from the outcome (not from re-rendering the JSON).
    short = outcome["run_id"][:8]
    assert f"<title>playbook-sync · Run {short} — success</title>" in page
    assert f"<dt>commit</dt><dd>{outcome['commit_sha'][:12]}</dd>" in page and "<dt>trigger</dt><dd>demo</dd>" in page
    assert data["run"]["id"] == outcome["run_id"] and data["counts"]["enriched"] == outcome["enriched"]

    parser = Strict()
    parser.feed(page)
    parser.close()
    assert parser.doctype and not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page.replace(str(data["run"]["pull_request_url"]), ""))

    # counts: the stat cards hold the run's numbers
    expected = {k: outcome[k] for k in ("enriched", "redundant", "orphaned", "deferred", "failed")} | {"entries": outcome["entries"]}
    assert parser.stats == expected and outcome["enriched"] > 0 and outcome["deferred"] > 0

    # histogram: one bar per bin, band edges drawn where the bands are (weak left of strong)
    hist = data["histogram"]
    assert parser.bars == len(hist["counts"]) == 20 and sum(hist["counts"]) == outcome["entries"] - outcome["failed"]
    bands = deps.settings.bands_for()
    assert (hist["weak"], hist["strong"]) == (bands.weak, bands.strong)
    assert set(parser.edges) == {"weak", "strong"} and parser.edges["weak"] < parser.edges["strong"]

    # diffs: every changed SOP, each added callout rendered as added lines
    assert {s["path"] for s in data["sops"]} == set(outcome["sops_enriched"]) | set(outcome["sops_created"])
    added = [text for cls, text in parser.diff_lines if cls == "add"]
    assert "+:::tip From the Field" in added and any(t.startswith("+++ b/docs/sops/") for c, t in parser.diff_lines if c == "file")
    assert not [t for c, t in parser.diff_lines if c == "del"]  # additive only
    # deferred entries are listed with their reason
    assert {p["status"] for p in data["problems"]} == {"deferred"} and all("enrichments" in p["reason"] for p in data["problems"])
    assert all(p["category"] and p["excerpt"] and p["best_sop"] for p in data["problems"])  # with what the entry said
    assert data["counts"]["deferred"] == len(data["problems"]) and data["counts"]["entries"] == outcome["entries"]


def test_cli_report_runs_and_runs_show(deps, settings, monkeypatch, tmp_path):
    outcome = demo_run(deps)
    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PLAYBOOK_SYNC_BROKER_URL", settings.broker_url or "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLAYBOOK_SYNC_REPO_PATH", str(settings.playbook_path))
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner, prefix = CliRunner(), outcome["run_id"][:8]
    try:
        made = runner.invoke(cli_app, ["report", prefix, "--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
        listing = runner.invoke(cli_app, ["runs"], env={"COLUMNS": "250"})
        shown = runner.invoke(cli_app, ["runs", "show", prefix], env={"COLUMNS": "250"})
    finally:
        get_settings.cache_clear()
    assert made.exit_code == 0, made.output
    rebuilt = json.loads((tmp_path / "r.json").read_text())
    assert rebuilt["counts"]["enriched"] == outcome["enriched"] and rebuilt["sops"] and "<svg" in (tmp_path / "r.html").read_text()
    assert listing.exit_code == 0 and prefix in listing.output and "success" in listing.output
    assert outcome["commit_sha"][:8] in listing.output
    assert shown.exit_code == 0, shown.output
    deferred = [p["entry_id"] for p in rebuilt["problems"]]
    assert len(deferred) == outcome["deferred"] >= 1
    for entry_id in deferred:
        line = next(line for line in shown.output.splitlines() if entry_id in line)
        assert "deferred" in line and "reached 4 enrichments" in line
