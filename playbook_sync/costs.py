"""Usage metering: tokens per provider call, priced by the settings' table, summed per run and step.

Providers report each call's tokens with `report()`. The pipeline opens a `metered()`
block around the provider calls of one step; the block attributes the calls to its run
and entry (a `contextvars` variable, so each thread of a threads-pool worker has its
own) and writes them to `cp_llm_calls`. `close_run()` sums a run's calls onto its row.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from playbook_sync.config import Price
from playbook_sync.models import LlmCall, SyncRun

log = logging.getLogger(__name__)

BATCH_DISCOUNT = 0.5  # Message Batches bill input and output at half price
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


@dataclass(frozen=True)
class Usage:
    """Tokens of one call; input excludes the cached tokens, which are counted apart."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass
class Call:
    """One metered provider call."""

    step: str  # embed | classify | edit | cluster | new_sop
    provider: str
    model: str
    usage: Usage
    cost_usd: float
    batch: bool = False
    entry_id: uuid.UUID | None = None


def price_of(prices: Mapping[str, Price], model: str) -> Price | None:
    """The price for a model id, also for dated ids (claude-sonnet-4-5-20250929 → claude-sonnet-4-5)."""
    if model in prices:
        return prices[model]
    stem = max((m for m in prices if model.startswith(m + "-")), key=len, default=None)
    return prices[stem] if stem else None


def cost(price: Price, usage: Usage, *, batch: bool = False) -> float:
    """Dollars for one call's usage at a price (per million tokens)."""
    write = price.cache_write if price.cache_write is not None else price.input * 1.25
    read = price.cache_read if price.cache_read is not None else price.input * 0.1
    dollars = (
        usage.input_tokens * price.input + usage.output_tokens * price.output
        + usage.cache_write_tokens * write + usage.cache_read_tokens * read
    ) / 1_000_000
    return dollars * (BATCH_DISCOUNT if batch else 1.0)


class Meter:
    """Collects the calls (and warnings) made while it is current."""

    def __init__(self, prices: Mapping[str, Price], *, run_id: uuid.UUID | None, entry_id: uuid.UUID | None = None) -> None:
        self.prices = prices
        self.run_id = run_id
        self.entry_id = entry_id
        self.calls: list[Call] = []
        self.warnings: list[str] = []
        self._lock = threading.Lock()  # finalize makes a step's calls from several threads

    def record(self, step: str, provider: str, model: str, usage: Usage, *, batch: bool = False,
               entry_id: uuid.UUID | None = None) -> Call:
        """Price one call and keep it."""
        price = price_of(self.prices, model)
        if price is None:
            self.warn(f"no price for model {model!r}; its calls count as $0 (set PLAYBOOK_SYNC_PRICES)")
        call = Call(step, provider, model, usage, cost(price, usage, batch=batch) if price else 0.0, batch,
                    entry_id or self.entry_id)
        with self._lock:
            self.calls.append(call)
        return call

    def warn(self, message: str) -> None:
        """Keep a warning for the run's log (once per message)."""
        with self._lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        log.warning("%s", message)


@dataclass(frozen=True)
class Ledger:
    """Where metered calls go: the price table, and a factory for a transaction of their own."""

    prices: Mapping[str, Price]
    new_session: Callable[[], AbstractContextManager[Session]]


_current: ContextVar[Meter | None] = ContextVar("playbook_sync_meter", default=None)


def current() -> Meter | None:
    """The meter of the step running in this thread, if any."""
    return _current.get()


def report(step: str, provider: str, model: str, usage: Usage, *, batch: bool = False,
           entry_id: uuid.UUID | None = None) -> None:
    """Called by providers after every answered request; a no-op outside a metered block."""
    meter = _current.get()
    if meter is not None:
        meter.record(step, provider, model, usage, batch=batch, entry_id=entry_id)


def warn(message: str) -> None:
    """A provider warning (e.g. a truncated input) for the current run, else just logged."""
    meter = _current.get()
    if meter is not None:
        meter.warn(message)
    else:
        log.warning("%s", message)


@contextmanager
def using(meter: Meter) -> Iterator[Meter]:
    """Make meter current for the calls in the block (no persistence)."""
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


@contextmanager
def metered(session: Session, ledger: Ledger, *, run_id: uuid.UUID | None, entry_id: uuid.UUID | None = None,
            apart: bool = False, kept: bool = False) -> Iterator[Meter]:
    """Meter the block's calls at the ledger's prices; store them with the block's work, or apart.

    Answered calls cost money even when the step then fails and its transaction rolls
    back, so on an exception (or with apart=True, for steps whose session may still roll
    back later) they are written in a transaction of their own. kept=True leaves a block that
    ends normally with its calls on the meter, for the caller to write (call_rows) in a
    statement of its own: the per-entry task writes them with its item and matches at once.
    """
    meter = Meter(ledger.prices, run_id=run_id, entry_id=entry_id)
    with using(meter):
        try:
            yield meter
        except BaseException:
            _save_apart(ledger.new_session, meter)
            raise
    if apart:
        _save_apart(ledger.new_session, meter)
    elif not kept:
        persist(session, meter)


def call_rows(meter: Meter) -> list[dict]:
    """The meter's calls as cp_llm_calls rows (each with its own id, so writing them twice adds nothing)."""
    return [{"id": uuid.uuid4(), "run_id": meter.run_id, "entry_id": c.entry_id, "step": c.step, "provider": c.provider,
             "model": c.model, "cost_usd": c.cost_usd, "batch": c.batch} | {f: getattr(c.usage, f) for f in TOKEN_FIELDS}
            for c in meter.calls]


def persist(session: Session, meter: Meter) -> None:
    """Add the meter's calls to the session (committed with it)."""
    session.add_all(LlmCall(**row) for row in call_rows(meter))
    meter.calls = []


def _save_apart(new_session: Callable[[], AbstractContextManager[Session]], meter: Meter) -> None:
    if not meter.calls:
        return
    try:
        with new_session() as other:
            # Never wait on a lock the failing transaction may still hold (FK to the run row).
            # Restored after: a dry run's "session" is a savepoint of one long transaction.
            before = other.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
            other.execute(text("SELECT set_config('lock_timeout', '5s', true)"))
            persist(other, meter)
            other.flush()
            other.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": before})
    except Exception:  # accounting must not hide the step's own error
        log.exception("could not record %d provider calls of run %s", len(meter.calls), meter.run_id)


def totals(session: Session, run_id: uuid.UUID) -> tuple[float, dict]:
    """A run's dollars and its usage per step (calls, tokens, dollars) from cp_llm_calls."""
    columns = [getattr(LlmCall, f) for f in TOKEN_FIELDS]
    rows = session.execute(
        select(LlmCall.step, func.count(), func.sum(LlmCall.cost_usd), *(func.sum(c) for c in columns))
        .where(LlmCall.run_id == run_id).group_by(LlmCall.step)
    ).all()
    steps: dict[str, dict] = {}
    for step, calls, dollars, *tokens in rows:
        steps[step] = {"calls": calls, "cost_usd": float(dollars or 0)} | {
            f: int(t or 0) for f, t in zip(TOKEN_FIELDS, tokens, strict=True)}
    total = {key: sum(s[key] for s in steps.values()) for key in ("calls", "cost_usd", *TOKEN_FIELDS)}
    return float(total["cost_usd"]), {"total": total, "steps": steps}


def close_run(session: Session, run: SyncRun) -> None:
    """Store the run's summed cost and usage on its row."""
    session.flush()
    run.cost_usd, run.usage = totals(session, run.id)


def summarize(usage: dict | None) -> str:
    """`$0.0123 (classify $0.0100, edit $0.0023)` for the CLI."""
    if not usage or not usage.get("steps"):
        return "$0.00 (no metered provider calls)"
    parts = ", ".join(f"{step} ${s['cost_usd']:.4f}" for step, s in sorted(usage["steps"].items()))
    return f"${usage['total']['cost_usd']:.4f} ({parts})"
