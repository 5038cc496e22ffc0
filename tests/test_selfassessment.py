"""Self-assessment declarations (000 s5.1, Appendix 2, s6.4): the machine table-driven, the
Appendix 2 spreadsheet round trip, the all-or-nothing import, thresholds, achievement and
the ICB escalation, and standard sets superseded by newer ones."""

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

from models import AuditEvent, Contact, Deadline, DeadlineStatus, OutboxMessage, RefusedAttempt, Report, Service
from models.selfassessment import SelfAssessment, SelfAssessmentItem, Standard, StandardSet
from notifications.attachments import render_attachment
from notifications.render import rendered
from notifications.spreadsheets import COLUMNS, XLSX_TYPE, render_selfassessment_xlsx
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, NotFound
from states.machines.selfassessment import SelfAssessmentState, spreadsheet
from states.machines.spec import CLOCK_TRIGGERS, get_spec
from states.machines.standards import (
    SpreadsheetRejected,
    check_rows,
    current_set,
    derive_status,
    standards_of,
    total_achievement,
)
from states.services.selfassessment import import_spreadsheet, start
from states.services.selfassessment_import import read_workbook
from states.services.standards import load_standard_sets, read_library

S = SelfAssessmentState
SPEC = get_spec("selfassessment")
ACC = "Severnside Adult Critical Care"
MTC = "Midland Royal Major Trauma Centre"
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
    loaded = load_standard_sets(session, read_library(LIBRARY), actor="Jo Office", role=OFFICE, clock=FixedClock(DAY))
    session.commit()
    return {x["service_kind"]: x["id"] for x in loaded}


def _circulate(
    session: Session, services: dict[str, int], clock: FixedClock, service: str = ACC, year: int = 2026
) -> SelfAssessment:
    out = start(session, services[service], year, actor="Jo Office", role=OFFICE, clock=clock)
    session.commit()
    return out.row  # type: ignore[no-any-return]


def _xlsx(session: Session, row: SelfAssessment) -> bytes:
    return render_selfassessment_xlsx(spreadsheet(session, row)[2][1])


def _fill(data: bytes, answers: dict[str, tuple[Any, Any, Any, Any]], percent_refs: tuple[str, ...] = ()) -> bytes:
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


def _import(db: Engine, row: SelfAssessment, data: bytes, clock: FixedClock) -> SelfAssessment:
    return import_spreadsheet(db, row.id, data, filename="return.xlsx", actor="Jo Office", role=OFFICE, clock=clock)  # type: ignore[arg-type]


def _items(session: Session, row: SelfAssessment) -> dict[str, SelfAssessmentItem]:
    session.expire_all()
    return {
        i.ref: i for i in session.exec(select(SelfAssessmentItem).where(SelfAssessmentItem.assessment_id == row.id))
    }


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(t)).one()
        for t in (AuditEvent, OutboxMessage, Deadline, SelfAssessmentItem, Report)
    )


def _letters(session: Session, row: SelfAssessment) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "selfassessment", OutboxMessage.item_id == row.id)
            .order_by(col(OutboxMessage.id))
        )
    )


def _emails(session: Session, role: str, **scope: int) -> set[str]:
    q = select(Contact.email).where(Contact.role == role)
    for k, v in scope.items():
        q = q.where(getattr(Contact, k) == v)
    return set(session.exec(q))


# ---------------------------------------------------------------- the machine, table-driven


def _reach(session: Session, db: Engine, services: dict[str, int], clock: FixedClock, state: str) -> SelfAssessment:
    """A declaration in ``state``, reached through the real transitions."""
    if state == S.NEW:
        sset = current_set(session, "Adult Critical Care", DAY)
        assert sset is not None
        row = SelfAssessment(service_id=services[ACC], standard_set_id=sset.id, programme_year=2026, state="new")  # type: ignore[arg-type]
        row.created_at = row.updated_at = clock.now()
        session.add(row)
        session.commit()
        return row
    row = _circulate(session, services, clock)
    if state == S.CIRCULATED:
        return row
    _import(db, row, _fill(_xlsx(session, row), GOOD), clock)
    session.expire_all()  # imported in its own session
    if state == S.RECEIVED:
        return row
    engine.fire(session, "selfassessment", row.id, "accept_all", actor="Jo Office", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.commit()
    if state == S.VALIDATED:
        return row
    engine.fire(session, "selfassessment", row.id, "close", actor="Jo Office", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.commit()
    if state == S.CLOSED:
        return row
    assert state == S.WITHDRAWN
    row = _circulate(session, services, clock, service=ACC, year=2027)
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "withdraw",
        actor="Nina NM",
        role="network-manager",
        clock=clock,
        note="sent in error",
    )  # type: ignore[arg-type]
    session.commit()
    return row


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
            actor="Jo Office",
            role=OFFICE,
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
    row = _reach(session, db, services, clock, source)
    if setup.get("validate_all"):
        _validate_all(session, row, clock)
        row = session.get(SelfAssessment, row.id)  # type: ignore[assignment]
    params = dict(setup.get("params", {}))
    if setup.get("rows"):
        params["rows"] = read_workbook(_fill(_xlsx(session, row), GOOD))
    before_version = row.version
    before = {m.template for m in _letters(session, row)}
    out = engine.fire(
        session,
        "selfassessment",
        row.id,
        trigger,
        actor="tester",
        role=role,
        clock=clock,  # type: ignore[arg-type]
        note=setup.get("note"),
        params=params,
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == before_version + 1
    assert {m.template for m in _letters(session, row)} - before == letters


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
    row = _reach(session, db, services, clock, state)
    before, version = _counts(session), row.version
    with pytest.raises(InvalidTrigger):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            trigger,
            actor="tester",
            role="network-manager",
            clock=clock,  # type: ignore[arg-type]
            note="n",
            params={"ref": "1.1", "status": "Met"},
        )
    session.rollback()
    assert _counts(session) == before
    assert session.get(SelfAssessment, row.id).version == version  # type: ignore[union-attr]


# ---------------------------------------------------------------- circulation


def test_circulation_writes_to_leads_and_managers_with_the_spreadsheet_and_a_six_week_return(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _circulate(session, services, clock)
    assert row.circulated_on == DAY and row.standard_set_id == library["Adult Critical Care"]
    (d,) = engine.pending_deadlines(session, "selfassessment", row.id)  # type: ignore[arg-type]
    assert (d.name, d.due_on) == ("return", date(2027, 1, 22))  # 6 weeks (local policy)
    assert d.remind_on == date(2027, 1, 15)  # 5 working days before
    (letter,) = _letters(session, row)
    assert letter.template == "selfassessment_request"
    to = {p["email"] for p in letter.to}
    assert to == _emails(session, "service-lead", service_id=services[ACC]) | _emails(
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
    row = _circulate(session, services, clock)
    assert [d.due_on for d in engine.pending_deadlines(session, "selfassessment", row.id)] == [date(2027, 1, 8)]  # type: ignore[arg-type]


def test_one_declaration_per_service_and_year(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    _circulate(session, services, clock)
    with pytest.raises(GuardRefused, match="is_only_declaration_for_year"):
        _circulate(session, services, clock)
    session.rollback()
    assert _circulate(session, services, clock, year=2027).state == S.CIRCULATED


def test_return_is_reminded_then_chased_to_the_service_lead_once(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _circulate(session, services, clock)
    lead = _emails(session, "service-lead", service_id=services[ACC])
    run_sweep(db, FixedClock(date(2027, 1, 14)))
    assert [m.template for m in _letters(session, row)] == ["selfassessment_request"]
    assert run_sweep(db, FixedClock(date(2027, 1, 15))).count("reminded") == 1
    assert run_sweep(db, FixedClock(date(2027, 1, 22))).count("overdue_notice") == 0  # due today: not yet late
    assert run_sweep(db, FixedClock(date(2027, 1, 25))).count("overdue_notice") == 1
    assert run_sweep(db, FixedClock(date(2027, 1, 26))).actions == []  # chased once
    session.expire_all()
    chases = [m for m in _letters(session, row) if m.template == "selfassessment_chase"]
    assert lead <= {p["email"] for m in chases for p in m.to}
    assert {m.template for m in _letters(session, row)} == {
        "selfassessment_request",
        "selfassessment_reminder",
        "selfassessment_chase",
    }


# ---------------------------------------------------------------- the spreadsheet import


def test_round_trip_export_fill_import_derives_statuses_and_starts_the_report(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _circulate(session, services, clock)
    answers = {**GOOD, "1.2": ("partially met", 0.979, "", "ICNARC report Q2"), "1.3": (None, 59.9, "", "work plan")}
    got = _import(db, row, _fill(_xlsx(session, row), answers, percent_refs=("1.2",)), FixedClock(date(2026, 12, 18)))
    assert got.state == S.RECEIVED and got.received_on == date(2026, 12, 18)
    items = _items(session, row)
    assert {r: (i.self_status, i.figure) for r, i in items.items()} == {
        "1.1": ("Met", None),
        "1.2": ("Partially Met", 97.9),
        "1.3": ("Unmet", 59.9),
        "1.4": ("Unmet", 90.0),
        "2.1": ("Partially Met", None),
        "2.2": ("Met", None),
    }
    assert items["1.1"].evidence_location == "Operational Policy" and items["2.1"].comments == "audit planned"
    assert all(i.validated_status is None for i in items.values())
    # the written report is due 8 weeks after receipt (000 s5.1), started through the engine
    (report,) = session.exec(select(Report).where(Report.service_id == services[ACC])).all()
    assert (report.state, report.basis_date, report.visit_id) == ("drafting", date(2026, 12, 18), None)
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "report", report.id)] == [
        ("report_due", date(2027, 2, 12))
    ]  # type: ignore[arg-type]
    assert (
        session.exec(select(Deadline.status).where(Deadline.kind == "selfassessment", Deadline.name == "return")).one()
        == DeadlineStatus.CLOSED
    )
    # the export now carries the service's answers
    ws = load_workbook(BytesIO(_xlsx(session, got)))["Self-Assessment"]
    assert [ws.cell(row=3, column=c).value for c in (1, 6, 7)] == ["1.2", "Partially Met", 97.9]


def test_three_bad_rows_are_all_named_and_nothing_is_imported(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _circulate(session, services, clock)
    bad = {
        **GOOD,
        "1.1": ("Partially Met", None, "", "policy"),  # row 2: 1.1 has no Partially Met band
        "1.3": ("Met", "about 80", "", "work plan"),  # row 4: figure not a number
        "2.2": ("Met", None, "", None),
    }  # row 7: no evidence location
    before, version = _counts(session), row.version
    with pytest.raises(SpreadsheetRejected) as caught:
        _import(db, row, _fill(_xlsx(session, row), bad), clock)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("row 2, Self-Assessment:") and "no 'Partially Met' band" in problems[0]
    assert problems[1].startswith("row 4, Figure Achieved:") and "'about 80' is not a number" in problems[1]
    assert problems[2].startswith("row 7, Evidence location:") and "missing" in problems[2]
    assert isinstance(caught.value, InvalidInput)
    session.expire_all()
    # nothing imported: no items, no report, no deadline; one audited event and one letter, the refusal
    audit, outbox, deadlines, items, reports = before
    assert _counts(session) == (audit + 1, outbox + 1, deadlines, items, reports)
    fresh = session.get(SelfAssessment, row.id)
    assert (fresh.state, fresh.version, fresh.received_on) == (S.CIRCULATED, version + 1, None)  # type: ignore[union-attr]
    (attempt,) = session.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "selfassessment")).all()
    assert attempt.item_id == row.id and attempt.data["problems"] == problems
    # the request letter's promise kept: the spreadsheet goes back with every problem listed
    request, refused = _letters(session, row)
    assert "we write back to you\nlisting every problem by row and column" in rendered(request).body_text
    assert refused.template == "selfassessment_refused"
    assert {p["email"] for p in refused.to} == {p["email"] for p in request.to}
    text = rendered(refused)
    assert text.subject.endswith("spreadsheet returned, 3 problems to correct")
    for n, problem in enumerate(problems, start=1):
        assert f"  {n}. {problem}" in text.body_text
        assert f"<li>{problem.replace(chr(39), '&#39;')}</li>" in text.body_html
    assert "return it to the network office by Fri 22 Jan 2027" in " ".join(text.body_text.split())
    (event,) = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "selfassessment", AuditEvent.trigger == "refuse_return")
    ).all()
    assert (event.actor, event.from_state, event.to_state) == ("Jo Office", "circulated", "circulated")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (("Met", 101, "", "x"), "row 3, Figure Achieved: 101 is outside 0-100"),
        (("Met", -1, "", "x"), "row 3, Figure Achieved: -1 is outside 0-100"),
        (("Sort of", 99, "", "x"), "row 3, Self-Assessment: 'Sort of' is not Met, Partially Met or Unmet"),
        (("Met", 95, "", "x"), "row 3, Self-Assessment: 'Met' contradicts the figure 95 (Partially Met"),
        (("Met", None, "", "x"), "row 3, Figure Achieved: missing"),
        (("Met", 99, "", "  "), "row 3, Evidence location: missing"),
    ],
)
def test_each_kind_of_bad_row_is_named(
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    answer: tuple[Any, ...],
    problem: str,
) -> None:
    row = _circulate(session, services, clock)
    rows = read_workbook(_fill(_xlsx(session, row), {**GOOD, "1.2": answer}))
    with pytest.raises(SpreadsheetRejected) as caught:
        check_rows(rows, standards_of(session, row.standard_set_id))
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(problem), caught.value.problems


def test_unknown_missing_and_repeated_refs_and_wrong_headers(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _circulate(session, services, clock)
    stds = standards_of(session, row.standard_set_id)
    rows = read_workbook(_fill(_xlsx(session, row), GOOD))
    rows[1]["ref"] = "9.9"  # row 3 was 1.2
    rows[5]["ref"] = "1.1"  # row 7 repeats 1.1; 2.2 is then missing
    with pytest.raises(SpreadsheetRejected) as caught:
        check_rows(rows, stds)
    assert caught.value.problems == [
        "row 3, Ref No.: unknown standard '9.9' (known: 1.1, 1.2, 1.3, 1.4, 2.1, 2.2)",
        "row 7, Ref No.: standard 1.1 appears again (first on row 2)",
        "Ref No.: standard 1.2 has no row",
        "Ref No.: standard 2.2 has no row",
    ]
    wb = load_workbook(BytesIO(_xlsx(session, row)))
    wb["Self-Assessment"].cell(row=1, column=7).value = "Score"
    buf = BytesIO()
    wb.save(buf)
    with pytest.raises(SpreadsheetRejected, match="row 1, column 7 header: 'Score' should be 'Figure Achieved'"):
        read_workbook(buf.getvalue())
    with pytest.raises(SpreadsheetRejected, match=r"not an .xlsx workbook"):
        read_workbook(b"Ref No.,Descriptor\n")


def test_another_services_spreadsheet_is_refused(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    first = _circulate(session, services, clock)
    second = _circulate(session, services, clock, year=2027)
    with pytest.raises(SpreadsheetRejected, match=f"this spreadsheet is for SA-{first.id}, not SA-{second.id}"):
        _import(db, second, _fill(_xlsx(session, first), GOOD), clock)


@pytest.mark.parametrize(
    ("figure", "status"),
    [(100, "Met"), (98, "Met"), (97.9, "Partially Met"), (90, "Partially Met"), (89.9, "Unmet"), (0, "Unmet")],
)
def test_thresholds_of_standard_1_2(session: Session, library: dict[str, int], figure: float, status: str) -> None:
    stds = {s.ref: s for s in standards_of(session, library["Adult Critical Care"])}
    assert derive_status(stds["1.2"], figure) == status
    assert derive_status(stds["1.1"], figure) is None  # 1.1 has no thresholds: the service's status stands
    rows = [
        {"row": n, "ref": ref, "status": GOOD[ref][0], "figure": GOOD[ref][1], "evidence": "x"}
        for n, ref in enumerate(GOOD, start=2)
    ]
    rows[1].update(status=None, figure=figure)
    items = {i["ref"]: i for i in check_rows(rows, list(stds.values()))}
    assert items["1.2"]["self_status"] == status


def test_a_standard_with_thresholds_but_no_partly_band_is_met_or_unmet(
    session: Session, library: dict[str, int]
) -> None:
    std = next(s for s in standards_of(session, library["Adult Critical Care"]) if s.ref == "1.4")
    assert not std.has_partly_band
    assert [derive_status(std, f) for f in (95, 94.9, 10)] == ["Met", "Unmet", "Unmet"]


# ---------------------------------------------------------------- validation, achievement, escalation


def test_validation_records_beside_the_declaration_and_needs_a_reason_to_overrule_the_figure(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = _reach(session, db, services, clock, S.RECEIVED)
    with pytest.raises(InvalidInput, match="the figure 98 gives Met"):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            actor="Jo",
            role=OFFICE,
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "1.2", "status": "Unmet"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="no 'Partially Met' band"):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            actor="Jo",
            role=OFFICE,
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "2.2", "status": "Partially Met"},
        )
    session.rollback()
    with pytest.raises(NotFound):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            actor="Jo",
            role=OFFICE,
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "7.7", "status": "Met"},
        )
    session.rollback()
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "validate_item",
        actor="Jo",
        role=OFFICE,
        clock=clock,  # type: ignore[arg-type]
        params={"ref": "1.2", "status": "Unmet"},
        note="figure excludes out-of-hours admissions",
    )
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "validate_item",
        actor="Jo",
        role=OFFICE,
        clock=clock,  # type: ignore[arg-type]
        params={"ref": "2.1", "status": "Unmet"},
        note="no attendance audit seen",
    )
    session.commit()
    with pytest.raises(GuardRefused, match="are_all_items_validated"):
        engine.fire(session, "selfassessment", row.id, "complete_validation", actor="Jo", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.rollback()
    out = engine.fire(session, "selfassessment", row.id, "accept_all", actor="Jo", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.commit()
    items = _items(session, row)
    assert {r: (i.self_status, i.validated_status) for r, i in items.items()} == {
        "1.1": ("Met", "Met"),
        "1.2": ("Met", "Unmet"),
        "1.3": ("Partially Met", "Partially Met"),
        "1.4": ("Unmet", "Unmet"),
        "2.1": ("Partially Met", "Unmet"),
        "2.2": ("Met", "Met"),
    }
    assert items["1.2"].validation_note == "figure excludes out-of-hours admissions"
    # Met 1.1, 2.2; Partially Met 1.3 -> 2.5 / 6 = 41.7%: below 50%, escalated
    assert out.row.achievement == 41.7 and out.row.state == S.VALIDATED
    assert [m.template for m in _letters(session, row)][-1] == "achievement_escalation"


def test_total_achievement_formula_and_local_policy_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    assert total_achievement(["Met", "Partially Met", "Unmet", "Unmet"], 4) == 37.5
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_WEIGHT_PARTLY", "0.25")
    assert total_achievement(["Met", "Partially Met", "Unmet", "Unmet"], 4) == pytest.approx(31.25)
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_WEIGHT_MET", "lots")
    with pytest.raises(InvalidInput, match="PEERWATCH_SELFASSESSMENT_WEIGHT_MET"):
        total_achievement(["Met"], 1)


def _ten_standard_set(kind: str, version: str, effective: str) -> dict[str, Any]:
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


@pytest.mark.parametrize(
    ("met", "partly", "achievement", "escalated"), [(4, 1, 45.0, True), (5, 0, 50.0, False), (4, 2, 50.0, False)]
)
def test_below_fifty_percent_is_escalated_to_icbs_and_regional_quality_leads(
    db: Engine,
    session: Session,
    services: dict[str, int],
    clock: FixedClock,
    met: int,
    partly: int,
    achievement: float,
    escalated: bool,
) -> None:
    load_standard_sets(
        session,
        [_ten_standard_set("Adult Critical Care", "10", "2026-04-01")],
        actor="Jo Office",
        role=OFFICE,
        clock=FixedClock(DAY),
    )
    session.commit()
    row = _circulate(session, services, clock)
    statuses = ["Met"] * met + ["Partially Met"] * partly + ["Unmet"] * (10 - met - partly)
    answers = {f"{n}.1": (s, None, "", "work plan") for n, s in enumerate(statuses, start=1)}
    _import(db, row, _fill(_xlsx(session, row), answers), clock)
    session.expire_all()
    out = engine.fire(session, "selfassessment", row.id, "accept_all", actor="Jo", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.commit()
    assert out.row.achievement == achievement
    letters = [m for m in _letters(session, row) if m.template == "achievement_escalation"]
    assert bool(letters) is escalated
    if escalated:
        (letter,) = letters
        net = session.get(Service, services[ACC]).network_id  # type: ignore[union-attr]
        assert {p["email"] for p in letter.to} == _emails(session, "icb", network_id=net) | _emails(
            session, "regional-quality-lead", network_id=net
        )
        assert "below 50% total achievement (45.0%)" in rendered(letter).subject
        assert (
            "4 Met" in rendered(letter).body_text
            and "1 Partially Met" in rendered(letter).body_text
            and "5 Unmet" in rendered(letter).body_text
        )


# ---------------------------------------------------------------- the standards library


def test_a_superseded_set_is_not_used_for_new_circulations(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    old = library["Adult Critical Care"]
    pending = SelfAssessment(service_id=services[ACC], standard_set_id=old, programme_year=2026, state="new")
    pending.created_at = pending.updated_at = clock.now()
    session.add(pending)
    session.commit()
    (loaded,) = load_standard_sets(
        session,
        [_ten_standard_set("Adult Critical Care", "2026.1", "2026-10-01")],
        actor="Jo Office",
        role=OFFICE,
        clock=FixedClock(DAY),
    )
    session.commit()
    assert loaded["supersedes"] == old
    assert session.get(StandardSet, old).superseded_by_id == loaded["id"]  # type: ignore[union-attr]
    assert current_set(session, "Adult Critical Care", date(2026, 9, 30)).id == old  # type: ignore[union-attr]
    assert current_set(session, "Adult Critical Care", DAY).id == loaded["id"]  # type: ignore[union-attr]
    # a declaration made out against the superseded set cannot be circulated
    with pytest.raises(GuardRefused, match="is_standard_set_current"):
        engine.fire(session, "selfassessment", pending.id, "circulate", actor="Jo", role=OFFICE, clock=clock)  # type: ignore[arg-type]
    session.rollback()
    # a new circulation uses the new set
    row = _circulate(session, services, clock, year=2027)
    assert row.standard_set_id == loaded["id"]
    assert len(standards_of(session, row.standard_set_id)) == 10
    # another kind is untouched
    assert current_set(session, "Major Trauma Centre", DAY).id == library["Major Trauma Centre"]  # type: ignore[union-attr]


def test_a_set_effective_in_future_waits_for_its_date(
    session: Session, services: dict[str, int], library: dict[str, int]
) -> None:
    (loaded,) = load_standard_sets(
        session,
        [_ten_standard_set("Adult Critical Care", "2027.1", "2027-04-01")],
        actor="Jo Office",
        role=OFFICE,
        clock=FixedClock(DAY),
    )
    session.commit()
    assert current_set(session, "Adult Critical Care", DAY).id == library["Adult Critical Care"]  # type: ignore[union-attr]
    row = _circulate(session, services, FixedClock(date(2027, 4, 1)), year=2027)
    assert row.standard_set_id == loaded["id"]


def test_library_refuses_old_duplicate_and_malformed_sets(
    session: Session, services: dict[str, int], library: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput, match="already loaded"):
        load_standard_sets(session, read_library(LIBRARY), actor="Jo Office", role=OFFICE, clock=FixedClock(DAY))
    session.rollback()
    with pytest.raises(InvalidInput, match="is not newer than the current set"):
        load_standard_sets(
            session,
            [_ten_standard_set("Adult Critical Care", "2024.1", "2024-04-01")],
            actor="Jo Office",
            role=OFFICE,
            clock=FixedClock(DAY),
        )
    session.rollback()
    bad = _ten_standard_set("Burns", "1", "2026-04-01")
    bad["standards"][0].update(met_threshold=90, partly_threshold=95)
    bad["standards"][1].update(ref="1.1")
    bad["standards"][2].update(met_threshold=120, criteria_partly=None)
    with pytest.raises(InvalidInput) as caught:
        load_standard_sets(session, [bad], actor="Jo Office", role=OFFICE, clock=FixedClock(DAY))
    msg = str(caught.value)
    assert "partly_threshold 95 must be below met_threshold 90" in msg
    assert "standard 1.1: ref appears twice" in msg
    assert "met_threshold 120 is outside 0-100" in msg
    session.rollback()
    assert session.exec(select(func.count()).select_from(Standard)).one() == 10  # only the example library
    assert read_library(LIBRARY)[0]["standards"][0]["criteria_partly"] is None


def test_no_set_for_the_kind_is_named(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    with pytest.raises(NotFound, match="no standard set in force for 'Burns'"):
        start(session, services["Valley Burns Service"], 2026, actor="Jo", role=OFFICE, clock=clock)


# ---------------------------------------------------------------- the command line


def test_cli_import_prints_every_problem_and_exits_2(
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    assert (
        run_cli(
            "--as-of",
            "2026-12-11",
            "selfassessment",
            "circulate",
            "--service",
            str(services[ACC]),
            "--year",
            "2026",
            "--actor",
            "Jo Office",
        )
        == 0
    )
    assert "selfassessment 1 created, state circulated" in capsys.readouterr().out
    blank = tmp_path / "blank.xlsx"
    assert run_cli("--as-of", "2026-12-11", "selfassessment", "export", "1", "--out", str(blank)) == 0
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(
        _fill(
            blank.read_bytes(),
            {
                **GOOD,
                "1.1": ("Partially Met", None, "", "p"),
                "1.3": ("Met", "n/a", "", "w"),
                "2.2": ("Met", None, "", None),
            },
        )
    )
    capsys.readouterr()
    assert run_cli("--as-of", "2026-12-11", "selfassessment", "import", "1", str(bad), "--actor", "Jo Office") == 2
    err = capsys.readouterr().err
    assert "bad.xlsx refused, nothing imported: 3 problem(s)" in err
    for where in ("row 2, Self-Assessment", "row 4, Figure Achieved", "row 7, Evidence location"):
        assert where in err
    good = tmp_path / "good.xlsx"
    good.write_bytes(_fill(blank.read_bytes(), GOOD))
    assert run_cli("--as-of", "2026-12-14", "selfassessment", "import", "1", str(good), "--actor", "Jo Office") == 0
    assert "report 1 started; report_due due 2027-02-08" in capsys.readouterr().out
    day = ("--as-of", "2026-12-15")
    assert run_cli(*day, "selfassessment", "validate", "1", "--ref", "1.2", "--status", "Met", "--actor", "Jo") == 0
    assert run_cli(*day, "selfassessment", "validate", "1", "--complete", "--actor", "Jo") == 2
    assert "are_all_items_validated" in capsys.readouterr().err
    assert run_cli(*day, "selfassessment", "validate", "1", "--accept-all", "--actor", "Jo") == 0
    assert run_cli("--json", "selfassessment", "show", "1") == 0
    assert '"achievement": 66.7' in capsys.readouterr().out


@pytest.fixture
def run_cli(db: Engine) -> Callable[..., int]:
    from cli.main import main

    def run(*args: str) -> int:
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run


def test_cli_loads_a_json_library_that_supersedes_and_lists_what_is_in_force(
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    import json

    doc = _ten_standard_set("Adult Critical Care", "2026.2", "2026-09-01")
    (tmp_path / "acc.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert run_cli("selfassessment", "standards", "load", str(tmp_path / "acc.json")) == 0
    assert f"supersedes set {library['Adult Critical Care']}" in capsys.readouterr().out
    assert run_cli("selfassessment", "standards", "load", str(tmp_path / "acc.json")) == 2
    assert "already loaded" in capsys.readouterr().err
    assert run_cli("--json", "--as-of", "2026-12-11", "selfassessment", "standards", "list") == 0
    listed = {(x["service_kind"], x["version"]): x for x in json.loads(capsys.readouterr().out)}
    assert listed[("Adult Critical Care", "2026.2")]["in_force"] is True
    assert listed[("Adult Critical Care", "2025.1")]["in_force"] is False
    assert listed[("Major Trauma Centre", "2025.1")]["in_force"] is True
