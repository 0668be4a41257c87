"""The memo of pure text functions (frontmatter YAML, MDX hazards): same answers as computing afresh, nothing shared
that a caller could change, errors never kept, and bounded."""

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
    textmemo._kept.clear()
    return sops.check_sop(path, content)


@settings(max_examples=150, deadline=None)
@given(docs=st.lists(st.tuples(FRONT, st.lists(LINES, max_size=12)), min_size=2, max_size=4),
       paths=st.lists(st.sampled_from(["docs/a.md", "docs/b/c.mdx"]), min_size=2, max_size=3))
def test_a_remembered_answer_is_the_answer_computed_afresh_whatever_the_path(docs, paths):
    contents = [f"---\n{front}---\n\n{''.join(body)}".encode() for front, body in docs]
    expected = [_fresh(path, content) for content in contents for path in paths]
    textmemo._kept.clear()
    for _ in range(2):  # several texts through one memo, the second round from it
        assert [sops.check_sop(path, content) for content in contents for path in paths] == expected


def test_callers_cannot_change_what_the_next_caller_gets():
    text = "Text {x}\n:::tip\nnever closed\n"
    first = mdx.find_hazards(text)
    first.clear()
    assert mdx.find_hazards(text) and mdx.coded_hazards(text)
    front = sops.read_frontmatter("docs/a.md", ["---\n", "id: a\n", "title: A\n", "tags: [x]\n", "---\n"])
    with pytest.raises(TypeError):
        front.meta["id"] = "b"  # read-only: the next file with this frontmatter gets the same mapping


def test_an_error_is_not_kept_and_the_memo_stays_bounded(monkeypatch):
    calls = []

    def failing(text: str) -> str:
        calls.append(text)
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            textmemo.memoized("test-failing", "same", failing)
    assert len(calls) == 2
    monkeypatch.setattr(textmemo, "SIZE", 5)
    for n in range(20):
        assert textmemo.memoized("test-bounded", str(n), len) == len(str(n))
    assert len(textmemo._kept) == 5
