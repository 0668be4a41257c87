"""Survival rules (survival.locate) on hand-edited trees: the ways a person can change a callout."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook_sync import callouts, demo
from playbook_sync.models import InsertedCallout
from playbook_sync.schemas import CalloutKind
from playbook_sync.sops import parse_sop
from playbook_sync.survival import State, Tree, locate

pytestmark = pytest.mark.unit
COLD = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"
LINKEDIN = "docs/sops/module-2/sop-2-2-run-linkedin-outreach.md"
TIP = callouts.render_block(CalloutKind.field_tip, "Subject lines naming the competitor got twice the opens.", set())
NOTE = callouts.render_block(CalloutKind.results, "Openers that mention a recent hire tripled the reply rate.", set())


def written() -> tuple[dict[str, bytes], list[InsertedCallout]]:
    """The demo playbook with a tip in Key Principles and a results note in Step 2 of the cold email SOP."""
    files = demo.playbook_files()
    doc = parse_sop(COLD, files[COLD])
    at = {s.heading: callouts.insertion_line(doc, s) for s in doc.sections}
    files[COLD] = callouts.insert_blocks(doc.content, [(at["Key Principles"], TIP),
                                                       (at["Step 2: Personalize the opening line"], NOTE)]).encode()
    rows = [InsertedCallout(id=uuid.uuid4(), sop_file_path=COLD, section=section, entry_ids=[], block=block,
                            block_hash=callouts.block_hash(block))
            for section, block in (("Key Principles", TIP), ("Step 2: Personalize the opening line", NOTE))]
    return files, rows


def judge(files: dict[str, bytes], rows) -> list:
    found = locate(Tree(files, "docs"), rows)
    return [(found[r.id].state, found[r.id].path, found[r.id].text) for r in rows]


def change(files, path, old, new) -> dict[str, bytes]:
    text = files[path].decode()
    assert old in text
    return files | {path: text.replace(old, new).encode()}


def test_untouched_callouts_are_kept():
    files, rows = written()
    assert [s for s, *_ in judge(files, rows)] == [State.kept, State.kept]


def test_removed_is_declined_and_edited_to_empty_is_declined_too():
    files, rows = written()
    assert judge(change(files, COLD, TIP, ""), rows)[0][0] == State.declined
    emptied = change(files, COLD, TIP, ":::tip From the Field\n:::\n")
    assert judge(emptied, rows)[0][0] == State.declined


def test_a_rewrite_in_place_is_edited_with_the_new_text():
    files, rows = written()
    new = ":::tip From the Field\nName one competitor in the subject; it doubled opens for us.\n:::"
    assert judge(change(files, COLD, TIP.rstrip("\n"), new), rows) == [(State.edited, COLD, new), (State.kept, COLD, None)]


def test_moved_to_another_section_or_sop_is_moved():
    files, rows = written()
    text = files[COLD].decode().replace(TIP, "").replace("## Common Mistakes\n", f"## Common Mistakes\n\n{TIP}\n")
    assert judge(files | {COLD: text.encode()}, rows)[0][:2] == (State.moved, COLD)
    other = files[LINKEDIN].decode() + "\n" + TIP
    assert judge(files | {COLD: files[COLD].decode().replace(TIP, "").encode(), LINKEDIN: other.encode()}, rows)[0][:2] == (
        State.moved, LINKEDIN)


def test_a_deleted_sop_counts_neither_way_and_a_renamed_one_keeps_its_callouts():
    """A rename (git mv) judges no callout: it was 'moved to another SOP', which counts as declined for
    confidence and taught an 'Editors removed N callouts' lesson."""
    files, rows = written()
    gone = {p: b for p, b in files.items() if p != COLD}
    assert [s for s, *_ in judge(gone, rows)] == [State.sop_deleted, State.sop_deleted]
    new = "docs/sops/module-2/sop-2-1-cold-email.md"
    assert [s[:2] for s in judge(gone | {new: files[COLD]}, rows)] == [(State.kept, new), (State.kept, new)]
    rewritten = files[COLD].decode().replace("twice the opens", "double the opens")
    assert judge(gone | {new: rewritten.encode()}, rows)[0][:2] == (State.edited, new)


def test_a_rewrite_is_claimed_once():
    """Two callouts and one rewritten block: the untouched one keeps its own, the other takes the rewrite."""
    files, rows = written()
    new = ":::note Results From the Field\nOpeners naming a recent hire replied three times as often.\n:::"
    assert judge(change(files, COLD, NOTE.rstrip("\n"), new), rows) == [(State.kept, COLD, None), (State.edited, COLD, new)]


_words = st.lists(st.sampled_from(["cold", "email", "subject", "lines", "opens", "replies", "hire", "agenda", "price",
                                   "discovery", "competitor", "number", "week", "call", "prospect"]), min_size=3, max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(_words, min_size=1, max_size=6, unique_by=tuple), st.data())
def test_removed_callouts_and_only_those_are_declined(bodies, data):
    files = demo.playbook_files()
    doc = parse_sop(COLD, files[COLD])
    sections = [s for s in doc.sections if s.level]
    blocks, rows = [], []
    for i, words in enumerate(bodies):
        block = callouts.render_block(CalloutKind.field_tip, f"Callout {i}: {' '.join(words)}.", set())
        section = data.draw(st.sampled_from(sections))
        blocks.append((callouts.insertion_line(doc, section), block))
        rows.append(InsertedCallout(id=uuid.uuid4(), sop_file_path=COLD, section=section.heading, entry_ids=[],
                                    block=block, block_hash=callouts.block_hash(block)))
    text = callouts.insert_blocks(doc.content, blocks)
    gone = data.draw(st.sets(st.sampled_from(range(len(rows)))))
    for i in gone:
        text = text.replace(rows[i].block, "")
    found = locate(Tree(files | {COLD: text.encode()}, "docs"), rows)
    assert {i for i, r in enumerate(rows) if found[r.id].state == State.declined} == gone
    assert all(found[r.id].state == State.kept for i, r in enumerate(rows) if i not in gone)


def test_an_unrelated_admonition_of_the_same_type_is_not_taken_for_a_rewrite():
    files, rows = written()
    own = ":::tip From the Field\nBook the follow-up meeting before you hang up the phone.\n:::"
    assert judge(change(files, COLD, TIP.rstrip("\n"), own), rows)[0][0] == State.declined


def test_a_rewrapped_callout_is_kept_not_edited():
    """A formatter re-wrapping the file (prettier proseWrap) splits a callout's lines differently:
    the same words are kept, not a person's edit (it was counted edited and taught a lesson)."""
    files, rows = written()
    body = TIP.split("\n")[1]
    cut = body.index(" ", len(body) // 2)
    rewrapped = change(files, COLD, body, body[:cut] + "\n" + body[cut + 1 :])
    assert [(s, t) for s, _, t in judge(rewrapped, rows)] == [(State.kept, None), (State.kept, None)]


def test_a_block_written_into_two_sops_and_removed_from_one_is_declined_there():
    """One entry enriching two SOPs writes the same block in both; deleting it from one said 'moved' to the
    other (whose own callout already accounts for that copy) instead of declined."""
    files, rows = written()
    linkedin = files[LINKEDIN].decode() + "\n" + TIP
    twin = InsertedCallout(id=uuid.uuid4(), sop_file_path=LINKEDIN, section=None, entry_ids=[], block=TIP,
                           block_hash=callouts.block_hash(TIP))
    gone = files | {COLD: files[COLD].decode().replace(TIP, "").encode(), LINKEDIN: linkedin.encode()}
    assert [s for s, *_ in judge(gone, [*rows, twin])] == [State.declined, State.kept, State.kept]
