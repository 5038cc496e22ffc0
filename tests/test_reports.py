"""The written peer review report (DOMAIN.md "Report"): the report machine table-driven, its
deadlines and the sweep, the factual accuracy check and the two decisions on each inaccuracy,
distribution with the PDF, publication, and the report document as PDF and HTML."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from typing import Any

import pypdf
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk
from models.tables import AccuracyItem, Attachment, Report, Reviewer, Visit
from notifications.attachments import render_attachment
from notifications.dispatch import dispatch
from notifications.documents import render_report_html, render_report_pdf
from notifications.render import rendered
from notifications.transports import MemoryTransport
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.letters import resolve
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, NotFound, PermissionDenied
from states.machines.report import ReportState, document
from states.machines.spec import get_spec
from states.policy import Policy
from states.scope import recipient_scope

R = ReportState
SPEC = get_spec("report")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
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
CAL = calendar_for("ENG")


# --------------------------------------------------------------------------- helpers


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (AuditEvent, OutboxMessage, Deadline, AccuracyItem, Attachment)
    )


def _fire(
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
        actor=actor,
        role=role,
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def _letters(session: Session, report_id: int) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "report", OutboxMessage.item_id == report_id)
            .order_by(col(OutboxMessage.id))
        )
    )


def _templates(session: Session, report_id: int) -> list[str]:
    return [m.template for m in _letters(session, report_id)]


def _drafting(session: Session, services: dict[str, int], basis: date = VISIT) -> Report:
    """A report started through the engine (here: of a self-assessment received on ``basis``)."""
    out = engine.create(
        session,
        "report",
        Report(service_id=services[MRH], basis_date=basis, state="new"),
        "start_drafting",
        actor="tester",
        role=OFFICE,
        clock=FixedClock(basis),
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def _visit_fire(
    session: Session, visit_id: int, trigger: str, day: date, role: str = OFFICE, note: str | None = None, **params: Any
) -> None:
    engine.fire(
        session,
        "visit",
        visit_id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()


def _report_of_visit(
    session: Session, services: dict[str, int], visit_day: date = VISIT, risks: list[dict[str, Any]] | None = None
) -> tuple[Visit, Report]:
    """A visit driven through the engine from proposal to high level feedback, and the report it starts."""
    start = visit_day - timedelta(weeks=5)
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        actor="tester",
        role=OFFICE,
        clock=FixedClock(start),
    ).row
    reviewer = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    _visit_fire(session, visit.id, "schedule", start, date=visit_day.isoformat())  # type: ignore[arg-type]
    _visit_fire(session, visit.id, "add_panel_member", start, reviewer_id=reviewer.id)  # type: ignore[arg-type]
    _visit_fire(session, visit.id, "notify_service", start)  # type: ignore[arg-type]
    _visit_fire(session, visit.id, "record_declaration", start, reviewer_id=reviewer.id)  # type: ignore[arg-type]
    _visit_fire(
        session,
        visit.id,
        "record_preparation",
        start,
        prep_session="declined",
        panel_confirmed="yes",  # type: ignore[arg-type]
        evidence_received="yes",
    )
    _visit_fire(session, visit.id, "confirm_prepared", start)  # type: ignore[arg-type]
    _visit_fire(session, visit.id, "hold", visit_day)  # type: ignore[arg-type]
    _visit_fire(session, visit.id, "give_feedback", visit_day, role=NM, risks=risks or [])  # type: ignore[arg-type]
    report = session.exec(select(Report).where(Report.visit_id == visit.id)).one()
    return visit, report  # type: ignore[return-value]


def _in_check(session: Session, services: dict[str, int]) -> Report:
    report = _drafting(session, services)
    _fire(session, report.id, "send_for_accuracy_check", SENT)  # type: ignore[arg-type]
    return report


def _with_items(session: Session, services: dict[str, int], *texts: str) -> tuple[Report, list[int]]:
    report = _in_check(session, services)
    for text in texts:
        _fire(session, report.id, "record_inaccuracy", date(2026, 12, 21), text=text)  # type: ignore[arg-type]
    ids = list(
        session.exec(
            select(AccuracyItem.id).where(AccuracyItem.report_id == report.id).order_by(col(AccuracyItem.id))
        ).all()
    )
    return report, ids  # type: ignore[return-value]


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


# --------------------------------------------------------------------------- the machine, table-driven

CLAIM = "The report says no consultant was present at 09:00; the rota shows Dr Reid was on site that morning"
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
        report = _drafting(session, services)
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
        actor="tester",
        role=role,
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
    version, counts = report.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(session, "report", report.id, trigger, actor="tester", role=NM, clock=FixedClock(DAY), note="n")  # type: ignore[arg-type]
    session.rollback()
    fresh = session.get(Report, report.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


# --------------------------------------------------------------------------- deadlines and the sweep


def test_report_due_eight_weeks_after_the_visit(session: Session, services: dict[str, int]) -> None:
    visit, report = _report_of_visit(session, services, VISIT)
    assert (report.state, report.basis_date, report.visit_id) == ("drafting", VISIT, visit.id)
    (due,) = engine.pending_deadlines(session, "report", report.id)  # type: ignore[arg-type]
    assert (due.name, due.due_on, due.remind_on) == ("report_due", date(2027, 1, 7), date(2027, 1, 5))
    assert due.due_on == VISIT + timedelta(weeks=8) and CAL.subtract_working_days(due.due_on, 2) == due.remind_on


def _report_actions(db: Engine, day: date) -> list[tuple[str, str]]:
    return [(a["deadline"], a["action"]) for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "report"]


def test_sweep_reminds_on_the_day_and_chases_the_overdue_report_once_each(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    _, report = _report_of_visit(session, services, VISIT)
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
        letters = _letters(s, report.id)  # type: ignore[arg-type]
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
    _, report = _report_of_visit(session, services, VISIT)
    _fire(session, report.id, "send_for_accuracy_check", SENT)  # type: ignore[arg-type]
    for day in (date(2027, 1, 5), date(2027, 1, 7), date(2027, 1, 8)):
        run_sweep(db, FixedClock(day))
    with Session(db) as s:
        assert not {"report_due_soon", "report_due_today", "report_overdue"} & set(_templates(s, report.id))  # type: ignore[arg-type]


def test_accuracy_reply_due_ten_working_days_later_across_christmas(session: Session, services: dict[str, int]) -> None:
    report = _in_check(session, services)  # sent Fri 18 Dec 2026
    (reply,) = engine.pending_deadlines(session, "report", report.id)  # type: ignore[arg-type]
    # 21, 22, 23, 24, 29, 30, 31 Dec, 4, 5, 6 Jan (25, 28 Dec and 1 Jan are bank holidays)
    assert (reply.name, reply.due_on, reply.remind_on) == ("accuracy_reply", date(2027, 1, 6), date(2027, 1, 4))
    assert CAL.add_working_days(SENT, 10) == reply.due_on
    (request,) = [m for m in _letters(session, report.id) if m.template == "factual_accuracy_request"]  # type: ignore[arg-type]
    assert [p["role"] for p in request.to] == ["service-lead"]
    assert "Wed 06 Jan 2027" in rendered(request).body_text
    (draft,) = session.exec(select(Attachment).where(Attachment.idempotency_key == request.idempotency_key)).all()
    assert draft.filename == f"peer-review-report-{report.id}-draft.pdf" and render_attachment(draft).startswith(
        b"%PDF"
    )
    assert "DRAFT for factual accuracy check" in _pdf_text(render_attachment(draft))


def test_accuracy_reply_is_chased_once_the_day_after_it_passes(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
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
        letters = [m for m in _letters(s, report.id) if m.template.startswith("accuracy_reply")]  # type: ignore[arg-type]
    assert [(m.template, m.to[0]["role"], m.created_at.date()) for m in letters] == [
        ("accuracy_reply_reminder", "service-lead", date(2027, 1, 4)),
        ("accuracy_reply_chase", "service-lead", date(2027, 1, 7)),
        ("accuracy_reply_chase", "network-office", date(2027, 1, 7)),
    ]


def test_a_reply_in_time_stops_the_chase(db: Engine, session: Session, services: dict[str, int]) -> None:
    report = _in_check(session, services)
    _fire(session, report.id, "record_inaccuracy", date(2027, 1, 5), text=CLAIM)  # type: ignore[arg-type]
    assert engine.pending_deadlines(session, "report", report.id) == []  # type: ignore[arg-type]
    assert _report_actions(db, date(2027, 1, 7)) == []
    with Session(db) as s:
        assert "accuracy_reply_chase" not in _templates(s, report.id)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the factual accuracy check


@pytest.mark.parametrize(
    "params",
    [
        {"text": "The rota shows two consultants, not one", "after_visit": "yes"},
        {"text": "We have since recruited a second trauma coordinator"},
        {"text": "A new escalation policy is now in place"},
        {"text": "Following the visit, the audit was repeated and shows 95%"},
        {"text": "The  trolley check HAS\nSINCE been added to the daily list"},
    ],
    ids=["after_visit flag", "have since", "now in place", "following the visit", "case and spacing"],
)
def test_changes_after_the_visit_are_not_inaccuracies(
    session: Session, services: dict[str, int], params: dict[str, str]
) -> None:
    report = _in_check(session, services)
    version, counts = report.version, _counts(session)
    with pytest.raises(GuardRefused, match="only observations on the day count"):
        engine.fire(
            session,
            "report",
            report.id,
            "record_inaccuracy",
            actor="t",
            role=OFFICE,  # type: ignore[arg-type]
            clock=FixedClock(date(2026, 12, 21)),
            params=params,
        )
    session.rollback()
    fresh = session.get(Report, report.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("accuracy_check", version)
    assert _counts(session) == counts
    assert session.exec(select(func.count()).select_from(AccuracyItem)).one() == 0
    assert [d.name for d in engine.pending_deadlines(session, "report", report.id)] == ["accuracy_reply"]  # type: ignore[arg-type]


def test_an_inaccuracy_about_the_day_is_recorded(session: Session, services: dict[str, int]) -> None:
    report, (item_id,) = _with_items(session, services, CLAIM)
    item = session.get(AccuracyItem, item_id)
    assert item is not None and (item.report_id, item.text, item.outcome) == (report.id, CLAIM, None)
    assert report.state == "inaccuracies_received"
    with pytest.raises(InvalidInput, match="needs text"):
        engine.fire(
            session,
            "report",
            report.id,
            "record_inaccuracy",
            actor="t",
            role=OFFICE,  # type: ignore[arg-type]
            clock=FixedClock(date(2026, 12, 21)),
            params={"text": "  "},
        )


def _decide(
    session: Session, report_id: int, item_id: int, role: str, actor: str, decision: str, day: date = date(2026, 12, 22)
) -> None:
    _fire(session, report_id, "decide_inaccuracy", day, role=role, actor=actor, item_id=item_id, decision=decision)


def _refused_decision(session: Session, report_id: int, exc: type[Exception], match: str, **kw: Any) -> None:
    args: dict[str, Any] = {"role": RL, "actor": "Mr Tom Hughes", "params": {}, **kw}
    counts = _counts(session)
    before = [
        (i.manager_decision, i.lead_decision) for i in session.exec(select(AccuracyItem).order_by(col(AccuracyItem.id)))
    ]
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "report",
            report_id,
            "decide_inaccuracy",
            actor=args["actor"],
            role=args["role"],
            clock=FixedClock(date(2026, 12, 22)),
            params=args["params"],
        )
    session.rollback()
    assert _counts(session) == counts
    assert [
        (i.manager_decision, i.lead_decision) for i in session.exec(select(AccuracyItem).order_by(col(AccuracyItem.id)))
    ] == before


def test_manager_and_lead_must_be_two_people(session: Session, services: dict[str, int]) -> None:
    report, (item,) = _with_items(session, services, CLAIM)
    _decide(session, report.id, item, NM, "Dr Asha Patel", "accepted")  # type: ignore[arg-type]
    _refused_decision(
        session,
        report.id,
        GuardRefused,
        "must be two people",  # type: ignore[arg-type]
        actor="Dr Asha Patel",
        params={"item_id": item, "decision": "accepted"},
    )
    _decide(session, report.id, item, RL, "Mr Tom Hughes", "accepted")  # type: ignore[arg-type]
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None and (fresh.manager_actor, fresh.lead_actor, fresh.outcome) == (
        "Dr Asha Patel",
        "Mr Tom Hughes",
        "accepted",
    )


def test_decisions_are_for_the_network_manager_and_regional_lead_only(
    session: Session, services: dict[str, int]
) -> None:
    report, (item,) = _with_items(session, services, CLAIM)
    for role in (OFFICE, OPERATOR):
        _refused_decision(
            session,
            report.id,
            PermissionDenied,
            f"role '{role}' may not fire 'decide_inaccuracy'",  # type: ignore[arg-type]
            role=role,
            params={"item_id": item, "decision": "accepted"},
        )


def test_a_role_decides_once(session: Session, services: dict[str, int]) -> None:
    report, (item,) = _with_items(session, services, CLAIM)
    _decide(session, report.id, item, NM, "Dr Asha Patel", "rejected")  # type: ignore[arg-type]
    _refused_decision(
        session,
        report.id,
        GuardRefused,
        "already has the network-manager decision \\(rejected\\)",  # type: ignore[arg-type]
        role=NM,
        actor="Ms Grace Okafor",
        params={"item_id": item, "decision": "accepted"},
    )


@pytest.mark.parametrize(
    ("params", "exc", "match"),
    [
        ({"decision": "accepted"}, InvalidInput, "needs item_id"),
        ({"item_id": "ITEM", "decision": "maybe"}, InvalidInput, "decision 'maybe'"),
        ({"item_id": 999, "decision": "accepted"}, NotFound, "inaccuracy 999 not found"),
    ],
)
def test_bad_decisions_are_refused(
    session: Session, services: dict[str, int], params: dict[str, Any], exc: type[Exception], match: str
) -> None:
    report, (item,) = _with_items(session, services, CLAIM)
    params = {k: (item if v == "ITEM" else v) for k, v in params.items()}
    _refused_decision(session, report.id, exc, match, params=params)  # type: ignore[arg-type]


def test_approve_waits_for_both_decisions_on_every_item(session: Session, services: dict[str, int]) -> None:
    report, (first, second) = _with_items(
        session, services, CLAIM, "Table 2 gives 12 beds; there were 14 open on the day"
    )
    _decide(session, report.id, first, NM, "Dr Asha Patel", "accepted")  # type: ignore[arg-type]
    _decide(session, report.id, first, RL, "Mr Tom Hughes", "accepted")  # type: ignore[arg-type]
    _decide(session, report.id, second, NM, "Dr Asha Patel", "rejected")  # type: ignore[arg-type]
    version, counts = report.version, _counts(session)
    with pytest.raises(GuardRefused, match="are_all_inaccuracies_decided"):
        engine.fire(session, "report", report.id, "approve", actor="rl", role=RL, clock=FixedClock(date(2026, 12, 23)))  # type: ignore[arg-type]
    session.rollback()
    assert (report.state, report.version, report.approved_on, _counts(session)) == (
        "inaccuracies_received",
        version,
        None,
        counts,
    )
    _decide(session, report.id, second, RL, "Mr Tom Hughes", "accepted", date(2026, 12, 23))  # type: ignore[arg-type]
    out = _fire(session, report.id, "approve", date(2026, 12, 23), role=RL)  # type: ignore[arg-type]
    assert (out.row.state, out.row.approved_on) == ("approved", date(2026, 12, 23))  # type: ignore[attr-defined]
    assert [i["outcome"] for i in document(session, report)["inaccuracies"]] == ["accepted", "rejected"]


@pytest.mark.parametrize(
    ("manager", "lead", "outcome"),
    [
        ("accepted", "accepted", "accepted"),
        ("accepted", "rejected", "rejected"),
        ("rejected", "accepted", "rejected"),
        ("rejected", "rejected", "rejected"),
    ],
)
def test_amended_only_if_both_accept(
    session: Session, services: dict[str, int], manager: str, lead: str, outcome: str
) -> None:
    report, (item,) = _with_items(session, services, CLAIM)
    _decide(session, report.id, item, RL, "Mr Tom Hughes", lead)  # type: ignore[arg-type]
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None and fresh.outcome is None  # one decision is not enough
    _decide(session, report.id, item, NM, "Dr Asha Patel", manager)  # type: ignore[arg-type]
    assert fresh.outcome == outcome
    assert (fresh.manager_decision, fresh.lead_decision) == (manager, lead)


# --------------------------------------------------------------------------- distribution and publication


def _approved(session: Session, services: dict[str, int]) -> Report:
    report = _in_check(session, services)
    _fire(session, report.id, "approve", date(2027, 1, 8), role=NM)  # type: ignore[arg-type]
    return report


def test_distribute_sends_the_pdf_to_the_service_lead_and_the_sop_list(
    session: Session, services: dict[str, int]
) -> None:
    report = _approved(session, services)
    out = _fire(session, report.id, "distribute", date(2027, 1, 11))  # type: ignore[arg-type]
    assert (out.row.state, out.row.distributed_on) == ("distributed", date(2027, 1, 11))  # type: ignore[attr-defined]
    (msg,) = [m for m in _letters(session, report.id) if m.template == "report_distribution"]  # type: ignore[arg-type]
    scope = recipient_scope(session, report)
    (lead,) = resolve(session, "service-lead", scope)
    assert [(p["role"], p["email"]) for p in msg.to] == [("service-lead", lead.email)]
    assert sorted(p["role"] for p in msg.cc) == sorted(DISTRIBUTION)
    assert {p["email"] for p in msg.cc} == {c.email for r in DISTRIBUTION for c in resolve(session, r, scope)}
    assert msg.status == "queued"
    assert not [m for m in _letters(session, report.id) if m.category == "incident"]  # type: ignore[arg-type]
    (pdf,) = session.exec(select(Attachment).where(Attachment.idempotency_key == msg.idempotency_key)).all()
    assert (pdf.filename, pdf.content_type) == (f"peer-review-report-{report.id}.pdf", "application/pdf")
    assert render_attachment(pdf).startswith(
        b"%PDF"
    )  # rendered as the dispatcher will, from what the transition stored
    text = _pdf_text(render_attachment(pdf))
    assert "DRAFT" not in text and "Approved Fri 08 Jan 2027." in text

    transport = MemoryTransport()
    summary = dispatch(session, transport, FixedClock(date(2027, 1, 11)), Policy())
    assert summary.failed == 0
    (email,) = [m for m in transport.sent if m["X-Peerwatch-Template"] == "report_distribution"]
    assert lead.email in str(email["To"])
    assert all(c.email in str(email["Cc"]) for r in DISTRIBUTION for c in resolve(session, r, scope))
    (part,) = list(email.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("application/pdf", f"peer-review-report-{report.id}.pdf")
    assert part.get_content() == pdf.data
    session.refresh(msg)
    assert msg.status == "sent"


def test_publish_sets_the_publication_date(session: Session, services: dict[str, int]) -> None:
    report = _approved(session, services)
    _fire(session, report.id, "distribute", date(2027, 1, 11))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        engine.fire(
            session, "report", report.id, "publish", actor="o", role=OFFICE, clock=FixedClock(date(2027, 1, 12))
        )  # type: ignore[arg-type]
    session.rollback()
    out = _fire(session, report.id, "publish", date(2027, 1, 13), role=RL)  # type: ignore[arg-type]
    assert (out.row.state, out.row.published_on) == ("published", date(2027, 1, 13))  # type: ignore[attr-defined]
    assert engine.pending_deadlines(session, "report", report.id) == []  # type: ignore[arg-type]
    with pytest.raises(InvalidTrigger, match="allowed: reopen_for_amendment"):
        engine.fire(
            session,
            "report",
            report.id,
            "add_positive",
            actor="o",
            role=OFFICE,
            clock=FixedClock(date(2027, 1, 14)),  # type: ignore[arg-type]
            params={"text": "late"},
        )


# --------------------------------------------------------------------------- the document

IR_TITLE = "No <b>oxygen</b> & suction"
POSITIVE = "Excellent rehabilitation & discharge planning"
STANDARDS = [
    ("T-1.1", "Trauma team leader 24/7", "Met"),
    ("T-1.2", "CT within 60 minutes", "Partially Met"),
    ("T-1.3", "Rehabilitation prescription", "Unmet"),
]


def _documented(session: Session, services: dict[str, int]) -> tuple[Report, dict[str, Any]]:
    _, report = _report_of_visit(
        session,
        services,
        VISIT,
        risks=[{"level": "IR", "title": IR_TITLE, "impact": 4, "likelihood": 4, "standard_ref": "T-1.2"}],
    )
    for ref, descriptor, status in STANDARDS:
        _fire(session, report.id, "add_standard", date(2026, 11, 20), ref=ref, descriptor=descriptor, status=status)  # type: ignore[arg-type]
    _fire(session, report.id, "add_positive", date(2026, 11, 20), text=POSITIVE)  # type: ignore[arg-type]
    return report, document(session, report)


def test_report_pdf_carries_the_findings(session: Session, services: dict[str, int]) -> None:
    _report, doc = _documented(session, services)
    (risk,) = session.exec(select(Risk)).all()
    data = render_report_pdf(doc)
    assert data.startswith(b"%PDF")
    text = _pdf_text(data)
    lines = text.splitlines()
    assert MRH in text and "Midland Royal Hospitals NHS Trust" in text
    assert "Peer review visit on Thu 12 Nov 2026 (in person)." in text
    for ref, descriptor, status in STANDARDS:
        assert any(line.startswith(ref) and descriptor in line and line.rstrip().endswith(status) for line in lines), (
            ref,
            text,
        )
    assert "Met 1, Partially Met 1, Unmet 1; total achievement 50.0%." in text
    assert f"- {POSITIVE}" in text
    assert re.search(rf"IR-{risk.id} Immediate risk {re.escape(IR_TITLE)} T-1\.2 16\b", text), text
    assert "DRAFT" not in text
    assert "DRAFT for factual accuracy check" in _pdf_text(render_report_pdf(doc, draft=True))
    assert render_report_pdf(doc) == data  # same data, same bytes


def test_report_html_carries_the_same_facts_escaped(session: Session, services: dict[str, int]) -> None:
    _, doc = _documented(session, services)
    html = render_report_html(doc)
    assert MRH in html and "Midland Royal Hospitals NHS Trust" in html
    for ref, descriptor, status in STANDARDS:
        assert f"<td>{ref}</td><td>{descriptor}</td><td>{status}</td>" in html
    assert "total achievement 50.0%" in html
    assert "<li>Excellent rehabilitation &amp; discharge planning</li>" in html
    assert "No &lt;b&gt;oxygen&lt;/b&gt; &amp; suction" in html and "<b>oxygen" not in html
    assert "<td>T-1.2</td><td>16</td>" in html
    assert "DRAFT" not in html and "DRAFT for factual accuracy check" in render_report_html(doc, draft=True)


def test_achievement_leaves_out_not_applicable_and_a_standard_is_replaced(
    session: Session, services: dict[str, int]
) -> None:
    report = _drafting(session, services)
    assert document(session, report)["achievement"] is None
    for ref, status in [("1.1", "Met"), ("1.2", "Unmet"), ("1.3", "Not applicable"), ("1.2", "Met")]:
        _fire(session, report.id, "add_standard", date(2026, 11, 20), ref=ref, status=status)  # type: ignore[arg-type]
    doc = document(session, report)
    assert [(c["ref"], c["status"]) for c in doc["compliance"]] == [
        ("1.1", "Met"),
        ("1.3", "Not applicable"),
        ("1.2", "Met"),
    ]
    assert doc["counts"] == {"Met": 2, "Partially Met": 0, "Unmet": 0, "Not applicable": 1}
    assert doc["achievement"] == 100.0
    with pytest.raises(InvalidInput, match="status= one of"):
        _fire(session, report.id, "add_standard", date(2026, 11, 20), ref="1.4", status="Mostly Met")  # type: ignore[arg-type]
    session.rollback()
    assert "Based on the self-assessment received on Thu 12 Nov 2026." in _pdf_text(render_report_pdf(doc))


def test_report_contacts_come_from_the_demo_data(session: Session, services: dict[str, int]) -> None:
    """Guard for the distribution test: every role on the SOP's list is held by someone for this service."""
    report = _drafting(session, services)
    scope = recipient_scope(session, report)
    held = {r: [c.email for c in resolve(session, r, scope)] for r in DISTRIBUTION}
    assert all(len(v) == 1 for v in held.values()), held
