"""Helpers shared by the test_dashboard test files (split from one module)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models import Report, Risk
from models.selfassessment import SelfAssessment
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.machines.standards import standards_of
from states.services.selfassessment import start
from states.services.standards import load_standard_sets, read_library
from tests.factories import person

ROOT = Path(__file__).resolve().parents[1]
CAL = calendar_for("ENG")
D0 = date(2026, 12, 11)  # Fri: the visits, the risks raised
TODAY = date(2027, 2, 15)  # Mon: the morning the Network Manager opens the dashboard
MRH, STU, BURNS = "Midland Royal Major Trauma Centre", "Severnside Trauma Unit", "Valley Burns Service"
MERSEY, ACC = "Mersey Harbour Major Trauma Centre", "Severnside Adult Critical Care"
NM, OFFICE = "network-manager", "network-office"


@dataclass
class World:
    sc: int  # WMTN, notified, never answered: chased, then escalated by the sweep
    ir: int  # WMTN, formal notification never sent: overdue (its overdue letter went)
    gc: int  # WMTN, in the work programme
    withdrawn: int  # WMTN, withdrawn: not open
    mersey_sc: int  # CMMTN, notified last week: its response falls due soon
    report: int  # CMMTN, approved: Met, Partially Met, Unmet
    assessment: int  # WMACC, validated self-assessment


def raise_item(s: Session, services: dict[str, int], level: str, service: str, day: date) -> int:
    row = Risk(
        service_id=services[service],
        level=level,
        title=f"{level} at {service}",
        identified_on=day,
        visit_date=day,
        state="new",
    )
    return engine.create(s, "risk", row, "raise", principal=person("panel lead", NM), clock=FixedClock(day)).row.id  # type: ignore[return-value]


def fire(s: Session, kind: str, item_id: int, trigger: str, day: date, role: str = NM, **kw: Any) -> None:
    engine.fire(
        s,
        kind,
        item_id,
        trigger,
        principal=person("Nina NM" if role == NM else "Jo Office", role),
        clock=FixedClock(day),
        **kw,
    )


def approved_report(s: Session, services: dict[str, int]) -> int:
    row = Report(service_id=services[MERSEY], basis_date=D0, state="new")
    rid: int = engine.create(
        s, "report", row, "start_drafting", principal=person("Jo Office", OFFICE), clock=FixedClock(D0)
    ).row.id  # type: ignore[assignment]
    for ref, status in (("1.1", "Met"), ("1.2", "Partially Met"), ("1.3", "Unmet"), ("1.4", "Not applicable")):
        fire(s, "report", rid, "add_standard", D0, role=OFFICE, params={"ref": ref, "status": status})
    fire(s, "report", rid, "send_for_accuracy_check", D0, role=OFFICE)
    fire(s, "report", rid, "approve", D0 + timedelta(days=3))
    return rid


def validated_assessment(s: Session, services: dict[str, int]) -> int:
    """A declaration circulated, returned (one standard Met, the rest Unmet) and accepted as declared."""
    load_standard_sets(
        s,
        read_library(ROOT / "docs" / "standards-example.yaml"),
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(D0),
    )
    row: SelfAssessment = start(s, services[ACC], 2026, principal=person("Jo Office", OFFICE), clock=FixedClock(D0)).row
    rows = []
    for n, std in enumerate(standards_of(s, row.standard_set_id)):
        met = n == 0
        figure = (std.met_threshold if met else 0.0) if std.has_thresholds else None
        rows.append(
            {
                "row": n + 2,
                "ref": std.ref,
                "status": None if std.has_thresholds else ("Met" if met else "Unmet"),
                "figure": figure,
                "comments": "",
                "evidence": "work plan",
            }
        )
    fire(s, "selfassessment", row.id, "receive", D0, role=OFFICE, params={"filename": "return.xlsx", "rows": rows})  # type: ignore[arg-type]
    fire(s, "selfassessment", row.id, "accept_all", D0, role=OFFICE)  # type: ignore[arg-type]
    return row.id  # type: ignore[return-value]


def build(db: Engine, s: Session, services: dict[str, int]) -> World:
    """The items, then a sweep every working day from the visit to TODAY, staff acting on the way."""
    sc, ir, gc, gone = (
        raise_item(s, services, lvl, svc, D0) for lvl, svc in (("SC", MRH), ("IR", STU), ("GC", BURNS), ("GC", BURNS))
    )
    fire(s, "risk", sc, "send_formal_notification", D0 + timedelta(days=3))
    fire(s, "risk", gone, "withdraw", D0 + timedelta(days=3), note="raised in error")
    report, assessment = approved_report(s, services), validated_assessment(s, services)
    s.commit()
    mersey = 0
    day = D0
    while day <= TODAY:
        if day == TODAY - timedelta(days=5):
            mersey = raise_item(s, services, "SC", MERSEY, day)
            fire(s, "risk", mersey, "send_formal_notification", day + timedelta(days=1))
            s.commit()
        if CAL.is_working_day(day):
            run_sweep(db, FixedClock(day))
        day += timedelta(days=1)
    s.expire_all()
    return World(sc, ir, gc, gone, mersey, report, assessment)


@pytest.fixture
def world(db: Engine, session: Session, services: dict[str, int]) -> World:
    return build(db, session, services)
