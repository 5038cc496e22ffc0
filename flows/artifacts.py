"""The Network Manager's views as Prefect artifacts, kept current by the flows.

The ``views`` flow (flows/views.py, after the morning chase and through the day; the cycle and
dispatch flows for their parts) publishes, under stable keys so the Prefect UI's Artifacts page
always shows the latest version with its history:

- ``risk-register-<network>``: open IR/SC/GC per service with state, owner, next step and
  due date ("what are the next steps and when"), one per network;
- ``overdue-items``: every open deadline past its date, any kind, any network;
- ``late-receipts``: what came in after its deadline in the last year, days late as recorded;
- ``outbox``: letters by status, and ``outbox-incidents`` (failed, undeliverable, in doubt);
- ``cycle-status-<network>``: the programme cycle of each network.

Each chase run adds ``chase-run-summary``: what it did, counted, with links to its own
``chase-actions`` and to each view above, so a manager opening one run finds everything from there. The rows come from
``states.views.register`` (the dashboard's read model), so the UI, the dashboard and
``peerwatch risk list`` agree.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import func
from sqlmodel import Session, select

from models import Network, OutboxMessage
from notifications.dispatch import incident_rows, incidents
from states.clock import Clock
from states.machines.lateness import received_late
from states.services.cycle import status as cycle_status
from states.views import register

# Rows per table artifact: the UI renders a table artifact whole. Beyond this the description
# says how many there are and where to see them all (the dashboard, the CLI).
MAX_ROWS = 1000


def _capped(rows: list[dict[str, Any]], title: str, where: str) -> tuple[list[dict[str, Any]], str]:
    if len(rows) <= MAX_ROWS:
        return rows, f"{title} ({len(rows)})"
    return rows[:MAX_ROWS], f"{title}: the first {MAX_ROWS} of {len(rows)} ({where} has them all)"


def key_for(*parts: str) -> str:
    """An artifact key: lowercase letters, digits and dashes (Prefect's rule)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _link(key: str, text: str) -> str:
    return f"[{text}](/artifacts/key/{key})"


def publish_register(session: Session, today: date) -> list[str]:
    """One risk register per network (an empty register says so)."""
    keys = []
    rows = register.risk_register(session, today)
    for net in session.exec(select(Network).order_by(Network.code)):  # type: ignore[arg-type]
        key = key_for("risk-register", net.code)
        mine = [_register_row(r) for r in rows if r["network"] in (net.code, net.name)]
        title = f"{net.name}: open immediate risks, serious and general concerns as of {today.isoformat()}"
        if mine:
            shown, description = _capped(mine, title, "peerwatch risk list")
            create_table_artifact(key=key, table=shown, description=description)
        else:
            create_markdown_artifact(key=key, markdown=f"{title}: none open.", description=f"{title}: none open")
        keys.append(key)
    return keys


def _register_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "service": r["service"],
        "ref": r["ref"],
        "title": r["title"],
        "state": r["state"],
        "owner": r["owner"],
        "next step": r["next_step"],
        "due": r["due_on"],
        "overdue": "OVERDUE" if r["overdue"] else "",
    }


def publish_overdue(session: Session, today: date) -> str:
    rows = register.overdue(session, today)
    title = f"Overdue as of {today.isoformat()}"
    if rows:
        shown, description = _capped(
            rows, f"{title}: deadlines past their date, longest overdue first", "the dashboard"
        )
        create_table_artifact(key="overdue-items", table=shown, description=description)
    else:
        create_markdown_artifact(
            key="overdue-items", markdown=f"{title}: nothing overdue.", description=f"{title}: nothing overdue"
        )
    return "overdue-items"


def publish_outbox(session: Session, clock: Clock) -> list[str]:
    """The outbox by status and template, and the open incidents."""
    counts = session.exec(
        select(OutboxMessage.status, OutboxMessage.category, func.count()).group_by(  # type: ignore[call-overload]
            OutboxMessage.status, OutboxMessage.category
        )
    ).all()
    table = [
        {"status": str(s), "category": c, "messages": n} for s, c, n in sorted(counts, key=lambda r: (str(r[0]), r[1]))
    ]
    if table:
        create_table_artifact(key="outbox", table=table, description="The outbox: messages by status and category")
    else:
        create_markdown_artifact(key="outbox", markdown="The outbox is empty.", description="The outbox: empty")
    open_incidents = incident_rows(incidents(session, clock.now()))
    if open_incidents:
        create_table_artifact(
            key="outbox-incidents",
            table=open_incidents,
            description=f"{len(open_incidents)} letter(s) not delivered: failed (still retried), undeliverable or in doubt",
        )
    else:
        create_markdown_artifact(
            key="outbox-incidents",
            markdown="No open outbox incidents.",
            description="Letters not delivered: none (no open outbox incidents)",
        )
    return ["outbox", "outbox-incidents"]


def publish_cycle_status(session: Session, today: date) -> list[str]:
    """Each network's programme cycle (and the side-by-side ``cycle-status`` table)."""
    rows = cycle_status(session, today)
    shown = [
        {
            "network": r["network"],
            "programme": r["programme"],
            "programme year": r["programme_year"],
            "cycle year": f"{r['cycle_year']} of {r['cycle_years']}",
            "quarter": r["quarter"],
            "quarters": r["quarters"],
            "current phases": "; ".join(r["phases"]),
            "overdue phases": "; ".join(r["overdue_phases"]),
            "outstanding submissions": len(r["outstanding_submissions"]),
            "received late": "; ".join(
                f"{x['organisation']} {x['doc_type'].replace('_', ' ')}: {x['working_days_late']} working "
                f"day(s) late ({x['days_late']} calendar)"
                for x in r["late_submissions"]
            ),
            "carried forward": len(r["carried_forward"]),
        }
        for r in rows
    ]
    create_table_artifact(key="cycle-status", table=shown, description=f"Programme cycles as of {today.isoformat()}")
    keys = ["cycle-status"]
    for r, row in zip(rows, shown):
        key = key_for("cycle-status", r["network"])
        create_table_artifact(
            key=key,
            table=[{"what": k, "value": v} for k, v in row.items()],
            description=f"{r.get('name') or r['network']}: programme cycle as of {today.isoformat()}",
        )
        keys.append(key)
    return keys


def publish_late(session: Session, today: date) -> str:
    """What came in after its deadline in the last year (submissions, self-assessment returns,
    factual-accuracy replies), with the days late recorded at receipt (states/machines/lateness.py)."""
    rows = [
        {
            "received": r["received_on"],
            "due": r["due_on"],
            "working days late": r["working_days_late"],
            "calendar days late": r["days_late"],
            "what": r["what"],
            "item": f"{r['kind']} {r['id']}",
            "network": r["network"],
            "trust": r["organisation"],
            "service": r["service"] or "",
        }
        for r in received_late(session, since=today - timedelta(days=365))
    ]
    title = f"Received late in the year to {today.isoformat()}"
    if rows:
        shown, description = _capped(
            rows, f"{title}: submissions, self-assessment returns and factual-accuracy replies", "the dashboard"
        )
        create_table_artifact(key="late-receipts", table=shown, description=description)
    else:
        create_markdown_artifact(key="late-receipts", markdown=f"{title}: nothing.", description=f"{title}: nothing")
    return "late-receipts"


def view_keys(session: Session) -> list[str]:
    """The keys ``publish_views`` writes (for links to them)."""
    codes = list(session.exec(select(Network.code).order_by(Network.code)))
    return (
        [key_for("risk-register", c) for c in codes]
        + ["overdue-items", "late-receipts", "outbox", "outbox-incidents", "cycle-status"]
        + [key_for("cycle-status", c) for c in codes]
    )


def publish_views(session: Session, clock: Clock, today: date) -> list[str]:
    """Every view above; returns their keys."""
    return [
        *publish_register(session, today),
        publish_overdue(session, today),
        publish_late(session, today),
        *publish_outbox(session, clock),
        *publish_cycle_status(session, today),
    ]


SUMMARY_ROWS = 100  # incidents listed on the run summary; every one is in the chase-skipped artifact


def _cell(value: object) -> str:
    """A value in a markdown table cell: no pipe or line break can break the table."""
    return " ".join(str(value if value is not None else "").replace("|", "/").split())


def publish_run_summary(
    actions: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    keys: list[str],
    today: date,
    notes: list[str] | None = None,
    undeliverable: list[dict[str, Any]] | None = None,
) -> None:
    """What this chase run did, counted by action and kind; every item it skipped, with why (an
    incident each, never a silent skip); the letters it queued that nobody can receive; and a
    link to every view it refreshed."""
    counts = Counter((a["action"], a["kind"]) for a in actions)
    lines = [f"# Chase sweep as of {today.isoformat()}", ""]
    if counts:
        lines += ["| action | kind | items |", "|---|---|---:|"]
        lines += [f"| {action} | {kind} | {n} |" for (action, kind), n in sorted(counts.items())]
    else:
        lines.append("Nothing was due.")
    if skipped:
        lines += ["", f"## {len(skipped)} incident(s): item(s) skipped", "", "| kind | id | deadline | step | why |"]
        lines += ["|---|---:|---|---|---|"]
        lines += [
            f"| {k['kind']} | {k['id']} | {_cell(k.get('deadline'))} | {_cell(k.get('step'))} | {_cell(k['reason'])} |"
            for k in skipped[:SUMMARY_ROWS]
        ]
        if len(skipped) > SUMMARY_ROWS:
            lines.append(f"\n... and {len(skipped) - SUMMARY_ROWS} more: {_link('chase-skipped', 'chase-skipped')}.")
    if undeliverable:
        lines += ["", f"## {len(undeliverable)} letter(s) queued that no contact can receive", ""]
        lines += ["| kind | id | letter | why |", "|---|---:|---|---|"]
        lines += [
            f"| {u['kind']} | {u['id']} | {_cell(u['letter'])} | {_cell(u['reason'])} |"
            for u in undeliverable[:SUMMARY_ROWS]
        ]
    for note in notes or []:  # e.g. a scheduled run the concurrency limit cancelled (flows/collisions.py)
        lines += ["", f"**{note}**"]
    lines += [
        "",
        f"Every action, item by item: {_link('chase-actions', 'chase-actions')}.",
        "",
        "The manager's views (kept current by the views flow, and by dispatch for the outbox):",
        "",
    ]
    lines += [f"- {_link(k, k)}" for k in keys]
    create_markdown_artifact(
        key="chase-run-summary",
        markdown="\n".join(lines),
        description=f"Chase sweep as of {today.isoformat()}: {len(actions)} action(s)",
    )
