"""Rejected lines are kept: never overwritten by the next ingest of a file with the same name."""

from __future__ import annotations

import json

import pytest

from playbook_sync.ingest import Parsed, write_rejects

pytestmark = pytest.mark.unit


def test_same_named_sources_in_one_second_keep_both_rejects(tmp_path):
    paths = []
    for word in ("first", "second", "third"):
        parsed = Parsed()
        parsed.reject("a/export.jsonl", 1, word.encode(), "bad")
        paths.append(write_rejects(parsed, tmp_path, f"{word}/export.jsonl"))
    assert len(set(paths)) == 3
    assert [json.loads(p.read_text())["raw"] for p in paths] == ["first", "second", "third"]
