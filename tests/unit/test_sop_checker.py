"""One SOP checker (issue 10, item 2): the run and `validate` judge a file alike, in the same words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from playbook_sync.cli import app
from playbook_sync.sops import SopError, parse_sop
from playbook_sync.validate import check_tree
from tests.unit.test_validate import BROKEN, write

pytestmark = pytest.mark.unit

PATH = "docs/sops/module-1/sop-1-1-x.md"
# Lines a person (or a bad merge) leaves in an SOP: frontmatter pieces, broken YAML, an
# impossible date, admonitions, MDX hazards, plain text.
FRAGMENTS = ["---", "id: sop-x", "id:", "id: 7", "id: [a", "title: X", "title: \"\"", "title: Pricing: the basics",
             "reviewed: 2024-13-45", "tags: [a, b]", "- item", "", "Text.", "## Steps", ":::tip Tip", ":::",
             "```", "Costs {x}.", "Use <Tabs>.", "caf\u00e9", "n: !!int abc", "at: !!timestamp x"]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.booleans())
def test_the_run_and_validate_judge_every_file_alike(lines, crlf):
    content = ("\r\n" if crlf else "\n").join(lines).encode()
    problems = check_tree({PATH: content})
    try:
        doc = parse_sop(PATH, content)  # what the run reads; it raises nothing but SopError
    except SopError as exc:
        assert str(exc) in [str(p) for p in problems]  # the same line and the same words as `validate`
        assert exc.problem.unreadable
    else:
        assert not [p for p in problems if p.unreadable], problems
        assert doc.sop_id and doc.title.strip()


EXPECTED_CODES = {
    "docs/a-no-frontmatter.md": {"no-frontmatter"},
    "docs/b-bad-yaml.md": {"frontmatter-yaml"},
    "docs/c-no-id.md": {"no-id"},
    "docs/d-no-title.md": {"no-title"},
    "docs/f-second.md": {"duplicate-id"},
    "docs/g-unclosed.md": {"admonition-unclosed"},
    "docs/h-stray.md": {"admonition-stray"},
    "docs/i-hazards.md": {"mdx-expression", "mdx-jsx"},
}


def test_each_problem_carries_a_stable_code():
    found: dict[str, set[str]] = {}
    for problem in check_tree({p: t.encode() for p, t in BROKEN.items()}):
        found.setdefault(problem.path, set()).add(problem.code)
    assert found == EXPECTED_CODES
    blocking = {p.path for p in check_tree({p: t.encode() for p, t in BROKEN.items()}) if p.blocks_edits}
    assert blocking == set(EXPECTED_CODES) - {"docs/i-hazards.md"}  # hazards alone only stop an edit that adds one


def test_validate_reports_an_impossible_date_in_the_frontmatter_as_a_line(tmp_path):
    files = {"docs/dated.md": "---\nid: dated\ntitle: Dated\nreviewed: 2024-13-45\n---\n\nText.\n"}
    result = CliRunner().invoke(app, ["validate", "--repo", str(write(tmp_path, files))], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # no traceback
    assert "docs/dated.md:2: frontmatter is not valid YAML: month must be in 1..12" in result.output


def test_frontmatter_nested_too_deeply_is_a_problem_not_a_crash():
    content = ("---\nid: x\ntitle: T\ndeep: " + "[" * 1000 + "]" * 1000 + "\n---\n").encode()
    with pytest.raises(SopError, match="docs/x.md:2: frontmatter is not valid YAML: nested too deeply"):
        parse_sop("docs/x.md", content)
    assert [p.code for p in check_tree({"docs/x.md": content})] == ["frontmatter-yaml"]


def test_a_duplicate_id_names_every_other_copy():
    doc = b"---\nid: same\ntitle: T\n---\n"
    problems = check_tree({"docs/a.md": doc, "docs/b.md": doc, "docs/c.md": doc}, every_duplicate=True)
    assert [str(p) for p in problems] == [
        "docs/a.md:2: duplicate id 'same' (also in docs/b.md:2, docs/c.md:2)",
        "docs/b.md:2: duplicate id 'same' (also in docs/a.md:2, docs/c.md:2)",
        "docs/c.md:2: duplicate id 'same' (also in docs/a.md:2, docs/b.md:2)",
    ]
