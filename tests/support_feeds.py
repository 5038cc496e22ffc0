"""Helpers shared by the test_feeds test files (split from one module)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from models import Network, Risk, Service, Visit
from models.cycle import ProgrammePhase
from models.installation import installation_id
from notifications.ics import uid
from states import engine
from states.clock import FixedClock
from states.engine.system import SYSTEM_PRINCIPAL
from states.services.cycle import plan_year
from tests.factories import person

MRH = "Midland Royal Major Trauma Centre"
SEVERNSIDE = "Severnside Trauma Unit"
MERSEY = "Mersey Harbour Major Trauma Centre"
NM = "network-manager"
DAY = date(2026, 12, 11)  # Fri: the visit that found the risks
VISIT_DAY = date(2027, 1, 14)  # Thu: the next visit to Midland Royal
CLOCK = FixedClock(DAY)


# --------------------------------------------------------------------------- the world


def raise_risk_row(session: Session, service_id: int, level: str, title: str) -> Risk:
    row = Risk(service_id=service_id, level=level, title=title, identified_on=DAY, visit_date=DAY, state="new")
    out = engine.create(session, "risk", row, "raise", principal=person("Jo Smith", NM), clock=CLOCK)
    session.commit()
    return out.row  # type: ignore[return-value]


def fire(session: Session, kind: str, item_id: int, trigger: str, day: date = DAY, **kw: Any) -> None:
    engine.fire(session, kind, item_id, trigger, principal=person("Jo Smith", NM), clock=FixedClock(day), **kw)
    session.commit()


@pytest.fixture
def world(session: Session, services: dict[str, int]) -> dict[str, Any]:
    """WMTN: an SC at Midland Royal, a GC at Severnside, a visit to Midland Royal with the
    service notified, the programme year planned; CMMTN: an IR at Mersey Harbour."""
    sc = raise_risk_row(session, services[MRH], "SC", "Trauma team not consultant-led")
    gc = raise_risk_row(session, services[SEVERNSIDE], "GC", "Leaflets out of date")
    ir = raise_risk_row(session, services[MERSEY], "IR", "No paediatric cover at night")
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        principal=person("Office", "network-office"),
        clock=CLOCK,
        note="weighting",
    ).row
    fire(session, "visit", visit.id, "schedule", params={"date": VISIT_DAY.isoformat()})  # type: ignore[arg-type]
    fire(session, "visit", visit.id, "notify_service")  # type: ignore[arg-type]
    for code in ("WMTN", "CMMTN"):
        net = session.exec(select(Network).where(Network.code == code)).one()
        plan_year(session, net, 2026, CLOCK, principal=SYSTEM_PRINCIPAL)  # as the daily cycle flow does
    session.commit()
    return {"sc": sc, "gc": gc, "ir": ir, "visit": visit}


def parse_feed(data: bytes) -> Calendar:
    return Calendar.from_ical(data)


def events_by_uid(cal: Calendar) -> dict[str, Any]:
    return {str(e["uid"]): e for e in cal.walk("VEVENT")}


def network_items(session: Session, code: str, service_id: int | None = None) -> list[tuple[str, Any]]:
    """Every item of a network (or of one service), read from the rows."""
    net = session.exec(select(Network).where(Network.code == code)).one()
    svc_ids = [
        s.id
        for s in session.exec(select(Service).where(Service.network_id == net.id))
        if service_id is None or s.id == service_id
    ]
    items: list[tuple[str, Any]] = []
    for kind, model in (("risk", Risk), ("visit", Visit)):
        items += [(kind, r) for r in session.exec(select(model).where(model.service_id.in_(svc_ids)))]  # type: ignore[attr-defined]
    if service_id is None:
        items += [("phase", p) for p in session.exec(select(ProgrammePhase).where(ProgrammePhase.network_id == net.id))]
    return items


def uid_of(session: Session, prefix: str, row_id: int) -> str:
    return uid(prefix, row_id, installation_id(session))


def pending_uids(session: Session, code: str, service_id: int | None = None) -> set[str]:
    return {
        uid_of(session, "deadline", d.id)
        for kind, row in network_items(session, code, service_id)  # type: ignore[arg-type]
        for d in engine.pending_deadlines(session, kind, row.id)
    }


def deadline_uids(cal: Calendar) -> set[str]:
    """The deadlines still due (closed ones are there too, as CANCELLED)."""
    return {u for u, e in events_by_uid(cal).items() if u.startswith("deadline-") and str(e["status"]) != "CANCELLED"}


def cancelled_uids(cal: Calendar) -> set[str]:
    return {u for u, e in events_by_uid(cal).items() if u.startswith("deadline-") and str(e["status"]) == "CANCELLED"}
