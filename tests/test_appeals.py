"""Appeals against a published report (DOMAIN.md "Appeals", seed 000 s8.1): who may appeal,
the 4-week window, valid grounds, refusals that store only the refused attempt and the
refusal letter, the 8-week result deadline and its chase, the subgroup with no prior
involvement, the final decision (withdraw / regrade / re-issue through the engine, in one
transaction), and the appeal machine table-driven.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, Contact, Deadline, OutboxMessage, Risk
from models.tables import (
    Appeal,
    Attachment,
    Network,
    RefusedAttempt,
)
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused
from tests.factories import person
from tests.support_appeals import (
    CAL,
    DECIDER,
    MRH,
    MRH_TRUST,
    NM,
    RL,
    STATEMENT,
    P,
    World,
    build_world,
    count,
    emails,
    letters_to,
    row_counts,
    submit_appeal,
    visit_with_feedback,
    world,  # noqa: F401 (pytest fixtures)
)

LAST_DAY = date(2027, 3, 2)  # Tue: P + 4 weeks, the last day of the window
RESULT_DUE = date(2027, 3, 30)  # Tue: submitted on P, + 8 weeks
RESULT_REMIND = date(
    2027, 3, 24
)  # Wed: 2 working days before; Mon 29 Mar (Easter Monday), Fri 26 Mar (Good Friday) skipped


def _assert_refused(
    db: Engine,
    session: Session,
    w: World,
    day: date,
    match: str,
    *,
    contact: Contact | None = None,
    grounds: list[dict[str, Any]] | None = None,
) -> str:
    """Submit, expect a refusal naming the problem; only the refused attempt and the refusal letter are stored."""
    contact = contact or w.ceo
    session.commit()
    (appeals, refused, events, messages, deadlines, attachments) = row_counts(session)
    refusal_letters = len(letters_to(session, "report", w.report_id, "appeal_refusal"))
    with pytest.raises(GuardRefused, match=match) as info:
        submit_appeal(db, w, day, contact_id=contact.id, grounds=grounds)
    reason = str(info.value)
    session.expire_all()
    assert count(session, Appeal) == appeals == 0
    assert (count(session, AuditEvent), count(session, Deadline), count(session, Attachment)) == (
        events,
        deadlines,
        attachments,
    )
    assert count(session, OutboxMessage) == messages + 1  # the refusal letter, nothing else
    (attempt,) = session.exec(select(RefusedAttempt).order_by(col(RefusedAttempt.id)).offset(refused)).all()
    assert (attempt.kind, attempt.trigger, attempt.item_id, attempt.reason) == ("appeal", "submit", None, reason)
    assert attempt.data["report_id"] == w.report_id and attempt.data["appellant_contact_id"] == contact.id
    letters = letters_to(session, "report", w.report_id, "appeal_refusal")
    assert len(letters) == refusal_letters + 1
    letter = letters[-1]
    assert emails(letter.to) == [contact.email]
    assert sorted(p["role"] for p in letter.cc) == [NM, RL]
    assert reason.removeprefix("appeal refused: ") in rendered(letter).body_text
    return reason


# --------------------------------------------------------------------------- eligibility


def test_medical_director_may_not_appeal(db: Engine, session: Session, world: World) -> None:
    reason = _assert_refused(db, session, world, P + timedelta(days=3), "Chief Executive", contact=world.md)
    assert f"Chief Executive of {MRH_TRUST}" in reason and world.md.name in reason and "Medical Director" in reason


def test_chief_executive_of_another_trust_may_not_appeal(db: Engine, session: Session, world: World) -> None:
    reason = _assert_refused(db, session, world, P + timedelta(days=3), "Chief Executive", contact=world.other_ceo)
    assert f"Chief Executive of {MRH_TRUST}" in reason and world.other_ceo.name in reason


def test_last_day_of_the_window_is_accepted(db: Engine, session: Session, world: World) -> None:
    assert P + timedelta(days=28) == LAST_DAY and LAST_DAY.strftime("%a") == "Tue"
    row = submit_appeal(db, world, LAST_DAY)
    assert (row.state, row.submitted_on) == ("submitted", LAST_DAY)
    assert count(session, RefusedAttempt) == 0


def test_day_after_the_window_is_refused(db: Engine, session: Session, world: World) -> None:
    reason = _assert_refused(db, session, world, LAST_DAY + timedelta(days=1), "window closed")
    assert "Wed 03 Mar 2027" in reason and "Tue 02 Mar 2027" in reason and "Tue 02 Feb 2027" in reason


def test_appeal_before_publication_is_refused(db: Engine, session: Session, services: dict[str, int]) -> None:
    w = build_world(session, services, publish=False)
    reason = _assert_refused(db, session, w, date(2027, 1, 12), "not published")
    assert "distributed" in reason


def test_a_general_concern_cannot_be_appealed(db: Engine, session: Session, world: World) -> None:
    reason = _assert_refused(
        db, session, world, P + timedelta(days=1), "general concern", grounds=[{"risk_id": world.gc}]
    )
    assert f"GC-{world.gc}" in reason


def test_a_risk_of_another_visit_cannot_be_appealed(
    db: Engine, session: Session, services: dict[str, int], world: World
) -> None:
    other_visit, _ = visit_with_feedback(
        session, services, date(2026, 11, 19), [{"level": "SC", "title": "Another visit's SC"}]
    )
    other = session.exec(select(Risk).where(Risk.visit_id == other_visit)).one()
    assert other.level == "SC" and other.service_id == services[MRH]  # same service, another visit
    reason = _assert_refused(
        db,
        session,
        world,
        P + timedelta(days=1),
        "not a conclusion of report",
        grounds=[{"risk_id": world.sc}, {"risk_id": other.id}],
    )
    assert f"risk {other.id}" in reason


def test_no_grounds_is_refused(db: Engine, session: Session, world: World) -> None:
    _assert_refused(db, session, world, P + timedelta(days=1), "no grounds given", grounds=[])


def test_a_ground_that_is_neither_a_risk_nor_compliance_is_refused(db: Engine, session: Session, world: World) -> None:
    _assert_refused(
        db, session, world, P + timedelta(days=1), "use risk_id=N or compliance", grounds=[{"tone": "unkind"}]
    )


@pytest.mark.parametrize("which", ["ir", "sc", "compliance"])
def test_an_ir_an_sc_or_unsatisfactory_compliance_can_be_appealed(
    db: Engine, session: Session, world: World, which: str
) -> None:
    grounds = [{"compliance": True}] if which == "compliance" else [{"risk_id": getattr(world, which)}]
    row = submit_appeal(db, world, P + timedelta(days=5), grounds=grounds)
    assert row.state == "submitted" and row.grounds == grounds


def test_compliance_cannot_be_appealed_when_every_standard_is_met(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services, standards=(("T-1.1", "Met"), ("T-1.2", "Met"), ("T-1.3", "Not applicable")))
    _assert_refused(
        db, session, w, P + timedelta(days=1), "compliance was not found unsatisfactory", grounds=[{"compliance": True}]
    )


# --------------------------------------------------------------------------- an accepted appeal and its deadline


def test_accepted_appeal_is_acknowledged_with_the_result_due_in_8_weeks(
    db: Engine, session: Session, world: World
) -> None:
    row = submit_appeal(db, world, P)
    assert (row.state, row.version, row.submitted_on, row.statement) == ("submitted", 2, P, STATEMENT)
    (deadline,) = engine.pending_deadlines(session, "appeal", row.id)  # type: ignore[arg-type]
    assert (deadline.name, deadline.due_on, deadline.remind_on) == ("appeal_result", RESULT_DUE, RESULT_REMIND)
    assert deadline.due_on == CAL.add_weeks(P, 8) and deadline.remind_on == CAL.subtract_working_days(RESULT_DUE, 2)
    (ack,) = letters_to(session, "appeal", row.id)  # type: ignore[arg-type]
    assert ack.template == "appeal_acknowledgement"
    assert emails(ack.to) == [world.ceo.email]
    assert sorted(p["role"] for p in ack.cc) == [NM, RL]
    (event,) = engine.history(session, "appeal", row.id)  # type: ignore[arg-type]
    assert (event.trigger, event.from_state, event.to_state, event.actor, event.note) == (
        "submit",
        "new",
        "submitted",
        "Ms Nora Office",
        STATEMENT,
    )
    assert count(session, RefusedAttempt) == 0


def _appeal_actions(db: Engine, day: date) -> list[tuple[str, str]]:
    return [(a["deadline"], a["action"]) for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "appeal"]


def test_result_is_chased_before_on_and_after_the_due_date_each_once(
    db: Engine, session: Session, world: World
) -> None:
    row = submit_appeal(db, world, P)
    timeline = {
        date(2027, 3, 23): [],
        RESULT_REMIND: [("appeal_result", "reminded")],
        date(2027, 3, 25): [],
        date(2027, 3, 29): [],  # Easter Monday
        RESULT_DUE: [("appeal_result", "due_today")],
        date(2027, 3, 31): [("appeal_result", "overdue_notice")],
        date(2027, 4, 1): [],
    }
    for day, expected in timeline.items():
        for n in range(2):  # a second sweep on the same day does nothing more
            assert _appeal_actions(db, day) == (expected if n == 0 else []), (day, n)
    session.expire_all()
    chased = [m for m in letters_to(session, "appeal", row.id) if m.template != "appeal_acknowledgement"]  # type: ignore[arg-type]
    wmtn = session.exec(select(Network).where(Network.code == "WMTN")).one()
    network = {
        p.role: p.email
        for p in session.exec(select(Contact).where(col(Contact.role).in_([NM, RL]), Contact.network_id == wmtn.id))
    }
    assert [(m.template, m.to[0]["email"], m.created_at.date()) for m in chased] == [
        ("appeal_result_due", network[NM], RESULT_REMIND),
        ("appeal_result_due", network[RL], RESULT_REMIND),
        ("appeal_result_due", network[NM], RESULT_DUE),
        ("appeal_result_due", network[RL], RESULT_DUE),
        ("appeal_result_overdue", network[NM], date(2027, 3, 31)),
        ("appeal_result_overdue", network[RL], date(2027, 3, 31)),
    ]
    assert len({m.idempotency_key for m in chased}) == 6
    reminder, due_today = chased[0], chased[2]
    assert (
        "by Tue 30 Mar 2027" in rendered(reminder).subject
        and "today" in rendered(due_today).subject
        and rendered(reminder).subject != rendered(due_today).subject
    )


def test_result_deadline_survives_the_start_of_consideration(db: Engine, session: Session, world: World) -> None:
    row = submit_appeal(db, world, P)
    engine.fire(
        session,
        "appeal",
        row.id,
        "begin_consideration",
        principal=person(DECIDER, RL),
        clock=FixedClock(P + timedelta(days=1)),
    )  # type: ignore[arg-type]
    session.commit()
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "appeal", row.id)] == [
        ("appeal_result", RESULT_DUE)
    ]  # type: ignore[arg-type]
    assert _appeal_actions(db, RESULT_REMIND) == [("appeal_result", "reminded")]
