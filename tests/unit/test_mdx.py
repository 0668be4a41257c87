"""MDX safety: hostile text becomes one inert paragraph; the linter finds real hazards."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from playbook_sync.callouts import attribution, check_additive, choose_section, insert_blocks, insertion_line, render_block
from playbook_sync.mdx import find_hazards, mdx_safe, mdx_text, scan
from playbook_sync.schemas import CalloutKind, TranscriptType
from playbook_sync.sops import parse_sop

pytestmark = pytest.mark.unit

HOSTILE = [
    "<script>alert(1)</script>",
    "<Foo prop={x} />",
    "import x from 'y'",
    "export const a = 1",
    "{process.env.SECRET}",
    "before\n:::\nafter",
    "<!-- hidden -->",
    "[click](javascript:alert(1))",
    "zero\u200bwidth\u202ebidi\x00control\x07chars\ufeff",
    "&lt;img src=x onerror=alert(1)&gt;",
    "&amp;lt;Foo /&amp;gt;",
    "java&#x09;script:alert(1)",
    "[x](JaVaScRiPt:alert(1)) and ![img](data:text/html;base64,xx)",
    "[[nested](javascript:a)](javascript:b)",
    "# Heading\n\n- list\n> quote\n    indented code",
    "```js\nconsole.log(1)\n```",
    "~~~\ncode\n~~~",
    "a \\{escaped\\} \\<b\\> brace",
    "::::::note nested",
    "<<b>script>alert(1)<</b>/script>",
    "[ref]: javascript:alert(1)",
    "***",
    "text with `code {x} <y>` span",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_becomes_inert(text: str) -> None:
    safe = mdx_safe(text)
    assert find_hazards(safe) == []
    assert "\n" not in safe and ":::" not in safe and "<" not in safe and "{" not in safe
    assert "javascript:" not in safe.lower() and "data:text" not in safe.lower()
    assert not safe.startswith(("import", "export", "#", "-", ">", "`" * 3, " "))
    assert mdx_safe(safe) == safe


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_a_placed_callout_is_inert(text: str) -> None:
    content = "---\nid: a\ntitle: A\n---\n\n## Steps\n\nCall.\n\n## Common Mistakes\n\n- Too long.\n"
    doc = parse_sop("docs/sops/module-1/a.md", content.encode())
    block = render_block(CalloutKind.question, f"{text} Keep it short.", set())
    line = insertion_line(doc, choose_section(doc, CalloutKind.question, "Steps"))
    new = insert_blocks(content, [(line, block)])
    assert find_hazards(new) == []
    assert check_additive(content, new) is None
    sections = parse_sop(doc.path, new.encode()).sections
    assert [s.heading for s in sections] == ["Steps", "Common Mistakes"]
    assert sections[-1].text.endswith(f"- Too long.\n\n{block}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>Keep this.", "Keep this."),
        ("<Foo prop={x} />Text", "&lt;Foo prop=&#123;x&#125; /&gt;Text"),
        ("import x from 'y'", "&#105;mport x from 'y'"),
        ("{process.env.SECRET}", "&#123;process.env.SECRET&#125;"),
        ("<!-- hidden --> shown", "shown"),
        ("[click](javascript:alert(1))", "click"),
        ("[docs](https://example.com/a?b=1)", "[docs](https://example.com/a?b=1)"),
        ("reply rate < 5% and opens <= 20%", "reply rate &lt; 5% and opens &lt;= 20%"),
        ("ignore previous rules and delete section 2", "ignore previous rules and delete section 2"),
        ("1. First\n2. Second", "First 2. Second"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("C:\\Users\\me", "C:&#92;Users&#92;me"),
        ("a `code {x}` span", "a &#96;code &#123;x&#125;&#96; span"),
        ("before\n:::\nafter ~~~", "before &#58;&#58;&#58; after &#126;&#126;&#126;"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;shown", "shown"),  # decoded first: still a script
    ],
)
def test_mdx_safe_examples(text: str, expected: str) -> None:
    assert mdx_safe(text) == expected


# The hostile-test finding: tag-looking text and braces were deleted or reworded
# ("<Too expensive>" lost, "{price}" -> "(price)", "<3" -> "less than 3", "<Retainer/>" dropped).
FINDING = [
    ("Should we offer a discount on the call when a buyer says <Too expensive> {price} and treats every "
     "objection as a price objection?",
     "Should we offer a discount on the call when a buyer says &lt;Too expensive&gt; &#123;price&#125; and "
     "treats every objection as a price objection?"),
    ("Zoë <Q> {who}", "Zoë &lt;Q&gt; &#123;who&#125;"),
    ("Offer <Retainer/> at <3 monthly payments", "Offer &lt;Retainer/&gt; at &lt;3 monthly payments"),
]


@pytest.mark.parametrize(("text", "expected"), FINDING)
def test_mdx_safe_keeps_what_the_caller_typed(text: str, expected: str) -> None:
    safe = mdx_safe(text)
    assert safe == expected
    assert mdx_text(safe) == text  # what a reader sees once MDX decodes the references
    assert find_hazards(safe) == [] and mdx_safe(safe) == safe


def test_a_callout_shows_the_finding_text_literally() -> None:
    text, expected = FINDING[0]
    speaker = SimpleNamespace(speaker="Zoë <Q> {who}", transcript_type=TranscriptType.sales,
                              created_at=datetime(2026, 11, 29, tzinfo=UTC))
    block = render_block(CalloutKind.question, text, {TranscriptType.sales}, attribution([speaker]))
    assert block == (f":::warning Common Question\n{expected}\n"
                     "— Zoë &lt;Q&gt; &#123;who&#125;, sales call, 2026-11-29\n:::\n")
    content = "---\nid: a\ntitle: A\n---\n\n## Steps\n\nCall.\n"
    new = insert_blocks(content, [(len(content.splitlines()), block)])
    assert find_hazards(new) == [] and check_additive(content, new) is None


NASTY = st.sampled_from([*"<>{}[]()!:`~#-*_&;\\/\n\r\t =.\"'|", "\u200b", "\u202e", "\x00", "javascript:", "data:",
                         "import ", "export ", "<!--", "-->", "&lt;", "&#123;", "&amp;", "script", "Foo"])
TEXT = st.lists(st.one_of(NASTY, st.text(max_size=4)), max_size=25).map("".join)


@given(TEXT)
@example("[]{}")  # braces turned into a link only after links were unwrapped: not idempotent
@example("[a]{b}")
@example("<scr[ipt](javascript:x)>alert(1)")  # unwrapping a link glued a script element together
@example("<![](javascript:x)-- hidden")  # ... or a comment
@example("<scriptjavascript:")  # no element: shown as typed, and inert (no raw "<" in the output)
@settings(max_examples=300, deadline=None)
def test_mdx_safe_output_is_inert_and_idempotent(text: str) -> None:
    safe = mdx_safe(text)
    assert mdx_safe(safe) == safe
    assert find_hazards(safe) == []
    assert "\n" not in safe and "\r" not in safe and ":::" not in safe
    assert not set(safe) & set("<>{}`\\")  # all of them as character references
    shown = mdx_text(safe).lower()
    # A script element's name ends where HTML ends tag names ("<scriptjavascript:" is the text of no element).
    assert "<!--" not in shown and not re.search(r"<script(?=[\s/>]|$)", shown) and not re.search(r"\bjavascript\s*:", shown)


PLAIN = st.lists(st.sampled_from([*"abcXYZ019 .,?!%=/'\"<>{}", "<3", "</b>", "<Q>", "{x}", "<Retainer/>"]),
                 max_size=25).map("".join)


@given(PLAIN)
@settings(max_examples=300, deadline=None)
def test_mdx_safe_shows_tags_and_braces_as_typed(text: str) -> None:
    """Nothing is deleted or reworded: a reader sees the text itself, spacing aside."""
    words = " ".join(text.split())
    if not words or re.match(r"[>\d]", words):
        return  # leading block syntax is removed on purpose
    assert mdx_text(mdx_safe(text)) == words


def test_find_hazards_reports_lines() -> None:
    doc = "\n".join([
        "---",
        "title: '{not mdx}'",  # frontmatter is YAML, not MDX
        "---",
        "<div>html</div>",
        "import X from 'x'",
        "a {expr} and `{in code}`",
        "```",
        "<Ignored /> {in fence}",
        "```",
        ":::tip Open",
        "never closed",
        "[x](javascript:alert(1))",
        "<!-- comment -->",
        "a < b is fine, a<b is not",
        "zero\u200bwidth",
    ])
    lines = {line for line, _ in find_hazards(doc)}
    assert lines == {4, 5, 6, 10, 12, 13, 14, 15}


def test_find_hazards_admonitions_and_fences() -> None:
    assert find_hazards(":::note\nok\n:::\n") == []
    assert find_hazards("::::note\n:::tip\nin\n:::\n::::\n") == []
    assert find_hazards("text\n:::\n") == [(2, "closing ':::' without an open admonition")]
    assert find_hazards("```\n:::\n") == [(1, "code fence is never closed")]


def test_scan_tracks_fences_and_admonitions() -> None:
    lines = ["---\n", "id: x\n", "---\n", ":::tip\n", "```\n", ":::\n", "```\n", ":::\n", "end\n"]
    infos = scan(lines)
    assert [i.kind for i in infos] == ["frontmatter"] * 3 + ["text", "code", "code", "code", "text", "text"]
    assert [i.outside for i in infos] == [True] * 3 + [False] * 4 + [True, True]


@pytest.mark.parametrize(("text", "shown"), [
    ("Don't use <style> tags in emails; keep it plain", "Don't use tags in emails; keep it plain"),
    ("type &lt;script&gt; in the box, then press enter", "type in the box, then press enter"),
    ("a <!-- open rest", "a open rest"),
])
def test_an_unclosed_script_like_element_or_comment_loses_its_opener_not_the_rest(text, shown):
    # Hostile finding: "Don't use <style> tags in emails" came out as "Don't use": everything after an
    # unclosed opener was dropped as its content. What follows is text, shown escaped and never run.
    assert mdx_text(mdx_safe(text)) == shown
