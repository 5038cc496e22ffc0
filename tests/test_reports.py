"""The written peer review report (DOMAIN.md "Report"): the report machine table-driven, its
deadlines and the sweep, the factual accuracy check and the two decisions on each inaccuracy,
distribution with the PDF, publication, and the report document as PDF and HTML.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Deadline
from models.tables import AccuracyItem, Attachment, Report
from notifications.attachments import render_attachment
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import InvalidTrigger
from states.machines.report import ReportState
from states.machines.spec import get_spec
from tests.factories import person
from tests.support_reports import (
    CLAIM,
    MRH,
    NM,
    OFFICE,
    OPERATOR,
    RL,
    SENT,
    VISIT,
    drafting,
    fire,
    in_check,
    letters_to,
    pdf_text,
    report_of_visit,
    row_counts,
)

R = ReportState
SPEC = get_spec("report")
CLOCK_TRIGGERS = ("pause_clock", "resume_clock", "extend_deadline")
OPEN_STATES = (
    "drafting",
    "accuracy_check",
    "inaccuracies_received",
    "approved",
    "distributed",
    "published",
    "amending",
)
CAL = calendar_for("ENG")


def _templates(session: Session, report_id: int) -> list[str]:
    return [m.template for m in letters_to(session, report_id)]


FIRST = "<first item>"
DECIDED = {
    "manager_decision": "accepted",
    "manager_actor": "Dr Asha Patel",
    "lead_decision": "rejected",
    "lead_actor": "Mr Tom Hughes",
}
DAY = SENT  # every table row fires on this day

# (source state, trigger, role, setup, expected destination, letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (R.NEW, "start_drafting", "system", {}, R.DRAFTING, set()),
    (R.NEW, "start_drafting", OFFICE, {}, R.DRAFTING, set()),
    (R.DRAFTING, "add_standard", OFFICE, {"params": {"ref": "1.2", "status": "Partially Met"}}, R.DRAFTING, set()),
    (R.DRAFTING, "add_positive", NM, {"params": {"text": "Strong rehabilitation pathway"}}, R.DRAFTING, set()),
    (R.DRAFTING, "send_for_accuracy_check", OFFICE, {}, R.ACCURACY_CHECK, {"factual_accuracy_request"}),
    (R.ACCURACY_CHECK, "record_inaccuracy", OFFICE, {"params": {"text": CLAIM}}, R.INACCURACIES_RECEIVED, set()),
    (
        R.INACCURACIES_RECEIVED,
        "record_inaccuracy",
        OPERATOR,
        {"items": [{}], "params": {"text": CLAIM}},
        R.INACCURACIES_RECEIVED,
        set(),
    ),
    (
        R.INACCURACIES_RECEIVED,
        "decide_inaccuracy",
        NM,
        {"items": [{}], "params": {"item_id": FIRST, "decision": "accepted"}},
        R.INACCURACIES_RECEIVED,
        set(),
    ),
    (
        R.INACCURACIES_RECEIVED,
        "decide_inaccuracy",
        RL,
        {"items": [{}], "params": {"item_id": FIRST, "decision": "rejected"}},
        R.INACCURACIES_RECEIVED,
        set(),
    ),
    (R.ACCURACY_CHECK, "approve", NM, {}, R.APPROVED, set()),
    (R.INACCURACIES_RECEIVED, "approve", RL, {"items": [DECIDED]}, R.APPROVED, set()),
    (R.APPROVED, "distribute", OFFICE, {}, R.DISTRIBUTED, {"report_distribution"}),
    (R.DISTRIBUTED, "publish", NM, {}, R.PUBLISHED, set()),
    (R.PUBLISHED, "reopen_for_amendment", RL, {"note": "appeal 1 upheld"}, R.AMENDING, set()),
    (R.AMENDING, "reissue", NM, {"note": "appeal 1 upheld"}, R.PUBLISHED, {"report_reissued"}),
    *[(s, "pause_clock", NM, {"deadline": "open", "note": "Trust IT outage"}, s, set()) for s in OPEN_STATES],
    *[(s, "resume_clock", OPERATOR, {"deadline": "paused", "note": "restored"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "extend_deadline", RL, {"deadline": "open", "note": "agreed", "params": {"days": 3}}, s, set())
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Report:
    """Test setup shortcut: place a report in a given state, with what the setup asks for."""
    setup = setup or {}
    if state == R.NEW:
        at = FixedClock(VISIT).now()
        report = Report(service_id=services[MRH], basis_date=VISIT, state="new", created_at=at, updated_at=at)
    else:
        report = drafting(session, services)
        report.state = str(state)
    session.add(report)
    session.flush()
    for fields in setup.get("items", []):
        session.add(AccuracyItem(report_id=report.id, text=CLAIM, **fields))  # type: ignore[arg-type]
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="report",
                item_id=report.id,
                name="report_due",
                due_on=date(2027, 1, 29),  # type: ignore[arg-type]
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return report


def _params(session: Session, report: Report, setup: dict[str, Any]) -> dict[str, Any] | None:
    params = dict(setup.get("params", {}))
    if params.get("item_id") == FIRST:
        params["item_id"] = session.exec(select(AccuracyItem.id).where(AccuracyItem.report_id == report.id)).first()
    return params or None


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    services: dict[str, int],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    report = _put_in(session, services, source, setup)
    before_version, before_letters = report.version, set(_templates(session, report.id))  # type: ignore[arg-type]
    out = engine.fire(
        session,
        "report",
        report.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(DAY),  # type: ignore[arg-type]
        note=setup.get("note"),
        params=_params(session, report, setup),
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == before_version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor, out.event.role) == (
        source,
        dest,
        trigger,
        "tester",
        role,
    )
    assert set(_templates(session, report.id)) - before_letters == letters  # type: ignore[arg-type]


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in R for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in R for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("new") == ["start_drafting"]


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    report = _put_in(session, services, state)
    version, counts = report.version, row_counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session, "report", report.id, trigger, principal=person("tester", NM), clock=FixedClock(DAY), note="n"
        )  # type: ignore[arg-type]
    session.rollback()
    fresh = session.get(Report, report.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert row_counts(session) == counts


# --------------------------------------------------------------------------- deadlines and the sweep


def test_report_due_eight_weeks_after_the_visit(session: Session, services: dict[str, int]) -> None:
    visit, report = report_of_visit(session, services, VISIT)
    assert (report.state, report.basis_date, report.visit_id) == ("drafting", VISIT, visit.id)
    (due,) = engine.pending_deadlines(session, "report", report.id)  # type: ignore[arg-type]
    assert (due.name, due.due_on, due.remind_on) == ("report_due", date(2027, 1, 7), date(2027, 1, 5))
    assert due.due_on == VISIT + timedelta(weeks=8) and CAL.subtract_working_days(due.due_on, 2) == due.remind_on


def _report_actions(db: Engine, day: date) -> list[tuple[str, str]]:
    return [(a["deadline"], a["action"]) for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "report"]


def test_sweep_reminds_on_the_day_and_chases_the_overdue_report_once_each(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    _, report = report_of_visit(session, services, VISIT)
    timeline = {
        date(2027, 1, 4): [],
        date(2027, 1, 5): [("report_due", "reminded")],  # 2 working days before
        date(2027, 1, 6): [],
        date(2027, 1, 7): [("report_due", "due_today")],
        date(2027, 1, 8): [("report_due", "overdue_notice")],
        date(2027, 1, 11): [],
    }
    for day, expected in timeline.items():
        for n in range(2):  # a second sweep on the same day does nothing more
            assert _report_actions(db, day) == (expected if n == 0 else []), (day, n)
    with Session(db) as s:
        letters = letters_to(s, report.id)  # type: ignore[arg-type]
    assert [(m.template, m.to[0]["role"], m.created_at.date()) for m in letters] == [
        ("report_due_soon", "network-office", date(2027, 1, 5)),
        ("report_due_today", "network-office", date(2027, 1, 7)),
        ("report_due_today", "network-manager", date(2027, 1, 7)),
        ("report_overdue", "network-office", date(2027, 1, 8)),
        ("report_overdue", "network-manager", date(2027, 1, 8)),
        ("report_overdue", "regional-lead", date(2027, 1, 8)),
    ]


def test_no_report_chase_once_sent_for_the_accuracy_check(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    _, report = report_of_visit(session, services, VISIT)
    fire(session, report.id, "send_for_accuracy_check", SENT)  # type: ignore[arg-type]
    for day in (date(2027, 1, 5), date(2027, 1, 7), date(2027, 1, 8)):
        run_sweep(db, FixedClock(day))
    with Session(db) as s:
        assert not {"report_due_soon", "report_due_today", "report_overdue"} & set(_templates(s, report.id))  # type: ignore[arg-type]


def test_accuracy_reply_due_ten_working_days_later_across_christmas(session: Session, services: dict[str, int]) -> None:
    report = in_check(session, services)  # sent Fri 18 Dec 2026
    (reply,) = engine.pending_deadlines(session, "report", report.id)  # type: ignore[arg-type]
    # 21, 22, 23, 24, 29, 30, 31 Dec, 4, 5, 6 Jan (25, 28 Dec and 1 Jan are bank holidays)
    assert (reply.name, reply.due_on, reply.remind_on) == ("accuracy_reply", date(2027, 1, 6), date(2027, 1, 4))
    assert CAL.add_working_days(SENT, 10) == reply.due_on
    (request,) = [m for m in letters_to(session, report.id) if m.template == "factual_accuracy_request"]  # type: ignore[arg-type]
    assert [p["role"] for p in request.to] == ["service-lead"]
    assert "Wed 06 Jan 2027" in rendered(request).body_text
    (draft,) = session.exec(select(Attachment).where(Attachment.idempotency_key == request.idempotency_key)).all()
    assert draft.filename == f"peer-review-report-{report.id}-draft.pdf" and render_attachment(draft).startswith(
        b"%PDF"
    )
    assert "DRAFT for factual accuracy check" in pdf_text(render_attachment(draft))


def test_accuracy_reply_is_chased_once_the_day_after_it_passes(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = in_check(session, services)
    timeline = {
        date(2026, 12, 31): [],
        date(2027, 1, 4): [("accuracy_reply", "reminded")],
        date(2027, 1, 5): [],
        date(2027, 1, 6): [],  # due today: not yet late
        date(2027, 1, 7): [("accuracy_reply", "overdue_notice")],
        date(2027, 1, 8): [],
    }
    for day, expected in timeline.items():
        for n in range(2):
            assert _report_actions(db, day) == (expected if n == 0 else []), (day, n)
    with Session(db) as s:
        letters = [m for m in letters_to(s, report.id) if m.template.startswith("accuracy_reply")]  # type: ignore[arg-type]
    assert [(m.template, m.to[0]["role"], m.created_at.date()) for m in letters] == [
        ("accuracy_reply_reminder", "service-lead", date(2027, 1, 4)),
        ("accuracy_reply_chase", "service-lead", date(2027, 1, 7)),
        ("accuracy_reply_chase", "network-office", date(2027, 1, 7)),
    ]


def test_a_reply_in_time_stops_the_chase(db: Engine, session: Session, services: dict[str, int]) -> None:
    report = in_check(session, services)
    fire(session, report.id, "record_inaccuracy", date(2027, 1, 5), text=CLAIM)  # type: ignore[arg-type]
    assert engine.pending_deadlines(session, "report", report.id) == []  # type: ignore[arg-type]
    assert _report_actions(db, date(2027, 1, 7)) == []
    with Session(db) as s:
        assert "accuracy_reply_chase" not in _templates(s, report.id)  # type: ignore[arg-type]
