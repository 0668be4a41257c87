"""Search snippets show text as written: the headline is decoded, an SOP section's MDX as the page shows it."""

from __future__ import annotations

import pytest

from playbook_sync.search import _snippet

pytestmark = pytest.mark.unit


def test_the_headline_is_decoded_back_to_the_text_as_written() -> None:
    # What ts_headline returns for "<Too expensive> {price} & &lt;b&gt;" sent in as encoded text.
    assert _snippet("&lt;Too expensive> {price} &amp; &amp;lt;b&amp;gt;", None) == "<Too expensive> {price} & &lt;b&gt;"


def test_an_sop_snippet_shows_the_mdx_character_references_decoded() -> None:
    mdx = "buyer says &amp;lt;Too expensive&amp;gt; &amp;#123;price&amp;#125;"  # mdx_safe's output, encoded for ts_headline
    assert _snippet(mdx, None, mdx=True) == "buyer says <Too expensive> {price}"
    assert _snippet("", "## Steps\nsays &lt;Q&gt;", mdx=True) == "Steps says <Q>"  # the body, when no headline


def test_an_entry_body_is_shown_as_stored() -> None:
    assert _snippet(None, "a &lt;b&gt; <c>") == "a &lt;b&gt; <c>"
