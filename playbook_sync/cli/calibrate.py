"""`playbook-sync calibrate`: the score histogram, the null distribution and the bands in use."""

from __future__ import annotations

import typer

from playbook_sync import calibration, db, retrieval, store
from playbook_sync.cli.shared import console, services


def _bars(histogram: dict | None, width: int = 40) -> list[str]:
    """Text bars of a fixed-bin histogram ({"step", "counts"}), empty bins at both ends left out."""
    if not histogram or not histogram.get("n"):
        return ["  (no scores)"]
    counts, step = histogram["counts"], histogram["step"]
    used = [i for i, c in enumerate(counts) if c]
    top = max(counts) or 1
    return [f"  {i * step:4.2f}-{(i + 1) * step:4.2f} {'#' * max(1, round(counts[i] / top * width)) if counts[i] else '':<{width}} {counts[i]}"
            for i in range(used[0], used[-1] + 1)]


def calibrate(dry_run: bool = typer.Option(False, "--dry-run", help="Compute the null distribution and bands now, "
                                           "from the stored entries and SOP sections, instead of reading the last run.")) -> None:
    """Print the last run's best-match histogram, its null distribution and the bands it used."""
    with services(broker=False) as settings, db.session_scope(settings.database_url) as session:
        if dry_run:
            ids = store.recent_embedded_entry_ids(session, model=settings.embedding_model, limit=calibration.SAMPLE)
            missing = ("embedded entries" if not ids else
                       "SOP sections" if not store.has_sop_sections(session) else None)
            if missing:
                console.print(f"nothing to calibrate on: no {missing} yet "
                              "(ingest entries and run `playbook-sync run` first: a dry run stores no embeddings)")
                raise typer.Exit(1)
            # With no more SOPs than TOP_K there is none after an entry's top k: no null, and the record says the
            # configured bands apply (calibration.calibrate), which is the answer, not a missing input.
            record, title, histogram = (retrieval.calibrated(session, entry_ids=ids, model=settings.embedding_model,
                                                             settings=settings),
                                        f"dry run over {len(ids)} stored entries", None)
        else:
            run = store.last_calibrated_run(session)
            if run is None:
                console.print("no run has recorded a calibration yet; try `playbook-sync calibrate --dry-run`")
                raise typer.Exit(1)
            record, title, histogram = run.calibration, f"run {run.id} ({run.status})", run.score_histogram
        console.print(f"[bold]calibration[/bold] — {title}", highlight=False)
        for line in calibration.describe(record):
            console.print(f"  {line}", highlight=False)
        if histogram is not None:
            console.print(f"best-match similarity per entry ({histogram.get('n', 0)} entries):", highlight=False)
            for line in _bars(histogram):
                console.print(line, highlight=False, markup=False)
        console.print(f"null distribution (best sections of SOPs beyond each entry's top {settings.top_k}):", highlight=False)
        for line in _bars(record.get("null", {}).get("histogram")):
            console.print(line, highlight=False, markup=False)
