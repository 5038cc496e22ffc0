"""Lateness: whether what a Trust or service sent arrived after its deadline, recorded once.

Called by a kind's ``effects`` when the thing arrives (a document submission's ``receive``,
a self-assessment return's ``receive``, a factual-accuracy reply), so the record is written
by the engine in the transition's one transaction. The deadline compared with is the one in
force at that moment (the item's outstanding deadline of that name, extensions and clock
stops included); the days late are counted then and stored (``models.cycle.Lateness``), so a
later ``--as-of``, a moved deadline or a new calendar never changes them:

- ``days_late``: calendar days after the due date (0 when on or before it);
- ``working_days_late``: working days in (due date, receipt] by the item's nation's calendar.

A deadline whose clock was stopped (paused) when the thing arrived is not late. The figures
also go into the transition's audit event (``params.lateness``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as select_core
from sqlmodel import Session, col, select

from models.cycle import Lateness, Submission
from models.selfassessment import SelfAssessment
from models.tables import OUTSTANDING, Deadline, DeadlineStatus, Network, Organisation, Report, Service
from states.machines.spec import Context

KINDS = ("submission", "selfassessment", "report")
WHAT = {
    "submission": "document submission",
    "selfassessment": "self-assessment return",
    "report": "factual accuracy reply",
}


def _deadline(session: Session, kind: str, item_id: int, names: tuple[str, ...]) -> Deadline | None:
    """The newest outstanding deadline of one of these names (open, paused, or passed and chased)."""
    return session.exec(
        select(Deadline)
        .where(
            Deadline.kind == kind,
            Deadline.item_id == item_id,
            col(Deadline.name).in_(names),
            col(Deadline.status).in_(OUTSTANDING),
        )
        .order_by(col(Deadline.id).desc())
    ).first()


def measure(calendar: Any, due_on: date, received_on: date) -> tuple[int, int]:
    """(calendar days late, working days late) of something due ``due_on`` received ``received_on``."""
    if received_on <= due_on:
        return 0, 0
    return (received_on - due_on).days, calendar.working_days_between(due_on, received_on)


def record(ctx: Context, names: tuple[str, ...], what: str, fallback_due: date | None = None) -> Lateness | None:
    """Record how late the thing arriving in this transition is against the item's outstanding
    deadline named in ``names`` (else ``fallback_due``); None when there is no due date."""
    row = ctx.row
    d = _deadline(ctx.session, type(row).kind, row.id, names)
    if d is None and fallback_due is None:
        return None
    due_on = d.due_on if d is not None else fallback_due
    assert due_on is not None  # one of the two is given (checked above)
    paused = d is not None and d.status == DeadlineStatus.PAUSED.value
    days, working = (0, 0) if paused else measure(ctx.calendar, due_on, ctx.today)
    late = Lateness(
        kind=type(row).kind,
        item_id=row.id,
        what=what,
        deadline=d.name if d is not None else names[0],
        due_on=due_on,
        received_on=ctx.today,
        received_at=ctx.now,
        days_late=days,
        working_days_late=working,
        nation=ctx.calendar.nation,
        clock_paused=paused,
    )
    ctx.session.add(late)
    ctx.params = {
        **ctx.params,
        "lateness": {
            "deadline": late.deadline,
            "due_on": due_on.isoformat(),
            "received_on": ctx.today.isoformat(),
            "days_late": days,
            "working_days_late": working,
            **({"clock_paused": True} if paused else {}),
        },
    }
    return late


def view(late: Lateness) -> dict[str, Any]:
    return {
        "what": late.what,
        "deadline": late.deadline,
        "due_on": late.due_on.isoformat(),
        "received_on": late.received_on.isoformat(),
        "late": late.days_late > 0,
        "days_late": late.days_late,
        "working_days_late": late.working_days_late,
        "clock_paused": late.clock_paused,
    }


def for_item(session: Session, kind: str, item_id: int) -> list[dict[str, Any]]:
    """Every receipt of one item, oldest first."""
    rows = session.exec(
        select(Lateness).where(Lateness.kind == kind, Lateness.item_id == item_id).order_by(col(Lateness.id))
    ).all()
    return [view(r) for r in rows]


def latest(session: Session, kind: str, item_ids: list[int]) -> dict[int, Lateness]:
    """The newest receipt of each item (one query per 900 ids)."""
    out: dict[int, Lateness] = {}
    for start in range(0, len(item_ids), 900):
        for r in session.exec(
            select(Lateness)
            .where(Lateness.kind == kind, col(Lateness.item_id).in_(item_ids[start : start + 900]))
            .order_by(col(Lateness.id))
        ).all():
            out[r.item_id] = r
    return out


def received_late(session: Session, network_code: str | None = None, since: date | None = None) -> list[dict[str, Any]]:
    """Everything received late (any kind), placed in its network, Trust and service; newest first.

    Submissions belong to a Trust and a network; self-assessments and reports to a service."""
    L, SUB, SA, REP = (m.__table__ for m in (Lateness, Submission, SelfAssessment, Report))  # type: ignore[union-attr]
    SVC, ORG, NET = (m.__table__ for m in (Service, Organisation, Network))  # type: ignore[union-attr]
    service_id = func.coalesce(SA.c.service_id, REP.c.service_id)
    src = (
        L.outerjoin(SUB, and_(L.c.kind == "submission", SUB.c.id == L.c.item_id))
        .outerjoin(SA, and_(L.c.kind == "selfassessment", SA.c.id == L.c.item_id))
        .outerjoin(REP, and_(L.c.kind == "report", REP.c.id == L.c.item_id))
        .outerjoin(SVC, SVC.c.id == service_id)
        .outerjoin(ORG, ORG.c.id == func.coalesce(SUB.c.organisation_id, SVC.c.organisation_id))
        .outerjoin(NET, NET.c.id == func.coalesce(SUB.c.network_id, SVC.c.network_id))
    )
    q = (
        select_core(
            L,
            NET.c.code.label("network"),
            ORG.c.name.label("organisation"),
            SVC.c.name.label("service"),
            SUB.c.doc_type,
            SUB.c.programme_year.label("sub_year"),
            SA.c.programme_year.label("sa_year"),
        )
        .select_from(src)
        .where(L.c.days_late > 0)
    )
    if network_code is not None:
        q = q.where(NET.c.code == network_code)
    if since is not None:
        q = q.where(L.c.received_on >= since)
    out = []
    for r in session.execute(q.order_by(L.c.received_on.desc(), L.c.id.desc())):
        out.append(
            {
                "kind": r.kind,
                "id": r.item_id,
                "what": r.what,
                "deadline": r.deadline,
                "due_on": r.due_on.isoformat(),
                "received_on": r.received_on.isoformat(),
                "days_late": r.days_late,
                "working_days_late": r.working_days_late,
                "network": r.network,
                "organisation": r.organisation,
                "service": r.service,
            }
        )
    return out
