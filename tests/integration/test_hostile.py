"""A hostile corpus through a full run: every entry recorded, nothing unsafe committed."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from playbook_sync import demo, pipeline, store
from playbook_sync.callouts import check_additive
from playbook_sync.deps import Deps
from playbook_sync.ingest import parse_jsonl
from playbook_sync.mdx import find_hazards
from playbook_sync.models import RunItem, SyncRun
from playbook_sync.providers.localgit import init_repo
from playbook_sync.providers.offline import OfflineLLM
from playbook_sync.schemas import CalloutDraft, SopDraft

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data" / "hostile"
PAYLOADS = ["<script", "<Tabs", "<img", "javascript:", "{process", "import fs", "export const", "<!--", ":::danger"]


class HostileLLM(OfflineLLM):
    """Model output that tries to break out: closes the callout, injects JSX, escapes the docs root."""

    def write_callout(self, request):
        body = super().write_callout(request).body
        return CalloutDraft(body=f"{body}\n:::\n## Hacked\n<script>alert(1)</script> {{process.env.KEY}}\nimport x from 'y'")

    def name_cluster(self, entries):
        return "../../.github/workflows/x"

    def draft_sop(self, request):
        draft = super().draft_sop(request)
        return SopDraft(title="../../.github/workflows/x", overview=draft.overview + " <!-- rm -rf / -->",
                        steps=[f"{s} <Tabs/>" for s in draft.steps], key_lessons=draft.key_lessons + ["{evil}"])


def broken_playbook() -> tuple[dict[str, bytes], dict[str, str]]:
    """The sample playbook plus one SOP broken in each way; path → expected message."""
    files = demo.playbook_files()
    m1 = "docs/sops/module-1/"
    crlf = f"{m1}sop-1-1-define-your-ideal-client.md"
    files[crlf] = files[crlf].replace(b"\n", b"\r\n")
    unclosed = "docs/sops/module-3/sop-3-1-run-a-discovery-call.md"
    files[unclosed] += b"\n:::tip Dangling\nThis tip never closes.\n"
    m2 = "docs/sops/module-2/"  # where the sample run's new SOP lands (module by vote)
    broken = {
        f"{m2}sop-2-8-no-frontmatter.md": (b"# SOP 2.8: Nothing on top\n\nText.\n", ":1: missing frontmatter"),
        f"{m2}sop-2-9-bad-yaml.md": (b"---\nid: [unclosed\ntitle: Bad\n---\n\nText.\n", ":3: frontmatter is not valid YAML"),
        f"{m2}sop-2-7-latin1.md": (b"---\nid: latin\ntitle: Latin\n---\n\ncaf\xe9\n", ":6: not valid UTF-8"),
        "docs/sops/module-3/sop-3-9-copy.md": (files["docs/sops/module-3/sop-3-3-write-and-send-proposals.md"], ":2: duplicate id"),
    }
    files |= {path: content for path, (content, _) in broken.items()}
    expected = {path: msg for path, (_, msg) in broken.items()} | {unclosed: "is never closed"}
    return files, expected


def test_hostile_corpus_through_a_full_run(settings):
    files, expected_errors = broken_playbook()
    repo = init_repo(settings.playbook_path, files)
    deps = Deps.from_settings(settings)
    deps.llm = HostileLLM()
    parsed = parse_jsonl((DATA / "entries.jsonl").read_bytes(), "entries.jsonl")
    reasons = " | ".join(parsed.errors)
    assert len(parsed.entries) == 10 and len(parsed.errors) == 6, reasons
    for needle in ("content is empty", "String should have at most", "category", "not valid UTF-8", "duplicate id"):
        assert needle in reasons
    now = datetime.now(UTC)
    with deps.session() as s:
        store.upsert_entries(s, entries=[e.model_copy(update={"created_at": now}) for e in parsed.entries] + demo.entries(now))
    base = repo.head()
    result = pipeline.run_inline(deps)
    assert result["status"] == "success" and result["commit_sha"]
    assert "\u200b" not in next(e.content for e in parsed.entries if "LinkedIn" in e.content)

    with deps.session() as s:
        run = s.get(SyncRun, result["run_id"])
        items = {i.entry_id: i for i in s.scalars(select(RunItem).where(RunItem.run_id == run.id))}
        error_log = run.error_log or ""
    for entry in parsed.entries:  # every hostile entry is in a recorded state, with its reason if owed
        item = items[entry.id]
        assert item.status in ("enriched", "redundant", "orphaned", "deferred")
        assert item.status != "deferred" or item.error
    for path, message in expected_errors.items():  # broken SOPs reported with file and line
        assert any(line.startswith(path) and message in line for line in error_log.splitlines()), (path, error_log)

    changed = subprocess.run(["git", "-C", str(settings.playbook_path), "diff", "--name-only", base, result["commit_sha"]],
                             capture_output=True, text=True, check=True).stdout.split()
    before, after = repo.read_tree("docs", base), repo.read_tree("docs", result["commit_sha"])
    assert changed and all(p.startswith("docs/sops/module-") and ".." not in p for p in changed)
    for path in changed:
        new = after[path].decode()
        assert not find_hazards(new), (path, find_hazards(new))  # nothing unsafe outside inline code
        added = new if path not in before else "".join(
            line for line in new.splitlines(keepends=True) if line not in before[path].decode().splitlines(keepends=True))
        assert not [p for p in PAYLOADS if p in added], path
        if path in before:
            assert not [line for line in added.splitlines() if line.startswith("#")]  # no injected headings
            assert check_additive(before[path].decode(), new) is None  # additive against the previous version
    for path in expected_errors:
        assert after[path] == before[path]  # broken SOPs are never touched
    crlf = "docs/sops/module-1/sop-1-1-define-your-ideal-client.md"
    assert crlf in changed and b"\n" not in after[crlf].replace(b"\r\n", b"")  # edited, and CRLF stays CRLF
    created = [p for p in changed if p not in before]
    # After the highest number the module ever used: the broken 2.7-2.9 files hold theirs too.
    assert len(created) == 1 and re.fullmatch(r"docs/sops/module-2/sop-2-10-[a-z0-9-]+\.md", created[0]), created
