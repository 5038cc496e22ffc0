"""Helpers shared by the test_perinatal test files (split from one module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent, Contact, Deadline, OutboxMessage, Service
from models.perinatal import PerinatalConcern
from states import engine
from states.clock import FixedClock
from states.machines.perinatal import PerinatalState
from states.machines.spec import get_spec
from tests.factories import person

S = PerinatalState
NM = "network-manager"
SPEC = get_spec("perinatal")
MRH = "Midland Royal Major Trauma Centre"
RAISED = date(2026, 12, 11)  # Fri; the December board review is due Thu 31 Dec, reminded Tue 22 Dec
LEVEL_ROLES = ("lms-lead", "regional-chief-midwife", "regional-lead-obstetrician", "regional-chief-nurse")


@pytest.fixture
def maternity(session: Session, services: dict[str, int]) -> int:
    """A maternity service in Midland Royal's Trust and network, with the perinatal contacts."""
    trauma = session.get(Service, services[MRH])
    assert trauma is not None
    svc = Service(
        name="Midland Royal Maternity",
        kind="Maternity",
        organisation_id=trauma.organisation_id,
        network_id=trauma.network_id,
    )
    session.add(svc)
    session.flush()
    session.add(
        Contact(
            role="service-lead",
            name="Ms Mae Midwife",
            email="mae.midwife@mrh.nhs.example",
            service_id=svc.id,
            organisation_id=trauma.organisation_id,
        )
    )
    for role in LEVEL_ROLES:
        session.add(
            Contact(role=role, name=f"{role} person", email=f"{role}@region.nhs.example", network_id=trauma.network_id)
        )
    for role in ("msscg", "jsog"):
        session.add(Contact(role=role, name=f"{role.upper()} secretariat", email=f"{role}@england.nhs.example"))
    session.commit()
    assert svc.id is not None
    return svc.id


@pytest.fixture
def raise_concern(session: Session, maternity: int) -> Callable[..., PerinatalConcern]:
    def make(day: date = RAISED, **fields: Any) -> PerinatalConcern:
        row = PerinatalConcern(
            service_id=maternity, title="Rising stillbirth rate on the dashboard", raised_on=day, state="new", **fields
        )
        out = engine.create(session, "perinatal", row, "raise", principal=person("nm", NM), clock=FixedClock(day))
        session.commit()
        return out.row  # type: ignore[return-value]

    return make


def row_counts(session: Session) -> tuple[int, int, int]:
    return tuple(session.exec(select(func.count()).select_from(t)).one() for t in (AuditEvent, OutboxMessage, Deadline))  # type: ignore[return-value]


def put_in(session: Session, row: PerinatalConcern, state: str) -> PerinatalConcern:
    """Test setup shortcut: place a raised concern at a level."""
    row.state = str(state)
    session.add(row)
    session.commit()
    return row


def templates(session: Session, item_id: int, since: int = 0) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.kind == "perinatal", OutboxMessage.item_id == item_id, OutboxMessage.id > since)
            .order_by(OutboxMessage.id)
        ).all()
    )


LATER = date(2026, 12, 21)
# What the receiving forum decided, as the office records it (DOMAIN.md: the forum decides escalation)
LQSG = {"decided_on": "2026-12-18"}
RQC = {"decided_on": "2026-12-18", "agreed_with": "Ms Rae Chief-Nurse, regional chief nurse"}
