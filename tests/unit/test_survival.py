"""Survival rules (survival.locate) on hand-edited trees: the ways a person can change a callout."""

from __future__ import annotations

import uuid

import pytest

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


def test_a_deleted_sop_counts_neither_way_and_a_renamed_one_is_moved():
    files, rows = written()
    gone = {p: b for p, b in files.items() if p != COLD}
    assert [s for s, *_ in judge(gone, rows)] == [State.sop_deleted, State.sop_deleted]
    renamed = gone | {"docs/sops/module-2/sop-2-1-cold-email.md": files[COLD]}
    assert [s for s, *_ in judge(renamed, rows)] == [State.moved, State.moved]


def test_a_rewrite_is_claimed_once():
    """Two callouts and one rewritten block: the untouched one keeps its own, the other takes the rewrite."""
    files, rows = written()
    new = ":::note Results From the Field\nOpeners naming a recent hire replied three times as often.\n:::"
    assert judge(change(files, COLD, NOTE.rstrip("\n"), new), rows) == [(State.kept, COLD, None), (State.edited, COLD, new)]
