"""Helpers shared by the test_mssp test files (split from one module)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, select

from models import Contact, OutboxMessage, Service
from models.perinatal import CqcRating
from states.clock import FixedClock
from states.machines.mssp import (
    MsspState,
)
from states.machines.spec import get_spec
from states.services.mssp import record_cqc_assessment
from tests.factories import person

O, G, RI, I = "Outstanding", "Good", "Requires Improvement", "Inadequate"  # noqa: E741 (the CQC's initials)
M = MsspState
SPEC = get_spec("mssp")
MRH = "Midland Royal Major Trauma Centre"
TODAY = date(2026, 12, 11)


# ---------------------------------------------------------------- through the engine


@pytest.fixture
def trust(session: Session, services: dict[str, int]) -> tuple[int, int]:
    """Midland Royal's Trust with a maternity service and the MSSP contacts; (organisation id, service id)."""
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
            email="mae@mrh.nhs.example",
            service_id=svc.id,
            organisation_id=svc.organisation_id,
        )
    )
    session.add(Contact(role="msscg", name="MSSCG secretariat", email="msscg@england.nhs.example"))
    for role in ("lms-lead", "regional-chief-midwife"):
        session.add(Contact(role=role, name=role, email=f"{role}@region.nhs.example", network_id=svc.network_id))
    session.commit()
    assert svc.id is not None
    return svc.organisation_id, svc.id


def record(
    session: Session,
    trust: tuple[int, int],
    day: date,
    overall: str,
    safe: str,
    well_led: str,
    *,
    role: str = "network-office",
    actor: str = "office",
    **flags: Any,
) -> Any:
    row = CqcRating(
        organisation_id=trust[0],
        service_id=trust[1],
        assessed_on=day,
        overall=overall,
        safe=safe,
        well_led=well_led,
        recorded_by="",  # set from the principal that records it
        recorded_role="",
        **flags,
    )
    out = record_cqc_assessment(
        session, row, principal=person(actor, role), clock=FixedClock(TODAY if day <= TODAY else day)
    )
    session.commit()
    return out


def letters_to(session: Session, case_id: int) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template).where(
                OutboxMessage.kind == "mssp", OutboxMessage.item_id == case_id, OutboxMessage.category == "letter"
            )
        ).all()
    )
