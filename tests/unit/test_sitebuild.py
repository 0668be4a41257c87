"""Reading a Docusaurus build's output (recorded from real builds of 3.10): which page failed, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync import sitebuild
from playbook_sync.sitebuild import BuildResult, BuildUnavailable

pytestmark = pytest.mark.unit

# A bare {amount}: compiles, fails when the page is rendered (output trimmed of stack frames).
RENDER = """[INFO] [en] Creating an optimized production build...
[ERROR] Error: Unable to build website for locale en.
  [cause]: Error: Docusaurus static site generation failed for 1 paths:
  - "/sops/module-3/sop-3-1-run-a-discovery-call"
    [cause]: AggregateError
      [errors]: [
        Error: Can't render static file for pathname "/sops/module-3/sop-3-1-run-a-discovery-call"
            at generateStaticFile (node_modules/@docusaurus/core/lib/ssg/ssgRenderer.js:131:20)
          [cause]: ReferenceError: amount is not defined
              at _createMdxContent (server.bundle.js:55:31)
"""
# An expression that does not parse: the MDX compiler names the file.
COMPILE = """[ERROR] Client bundle compiled with errors therefore further build is impossible.
Error: MDX compilation failed for file "docs/sops/module-1/sop-1-1-x.md"
Cause: Could not parse expression with acorn
Details:
"""
LINKS = """Error: Docusaurus found broken links!
Exhaustive list of all broken links found:
- Broken link on source page path = /guides/intro:
   -> linking to /nope
"""
DISCOVERY = "docs/sops/module-3/sop-3-1-run-a-discovery-call.md"


def doc(doc_id: str, slug: str | None = None) -> bytes:
    return (f"---\nid: {doc_id}\n" + (f"slug: {slug}\n" if slug else "") + "title: T\n---\n\n# T\n").encode()


def result(output: str) -> BuildResult:
    return BuildResult(False, output, sorted(set(sitebuild._ROUTE.findall(output))))


def test_a_render_failure_blames_the_page_served_at_the_failing_route():
    failed = result(RENDER)
    changed = {DISCOVERY: doc("sop-3-1-run-a-discovery-call"), "docs/sops/module-2/other.md": doc("other")}
    assert sitebuild.blame(failed, changed) == [DISCOVERY]
    assert failed.summary() == "ReferenceError: amount is not defined"


def test_a_compile_failure_blames_the_file_it_names():
    failed = result(COMPILE)
    changed = {"docs/sops/module-1/sop-1-1-x.md": doc("anything"), "docs/intro.md": doc("intro")}
    assert sitebuild.blame(failed, changed) == ["docs/sops/module-1/sop-1-1-x.md"]
    assert "MDX compilation failed" in failed.summary() and "Could not parse expression with acorn" in failed.summary()


def test_pages_are_matched_by_slug_id_or_file_name():
    failed = result(LINKS)
    assert failed.routes == ["/guides/intro"]
    assert sitebuild.blame(failed, {"docs/a.md": doc("x", slug="/guides/intro")}) == ["docs/a.md"]
    assert sitebuild.blame(failed, {"docs/guides/01-intro.md": doc("zzz")}) == ["docs/guides/01-intro.md"]
    assert sitebuild.blame(failed, {"docs/guides/other.md": doc("other")}) == []


@pytest.mark.parametrize("front", ["date: 2024-13-45\nslug: /guides/intro", "n: !!int abc", "slug: [unclosed",
                                   "x: " + "[" * 500 + "]" * 500, "- - - " * 300 + "x"])
def test_frontmatter_that_does_not_parse_is_matched_by_its_file_name_alone(front):
    # The SOPs' own reader: PyYAML's errors (a date that is not one, deep nesting) are no crash of the gate.
    failed = result(LINKS)
    assert sitebuild.blame(failed, {"docs/guides/intro.md": f"---\n{front}\n---\n# T\n".encode()}) == ["docs/guides/intro.md"]
    assert sitebuild.blame(failed, {"docs/guides/other.md": f"---\n{front}\n---\n# T\n".encode()}) == []


def test_a_site_without_docusaurus_cannot_be_built():
    with pytest.raises(BuildUnavailable, match="no package.json"):
        sitebuild.site_package({})
    with pytest.raises(BuildUnavailable, match="@docusaurus/core"):
        sitebuild.site_package({"package.json": json.dumps({"dependencies": {"react": "18"}}).encode()})
    with pytest.raises(BuildUnavailable, match="not valid JSON"):
        sitebuild.site_package({"package.json": b"{"})


@given(st.lists(st.sampled_from(["docs", "..", "a.md", "node_modules", ".git", "x", "/"]), min_size=1, max_size=4))
def test_the_checkout_never_writes_outside_its_root_or_into_node_modules(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("site")
    path = "/".join(parts)
    sitebuild._write_tree(root / "site", {path: b"x"})
    written = [p for p in (root / "site").rglob("*") if p.is_file()] if (root / "site").exists() else []
    for p in written:
        rel = p.resolve().relative_to((root / "site").resolve())
        assert rel.parts[0] not in ("node_modules", ".git") and ".." not in rel.parts
    assert sorted(p.name for p in root.iterdir()) in ([], ["site"])


def test_read_site_skips_build_output_and_node_modules(tmp_path):
    for rel in ("package.json", "docs/a.md", "node_modules/x/index.js", "build/index.html", ".docusaurus/c.js"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert sorted(sitebuild.read_site(Path(tmp_path))) == ["docs/a.md", "package.json"]


class FakeRepo:
    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        return {"package.json": b"{}", "docs/a.md": doc("a"), "docs/b.md": doc("b")}


def gate_with(monkeypatch, builds: list[BuildResult]):
    """validate.build_gate over a fake site whose successive builds return `builds`; (reasons, applied, built trees)."""
    from playbook_sync import validate
    from playbook_sync.config import Settings
    from playbook_sync.edits import Applied

    trees: list[dict] = []
    monkeypatch.setattr(sitebuild, "build", lambda files, cache, timeout: (trees.append(dict(files)), builds.pop(0))[1])
    applied = Applied(files={"docs/a.md": doc("a") + b"new", "docs/b.md": doc("b") + b"new"})
    settings = Settings(_env_file=None, build_gate=True)
    return validate.build_gate(applied, FakeRepo(), "head", settings), applied, trees


def test_gate_drops_the_blamed_page_and_builds_the_rest_again(monkeypatch):
    reasons, applied, trees = gate_with(monkeypatch, [result(RENDER.replace("sops/module-3/sop-3-1-run-a-discovery-call", "a")),
                                                      BuildResult(True, "")])
    assert list(applied.files) == ["docs/b.md"] and len(trees) == 2 and trees[1]["docs/a.md"] == doc("a")
    assert reasons == ["site build failed for docs/a.md: ReferenceError: amount is not defined"]


def test_gate_defers_everything_when_an_unnamed_failure_is_this_runs_doing(monkeypatch):
    reasons, applied, trees = gate_with(monkeypatch, [result("Error: webpack exploded"), BuildResult(True, "")])
    assert applied.files == {} and len(reasons) == 2 and trees[1] == FakeRepo().read_tree("")


def test_gate_holds_nothing_back_when_the_site_was_already_broken(monkeypatch):
    reasons, applied, _ = gate_with(monkeypatch, [result("Error: webpack exploded"), result("Error: webpack exploded")])
    assert reasons == [] and len(applied.files) == 2


def test_gate_is_off_by_default_and_skips_a_site_it_cannot_build(monkeypatch):
    from playbook_sync import validate
    from playbook_sync.config import Settings
    from playbook_sync.edits import Applied

    applied = Applied(files={"docs/a.md": b"x"})
    assert validate.build_gate(applied, FakeRepo(), "head", Settings(_env_file=None)) == []

    def unavailable(files, cache, timeout):
        raise BuildUnavailable("node is not installed")

    monkeypatch.setattr(sitebuild, "build", unavailable)
    assert validate.build_gate(applied, FakeRepo(), "head", Settings(_env_file=None, build_gate=True)) == []
    assert applied.files == {"docs/a.md": b"x"}
