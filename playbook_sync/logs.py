"""Structured logging: every record carries run_id and entry_id (JSON or key=value lines)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# Context variables, not thread-locals: a Celery threads-pool worker runs each task in
# its own thread (each thread has its own context), and an inline run binds them too.
_FIELDS = ("run_id", "entry_id", "task_id", "task")
_context: dict[str, ContextVar[str | None]] = {name: ContextVar(f"playbook_sync_{name}", default=None) for name in _FIELDS}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def bind(**fields: object) -> Iterator[None]:
    """Attach run_id / entry_id / task_id / task to every record logged inside the block."""
    tokens = [(_context[k], _context[k].set(None if v is None else str(v))) for k, v in fields.items() if k in _context]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_fields(**fields: object) -> None:
    """Bind fields until clear() (for signal handlers that cannot wrap a block)."""
    for key, value in fields.items():
        if key in _context:
            _context[key].set(None if value is None else str(value))


def clear() -> None:
    """Forget every bound field (end of a task)."""
    for var in _context.values():
        var.set(None)


def current() -> dict[str, str]:
    """The fields bound right now."""
    return {k: v for k, var in _context.items() if (v := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Copy the bound fields onto each record; an explicit `extra=` value wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in _context.items():
            if getattr(record, key, None) is None:
                setattr(record, key, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, run_id, entry_id, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the bound fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={getattr(record, k)}" for k in _FIELDS if getattr(record, k, None))
        return f"{line} [{fields}]" if fields else line


def configure(level: str | int = "INFO", fmt: str = "json", stream=None) -> logging.Handler:
    """Route the root logger to one stream handler with the context filter and the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
