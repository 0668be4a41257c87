"""The bundled sample playbook and knowledge entries used by `playbook-sync demo`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from playbook_sync.ingest import parse_jsonl
from playbook_sync.schemas import EntryIn

HERE = Path(__file__).parent
PLAYBOOK = HERE / "playbook"


def playbook_files() -> dict[str, bytes]:
    """The sample playbook repository's files: path → bytes."""
    return {p.relative_to(PLAYBOOK).as_posix(): p.read_bytes() for p in sorted(PLAYBOOK.rglob("*")) if p.is_file()}


def entries(now: datetime) -> list[EntryIn]:
    """The sample entries, shifted so the newest lands just before now (inside this week's window)."""
    parsed = parse_jsonl((HERE / "entries.jsonl").read_bytes(), "entries.jsonl")
    if parsed.errors:
        raise ValueError("bundled demo entries are invalid: " + "; ".join(parsed.errors))
    newest = max(e.created_at for e in parsed.entries if e.created_at)
    shift = now - timedelta(minutes=5) - newest
    return [e.model_copy(update={"created_at": e.created_at + shift}) for e in parsed.entries]
