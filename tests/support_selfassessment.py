"""Helpers shared by the test_selfassessment test files (split from one module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Contact, Deadline, OutboxMessage, Report
from models.selfassessment import SelfAssessment, SelfAssessmentItem
from notifications.spreadsheets import render_selfassessment_xlsx
from states import engine
from states.clock import FixedClock
from states.machines.selfassessment import SelfAssessmentState, spreadsheet
from states.machines.standards import (
    current_set,
)
from states.principal import Principal
from states.services.selfassessment import import_spreadsheet, start
from states.services.standards import load_standard_sets, read_library
from tests.factories import person

S = SelfAssessmentState
ACC = "Severnside Adult Critical Care"
OFFICE = "network-office"
LIBRARY = Path(__file__).resolve().parents[1] / "docs" / "standards-example.yaml"
DAY = date(2026, 12, 11)  # the conftest clock: Friday 11 December 2026

# A complete, valid return for the example Adult Critical Care set: (status, figure, comments, evidence).
GOOD: dict[str, tuple[Any, Any, Any, Any]] = {
    "1.1": ("Met", None, "NEWS2 in use on every ward", "Operational Policy"),
    "1.2": (None, 98, "", "ICNARC report Q2"),  # no status: derived from the figure -> Met
    "1.3": ("Partially Met", 70, "bed pressures", "work plan"),
    "1.4": ("Unmet", 90, "", "annual report"),
    "2.1": ("Partially Met", None, "audit planned", "rota"),
    "2.2": ("Met", None, "", "during visit"),
}


@pytest.fixture
def library(session: Session, services: dict[str, int]) -> dict[str, int]:
    """The example standards library loaded; service kind -> set id."""
    loaded = load_standard_sets(
        session, read_library(LIBRARY), principal=person("Jo Office", OFFICE), clock=FixedClock(DAY)
    )
    session.commit()
    return {x["service_kind"]: x["id"] for x in loaded}


def circulate(
    session: Session, services: dict[str, int], clock: FixedClock, service: str = ACC, year: int = 2026
) -> SelfAssessment:
    out = start(session, services[service], year, principal=person("Jo Office", OFFICE), clock=clock)
    session.commit()
    return out.row  # type: ignore[no-any-return]


def xlsx(session: Session, row: SelfAssessment) -> bytes:
    return render_selfassessment_xlsx(spreadsheet(session, row)[2][1])


def fill(data: bytes, answers: dict[str, tuple[Any, Any, Any, Any]], percent_refs: tuple[str, ...] = ()) -> bytes:
    """Fill the service's columns as a person would in Excel."""
    wb = load_workbook(BytesIO(data))
    ws = wb["Self-Assessment"]
    for r in range(2, ws.max_row + 1):
        ref = ws.cell(row=r, column=1).value
        if ref in answers:
            for c, value in zip((6, 7, 8, 9), answers[ref], strict=True):
                ws.cell(row=r, column=c).value = value
            if ref in percent_refs:  # typed as "97.9%": Excel stores 0.979 with a % format
                ws.cell(row=r, column=7).number_format = "0.0%"
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def import_filled(db: Engine, row: SelfAssessment, data: bytes, clock: FixedClock) -> SelfAssessment:
    return import_spreadsheet(
        db, row.id, data, filename="return.xlsx", principal=person("Jo Office", OFFICE), clock=clock
    )  # type: ignore[arg-type]


def items_of(session: Session, row: SelfAssessment) -> dict[str, SelfAssessmentItem]:
    session.expire_all()
    return {
        i.ref: i for i in session.exec(select(SelfAssessmentItem).where(SelfAssessmentItem.assessment_id == row.id))
    }


def counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(t)).one()
        for t in (AuditEvent, OutboxMessage, Deadline, SelfAssessmentItem, Report)
    )


def letters_to(session: Session, row: SelfAssessment) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "selfassessment", OutboxMessage.item_id == row.id)
            .order_by(col(OutboxMessage.id))
        )
    )


def emails(session: Session, role: str, **scope: int) -> set[str]:
    q = select(Contact.email).where(Contact.role == role)
    for k, v in scope.items():
        q = q.where(getattr(Contact, k) == v)
    return set(session.exec(q))


# ---------------------------------------------------------------- the machine, table-driven


def reach(session: Session, db: Engine, services: dict[str, int], clock: FixedClock, state: str) -> SelfAssessment:
    """A declaration in ``state``, reached through the real transitions."""
    if state == S.NEW:
        sset = current_set(session, "Adult Critical Care", DAY)
        assert sset is not None
        row = SelfAssessment(service_id=services[ACC], standard_set_id=sset.id, programme_year=2026, state="new")  # type: ignore[arg-type]
        row.created_at = row.updated_at = clock.now()
        session.add(row)
        session.commit()
        return row
    row = circulate(session, services, clock)
    if state == S.CIRCULATED:
        return row
    import_filled(db, row, fill(xlsx(session, row), GOOD), clock)
    session.expire_all()  # imported in its own session
    if state == S.RECEIVED:
        return row
    engine.fire(session, "selfassessment", row.id, "accept_all", principal=person("Jo Office", OFFICE), clock=clock)  # type: ignore[arg-type]
    session.commit()
    if state == S.VALIDATED:
        return row
    engine.fire(session, "selfassessment", row.id, "close", principal=person("Jo Office", OFFICE), clock=clock)  # type: ignore[arg-type]
    session.commit()
    if state == S.CLOSED:
        return row
    assert state == S.WITHDRAWN
    row = circulate(session, services, clock, service=ACC, year=2027)
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "withdraw",
        principal=person("Nina NM", "network-manager"),
        clock=clock,
        note="sent in error",
    )  # type: ignore[arg-type]
    session.commit()
    return row


def ten_standard_set(kind: str, version: str, effective: str) -> dict[str, Any]:
    stds = [
        {
            "ref": f"{n}.1",
            "descriptor": f"standard {n}",
            "criteria_met": "yes",
            "criteria_partly": "partly",
            "criteria_unmet": "no",
        }
        for n in range(1, 11)
    ]
    return {
        "service_kind": kind,
        "name": "Ten standards",
        "version": version,
        "effective_from": effective,
        "standards": stds,
    }


@pytest.fixture
def run_cli(db: Engine, me: Principal) -> Callable[..., int]:
    """Run ``peerwatch ARGS`` in-process; returns the exit code. It acts as the OS user running
    the tests (peer authentication), mapped to an account with every staff role (``me``). A
    test that acts ``--as-of`` a date also asks for the ``training`` fixture, before any
    fixture that records an event (``library``): only a training database takes it."""
    from cli.main import main  # lazy: the CLI (Typer and every command) loads only for the tests that run it

    def run(*args: str) -> int:
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run
