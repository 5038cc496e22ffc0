"""The daily chase sweep as a Prefect flow, publishing what it did as a table artifact."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from models import init_db
from states.clock import clock_from
from states.sweep import SweepSummary, run_sweep


@task(name="sweep-deadlines")
def sweep(as_of: str | None) -> SweepSummary:
    return run_sweep(init_db(), clock_from(as_of))


@flow(name="chase", description="Chase and escalate everything due as of a date (default today, Europe/London).")
def chase(as_of: str | None = None) -> dict[str, Any]:
    """Sweep every deadline due as of ``as_of`` in batched queries, inside this one run."""
    logger = get_run_logger()
    summary = sweep(as_of)
    for a in summary.actions:
        logger.info("%s %s: %s (%s due %s)", a["kind"], a["id"], a["action"], a["deadline"], a["due_on"])
    for s in summary.skipped:
        logger.warning("skipped %s %s: %s", s["kind"], s["id"], s["reason"])
    day = summary.as_of.isoformat()
    if summary.actions:
        create_table_artifact(key="chase-actions", table=summary.actions, description=f"Chase sweep as of {day}: {len(summary.actions)} action(s)")
    else:
        create_markdown_artifact(key="chase-actions", markdown=f"Chase sweep as of {day}: nothing was due.")
    counts: dict[str, int] = {}
    for a in summary.actions:
        counts[a["action"]] = counts.get(a["action"], 0) + 1
    return {"as_of": day, "counts": counts, "skipped": len(summary.skipped)}
