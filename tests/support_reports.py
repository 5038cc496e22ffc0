"""Helpers shared by the test_reports test files (split from one module)."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pypdf
from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage
from models.tables import AccuracyItem, Attachment, Report, Reviewer, Visit
from states import engine
from states.clock import FixedClock
from states.machines.report import document
from tests.factories import person

NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
# 000 s5.4: the final report goes to the Service Lead and is shared with these
DISTRIBUTION = [
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "medical-director",
    "responsible-executive",
    "responsible-commissioner",
]

VISIT = date(2026, 11, 12)  # Thu: the visit
SENT = date(2026, 12, 18)  # Fri: sent for the factual accuracy check


# --------------------------------------------------------------------------- helpers


def row_counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (AuditEvent, OutboxMessage, Deadline, AccuracyItem, Attachment)
    )


def fire(
    session: Session,
    report_id: int,
    trigger: str,
    day: date,
    *,
    role: str = OFFICE,
    actor: str = "tester",
    note: str | None = None,
    **params: Any,
) -> engine.Outcome:
    out = engine.fire(
        session,
        "report",
        report_id,
        trigger,
        principal=person(actor, role),
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def letters_to(session: Session, report_id: int) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "report", OutboxMessage.item_id == report_id)
            .order_by(col(OutboxMessage.id))
        )
    )


def drafting(session: Session, services: dict[str, int], basis: date = VISIT) -> Report:
    """A report started through the engine (here: of a self-assessment received on ``basis``)."""
    out = engine.create(
        session,
        "report",
        Report(service_id=services[MRH], basis_date=basis, state="new"),
        "start_drafting",
        principal=person("tester", OFFICE),
        clock=FixedClock(basis),
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def visit_fire(
    session: Session, visit_id: int, trigger: str, day: date, role: str = OFFICE, note: str | None = None, **params: Any
) -> None:
    engine.fire(
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


def report_of_visit(
    session: Session, services: dict[str, int], visit_day: date = VISIT, risks: list[dict[str, Any]] | None = None
) -> tuple[Visit, Report]:
    """A visit driven through the engine from proposal to high level feedback, and the report it starts."""
    start = visit_day - timedelta(weeks=5)
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        principal=person("tester", OFFICE),
        clock=FixedClock(start),
    ).row
    reviewer = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    visit_fire(session, visit.id, "schedule", start, date=visit_day.isoformat())  # type: ignore[arg-type]
    visit_fire(session, visit.id, "add_panel_member", start, reviewer_id=reviewer.id)  # type: ignore[arg-type]
    visit_fire(session, visit.id, "notify_service", start)  # type: ignore[arg-type]
    visit_fire(session, visit.id, "record_declaration", start, reviewer_id=reviewer.id)  # type: ignore[arg-type]
    visit_fire(
        session,
        visit.id,
        "record_preparation",
        start,
        prep_session="declined",
        panel_confirmed="yes",  # type: ignore[arg-type]
        evidence_received="yes",
    )
    visit_fire(session, visit.id, "confirm_prepared", start)  # type: ignore[arg-type]
    visit_fire(session, visit.id, "hold", visit_day)  # type: ignore[arg-type]
    visit_fire(session, visit.id, "give_feedback", visit_day, role=NM, risks=risks or [])  # type: ignore[arg-type]
    report = session.exec(select(Report).where(Report.visit_id == visit.id)).one()
    return visit, report  # type: ignore[return-value]


def in_check(session: Session, services: dict[str, int]) -> Report:
    report = drafting(session, services)
    fire(session, report.id, "send_for_accuracy_check", SENT)  # type: ignore[arg-type]
    return report


def with_items(session: Session, services: dict[str, int], *texts: str) -> tuple[Report, list[int]]:
    report = in_check(session, services)
    for text in texts:
        fire(session, report.id, "record_inaccuracy", date(2026, 12, 21), text=text)  # type: ignore[arg-type]
    ids = list(
        session.exec(
            select(AccuracyItem.id).where(AccuracyItem.report_id == report.id).order_by(col(AccuracyItem.id))
        ).all()
    )
    return report, ids  # type: ignore[return-value]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


# --------------------------------------------------------------------------- the machine, table-driven

CLAIM = "The report says no consultant was present at 09:00; the rota shows Dr Reid was on site that morning"


# --------------------------------------------------------------------------- the document

IR_TITLE = "No <b>oxygen</b> & suction"
POSITIVE = "Excellent rehabilitation & discharge planning"
STANDARDS = [
    ("T-1.1", "Trauma team leader 24/7", "Met"),
    ("T-1.2", "CT within 60 minutes", "Partially Met"),
    ("T-1.3", "Rehabilitation prescription", "Unmet"),
]


def documented(session: Session, services: dict[str, int]) -> tuple[Report, dict[str, Any]]:
    _, report = report_of_visit(
        session,
        services,
        VISIT,
        risks=[{"level": "IR", "title": IR_TITLE, "impact": 4, "likelihood": 4, "standard_ref": "T-1.2"}],
    )
    for ref, descriptor, status in STANDARDS:
        fire(session, report.id, "add_standard", date(2026, 11, 20), ref=ref, descriptor=descriptor, status=status)  # type: ignore[arg-type]
    fire(session, report.id, "add_positive", date(2026, 11, 20), text=POSITIVE)  # type: ignore[arg-type]
    return report, document(session, report)
