"""Helpers shared by the test_appeals test files (split from one module)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Contact, Deadline, OutboxMessage, Risk
from models.tables import (
    AccuracyItem,
    Appeal,
    Attachment,
    Organisation,
    RefusedAttempt,
    Report,
    Reviewer,
    Visit,
)
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.machines.appeal import AppealState
from states.machines.spec import get_spec
from states.principal import Principal
from states.services.appeal import submit
from tests.factories import person

A = AppealState
SPEC = get_spec("appeal")
CAL = calendar_for("ENG")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
MRH_TRUST = "Midland Royal Hospitals NHS Trust"

VISIT = date(2026, 11, 12)  # Thu: the visit
P = date(2027, 2, 2)  # Tue: the report is published

# Who did what in the review (each a different name, so involvement can be told apart)
ORGANISER = "Mr Vince Organiser"  # fired the visit's transitions (network office)
FEEDBACK = "Dr Fern Feedback"  # gave high level feedback (raised the risks)
WRITER = "Ms Rita Writer"  # drafted and distributed the report
MANAGER, LEAD = "Dr Asha Patel", "Mr Tom Hughes"  # WMTN's Network Manager and Regional Lead (demo data)
DECIDER = LEAD  # decides the appeal
OUTSIDER = ("Prof Una Outsider", "una.outsider@elsewhere.nhs.example")
STATEMENT = "The panel misread the trauma team rota: a consultant was on site throughout."
CLAIM = "The report says no consultant was present at 09:00; the rota shows one was"


# --------------------------------------------------------------------------- building a published report


@dataclass
class World:
    visit_id: int
    report_id: int
    ir: int
    sc: int
    gc: int
    ceo: Contact
    md: Contact
    other_ceo: Contact


def visit_fire(
    session: Session,
    visit_id: int,
    trigger: str,
    day: date,
    *,
    principal: Principal | None = None,
    **params: Any,
) -> None:
    """Fire a visit trigger as ``principal`` (default: the organiser, network office)."""
    who = principal or person(ORGANISER, OFFICE)
    engine.fire(session, "visit", visit_id, trigger, principal=who, clock=FixedClock(day), params=params or None)
    session.commit()


def report_fire(
    session: Session,
    report_id: int,
    trigger: str,
    day: date,
    *,
    principal: Principal | None = None,
    note: str | None = None,
    **params: Any,
) -> engine.Outcome:
    """Fire a report trigger as ``principal`` (default: the writer, network office)."""
    out = engine.fire(
        session,
        "report",
        report_id,
        trigger,
        principal=principal or person(WRITER, OFFICE),
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def visit_with_feedback(
    session: Session, services: dict[str, int], visit_day: date, risks: list[dict[str, Any]]
) -> tuple[int, int]:
    """A visit driven through the engine from proposal to high level feedback; (visit id, report id)."""
    start = visit_day - timedelta(weeks=5)
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        principal=person(ORGANISER, OFFICE),
        clock=FixedClock(start),
    ).row
    session.commit()
    reviewer = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    vid = visit.id
    assert vid is not None
    visit_fire(session, vid, "schedule", start, date=visit_day.isoformat())
    visit_fire(session, vid, "add_panel_member", start, reviewer_id=reviewer.id)
    visit_fire(session, vid, "notify_service", start)
    visit_fire(session, vid, "record_declaration", start, reviewer_id=reviewer.id)
    visit_fire(
        session,
        vid,
        "record_preparation",
        start,
        prep_session="declined",
        panel_confirmed="yes",
        evidence_received="yes",
    )
    visit_fire(session, vid, "confirm_prepared", start)
    visit_fire(session, vid, "hold", visit_day)
    visit_fire(session, vid, "give_feedback", visit_day, principal=person(FEEDBACK, NM), risks=risks)
    report = session.exec(select(Report).where(Report.visit_id == vid)).one()
    assert report.id is not None
    return vid, report.id


def contact_for(session: Session, role: str, trust: str) -> Contact:
    org = session.exec(select(Organisation).where(Organisation.name == trust)).one()
    return session.exec(select(Contact).where(Contact.role == role, Contact.organisation_id == org.id)).one()


def build_world(
    session: Session,
    services: dict[str, int],
    *,
    publish: bool = True,
    standards: tuple[tuple[str, str], ...] = (("T-1.1", "Met"), ("T-1.2", "Unmet")),
) -> World:
    """Visit on Thu 12 Nov 2026 with one IR, one SC and one GC; the report with standards, a factual
    accuracy item decided by the Network Manager and the Regional Lead, approved, distributed and
    (unless ``publish=False``) published on Tue 2 Feb 2027."""
    vid, rid = visit_with_feedback(
        session,
        services,
        VISIT,
        [
            {"level": "IR", "title": "No trauma team leader at night", "impact": 5, "likelihood": 3},
            {"level": "SC", "title": "CT reporting delays", "impact": 3, "likelihood": 3},
            {"level": "GC", "title": "Audit programme incomplete"},
        ],
    )
    for ref, status in standards:
        report_fire(session, rid, "add_standard", date(2026, 11, 20), ref=ref, status=status)
    report_fire(session, rid, "send_for_accuracy_check", date(2026, 12, 18))
    report_fire(session, rid, "record_inaccuracy", date(2026, 12, 21), text=CLAIM)
    item = session.exec(select(AccuracyItem).where(AccuracyItem.report_id == rid)).one()
    report_fire(
        session,
        rid,
        "decide_inaccuracy",
        date(2026, 12, 22),
        principal=person(MANAGER, NM),
        item_id=item.id,
        decision="accepted",
    )
    report_fire(
        session,
        rid,
        "decide_inaccuracy",
        date(2026, 12, 22),
        principal=person(LEAD, RL),
        item_id=item.id,
        decision="rejected",
    )
    report_fire(session, rid, "approve", date(2027, 1, 8), principal=person(MANAGER, NM))
    report_fire(session, rid, "distribute", date(2027, 1, 11))
    if publish:
        report_fire(session, rid, "publish", P, principal=person(MANAGER, NM))
    risks = {r.level: r.id for r in session.exec(select(Risk).where(Risk.visit_id == vid))}
    return World(
        vid,
        rid,
        risks["IR"],
        risks["SC"],
        risks["GC"],
        contact_for(session, "chief-executive", MRH_TRUST),
        contact_for(session, "medical-director", MRH_TRUST),
        contact_for(session, "chief-executive", "Severnside NHS Foundation Trust"),
    )


@pytest.fixture
def world(session: Session, services: dict[str, int]) -> World:
    return build_world(session, services)


def submit_appeal(
    db: Engine, w: World, day: date, *, contact_id: int | None = None, grounds: list[dict[str, Any]] | None = None
) -> Appeal:
    return submit(
        db,
        report_id=w.report_id,
        appellant_contact_id=contact_id or w.ceo.id,
        statement=STATEMENT,  # type: ignore[arg-type]
        grounds=[{"risk_id": w.sc}] if grounds is None else grounds,
        principal=person("Ms Nora Office", OFFICE),
        clock=FixedClock(day),
    )


def count(session: Session, model: Any) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def row_counts(session: Session) -> tuple[int, ...]:
    return tuple(count(session, m) for m in (Appeal, RefusedAttempt, AuditEvent, OutboxMessage, Deadline, Attachment))


def letters_to(session: Session, kind: str, item_id: int, template: str | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).where(OutboxMessage.kind == kind, OutboxMessage.item_id == item_id)
    if template:
        q = q.where(OutboxMessage.template == template)
    return list(session.exec(q.order_by(col(OutboxMessage.id))))


def emails(people: list[dict[str, str]]) -> list[str]:
    return [p["email"] for p in people]


# --------------------------------------------------------------------------- the subgroup


def considering(db: Engine, session: Session, w: World, day: date = P + timedelta(days=7)) -> Appeal:
    row = submit_appeal(db, w, day)
    engine.fire(
        session,
        "appeal",
        row.id,
        "begin_consideration",
        principal=person(DECIDER, RL),
        clock=FixedClock(day + timedelta(days=1)),
    )  # type: ignore[arg-type]
    session.commit()
    fresh = session.get(Appeal, row.id)
    assert fresh is not None and fresh.state == "initial_consideration"
    return fresh


DECISION = "The rota evidence shows consultant presence; the serious concern is not supported."


# --------------------------------------------------------------------------- the machine, table-driven

S0 = date(2027, 2, 16)  # the shortcut appeal's submission date (within the window of P)
