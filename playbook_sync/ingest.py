"""Parse knowledge entries from JSONL: valid lines load, bad lines are named with a reason."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from playbook_sync.schemas import EntryIn

# Zero-width, bidi and other invisible format characters carry no meaning in a
# callout and can hide text from reviewers; control characters break YAML/MDX.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Parsed:
    entries: list[EntryIn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "source:N: reason"
    rejected: list[tuple[int, bytes]] = field(default_factory=list)  # (line, raw bytes), kept so nothing is lost

    def reject(self, source: str, number: int, raw: bytes, reason: str) -> None:
        """Record a rejected line with its reason."""
        self.errors.append(f"{source}:{number}: {reason}")
        self.rejected.append((number, raw))


def write_rejects(parsed: Parsed, directory: Path, source: str) -> Path | None:
    """Keep rejected lines (raw, with their reasons) in a JSONL file for the operator to fix."""
    if not parsed.rejected:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{Path(source).name}.rejected.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for (number, raw), error in zip(parsed.rejected, parsed.errors, strict=True):
            out.write(json.dumps({"line": number, "reason": error, "raw": raw.decode("utf-8", "backslashreplace")}) + "\n")
    return path


def clean(text: str) -> str:
    """Drop control and invisible characters; normalise to NFC."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", _INVISIBLE.sub("", text)))


def parse_jsonl(data: bytes, source: str = "<input>") -> Parsed:
    """Validate every line; nothing is dropped silently."""
    out = Parsed()
    first_line: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.reject(source, number, raw, f"not valid UTF-8 (byte {exc.start})")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.reject(source, number, raw, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            out.reject(source, number, raw, f"expected a JSON object, got {type(obj).__name__}")
            continue
        for key in ("content", "context", "speaker"):
            if isinstance(obj.get(key), str):
                obj[key] = clean(obj[key])
        try:
            entry = EntryIn.model_validate(obj)
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors())
            out.reject(source, number, raw, reasons)
            continue
        if entry.id is not None:
            key = str(entry.id)
            if key in first_line:
                out.reject(source, number, raw, f"duplicate id {key} (first at line {first_line[key]})")
                continue
            first_line[key] = number
        out.entries.append(entry)
    return out
