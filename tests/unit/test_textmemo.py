"""The memo of pure text functions (frontmatter YAML, MDX hazards): same answers as computing afresh, nothing shared
that a caller could change, errors never kept, bounded in bytes, and deep frontmatter judged alike from any stack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook_sync import mdx, sops, textmemo

pytestmark = pytest.mark.unit

LINES = st.sampled_from([
    "## Step {n}\n", "Text with {braces} and <tags>.\n", ":::tip\n", ":::\n", "```js\n", "```\n", "plain line\n",
    "<!-- note -->\n", "A stray } brace\n", "ünïcödé 日本語\n", "\n"])
FRONT = st.sampled_from(["id: a\ntitle: A\n", "id: [unclosed\n", "- a list\n", "", "id: 1\ntitle: ''\n",
                         "id: x\ntitle: X\ndate: 2024-13-45\n", "id: y\ntitle: Y\nslug: /\n"])


def _fresh(path: str, content: bytes) -> sops.Checked:
    textmemo.clear()
    return sops.check_sop(path, content)


@settings(max_examples=150, deadline=None)
@given(docs=st.lists(st.tuples(FRONT, st.lists(LINES, max_size=12)), min_size=2, max_size=4),
       paths=st.lists(st.sampled_from(["docs/a.md", "docs/b/c.mdx"]), min_size=2, max_size=3))
def test_a_remembered_answer_is_the_answer_computed_afresh_whatever_the_path(docs, paths):
    contents = [f"---\n{front}---\n\n{''.join(body)}".encode() for front, body in docs]
    expected = [_fresh(path, content) for content in contents for path in paths]
    textmemo.clear()
    for _ in range(2):  # several texts through one memo, the second round from it
        assert [sops.check_sop(path, content) for content in contents for path in paths] == expected


def test_callers_cannot_change_what_the_next_caller_gets():
    text = "Text {x}\n:::tip\nnever closed\n"
    first = mdx.find_hazards(text)
    first.clear()
    assert mdx.find_hazards(text) and mdx.coded_hazards(text)
    lines = ["---\n", "id: a\n", "title: A\n", "playbook_ids: [voc-sprint]\n", "---\n"]
    for _ in range(2):  # computed, then remembered: a caller's changes reach neither the memo nor the next caller
        front = sops.read_frontmatter("docs/a.md", lines)
        front.meta["playbook_ids"].append("injected")
        front.meta["id"] = "b"
    assert sops.read_frontmatter("docs/b.md", lines).meta == {"id": "a", "title": "A", "playbook_ids": ["voc-sprint"]}


def test_deep_frontmatter_is_judged_alike_from_any_stack_depth():
    # PyYAML's composer recurses: without a depth limit of our own, a document a few hundred levels deep parsed from
    # a shallow stack and failed from a deep one, and a remembered parse would answer for both.
    lines = ["---\n", "id: a\n", "title: A\n", "deep: " + "[" * 470 + "]" * 470 + "\n", "---\n"]
    shallow = "".join(["---\n", "id: a\n", "title: A\n", "deep: " + "[" * 60 + "]" * 60 + "\n", "---\n"])

    def nested(levels: int, lines: list[str]):
        return nested(levels - 1, lines) if levels else sops.read_frontmatter("docs/a.md", lines)

    for levels in (0, 400, 0):
        textmemo.clear() if levels else None
        deep = nested(levels, lines)
        assert isinstance(deep, sops.Problem) and deep.message.endswith("nested too deeply"), deep
        assert isinstance(nested(levels, shallow.splitlines(keepends=True)), sops._Front)
    compact = ["---\n", "id: a\n", "title: A\n", "deep:\n", "  " + "- " * 70 + "x\n", "---\n"]  # `- - - x`: no brackets
    assert sops.read_frontmatter("docs/a.md", compact).message.endswith("nested too deeply")


def test_an_error_is_not_kept_and_the_memo_stays_within_its_bytes(monkeypatch):
    calls = []

    def failing(text: str) -> str:
        calls.append(text)
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            textmemo.memoized("test-failing", "same", failing)
    assert len(calls) == 2
    textmemo.clear()
    monkeypatch.setattr(textmemo, "BUDGET", 5 * (textmemo.OVERHEAD + 100))
    monkeypatch.setattr(textmemo, "LARGEST", 1000)
    for n in range(20):
        assert textmemo.memoized("test-bounded", str(n), lambda t: t * 50) == str(n) * 50
    assert textmemo._size <= textmemo.BUDGET and 0 < len(textmemo._kept) < 20
    assert textmemo.memoized("test-huge", "x", lambda t: t * 5000) == "x" * 5000  # over LARGEST: returned, not kept
    assert not any(kind == "test-huge" for kind, _ in textmemo._kept)
