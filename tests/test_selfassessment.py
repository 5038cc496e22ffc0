"""Self-assessment declarations (000 s5.1, Appendix 2, s6.4): the machine table-driven, the
Appendix 2 spreadsheet round trip, the all-or-nothing import, thresholds, achievement and
the ICB escalation, and standard sets superseded by newer ones.
"""

from __future__ import annotations

from datetime import date
from io import BytesIO
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.selfassessment import SelfAssessment
from notifications.attachments import render_attachment
from notifications.render import rendered
from notifications.spreadsheets import COLUMNS, XLSX_TYPE
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidTrigger
from states.machines.spec import CLOCK_TRIGGERS, get_spec
from states.services.selfassessment_import import read_workbook
from tests.factories import person
from tests.support_selfassessment import (
    ACC,
    DAY,
    GOOD,
    OFFICE,
    S,
    circulate,
    counts,
    emails,
    fill,
    letters_to,
    library,  # noqa: F401 (pytest fixtures)
    reach,
    xlsx,
)

SPEC = get_spec("selfassessment")
MTC = "Midland Royal Major Trauma Centre"


def _validate_all(session: Session, row: SelfAssessment, clock: FixedClock) -> None:
    for ref, status in (
        ("1.1", "Met"),
        ("1.2", "Met"),
        ("1.3", "Partially Met"),
        ("1.4", "Unmet"),
        ("2.1", "Partially Met"),
        ("2.2", "Met"),
    ):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            principal=person("Jo Office", OFFICE),
            clock=clock,  # type: ignore[arg-type]
            params={"ref": ref, "status": status},
        )
    session.commit()


# (source, trigger, role, setup, destination, letters queued)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (S.NEW, "circulate", OFFICE, {}, S.CIRCULATED, {"selfassessment_request"}),
    (S.NEW, "circulate", "network-manager", {}, S.CIRCULATED, {"selfassessment_request"}),
    (S.CIRCULATED, "receive", OFFICE, {"rows": True}, S.RECEIVED, set()),
    (
        S.CIRCULATED,
        "refuse_return",
        OFFICE,
        {"params": {"filename": "r.xlsx", "problems": ["row 2, Ref No.: missing"], "count": 1}},
        S.CIRCULATED,
        {"selfassessment_refused"},
    ),
    (S.RECEIVED, "validate_item", OFFICE, {"params": {"ref": "1.1", "status": "Unmet"}}, S.RECEIVED, set()),
    (S.RECEIVED, "accept_all", OFFICE, {}, S.VALIDATED, set()),
    (S.RECEIVED, "complete_validation", "regional-lead", {"validate_all": True}, S.VALIDATED, set()),
    (S.VALIDATED, "close", OFFICE, {}, S.CLOSED, set()),
    (S.NEW, "withdraw", "network-manager", {"note": "circulated in error"}, S.WITHDRAWN, set()),
    (S.CIRCULATED, "withdraw", "regional-lead", {"note": "service closed"}, S.WITHDRAWN, set()),
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    row = reach(session, db, services, clock, source)
    if setup.get("validate_all"):
        _validate_all(session, row, clock)
        row = session.get(SelfAssessment, row.id)  # type: ignore[assignment]
    params = dict(setup.get("params", {}))
    if setup.get("rows"):
        params["rows"] = read_workbook(fill(xlsx(session, row), GOOD))
    before_version = row.version
    before = {m.template for m in letters_to(session, row)}
    out = engine.fire(
        session,
        "selfassessment",
        row.id,
        trigger,
        principal=person("tester", role),
        clock=clock,  # type: ignore[arg-type]
        note=setup.get("note"),
        params=params,
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == before_version + 1
    assert {m.template for m in letters_to(session, row)} - before == letters


def test_table_covers_machine() -> None:
    covered = {(str(s), t) for s, t, *_ in TABLE}
    for state in S:
        for trigger in SPEC.allowed_from(state.value):
            if trigger not in CLOCK_TRIGGERS:
                assert (state.value, trigger) in covered, f"({state.value}, {trigger}) has no row in TABLE"


REFUSED = [
    (s.value, t) for s in S for t in SPEC.triggers() if t not in CLOCK_TRIGGERS and t not in SPEC.allowed_from(s.value)
]


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    state: str,
    trigger: str,
) -> None:
    row = reach(session, db, services, clock, state)
    before, version = counts(session), row.version
    with pytest.raises(InvalidTrigger):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            trigger,
            principal=person("tester", "network-manager"),
            clock=clock,  # type: ignore[arg-type]
            note="n",
            params={"ref": "1.1", "status": "Met"},
        )
    session.rollback()
    assert counts(session) == before
    assert session.get(SelfAssessment, row.id).version == version  # type: ignore[union-attr]


# ---------------------------------------------------------------- circulation


def test_circulation_writes_to_leads_and_managers_with_the_spreadsheet_and_a_six_week_return(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    assert row.circulated_on == DAY and row.standard_set_id == library["Adult Critical Care"]
    (d,) = engine.pending_deadlines(session, "selfassessment", row.id)  # type: ignore[arg-type]
    assert (d.name, d.due_on) == ("return", date(2027, 1, 22))  # 6 weeks (local policy)
    assert d.remind_on == date(2027, 1, 15)  # 5 working days before
    (letter,) = letters_to(session, row)
    assert letter.template == "selfassessment_request"
    to = {p["email"] for p in letter.to}
    assert to == emails(session, "service-lead", service_id=services[ACC]) | emails(
        session, "service-manager", service_id=services[ACC]
    )
    assert "return by Fri 22 Jan 2027" in rendered(letter).subject
    from models import Attachment

    (att,) = session.exec(select(Attachment).where(Attachment.idempotency_key == letter.idempotency_key)).all()
    assert att.content_type == XLSX_TYPE and att.filename.endswith(".xlsx")
    ws = load_workbook(BytesIO(render_attachment(att)))["Self-Assessment"]
    assert tuple(c.value for c in ws[1]) == COLUMNS
    assert [ws.cell(row=r, column=1).value for r in range(2, ws.max_row + 1)] == [
        "1.1",
        "1.2",
        "1.3",
        "1.4",
        "2.1",
        "2.2",
    ]
    assert ws.cell(row=2, column=4).value in (None, "")  # 1.1 has no Partially Met band


def test_return_weeks_are_local_policy(
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_RETURN_WEEKS", "4")
    row = circulate(session, services, clock)
    assert [d.due_on for d in engine.pending_deadlines(session, "selfassessment", row.id)] == [date(2027, 1, 8)]  # type: ignore[arg-type]


def test_one_declaration_per_service_and_year(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    circulate(session, services, clock)
    with pytest.raises(GuardRefused, match="is_only_declaration_for_year"):
        circulate(session, services, clock)
    session.rollback()
    assert circulate(session, services, clock, year=2027).state == S.CIRCULATED


def test_return_is_reminded_then_chased_to_the_service_lead_once(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    lead = emails(session, "service-lead", service_id=services[ACC])
    run_sweep(db, FixedClock(date(2027, 1, 14)))
    assert [m.template for m in letters_to(session, row)] == ["selfassessment_request"]
    assert run_sweep(db, FixedClock(date(2027, 1, 15))).count("reminded") == 1
    assert run_sweep(db, FixedClock(date(2027, 1, 22))).count("overdue_notice") == 0  # due today: not yet late
    assert run_sweep(db, FixedClock(date(2027, 1, 25))).count("overdue_notice") == 1
    assert run_sweep(db, FixedClock(date(2027, 1, 26))).actions == []  # chased once
    session.expire_all()
    chases = [m for m in letters_to(session, row) if m.template == "selfassessment_chase"]
    assert lead <= {p["email"] for m in chases for p in m.to}
    assert {m.template for m in letters_to(session, row)} == {
        "selfassessment_request",
        "selfassessment_reminder",
        "selfassessment_chase",
    }
