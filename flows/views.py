"""The Network Manager's views, refreshed: Prefect artifacts (flows/artifacts.py) and the
dashboard site with its calendar feeds (flows/site.py, ``PEERWATCH_SITE_DIR``).

A flow of its own, scheduled after the morning chase and through the working day (prefect.yaml),
so the chase stays a sweep whose cost depends only on what is due, whatever the number of open
items; the views read everything open, once.

It also anchors the audit chain once a day (``states.services.anchors.anchor_once_a_day``: the
head written to a new file in ``PEERWATCH_ANCHOR_DIR`` and emailed to the auditors), after the
views are published; a chain that does not verify is never anchored, and the run then fails
naming why (the ``audit-anchor`` artifact says so too).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlmodel import Session, select

from flows import collisions
from flows.artifacts import publish_views
from flows.naming import as_of as run_name
from flows.run_clock import sweep_clock
from flows.site import write_site
from models import Network, init_db
from notifications.dashboard import site_dir
from states.clock import local_date
from states.errors import PeerwatchError
from states.services.anchors import anchor_once_a_day
from states.services.contacts import escalation_contacts, escalation_window_days


@task(name="publish-artifacts")
def artifacts(as_of: str | None) -> list[str]:
    clock = sweep_clock(as_of)
    with Session(init_db()) as session:
        keys = publish_views(session, clock, local_date(clock.now()))
        return [*keys, publish_escalation_contacts(session, local_date(clock.now()))]


def publish_escalation_contacts(session: Session, today: Any) -> str:
    """Changes to where escalations go (CQC, Commissioning Lead, commissioner, ASCT, TPD, RA)
    recorded lately (states/services/contacts.py): a Network Manager sees who will now be written to."""
    days = escalation_window_days()
    rows = escalation_contacts(session, today, days)
    what = f"Escalation addresses changed in the last {days} days, as of {today.isoformat()}"
    if rows:
        create_table_artifact(key="escalation-contacts", table=rows, description=f"{what}: {len(rows)}")
    else:
        create_markdown_artifact(key="escalation-contacts", markdown=f"{what}: none.", description=f"{what}: none")
    return "escalation-contacts"


@task(name="write-dashboard")
def dashboard(as_of: str | None) -> list[dict[str, Any]]:
    today = local_date(sweep_clock(as_of).now())
    with Session(init_db()) as session:
        networks = [(n.code, n.name) for n in session.exec(select(Network).order_by(Network.code))]  # type: ignore[arg-type]
        return write_site(session, today, site_dir(), networks)


@task(name="anchor-audit-chain")
def anchor(as_of: str | None) -> str | None:
    """Anchor the audit chain once a day; the file written, or None if today's anchor exists."""
    clock = sweep_clock(as_of)
    day = local_date(clock.now()).isoformat()
    try:
        with Session(init_db()) as session:
            path = anchor_once_a_day(session, clock)
            session.commit()  # the email to the auditors, queued with it
    except PeerwatchError as exc:
        what = f"Audit chain NOT anchored on {day}: {exc}"
        create_markdown_artifact(key="audit-anchor", markdown=f"**{what}**", description=what)
        raise
    what = f"Audit chain anchored on {day}: {path}" if path else f"Audit chain already anchored on {day}"
    create_markdown_artifact(key="audit-anchor", markdown=what, description=what)
    return str(path) if path else None


@flow(
    name="views",
    flow_run_name=run_name("views"),
    description="Refresh the risk registers, overdue items, outbox, cycle status, dashboard and calendar feeds.",
)
def views(as_of: str | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    keys = artifacts(as_of)
    pages = dashboard(as_of)
    for p in pages:
        logger.info(
            "%s: %s open items, %s overdue, %s due in the next 20 working days -> %s",
            p["network"],
            p["open_items"],
            p["overdue"],
            p["upcoming"],
            p["page"],
        )
    anchored = anchor(as_of)
    logger.info("audit chain anchored: %s", anchored or "today's anchor was already written")
    collisions.report(logger)
    return {
        "artifacts": [*keys, "audit-anchor"],
        "pages": [p["page"] for p in pages],
        "site": str(site_dir()),
        "anchor": anchored,
    }
