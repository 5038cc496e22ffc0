"""Helpers shared by the test_complaints test files (split from one module)."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, func, select

from models import AuditEvent, Complaint, Deadline, OutboxMessage
from models.tables import Network
from states.machines.complaint import ComplaintState
from states.machines.spec import get_spec

C = ComplaintState
SPEC = get_spec("complaint")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"

RECEIVED = date(2026, 12, 23)  # Wed, just before Christmas
COMPLAINANT = ("Mr Colin Plainer", "colin.plainer@midland-royal-hospitals.nhs.example")
SUMMARY = "The visit started an hour late and the walk-around was cut short without explanation."


def network(session: Session, code: str = "WMTN") -> Network:
    return session.exec(select(Network).where(Network.code == code)).one()


def row_counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (Complaint, AuditEvent, OutboxMessage, Deadline)
    )


def letters_to(session: Session, complaint_id: int, template: str | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).where(OutboxMessage.kind == "complaint", OutboxMessage.item_id == complaint_id)
    if template:
        q = q.where(OutboxMessage.template == template)
    return list(session.exec(q.order_by(col(OutboxMessage.id))))


# --------------------------------------------------------------------------- not acceptable, and the outcome

NOT_ACCEPTABLE = "The complaint is about Dr Reid's personality, not the way she carried out her role on the panel."
OUTCOME = "The late start was caused by a room double-booking; the network office now confirms rooms 48 hours ahead."
