"""What a model is shown of an SOP: outline and bounded excerpts, lines as in the file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook_sync import excerpts
from playbook_sync.sops import parse_sop

pytestmark = pytest.mark.unit


def long_sop(steps: int = 40, words: int = 200) -> str:
    body = "\n\n".join(f"### Step {k}: Do thing {k}\n\n" + " ".join(f"word{k}x{i}" for i in range(words))
                       for k in range(1, steps + 1))
    return (f"---\nid: sop-1-1-long\ntitle: Long\n---\n\n# Long\n\nIntro text.\n\n## Steps\n\n{body}\n\n"
            "## Common Mistakes\n\n- Too long.\n\n```\n## not a heading\n```\n")


def test_a_candidate_excerpt_is_the_outline_and_its_best_sections_within_the_budget():
    text = long_sop()
    shown = excerpts.for_candidate(text, ["Step 7: Do thing 7", "Common Mistakes"])
    assert len(shown) <= excerpts.CLASSIFY_CHARS + 100 and len(text) > 8 * excerpts.CLASSIFY_CHARS
    assert "  - Step 40: Do thing 40" in shown and "- Common Mistakes" in shown  # the whole outline
    assert "### Step 7: Do thing 7\n\nword7x0" in shown and "## Common Mistakes\n\n- Too long." in shown
    assert "word8x0" not in shown and "## not a heading" not in excerpts.outline(
        (p.level, p.heading) for p in excerpts.split(text))


def test_an_edit_sees_its_target_sections_and_their_neighbours_only():
    doc = parse_sop("docs/sops/module-1/sop-1-1-long.md", long_sop().encode())
    outline, shown = excerpts.for_edit(doc, ["Step 7: Do thing 7"])
    assert "  - Step 12: Do thing 12" in outline
    assert [line for line in shown.splitlines() if line.startswith("#")] == [
        "### Step 6: Do thing 6", "### Step 7: Do thing 7", "### Step 8: Do thing 8"]
    lines = set(doc.content.splitlines())
    assert all(line in lines for line in shown.splitlines())  # any line is an anchor the SOP has


@given(st.text(alphabet=st.sampled_from("ab #\n"), max_size=400), st.integers(min_value=1, max_value=300))
def test_clip_keeps_whole_lines_within_the_limit(text, limit):
    out = excerpts.clip(text, limit)
    if len(text) <= limit:
        assert out == text
    else:
        kept = out.rsplit("\n[... ", 1)[0].splitlines()
        assert kept == [line[:limit] for line in text.splitlines()[: len(kept)]] and "more lines]" in out


def test_a_short_sop_is_sent_whole_the_same_for_every_entry():
    text = "---\nid: x\ntitle: X\n---\n\n# X\n\nIntro.\n\n## Steps\n\nDo it.\n\n## Common Mistakes\n\n- Not doing it.\n"
    first, second = excerpts.for_candidate(text, ["Steps"]), excerpts.for_candidate(text, ["Common Mistakes"])
    assert first == second and first.startswith(excerpts.WHOLE) and "## Steps\n\nDo it." in first and "id: x" not in first
