"""Helpers shared by the test_visits test files (split from one module)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk
from models.tables import PanelMember, Report, Reviewer, Visit
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from tests.factories import person

NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
MERSEY = "Mersey Harbour Major Trauma Centre"
SEVERNSIDE = "Severnside Trauma Unit"
BURNS = "Valley Burns Service"

T0 = date(2026, 10, 5)  # Mon: the visit is proposed
VISIT = date(2026, 11, 12)  # Thu: the visit day
CAL = calendar_for("ENG")


# --------------------------------------------------------------------------- helpers


def row_counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (AuditEvent, OutboxMessage, Deadline, PanelMember, Risk, Report)
    )


def reviewers_by_name(session: Session) -> dict[str, Reviewer]:
    return {r.name: r for r in session.exec(select(Reviewer))}


def letters_to(session: Session, visit_id: int) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.kind == "visit", OutboxMessage.item_id == visit_id)
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def fire(
    session: Session, visit_id: int, trigger: str, day: date, *, role: str = NM, note: str | None = None, **params: Any
) -> engine.Outcome:
    out = engine.fire(
        session,
        "visit",
        visit_id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def propose(session: Session, services: dict[str, int], service: str = MRH, day: date = T0) -> Visit:
    out = engine.create(
        session,
        "visit",
        Visit(service_id=services[service], state="new"),
        "propose",
        principal=person("tester", OFFICE),
        clock=FixedClock(day),
        note="weighting score",
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def add(session: Session, visit_id: int, name: str, day: date, **extra: Any) -> None:
    fire(
        session,
        visit_id,
        "add_panel_member",
        day,
        role=OFFICE,
        reviewer_id=reviewers_by_name(session)[name].id,
        **extra,
    )


def declare(session: Session, visit_id: int, name: str, day: date, conflicts: str | None = None) -> None:
    params: dict[str, Any] = {"reviewer_id": reviewers_by_name(session)[name].id}
    if conflicts:
        params["conflicts"] = conflicts
    fire(session, visit_id, "record_declaration", day, role=OFFICE, **params)


PANEL = ("Dr Maya Fenwick", "Ms Carys Holt", "Mr Rohan Mehta")  # fine for a Midland Royal visit


def notified(
    session: Session,
    services: dict[str, int],
    visit_day: date = VISIT,
    *,
    service: str = MRH,
    panel: tuple[str, ...] = PANEL,
    start: date | None = None,
    mode: str = "in_person",
) -> Visit:
    """Proposed, scheduled, panel invited and service notified, all on ``start`` (5 weeks before)."""
    start = start or visit_day - timedelta(weeks=5)
    visit = propose(session, services, service, start)
    fire(session, visit.id, "schedule", start, date=visit_day.isoformat(), mode=mode)
    for name in panel:
        add(session, visit.id, name, start)
    fire(session, visit.id, "notify_service", start, role=OFFICE)
    return visit


def prepared(session: Session, services: dict[str, int], visit_day: date = VISIT, **kw: Any) -> Visit:
    visit = notified(session, services, visit_day, **kw)
    day = visit_day - timedelta(weeks=4)
    for name in kw.get("panel", PANEL):
        declare(session, visit.id, name, day)
    fire(
        session,
        visit.id,
        "record_preparation",
        day,
        role=OFFICE,
        prep_session="held",
        panel_confirmed="yes",
        evidence_received="yes",
    )
    fire(session, visit.id, "confirm_prepared", day, role=OFFICE)
    assert visit.state == "prepared"
    return visit


def held(session: Session, services: dict[str, int], visit_day: date = VISIT, **kw: Any) -> Visit:
    visit = prepared(session, services, visit_day, **kw)
    fire(session, visit.id, "hold", visit_day, role=OFFICE)
    assert visit.state == "held"
    return visit
