"""Parse knowledge entries from JSONL: valid lines load, bad lines are named with a reason.

Cleaning (the stored value of every string field, `tags` items included): zero-width, bidi
and other invisible format characters and control characters other than tab, newline and
carriage return are removed, the text is NFC-normalised, then leading and trailing
whitespace is stripped. Tags that are empty after that are dropped. `null` for an optional
field means absent. A UTF-8 byte order mark at the start of the file and CRLF line ends
are accepted. Dates: a naive `created_at` is UTC; every date is stored in UTC; one that
cannot be (year 0 or 10000 once in UTC) is rejected, one more than a day ahead of this
machine's clock or before 2000 is stored with a warning. Lines longer than 4 MiB are
rejected without being parsed (their first 4 MiB are kept in the rejected file).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from playbook_sync.schemas import EntryIn

# Zero-width, bidi and other invisible format characters carry no meaning in a
# callout and can hide text from reviewers; control characters break YAML/MDX, and
# PostgreSQL text cannot hold NUL at all.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # JSON "\ud800" alone: no UTF-8 form, the database refuses it
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_FIELDS = ("content", "context", "speaker", "source_ref")
OPTIONAL_FIELDS = ("id", "context", "speaker", "tags", "source_ref", "created_at")
MAX_LINE_BYTES = 4 << 20  # the largest valid entry (2 x 20,000 chars, \u-escaped) is far below
FUTURE_SLACK = timedelta(days=1)
ANCIENT = datetime(2000, 1, 1, tzinfo=UTC)
BOM = b"\xef\xbb\xbf"


@dataclass
class Parsed:
    entries: list[EntryIn] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line number of each entry
    errors: list[str] = field(default_factory=list)  # "source:N: reason"
    rejected: list[tuple[int, bytes]] = field(default_factory=list)  # (line, raw bytes), kept so nothing is lost
    warnings: list[str] = field(default_factory=list)  # "source:N: warning: ..." (the entry was stored)

    def reject(self, source: str, number: int, raw: bytes, reason: str) -> None:
        """Record a rejected line with its reason."""
        self.errors.append(f"{source}:{number}: {printable(reason)}")
        self.rejected.append((number, raw))

    def warn(self, source: str, number: int, message: str) -> None:
        """Record a warning about a line that was accepted."""
        self.warnings.append(f"{source}:{number}: warning: {printable(message)}")


def printable(text: str) -> str:
    """Text safe for one terminal line: control characters and lone surrogates escaped."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def write_rejects(parsed: Parsed, directory: Path, source: str) -> Path | None:
    """Keep rejected lines (raw, with their reasons) in a JSONL file for the operator to fix."""
    if not parsed.rejected:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{Path(source).name}"
    # A new file every time: two same-named sources in one second overwrote the first one's rejects.
    for n in range(1, 1000):
        path = directory / f"{stem}{'' if n == 1 else f'-{n}'}.rejected.jsonl"
        try:
            out = path.open("x", encoding="utf-8")
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{directory / stem}: too many rejected files in one second")
    with out:
        for (number, raw), error in zip(parsed.rejected, parsed.errors, strict=True):
            out.write(json.dumps({"line": number, "reason": error, "raw": raw.decode("utf-8", "backslashreplace")}) + "\n")
    return path


def clean(text: str) -> str:
    """Drop control and invisible characters; normalise to NFC."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", _INVISIBLE.sub("", text)))


def storable(text: str) -> str:
    """clean(text), or ValueError for a lone surrogate (no UTF-8 form: the database would refuse it with a 500)."""
    if bad := _SURROGATE.search(text):
        raise ValueError(f"unpaired UTF-16 surrogate \\u{ord(bad.group()):04x} (not valid Unicode)")
    return clean(text)


def _clean_fields(obj: dict) -> str | None:
    """Clean the entry's strings in place; a reason if one cannot be stored."""
    for key in OPTIONAL_FIELDS:
        if key in obj and obj[key] is None:
            del obj[key]
    for key in TEXT_FIELDS:
        if isinstance(obj.get(key), str):
            obj[key] = clean(obj[key])
    if isinstance(obj.get("tags"), list):
        obj["tags"] = [t for t in (clean(t).strip() if isinstance(t, str) else t for t in obj["tags"]) if t != ""]
    for key, value in obj.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and (bad := _SURROGATE.search(text)):
                return f"{key}: unpaired UTF-16 surrogate \\u{ord(bad.group()):04x} (not valid Unicode)"
    return None


def _date_warning(created: datetime | None, now: datetime) -> str | None:
    if created is None:
        return None
    if created > now + FUTURE_SLACK:
        return f"created_at {created.isoformat()} is more than a day in the future; stored as given"
    if created < ANCIENT:
        return f"created_at {created.isoformat()} is before 2000; stored as given"
    return None


def json_objects(lines: Iterable[bytes], source: str, out: Parsed) -> Iterator[tuple[int, bytes, dict]]:
    """The JSON object on each non-blank line (BOM, CRLF, size, UTF-8 and JSON checked); the rest recorded in out.

    Shared by every JSONL ingest (entries here, execution reports in reports.py)."""
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            out.reject(source, number, raw[:MAX_LINE_BYTES], f"line longer than {MAX_LINE_BYTES} bytes; not parsed")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.reject(source, number, raw, f"not valid UTF-8 (byte {exc.start})")
            continue
        try:
            obj = json.loads(line, parse_constant=_Constant)
        except (json.JSONDecodeError, RecursionError) as exc:
            # json ends some messages with "at" itself ("Invalid control character at"): said once, not "at at".
            why = (f"{exc.msg.removesuffix(' at')} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
                   else "nested too deeply")
            out.reject(source, number, raw, f"not valid JSON ({why})")
            continue
        if not isinstance(obj, dict):
            out.reject(source, number, raw, f"expected a JSON object, got {type(obj).__name__}")
            continue
        if found := _constant_in(obj):
            path, constant = found
            out.reject(source, number, raw, f"{path}: {constant} is not valid JSON (write a number or null)")
            continue
        yield number, raw, obj


class _Constant(str):
    """NaN, Infinity or -Infinity as written: Python's json reads them, no other JSON reader (or PostgreSQL) does."""


def _constant_in(value, path: str = "") -> tuple[str, str] | None:
    """(dotted path, literal) of the first NaN/Infinity in a parsed line, so the message can name its field."""
    if isinstance(value, _Constant):
        return path or "line", str(value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if found := _constant_in(item, f"{path}.{key}" if path else str(key)):
            return found
    return None


def validation_reasons(exc: ValidationError, what: str = "entry") -> str:
    """pydantic's errors as one line: `field: message; field: message`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())


def iter_entries(lines: Iterable[bytes], source: str, out: Parsed, *, now: datetime | None = None) -> Iterator[tuple[int, bytes, EntryIn]]:
    """Validate each line; yield (line number, raw, entry) for the valid ones and record the rest in out."""
    now = now or datetime.now(UTC)
    first_line: dict[str, int] = {}
    for number, raw, obj in json_objects(lines, source, out):
        if reason := _clean_fields(obj):
            out.reject(source, number, raw, reason)
            continue
        try:
            entry = EntryIn.model_validate(obj)
        except ValidationError as exc:
            out.reject(source, number, raw, validation_reasons(exc))
            continue
        if entry.id is not None:
            key = str(entry.id)
            if key in first_line:
                out.reject(source, number, raw, f"duplicate id {key} (first at line {first_line[key]})")
                continue
            first_line[key] = number
        if warning := _date_warning(entry.created_at, now):
            out.warn(source, number, warning)
        yield number, raw, entry


def parse_jsonl(data: bytes, source: str = "<input>", *, now: datetime | None = None) -> Parsed:
    """Validate every line; nothing is dropped silently."""
    out = Parsed()
    for number, _, entry in iter_entries(data.split(b"\n"), source, out, now=now):
        out.entries.append(entry)
        out.lines.append(number)
    return out


def read_lines(handle: BinaryIO) -> Iterator[bytes]:
    """A file's lines in bounded memory: a line over MAX_LINE_BYTES is cut there and the rest skipped."""
    while line := handle.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line


@dataclass
class Loaded:
    """What an ingest stored: new rows, ids already present, and the parse record."""

    parsed: Parsed
    added: int = 0
    present: int = 0


def load(session, lines: Iterable[bytes], source: str, *, chunk: int = 1000, now: datetime | None = None) -> Loaded:
    """Parse and store in chunks (bounded memory for any file size), in the caller's transaction.

    An id already stored keeps its stored row (it may already be in the playbook); if the
    file's line differs from it, a warning names the fields. A row the database refuses is
    rejected with the database's reason and the rest of its chunk still loads.
    """
    from sqlalchemy.exc import DBAPIError

    from playbook_sync import store

    result = Loaded(Parsed())
    parsed = result.parsed
    pending = iter_entries(lines, source, parsed, now=now)
    while batch := list(islice(pending, chunk)):
        try:
            with session.begin_nested():
                new = store.insert_entries(session, entries=[e for _, _, e in batch])
        except DBAPIError:  # find the row(s) at fault; each goes into its own savepoint
            new, kept = set(), []
            for number, raw, entry in batch:
                try:
                    with session.begin_nested():
                        new |= store.insert_entries(session, entries=[entry])
                    kept.append((number, raw, entry))
                except DBAPIError as exc:
                    parsed.reject(source, number, raw, f"the database refused it: {str(exc.orig).strip().splitlines()[0]}")
            batch = kept
        result.added += len(new)
        present = [(n, e) for n, _, e in batch if e.id is not None and e.id not in new]
        result.present += len(present)
        differ = store.stored_differences(session, entries=[e for _, e in present])
        for number, entry in present:
            if entry.id in differ:
                parsed.warn(source, number, f"id {entry.id} is already stored with a different "
                                            f"{', '.join(differ[entry.id])}; the stored entry is kept")
    return result
