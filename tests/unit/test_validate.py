"""`playbook-sync validate` and the pre-commit gate: one error of each kind, each with path and line."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from playbook_sync.cli import app
from playbook_sync.edits import Applied, PlannedBlock, PlannedSop
from playbook_sync.schemas import CalloutKind
from playbook_sync.validate import check_tree, gate

pytestmark = pytest.mark.unit

GOOD = "---\nid: sop-1-1-good\ntitle: \"SOP 1.1: Good\"\n---\n\n# Good\n\n:::tip Fine\nAll closed.\n:::\n"
BROKEN = {
    "docs/a-no-frontmatter.md": "# No frontmatter\n\nText.\n",
    "docs/b-bad-yaml.md": "---\nid: sop-b\ntitle: Pricing: the basics\n---\n\nText.\n",
    "docs/c-no-id.md": "---\ntitle: \"No id\"\n---\n\nText.\n",
    "docs/d-no-title.md": "---\nid: sop-d\n---\n\nText.\n",
    "docs/e-first.md": "---\nid: sop-same\ntitle: First\n---\n",
    "docs/f-second.md": "---\ntitle: Second\nid: sop-same\n---\n",
    "docs/g-unclosed.md": "---\nid: sop-g\ntitle: G\n---\n\nIntro.\n\n:::tip Open\nNever closed.\n",
    "docs/h-stray.md": "---\nid: sop-h\ntitle: H\n---\n\nText.\n:::\n",
    "docs/i-hazards.md": "---\nid: sop-i\ntitle: I\n---\n\n# I\n\nBudget is {price} per seat.\nUse <Tabs> here.\n",
    "docs/ok.md": GOOD,
    "docs/_category_.json": '{"label": "x"}',  # not a doc: ignored
}
EXPECTED = [
    "docs/a-no-frontmatter.md:1: missing frontmatter",
    "docs/b-bad-yaml.md:3: frontmatter is not valid YAML",
    "docs/c-no-id.md:1: frontmatter has no 'id'",
    "docs/d-no-title.md:1: frontmatter has no 'title'",
    "docs/f-second.md:3: duplicate id 'sop-same' (also in docs/e-first.md:2)",
    "docs/g-unclosed.md:8: admonition ':::tip Open' is never closed",
    "docs/h-stray.md:7: closing ':::' without an open admonition",
    "docs/i-hazards.md:8: '{' starts an MDX expression",
    "docs/i-hazards.md:9: '<' starts JSX/HTML",
]


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_validate_reports_each_kind_with_path_and_line(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--repo", str(write(tmp_path, BROKEN))], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    for expected in EXPECTED:
        assert any(line.startswith(expected) for line in lines), (expected, result.output)
    assert not any(line.startswith("docs/ok.md") or "_category_" in line for line in lines)
    assert f"10 docs checked, {len(EXPECTED)} errors" in result.output


def test_validate_passes_a_clean_playbook(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--repo", str(write(tmp_path, {"docs/ok.md": GOOD}))])
    assert result.exit_code == 0 and "1 docs checked, 0 errors" in result.output


def test_gate_refuses_only_files_this_commit_makes_worse():
    legacy = "---\nid: sop-old\ntitle: Old\n---\n\nUses <Tabs> already.\n\n## Steps\n\nDo it.\n"
    tree = {"docs/legacy.md": legacy.encode(), "docs/ok.md": GOOD.encode()}
    fine = PlannedBlock("docs/legacy.md", "Steps", CalloutKind.field_tip, ":::tip From the Field\nOk.\n:::", [uuid.uuid4()])
    bad = PlannedBlock("docs/ok.md", "", CalloutKind.field_tip, ":::tip From the Field\nCosts {x}.\n:::", [uuid.uuid4()])
    clash = PlannedSop(uuid.uuid4(), "Clash", "docs/new.md", "---\nid: sop-1-1-good\ntitle: New\n---\n\nText.\n", [])
    applied = Applied(
        files={"docs/legacy.md": (legacy + "\n:::tip From the Field\nOk.\n:::\n").encode(),  # old hazard only: allowed
               "docs/ok.md": (GOOD + "\n:::tip From the Field\nCosts {x}.\n:::\n").encode(),  # a new '{': refused
               "docs/new.md": clash.content.encode()},  # duplicates an existing id: refused
        blocks=[fine, bad], sops=[clash])
    reasons = gate(applied, tree)
    assert set(applied.files) == {"docs/legacy.md"} and applied.blocks == [fine] and applied.sops == []
    assert [b for b, _ in applied.dropped] == [bad]
    assert any("docs/ok.md:" in r and "MDX expression" in r for r in reasons)
    assert any("docs/new.md:2: duplicate id 'sop-1-1-good'" in r for r in reasons)
    assert check_tree(tree) == [p for p in check_tree(tree) if p.path == "docs/legacy.md"]
