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


def reports(now: datetime) -> list:
    """The sample execution reports (three playbooks, several accounts), shifted like the entries."""
    from playbook_sync.ingest import Parsed
    from playbook_sync.reports import iter_reports

    parsed = Parsed()
    found = [r for _, _, r in iter_reports((HERE / "reports.jsonl").read_bytes().split(b"\n"), "reports.jsonl", parsed)]
    if parsed.errors:
        raise ValueError("bundled demo reports are invalid: " + "; ".join(parsed.errors))
    newest = max(r.report_generated_at for r in found if r.report_generated_at)
    shift = now - timedelta(hours=1) - newest
    dates = ("started_at", "completed_at", "report_generated_at")
    return [r.model_copy(update={k: getattr(r, k) + shift for k in dates if getattr(r, k) is not None}) for r in found]


def ingest_reports(settings, now: datetime) -> int:
    """Store (or refresh) the sample execution reports; how many there are."""
    from playbook_sync.db import session_scope
    from playbook_sync.deps import build_embedder
    from playbook_sync.reports import Stored, store_reports

    found = reports(now)
    with session_scope(settings.database_url) as session:
        store_reports(session, build_embedder(settings), [(n, b"", r) for n, r in enumerate(found, 1)], "reports.jsonl", Stored())
    return len(found)
