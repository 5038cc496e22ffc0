"""The daily chase sweep as a Prefect flow, publishing what it did as a table artifact.

Its summary also carries the outbox's open incidents (letters failed, undeliverable or in
doubt), so a mail outage is seen on the next chase run as well as in the dispatch run, and
every item the sweep skipped, with why (``SweepSummary.skipped``): nothing is skipped silently.
After the sweep, a task of its own deletes old sign-in records (states/services/signin_housekeeping.py,
as the system principal, on the real clock: sign-in records are stamped with it); its counts are in
the run's result and the chase-actions artifact's description.
The sweep acts as the built-in system principal; ``as_of`` may be a past date (catching up),
never a future one outside a training database (flows/run_clock.py).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlmodel import Session

from flows import collisions
from flows.artifacts import publish_run_summary, view_keys
from flows.naming import as_of as run_name
from flows.run_clock import sweep_clock
from models import init_db
from notifications.dispatch import incident_rows, incidents
from states.clock import SystemClock
from states.engine.sweep import SweepSummary, run_sweep
from states.engine.system import SYSTEM_PRINCIPAL
from states.services.signin_housekeeping import Purged, purge_sign_ins

LOGGED_ACTIONS = 200


@task(name="sweep-deadlines")
def sweep(as_of: str | None) -> SweepSummary:
    return run_sweep(init_db(), sweep_clock(as_of))


@task(name="purge-sign-ins")
def purge_old_sign_ins() -> Purged:
    return purge_sign_ins(init_db(), SYSTEM_PRINCIPAL, SystemClock())


@task(name="outbox-incidents")
def open_incidents(as_of: str | None) -> list[dict[str, Any]]:
    with Session(init_db()) as session:
        return incident_rows(incidents(session, sweep_clock(as_of).now()))


@flow(
    name="chase",
    flow_run_name=run_name("chase"),
    description="Chase and escalate everything due as of a date (default today, Europe/London).",
)
def chase(as_of: str | None = None) -> dict[str, Any]:
    """Sweep every deadline due as of ``as_of`` in batched queries, inside this one run."""
    logger = get_run_logger()
    sweep_clock(as_of)  # a future as_of is refused here, before anything runs
    summary = sweep(as_of)
    # One log line per action up to LOGGED_ACTIONS, then counts: the artifact has every row
    # (thousands of log lines would bury the ones a manager needs, and cost a second a run).
    for a in summary.actions[:LOGGED_ACTIONS]:
        logger.info("%s %s: %s (%s due %s)", a["kind"], a["id"], a["action"], a["deadline"], a["due_on"])
    if len(summary.actions) > LOGGED_ACTIONS:
        rest: dict[str, int] = {}
        for a in summary.actions[LOGGED_ACTIONS:]:
            rest[a["action"]] = rest.get(a["action"], 0) + 1
        logger.info(
            "... and %d more action(s): %s (every one is in the chase-actions artifact)",
            len(summary.actions) - LOGGED_ACTIONS,
            ", ".join(f"{k} {v}" for k, v in sorted(rest.items())),
        )
    for s in summary.skipped:
        logger.warning("skipped %s %s (%s): %s", s["kind"], s["id"], s.get("step", ""), s["reason"])
    for u in summary.undeliverable:
        logger.warning("%s %s: letter %s undeliverable: %s", u["kind"], u["id"], u["letter"], u["reason"])
    purged = purge_old_sign_ins()
    if purged.total:
        logger.info(
            "deleted %d sign-in attempt(s) and %d ended or expired session(s) older than %d days",
            purged.attempts,
            purged.sessions,
            purged.days,
        )
    outbox = open_incidents(as_of)
    if outbox:
        logger.warning(
            "%d outbox incident(s) open: letters not delivered (peerwatch outbox list --incidents)", len(outbox)
        )
    day = summary.as_of.isoformat()
    note = f"; {len(outbox)} outbox incident(s) open" if outbox else ""
    if purged.total:
        note += f"; {purged.total} old sign-in record(s) deleted"
    if summary.actions:
        create_table_artifact(
            key="chase-actions",
            table=summary.actions,
            description=f"Chase sweep as of {day}: {len(summary.actions)} action(s){note}",
        )
    else:
        create_markdown_artifact(
            key="chase-actions",
            markdown=f"Chase sweep as of {day}: nothing was due{note}.",
            description=f"Chase sweep as of {day}: nothing was due{note}",
        )
    if summary.skipped:
        create_table_artifact(
            key="chase-skipped",
            table=summary.skipped,
            description=f"Chase sweep as of {day}: {len(summary.skipped)} item(s) skipped, each with why",
        )
    if outbox:
        create_table_artifact(
            key="chase-outbox-incidents",
            table=outbox,
            description=f"Chase sweep as of {day}: {len(outbox)} letter(s) not delivered",
        )
    with Session(init_db()) as session:
        keys = view_keys(session)
    cancelled = collisions.report(logger)
    publish_run_summary(
        summary.actions,
        summary.skipped,
        keys + ["chase-outbox-incidents"] * bool(outbox),
        summary.as_of,
        cancelled,
        undeliverable=summary.undeliverable,
    )
    counts: dict[str, int] = {}
    for a in summary.actions:
        counts[a["action"]] = counts.get(a["action"], 0) + 1
    return {
        "as_of": day,
        "counts": counts,
        "skipped": len(summary.skipped),
        "skipped_items": summary.skipped,
        "undeliverable": len(summary.undeliverable),
        "cancelled_runs": cancelled,
        "outbox_incidents": len(outbox),
        "incidents": outbox,
        "sign_ins_purged": {"attempts": purged.attempts, "sessions": purged.sessions},
    }
