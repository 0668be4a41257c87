"""Rendering a playbook: any text people or models write becomes an SOP that passes the one checker
(the same `playbook-sync validate` runs), placed after the module's highest number; Markdown keeps it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from playbook_sync import demo, sops
from playbook_sync.builder import render
from playbook_sync.builder.models import Playbook
from playbook_sync.builder.publishing import place
from playbook_sync.ingest import storable
from playbook_sync.mdx import find_hazards

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 2, tzinfo=UTC)
TREE = {p: c for p, c in demo.playbook_files().items() if p.startswith("docs/")}
HOSTILE = st.sampled_from(["{", "}", "<", ">", "```", ":::", "import x from 'y'", "<script>", "&lt;b&gt;", "\\", "#",
                           "---", "[a](javascript:x)", "\u202e", "日本語", "ñ", "\n", "|", "*", "$", "%"])
TEXT = st.lists(st.one_of(st.text(max_size=12), HOSTILE), max_size=8).map("".join)


def playbook(title: str, text: str) -> Playbook:
    scenario = {"id": uuid.uuid4(), "playbook_id": uuid.uuid4(), "position": 1, "title": title or "x",
                "deal_stage": "demo", "meeting_context": text, "customer_pain_points": [text], "competitors": [text],
                "created_at": NOW, "updated_at": NOW,
                "content_modules": {"opening_strategy": text, "key_messages": [text, title],
                                    # The model strips whitespace, and an objection must say something.
                                    "objection_handling": [{"objection": text if storable(text).strip() else "o", "response": text}]}}
    return Playbook.model_validate({"id": uuid.uuid4(), "user_id": 1, "title": title or "x", "description": text,
                                    "target_persona": text[:200], "scenarios": [scenario], "created_at": NOW,
                                    "updated_at": NOW})


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A title the model keeps something of: control and invisible characters are dropped as ingest drops them.
@given(title=TEXT.filter(lambda t: storable(t).strip() and len(t.strip()) <= 200), text=TEXT)
def test_any_text_becomes_an_sop_that_passes_the_checker(title, text):
    path, content = place(playbook(title.strip(), text), TREE, "docs")
    checked = sops.check_docs({**TREE, path: content.encode()}, "docs")
    assert [p for p in checked.problems if p.path == path] == []
    assert find_hazards(content) == []
    assert path.startswith("docs/sops/module-3/sop-3-4-") and path in checked.docs


def test_markdown_keeps_what_people_wrote():
    view = playbook("Price {too} <high>", "```js\n{x}\n```")
    text = render.markdown(view)
    assert "# Price {too} <high>" in text and "**Objection:** ```js" in text
    assert "&lt;high&gt;" in render.html_page(view)  # the PDF's HTML escapes everything
