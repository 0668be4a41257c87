"""Batch mode: a run's classify calls as one Anthropic Message Batch (half price).

Flow (PLAYBOOK_SYNC_LLM_BATCH=true):
1. process_entry embeds and matches as usual, but stores the entry's classify request on
   its run item (`prepared`) instead of calling the model; the item stays pending.
2. finalize (the chord callback) calls `waiting()`: it submits every prepared request as
   one batch, custom id = entry id, stores the batch id on the run and returns early.
3. The periodic poll_batches task calls `poll()`: it retrieves each running run's batch;
   once it has ended, the results are mapped back to entries by custom id and recorded
   like direct answers, and the task hands the run back to finalize.

Everything lives in the database, so a worker restart between polls simply resumes
polling the same batch id; a run that has a batch id never submits another. A result
that errored, expired or does not parse is classified once more with a direct call (the
normal retry budget); if that fails too, the entry fails for this run and is owed.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import costs, lifecycle, store
from playbook_sync.models import RunItem, SyncRun
from playbook_sync.providers.base import LLM, BatchClassifier, ProviderError
from playbook_sync.schemas import ClassifyRequest, ItemStatus, RunStatus

log = logging.getLogger(__name__)
SUBMITTED, ENDED, APPLIED = "in_progress", "ended", "applied"


def _prepared(session: Session, run_id: uuid.UUID) -> list[RunItem]:
    """Pending items whose classify request awaits the batch."""
    return [i for i in store.items(session, run_id=run_id, status=ItemStatus.pending) if i.prepared]


def requests_for(session: Session, items: list[RunItem]) -> dict[str, ClassifyRequest]:
    """custom id → classify request, with the SOP texts re-read from the SOP cache."""
    requests = {str(i.entry_id): ClassifyRequest.model_validate(i.prepared) for i in items}
    texts = {path: row.content for path, row in
             store.sops(session, paths={c.sop_path for r in requests.values() for c in r.candidates}).items()}
    for request in requests.values():
        for candidate in request.candidates:
            candidate.sop_text = texts.get(candidate.sop_path, "")
    return requests


def waiting(session: Session, llm: LLM, ledger: costs.Ledger, run: SyncRun, *, enabled: bool) -> bool:
    """For finalize: True while the run's batch is to be submitted (done here) or has not been applied.

    enabled: batch mode is on (settings.llm_batch); when it was switched off mid-run, the
    prepared entries are classified directly instead.
    """
    if run.batch_status == APPLIED:
        return False
    if run.batch_id is not None:
        return True  # a redelivered or early callback: poll_batches calls finalize again
    items = _prepared(session, run.id)
    if not items:
        return False
    requests = requests_for(session, items)
    if not (enabled and isinstance(llm, BatchClassifier)):
        # Batch mode was switched off mid-run: classify the prepared entries directly now.
        _classify_directly(session, llm, ledger, run, items, requests, "batch mode is off")
        return False
    # The run row is locked (finalize holds it), so a concurrent callback cannot submit twice.
    run.batch_id = llm.submit_classifications(requests)
    run.batch_status = SUBMITTED
    log.info("run %s: %d classifications submitted as batch %s", run.id, len(requests), run.batch_id,
             extra={"run_id": str(run.id)})
    return True


def poll(session: Session, llm: LLM, ledger: costs.Ledger) -> list[uuid.UUID]:
    """Check every running run's batch; apply ended ones. Returns the runs ready for finalize."""
    runs = session.scalars(
        select(SyncRun).where(SyncRun.status == RunStatus.running, SyncRun.batch_id.is_not(None),
                              SyncRun.batch_status.is_distinct_from(APPLIED))
        # Two pollers never apply the same batch; NO KEY so call rows can still reference the run.
        .with_for_update(skip_locked=True, key_share=True)  # FOR NO KEY UPDATE
    ).all()
    ready = []
    for run in runs:
        if not isinstance(llm, BatchClassifier):
            log.error("run %s waits for batch %s but the LLM provider cannot read batches; set PLAYBOOK_SYNC_LLM="
                      "anthropic", run.id, run.batch_id)
            continue
        run.batch_status = llm.batch_status(run.batch_id)
        if run.batch_status == ENDED:
            apply_results(session, llm, ledger, run)
            ready.append(run.id)
    return ready


def apply_results(session: Session, llm: BatchClassifier, ledger: costs.Ledger, run: SyncRun) -> None:
    """Record an ended batch's answers per entry (by custom id), at batch prices."""
    items = {str(i.entry_id): i for i in _prepared(session, run.id)}
    requests = requests_for(session, list(items.values()))
    retry: list[tuple[RunItem, str]] = []
    with costs.metered(session, ledger, run_id=run.id) as meter:
        for result in llm.classification_results(run.batch_id, requests):
            item = items.pop(result.custom_id, None)
            if item is None:
                continue  # applied already, or not ours
            if result.usage is not None:
                meter.record("classify", llm.provider, result.model, result.usage, batch=True,
                             entry_id=item.entry_id)
            if result.decisions is None:
                retry.append((item, result.error or "no answer"))
            else:
                lifecycle.record_decisions(session, item, requests[result.custom_id].candidates, result.decisions)
    retry += [(item, "no result in the batch") for item in items.values()]
    for item, reason in retry:
        _classify_directly(session, llm, ledger, run, [item], requests, reason)
    run.batch_status = APPLIED


def _classify_directly(session: Session, llm: LLM, ledger: costs.Ledger, run: SyncRun, items: list[RunItem],
                       requests: dict[str, ClassifyRequest], reason: str) -> None:
    """One direct classify call per item; a failure is recorded on the entry (owed to the next run)."""
    for item in items:
        request = requests[str(item.entry_id)]
        # The failure is caught inside the metered block so its calls are stored in this
        # session (the run row is locked here; a separate transaction would wait on it).
        with costs.metered(session, ledger, run_id=run.id, entry_id=item.entry_id):
            try:
                decisions, error = llm.classify(request), None
            except ProviderError as exc:
                decisions, error = None, exc
        if decisions is not None:
            try:
                lifecycle.record_decisions(session, item, request.candidates, decisions)
                continue
            except ValueError as exc:
                error = exc
        item.prepared = None
        lifecycle.record_failure(session, run_id=run.id, entry_id=item.entry_id,
                       error=f"classification failed: {reason}; direct call: {error}")
