"""Appeals against a published report (DOMAIN.md "Appeals", seed 000 s8.1): who may appeal,
the 4-week window, valid grounds, refusals that store only the refused attempt and the
refusal letter, the 8-week result deadline and its chase, the subgroup with no prior
involvement, the final decision (withdraw / regrade / re-issue through the engine, in one
transaction), and the appeal machine table-driven."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Contact, Deadline, OutboxMessage, Risk
from models.tables import (
    AccuracyItem,
    Appeal,
    Attachment,
    Network,
    Organisation,
    RefusedAttempt,
    Report,
    Reviewer,
    Visit,
)
from notifications.attachments import render_attachment
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger
from states.machines.appeal import AppealState
from states.machines.spec import CLOCK_TRIGGERS, get_spec
from states.services.appeal import submit

A = AppealState
SPEC = get_spec("appeal")
CAL = calendar_for("ENG")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
MRH_TRUST = "Midland Royal Hospitals NHS Trust"

VISIT = date(2026, 11, 12)  # Thu: the visit
P = date(2027, 2, 2)  # Tue: the report is published
LAST_DAY = date(2027, 3, 2)  # Tue: P + 4 weeks, the last day of the window
RESULT_DUE = date(2027, 3, 30)  # Tue: submitted on P, + 8 weeks
RESULT_REMIND = date(
    2027, 3, 24
)  # Wed: 2 working days before; Mon 29 Mar (Easter Monday), Fri 26 Mar (Good Friday) skipped

# Who did what in the review (each a different name, so involvement can be told apart)
ORGANISER = "Mr Vince Organiser"  # fired the visit's transitions (network office)
FEEDBACK = "Dr Fern Feedback"  # gave high level feedback (raised the risks)
WRITER = "Ms Rita Writer"  # drafted and distributed the report
MANAGER, LEAD = "Dr Asha Patel", "Mr Tom Hughes"  # WMTN's Network Manager and Regional Lead (demo data)
DECIDER = LEAD  # decides the appeal
OUTSIDER = ("Prof Una Outsider", "una.outsider@elsewhere.nhs.example")
STATEMENT = "The panel misread the trauma team rota: a consultant was on site throughout."
CLAIM = "The report says no consultant was present at 09:00; the rota shows one was"


# --------------------------------------------------------------------------- building a published report


@dataclass
class World:
    visit_id: int
    report_id: int
    ir: int
    sc: int
    gc: int
    ceo: Contact
    md: Contact
    other_ceo: Contact


def _visit_fire(
    session: Session,
    visit_id: int,
    trigger: str,
    day: date,
    *,
    actor: str = ORGANISER,
    role: str = OFFICE,
    **params: Any,
) -> None:
    engine.fire(
        session, "visit", visit_id, trigger, actor=actor, role=role, clock=FixedClock(day), params=params or None
    )
    session.commit()


def _report_fire(
    session: Session,
    report_id: int,
    trigger: str,
    day: date,
    *,
    actor: str = WRITER,
    role: str = OFFICE,
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


def _visit_with_feedback(
    session: Session, services: dict[str, int], visit_day: date, risks: list[dict[str, Any]]
) -> tuple[int, int]:
    """A visit driven through the engine from proposal to high level feedback; (visit id, report id)."""
    start = visit_day - timedelta(weeks=5)
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        actor=ORGANISER,
        role=OFFICE,
        clock=FixedClock(start),
    ).row
    session.commit()
    reviewer = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    vid = visit.id
    assert vid is not None
    _visit_fire(session, vid, "schedule", start, date=visit_day.isoformat())
    _visit_fire(session, vid, "add_panel_member", start, reviewer_id=reviewer.id)
    _visit_fire(session, vid, "notify_service", start)
    _visit_fire(session, vid, "record_declaration", start, reviewer_id=reviewer.id)
    _visit_fire(
        session,
        vid,
        "record_preparation",
        start,
        prep_session="declined",
        panel_confirmed="yes",
        evidence_received="yes",
    )
    _visit_fire(session, vid, "confirm_prepared", start)
    _visit_fire(session, vid, "hold", visit_day)
    _visit_fire(session, vid, "give_feedback", visit_day, actor=FEEDBACK, role=NM, risks=risks)
    report = session.exec(select(Report).where(Report.visit_id == vid)).one()
    assert report.id is not None
    return vid, report.id


def _contact(session: Session, role: str, trust: str) -> Contact:
    org = session.exec(select(Organisation).where(Organisation.name == trust)).one()
    return session.exec(select(Contact).where(Contact.role == role, Contact.organisation_id == org.id)).one()


def _world(
    session: Session,
    services: dict[str, int],
    *,
    publish: bool = True,
    standards: tuple[tuple[str, str], ...] = (("T-1.1", "Met"), ("T-1.2", "Unmet")),
) -> World:
    """Visit on Thu 12 Nov 2026 with one IR, one SC and one GC; the report with standards, a factual
    accuracy item decided by the Network Manager and the Regional Lead, approved, distributed and
    (unless ``publish=False``) published on Tue 2 Feb 2027."""
    vid, rid = _visit_with_feedback(
        session,
        services,
        VISIT,
        [
            {"level": "IR", "title": "No trauma team leader at night", "impact": 5, "likelihood": 3},
            {"level": "SC", "title": "CT reporting delays", "impact": 3, "likelihood": 3},
            {"level": "GC", "title": "Audit programme incomplete"},
        ],
    )
    for ref, status in standards:
        _report_fire(session, rid, "add_standard", date(2026, 11, 20), ref=ref, status=status)
    _report_fire(session, rid, "send_for_accuracy_check", date(2026, 12, 18))
    _report_fire(session, rid, "record_inaccuracy", date(2026, 12, 21), text=CLAIM)
    item = session.exec(select(AccuracyItem).where(AccuracyItem.report_id == rid)).one()
    _report_fire(
        session,
        rid,
        "decide_inaccuracy",
        date(2026, 12, 22),
        actor=MANAGER,
        role=NM,
        item_id=item.id,
        decision="accepted",
    )
    _report_fire(
        session, rid, "decide_inaccuracy", date(2026, 12, 22), actor=LEAD, role=RL, item_id=item.id, decision="rejected"
    )
    _report_fire(session, rid, "approve", date(2027, 1, 8), actor=MANAGER, role=NM)
    _report_fire(session, rid, "distribute", date(2027, 1, 11))
    if publish:
        _report_fire(session, rid, "publish", P, actor=MANAGER, role=NM)
    risks = {r.level: r.id for r in session.exec(select(Risk).where(Risk.visit_id == vid))}
    return World(
        vid,
        rid,
        risks["IR"],
        risks["SC"],
        risks["GC"],
        _contact(session, "chief-executive", MRH_TRUST),
        _contact(session, "medical-director", MRH_TRUST),
        _contact(session, "chief-executive", "Severnside NHS Foundation Trust"),
    )


@pytest.fixture
def world(session: Session, services: dict[str, int]) -> World:
    return _world(session, services)


def _submit(
    db: Engine, w: World, day: date, *, contact_id: int | None = None, grounds: list[dict[str, Any]] | None = None
) -> Appeal:
    return submit(
        db,
        report_id=w.report_id,
        appellant_contact_id=contact_id or w.ceo.id,
        statement=STATEMENT,  # type: ignore[arg-type]
        grounds=[{"risk_id": w.sc}] if grounds is None else grounds,
        actor="Ms Nora Office",
        role=OFFICE,
        clock=FixedClock(day),
    )


def _count(session: Session, model: Any) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(_count(session, m) for m in (Appeal, RefusedAttempt, AuditEvent, OutboxMessage, Deadline, Attachment))


def _letters(session: Session, kind: str, item_id: int, template: str | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).where(OutboxMessage.kind == kind, OutboxMessage.item_id == item_id)
    if template:
        q = q.where(OutboxMessage.template == template)
    return list(session.exec(q.order_by(col(OutboxMessage.id))))


def _emails(people: list[dict[str, str]]) -> list[str]:
    return [p["email"] for p in people]


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
    (appeals, refused, events, messages, deadlines, attachments) = _counts(session)
    refusal_letters = len(_letters(session, "report", w.report_id, "appeal_refusal"))
    with pytest.raises(GuardRefused, match=match) as info:
        _submit(db, w, day, contact_id=contact.id, grounds=grounds)
    reason = str(info.value)
    session.expire_all()
    assert _count(session, Appeal) == appeals == 0
    assert (_count(session, AuditEvent), _count(session, Deadline), _count(session, Attachment)) == (
        events,
        deadlines,
        attachments,
    )
    assert _count(session, OutboxMessage) == messages + 1  # the refusal letter, nothing else
    (attempt,) = session.exec(select(RefusedAttempt).order_by(col(RefusedAttempt.id)).offset(refused)).all()
    assert (attempt.kind, attempt.trigger, attempt.item_id, attempt.reason) == ("appeal", "submit", None, reason)
    assert attempt.data["report_id"] == w.report_id and attempt.data["appellant_contact_id"] == contact.id
    letters = _letters(session, "report", w.report_id, "appeal_refusal")
    assert len(letters) == refusal_letters + 1
    letter = letters[-1]
    assert _emails(letter.to) == [contact.email]
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
    row = _submit(db, world, LAST_DAY)
    assert (row.state, row.submitted_on) == ("submitted", LAST_DAY)
    assert _count(session, RefusedAttempt) == 0


def test_day_after_the_window_is_refused(db: Engine, session: Session, world: World) -> None:
    reason = _assert_refused(db, session, world, LAST_DAY + timedelta(days=1), "window closed")
    assert "Wed 03 Mar 2027" in reason and "Tue 02 Mar 2027" in reason and "Tue 02 Feb 2027" in reason


def test_appeal_before_publication_is_refused(db: Engine, session: Session, services: dict[str, int]) -> None:
    w = _world(session, services, publish=False)
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
    other_visit, _ = _visit_with_feedback(
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
    row = _submit(db, world, P + timedelta(days=5), grounds=grounds)
    assert row.state == "submitted" and row.grounds == grounds


def test_compliance_cannot_be_appealed_when_every_standard_is_met(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = _world(session, services, standards=(("T-1.1", "Met"), ("T-1.2", "Met"), ("T-1.3", "Not applicable")))
    _assert_refused(
        db, session, w, P + timedelta(days=1), "compliance was not found unsatisfactory", grounds=[{"compliance": True}]
    )


# --------------------------------------------------------------------------- an accepted appeal and its deadline


def test_accepted_appeal_is_acknowledged_with_the_result_due_in_8_weeks(
    db: Engine, session: Session, world: World
) -> None:
    row = _submit(db, world, P)
    assert (row.state, row.version, row.submitted_on, row.statement) == ("submitted", 2, P, STATEMENT)
    (deadline,) = engine.pending_deadlines(session, "appeal", row.id)  # type: ignore[arg-type]
    assert (deadline.name, deadline.due_on, deadline.remind_on) == ("appeal_result", RESULT_DUE, RESULT_REMIND)
    assert deadline.due_on == CAL.add_weeks(P, 8) and deadline.remind_on == CAL.subtract_working_days(RESULT_DUE, 2)
    (ack,) = _letters(session, "appeal", row.id)  # type: ignore[arg-type]
    assert ack.template == "appeal_acknowledgement"
    assert _emails(ack.to) == [world.ceo.email]
    assert sorted(p["role"] for p in ack.cc) == [NM, RL]
    (event,) = engine.history(session, "appeal", row.id)  # type: ignore[arg-type]
    assert (event.trigger, event.from_state, event.to_state, event.actor, event.note) == (
        "submit",
        "new",
        "submitted",
        "Ms Nora Office",
        STATEMENT,
    )
    assert _count(session, RefusedAttempt) == 0


def _appeal_actions(db: Engine, day: date) -> list[tuple[str, str]]:
    return [(a["deadline"], a["action"]) for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "appeal"]


def test_result_is_chased_before_on_and_after_the_due_date_each_once(
    db: Engine, session: Session, world: World
) -> None:
    row = _submit(db, world, P)
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
    chased = [m for m in _letters(session, "appeal", row.id) if m.template != "appeal_acknowledgement"]  # type: ignore[arg-type]
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
    row = _submit(db, world, P)
    engine.fire(
        session,
        "appeal",
        row.id,
        "begin_consideration",
        actor=DECIDER,
        role=RL,
        clock=FixedClock(P + timedelta(days=1)),
    )  # type: ignore[arg-type]
    session.commit()
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "appeal", row.id)] == [
        ("appeal_result", RESULT_DUE)
    ]  # type: ignore[arg-type]
    assert _appeal_actions(db, RESULT_REMIND) == [("appeal_result", "reminded")]


# --------------------------------------------------------------------------- the subgroup


def _considering(db: Engine, session: Session, w: World, day: date = P + timedelta(days=7)) -> Appeal:
    row = _submit(db, w, day)
    engine.fire(
        session,
        "appeal",
        row.id,
        "begin_consideration",
        actor=DECIDER,
        role=RL,
        clock=FixedClock(day + timedelta(days=1)),
    )  # type: ignore[arg-type]
    session.commit()
    fresh = session.get(Appeal, row.id)
    assert fresh is not None and fresh.state == "initial_consideration"
    return fresh


MEMBER_DAY = P + timedelta(days=10)


def _add_member(session: Session, appeal_id: int, name: str, email: str) -> engine.Outcome:
    out = engine.fire(
        session,
        "appeal",
        appeal_id,
        "add_subgroup_member",
        actor=MANAGER,
        role=NM,
        clock=FixedClock(MEMBER_DAY),
        params={"name": name, "email": email},
    )
    session.commit()
    return out


def _refused_member(session: Session, appeal_id: int, name: str, email: str, why: str) -> None:
    counts = _counts(session)
    with pytest.raises(GuardRefused, match="prior involvement") as info:
        engine.fire(
            session,
            "appeal",
            appeal_id,
            "add_subgroup_member",
            actor=MANAGER,
            role=NM,
            clock=FixedClock(MEMBER_DAY),
            params={"name": name, "email": email},
        )
    session.rollback()
    assert name in str(info.value) and why in str(info.value)
    row = session.get(Appeal, appeal_id)
    assert row is not None and (row.subgroup, row.state, row.version) == ([], "initial_consideration", 3)
    assert _counts(session) == counts


def test_subgroup_refuses_anyone_involved_in_the_review(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    holt = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    # a panel member, by name (any case) and by email (any case)
    _refused_member(session, row.id, "MS CARYS HOLT", "c.holt@private.example", "sat on the review panel")  # type: ignore[arg-type]
    _refused_member(session, row.id, "C. Holt", holt.email.upper(), "sat on the review panel")  # type: ignore[arg-type]
    # whoever fired a transition on the visit or on the report
    _refused_member(session, row.id, ORGANISER, "vince@private.example", "acted on the visit")  # type: ignore[arg-type]
    _refused_member(session, row.id, FEEDBACK, "fern@private.example", "acted on the")  # type: ignore[arg-type]
    _refused_member(session, row.id, WRITER, "rita@private.example", "acted on the report")  # type: ignore[arg-type]
    # a decider of a factual accuracy item
    _refused_member(session, row.id, LEAD, "tom@private.example", "decide_inaccuracy")  # type: ignore[arg-type]


def test_subgroup_refuses_a_recorded_factual_accuracy_decider(db: Engine, session: Session, world: World) -> None:
    """Setup shortcut: an accuracy item whose deciders fired nothing themselves (e.g. recorded on their behalf)."""
    row = _considering(db, session, world)
    session.add(
        AccuracyItem(
            report_id=world.report_id,
            text=CLAIM,
            manager_decision="accepted",
            manager_actor="Dr Quiet Decider",
            lead_decision="accepted",
            lead_actor="Ms Silent Lead",
        )
    )
    session.commit()
    _refused_member(session, row.id, "dr quiet decider", "quiet@private.example", "decided factual accuracy items")  # type: ignore[arg-type]
    _refused_member(session, row.id, "Ms Silent Lead", "silent@private.example", "decided factual accuracy items")  # type: ignore[arg-type]


def test_an_uninvolved_person_is_invited_and_the_subgroup_convened(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    with pytest.raises(GuardRefused, match="has_subgroup"):
        engine.fire(session, "appeal", row.id, "convene_subgroup", actor=MANAGER, role=NM, clock=FixedClock(MEMBER_DAY))  # type: ignore[arg-type]
    session.rollback()
    out = _add_member(session, row.id, *OUTSIDER)  # type: ignore[arg-type]
    assert (out.row.state, out.row.subgroup) == ("initial_consideration", [{"name": OUTSIDER[0], "email": OUTSIDER[1]}])  # type: ignore[attr-defined]
    (invite,) = _letters(session, "appeal", row.id, "subgroup_invitation")  # type: ignore[arg-type]
    assert _emails(invite.to) == [OUTSIDER[1]] and sorted(p["role"] for p in invite.cc) == [NM, RL]
    assert STATEMENT in rendered(invite).body_text and MRH_TRUST in rendered(invite).body_text
    with pytest.raises(GuardRefused, match="already on the subgroup"):
        engine.fire(
            session,
            "appeal",
            row.id,
            "add_subgroup_member",
            actor=MANAGER,
            role=NM,
            clock=FixedClock(MEMBER_DAY),  # type: ignore[arg-type]
            params={"name": "Una O.", "email": OUTSIDER[1].upper()},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="needs name"):
        engine.fire(
            session,
            "appeal",
            row.id,
            "add_subgroup_member",
            actor=MANAGER,
            role=NM,
            clock=FixedClock(MEMBER_DAY),  # type: ignore[arg-type]
            params={"name": "No Email", "email": "nobody"},
        )
    session.rollback()
    out = engine.fire(
        session, "appeal", row.id, "convene_subgroup", actor=MANAGER, role=NM, clock=FixedClock(MEMBER_DAY)
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "subgroup_convened"


# --------------------------------------------------------------------------- the decision

DECISION_DAY = date(2027, 3, 15)
DECISION = "The rota evidence shows consultant presence; the serious concern is not supported."


def _decide(
    session: Session, appeal_id: int, outcome: str, *, note: str | None = DECISION, **params: Any
) -> engine.Outcome:
    """Four eyes: the Network Manager proposes, the decider confirms (same outcome and changes)."""
    proposed = engine.fire(
        session,
        "appeal",
        appeal_id,
        "decide",
        actor="Second Pair",
        role=NM,
        clock=FixedClock(DECISION_DAY),
        note=note,
        params={"outcome": outcome, **params},
    )
    assert proposed.proposed and proposed.row.state != "decided"
    return engine.fire(
        session,
        "appeal",
        appeal_id,
        "decide",
        actor=DECIDER,
        role=RL,
        clock=FixedClock(DECISION_DAY),
        note=note,
        params={"outcome": outcome, **params},
    )


def _snapshot(session: Session, w: World, appeal_id: int) -> tuple[Any, ...]:
    session.expire_all()
    appeal, report = session.get(Appeal, appeal_id), session.get(Report, w.report_id)
    risks = tuple((r.state, r.level, r.version) for r in (session.get(Risk, i) for i in (w.ir, w.sc, w.gc)) if r)
    assert appeal is not None and report is not None
    return (
        (appeal.state, appeal.version, appeal.outcome, appeal.decision),
        (report.state, report.issue, report.version),
        risks,
        _counts(session),
    )


@pytest.mark.parametrize(
    ("params", "note", "match"),
    [
        ({"outcome": "granted"}, DECISION, "outcome= one of upheld, partly_upheld, not_upheld"),
        ({"outcome": ""}, DECISION, "outcome= one of"),
        ({"outcome": "not_upheld", "withdraw": "SC"}, DECISION, "not upheld changes nothing"),
        ({"outcome": "not_upheld", "regrade": {"IR": "SC"}}, DECISION, "not upheld changes nothing"),
        ({"outcome": "upheld", "withdraw": "OTHER"}, DECISION, "is not a conclusion of report"),
        ({"outcome": "partly_upheld", "regrade": {"IR": "GC"}}, DECISION, "regrade needs level=IR or SC"),
        ({"outcome": "upheld", "withdraw": "SC"}, "  ", "needs a reason"),
    ],
    ids=[
        "unknown-outcome",
        "no-outcome",
        "not-upheld-withdraw",
        "not-upheld-regrade",
        "other-risk",
        "regrade-to-gc",
        "no-note",
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(
    db: Engine, session: Session, world: World, raise_risk: Any, params: dict[str, Any], note: str, match: str
) -> None:
    row = _considering(db, session, world)
    ids = {"SC": world.sc, "IR": world.ir, "OTHER": raise_risk("SC").id}
    params = {
        k: ([ids[v]] if k == "withdraw" else {ids[a]: b for a, b in v.items()} if k == "regrade" else v)
        for k, v in params.items()
    }
    before = _snapshot(session, world, row.id)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=match):
        _decide(session, row.id, note=note, **params)  # type: ignore[arg-type]
    session.rollback()
    assert _snapshot(session, world, row.id) == before  # type: ignore[arg-type]


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_upheld_withdraws_the_sc_and_reissues_the_report(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    out = _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    session.commit()
    assert (out.row.state, out.row.outcome, out.row.decision, out.row.decided_on) == (
        "decided",
        "upheld",
        DECISION,
        DECISION_DAY,
    )  # type: ignore[attr-defined]
    sc, ir, gc = session.get(Risk, world.sc), session.get(Risk, world.ir), session.get(Risk, world.gc)
    assert sc is not None and (sc.state, sc.closed_reason) == ("withdrawn", f"appeal {row.id} upheld: {DECISION}")
    assert (
        ir is not None and gc is not None and (ir.state, ir.level, gc.state) == ("identified", "IR", "work_programme")
    )
    withdraw = engine.history(session, "risk", world.sc)[-1]
    assert (withdraw.trigger, withdraw.from_state, withdraw.to_state) == ("withdraw", "identified", "withdrawn")
    assert f"appeal {row.id}" in (withdraw.note or "") and withdraw.data["params"]["appeal_id"] == row.id
    assert _letters(session, "risk", world.sc, "withdrawal")

    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue, report.reissued_on, report.published_on) == (
        "published",
        2,
        DECISION_DAY,
        P,
    )
    events = [
        (e.trigger, e.from_state, e.to_state, e.actor, e.data.get("params", {}).get("appeal_id"))
        for e in engine.history(session, "report", world.report_id)
    ]
    assert events[-2:] == [
        ("reopen_for_amendment", "published", "amending", DECIDER, row.id),
        ("reissue", "amending", "published", DECIDER, row.id),
    ]
    (reissued,) = _letters(session, "report", world.report_id, "report_reissued")
    assert [p["role"] for p in reissued.to] == ["service-lead"] and "issue 2" in rendered(reissued).subject
    (pdf,) = session.exec(select(Attachment).where(Attachment.idempotency_key == reissued.idempotency_key)).all()
    assert pdf.content_type == "application/pdf" and render_attachment(pdf).startswith(b"%PDF")
    text = _pdf_text(render_attachment(pdf))
    assert "issue 2" in text and "Re-issued Mon 15 Mar 2027 after an appeal" in text and "(withdrawn)" in text
    # everything happened at the one instant of the decision
    assert {e.at for e in (withdraw, *engine.history(session, "report", world.report_id)[-2:])} == {
        FixedClock(DECISION_DAY).now()
    }


def test_the_decision_and_its_effects_are_one_transaction(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    before = _snapshot(session, world, row.id)  # type: ignore[arg-type]
    _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    sc, report = session.get(Risk, world.sc), session.get(Report, world.report_id)
    assert (
        sc is not None and report is not None and (sc.state, report.issue) == ("withdrawn", 2)
    )  # in flight, not committed
    with Session(db) as other:  # nobody else sees any of it yet
        assert other.get(Risk, world.sc).state == "identified"  # type: ignore[union-attr]
        assert other.get(Report, world.report_id).issue == 1  # type: ignore[union-attr]
        assert other.get(Appeal, row.id).state == "initial_consideration"  # type: ignore[union-attr]
    session.rollback()
    assert _snapshot(session, world, row.id) == before  # type: ignore[arg-type]


def test_partly_upheld_regrades_the_ir_to_an_sc(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    _decide(session, row.id, "partly_upheld", regrade={world.ir: "SC"})  # type: ignore[arg-type]
    session.commit()
    ir, sc = session.get(Risk, world.ir), session.get(Risk, world.sc)
    assert ir is not None and sc is not None
    assert (ir.level, ir.state, sc.level, sc.state) == ("SC", "identified", "SC", "identified")
    regrade = engine.history(session, "risk", world.ir)[-1]
    assert (regrade.trigger, regrade.actor, regrade.data["params"]) == (
        "regrade",
        DECIDER,
        {"appeal_id": row.id, "level": "SC"},
    )
    assert f"appeal {row.id} partly_upheld" in (regrade.note or "")
    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue) == ("published", 2)


def test_not_upheld_changes_nothing_in_the_report(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    _decide(session, row.id, "not_upheld")  # type: ignore[arg-type]
    session.commit()
    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue, report.reissued_on) == ("published", 1, None)
    assert [session.get(Risk, i).state for i in (world.ir, world.sc)] == ["identified", "identified"]  # type: ignore[union-attr]
    assert _letters(session, "report", world.report_id, "report_reissued") == []


def test_the_decision_is_final_and_communicated_to_the_chief_executive(
    db: Engine, session: Session, world: World
) -> None:
    row = _considering(db, session, world)
    _decide(session, row.id, "not_upheld")  # type: ignore[arg-type]
    session.commit()
    assert SPEC.allowed_from("decided") == ["communicate", *CLOCK_TRIGGERS]
    back = [
        t
        for t in SPEC.all_transitions
        if "decided" in ([t["source"]] if isinstance(t["source"], str) else t["source"])
        and t["dest"] not in (None, "communicated")
    ]
    assert back == []
    assert engine.pending_deadlines(session, "appeal", row.id) == []  # type: ignore[arg-type]
    for trigger in ("begin_consideration", "add_subgroup_member", "convene_subgroup", "decide", "submit"):
        with pytest.raises(InvalidTrigger, match="'decided'"):
            engine.fire(
                session,
                "appeal",
                row.id,
                trigger,
                actor=DECIDER,
                role=RL,
                clock=FixedClock(DECISION_DAY),
                note="again",  # type: ignore[arg-type]
                params={"outcome": "upheld", "name": OUTSIDER[0], "email": OUTSIDER[1]},
            )
        session.rollback()
    out = engine.fire(
        session, "appeal", row.id, "communicate", actor="Ms Nora Office", role=OFFICE, clock=FixedClock(DECISION_DAY)
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "communicated" and SPEC.allowed_from("communicated") == []
    (letter,) = _letters(session, "appeal", row.id, "appeal_decision")  # type: ignore[arg-type]
    assert _emails(letter.to) == [world.ceo.email]
    assert (
        "NOT UPHELD" in rendered(letter).body_text
        and DECISION in rendered(letter).body_text
        and "final" in rendered(letter).body_text
    )


def test_risk_history_shows_the_withdrawal_by_the_decider(db: Engine, session: Session, world: World) -> None:
    row = _considering(db, session, world)
    _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    session.commit()
    assert [
        (e.trigger, e.actor, e.role, e.from_state, e.to_state) for e in engine.history(session, "risk", world.sc)
    ] == [
        ("raise", FEEDBACK, NM, "new", "identified"),
        ("withdraw", DECIDER, RL, "identified", "withdrawn"),
    ]


# --------------------------------------------------------------------------- the machine, table-driven

S0 = date(2027, 2, 16)  # the shortcut appeal's submission date (within the window of P)
DAY = date(2027, 2, 19)  # every table row fires on this day
OPEN_STATES = ("submitted", "initial_consideration", "subgroup_convened", "decided")

# (source state, trigger, role, setup, expected destination, appeal letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (A.NEW, "submit", OFFICE, {}, A.SUBMITTED, {"appeal_acknowledgement"}),
    (A.NEW, "submit", NM, {}, A.SUBMITTED, {"appeal_acknowledgement"}),
    (A.SUBMITTED, "begin_consideration", NM, {}, A.INITIAL_CONSIDERATION, set()),
    (A.SUBMITTED, "begin_consideration", RL, {}, A.INITIAL_CONSIDERATION, set()),
    (
        A.INITIAL_CONSIDERATION,
        "add_subgroup_member",
        RL,
        {"params": {"name": OUTSIDER[0], "email": OUTSIDER[1]}},
        A.INITIAL_CONSIDERATION,
        {"subgroup_invitation"},
    ),
    (
        A.SUBGROUP_CONVENED,
        "add_subgroup_member",
        NM,
        {"subgroup": True, "params": {"name": "Dr Second", "email": "second@else.example"}},
        A.SUBGROUP_CONVENED,
        {"subgroup_invitation"},
    ),
    (A.INITIAL_CONSIDERATION, "convene_subgroup", NM, {"subgroup": True}, A.SUBGROUP_CONVENED, set()),
    (A.INITIAL_CONSIDERATION, "decide", NM, {"note": DECISION, "params": {"outcome": "not_upheld"}}, A.DECIDED, set()),
    (
        A.SUBGROUP_CONVENED,
        "decide",
        RL,
        {"subgroup": True, "note": DECISION, "params": {"outcome": "upheld"}},
        A.DECIDED,
        set(),
    ),
    (A.DECIDED, "communicate", OFFICE, {}, A.COMMUNICATED, {"appeal_decision"}),
    (A.DECIDED, "communicate", RL, {}, A.COMMUNICATED, {"appeal_decision"}),
    *[(s, "pause_clock", NM, {"deadline": "open", "note": "awaiting Trust evidence"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "resume_clock", OPERATOR, {"deadline": "paused", "note": "evidence received"}, s, set())
        for s in OPEN_STATES
    ],
    *[
        (
            s,
            "extend_deadline",
            RL,
            {"deadline": "open", "note": "subgroup availability", "params": {"days": 3}},
            s,
            set(),
        )
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Appeal:
    """Test setup shortcut: a published report (one Unmet standard) and an appeal by its Trust's
    Chief Executive placed in ``state``, with what the setup asks for."""
    setup = setup or {}
    published = FixedClock(P).now()
    report = Report(
        service_id=services[MRH],
        basis_date=VISIT,
        state="published",
        published_on=P,
        approved_on=P,
        compliance=[{"ref": "T-1.2", "descriptor": "", "status": "Unmet", "comment": ""}],
        created_at=published,
        updated_at=published,
    )
    session.add(report)
    session.flush()
    at = FixedClock(S0).now()
    appeal = Appeal(
        report_id=report.id,
        service_id=services[MRH],
        appellant_contact_id=_contact(session, "chief-executive", MRH_TRUST).id,  # type: ignore[arg-type]
        submitted_on=S0,
        statement=STATEMENT,
        grounds=[{"compliance": True}],
        state=str(state),
        created_at=at,
        updated_at=at,
        subgroup=[{"name": OUTSIDER[0], "email": OUTSIDER[1]}] if setup.get("subgroup") else [],
    )
    session.add(appeal)
    session.flush()
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="appeal",
                item_id=appeal.id,
                name="appeal_result",
                due_on=CAL.add_weeks(S0, 8),  # type: ignore[arg-type]
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return appeal


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
    appeal = _put_in(session, services, source, setup)
    if trigger == "decide":  # four eyes: someone else proposes first
        first = engine.fire(
            session,
            "appeal",
            appeal.id,
            trigger,
            actor="proposer",
            role=NM,
            clock=FixedClock(DAY),  # type: ignore[arg-type]
            note=setup.get("note"),
            params=setup.get("params"),
        )
        assert first.proposed and first.event.trigger == "propose:decide" and first.row.state == source
    version = appeal.version
    before = {m.id for m in _letters(session, "appeal", appeal.id)}  # type: ignore[arg-type]
    out = engine.fire(
        session,
        "appeal",
        appeal.id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(DAY),  # type: ignore[arg-type]
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor, out.event.role) == (
        source,
        dest,
        trigger,
        "tester",
        role,
    )
    assert {m.template for m in _letters(session, "appeal", appeal.id) if m.id not in before} == letters  # type: ignore[arg-type]


def test_clock_triggers_move_the_result_deadline(session: Session, services: dict[str, int]) -> None:
    appeal = _put_in(session, services, "subgroup_convened", {"deadline": "open", "subgroup": True})
    due = CAL.add_weeks(S0, 8)  # Tue 13 Apr 2027
    engine.fire(
        session,
        "appeal",
        appeal.id,
        "extend_deadline",
        actor="rl",
        role=RL,
        clock=FixedClock(DAY),
        note="subgroup availability",  # type: ignore[arg-type]
        params={"days": 3},
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "appeal", appeal.id)  # type: ignore[arg-type]
    assert (d.name, due, d.due_on) == ("appeal_result", date(2027, 4, 13), date(2027, 4, 16))


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in A for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in A for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("new") == ["submit"] and SPEC.allowed_from("communicated") == []
    assert len(REFUSED) == len(A) * len(SPEC.triggers()) - len(ALLOWED) == 34


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    appeal = _put_in(session, services, state, {"subgroup": True, "deadline": "open"})
    version, counts = appeal.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "appeal",
            appeal.id,
            trigger,
            actor="tester",
            role=NM,
            clock=FixedClock(DAY),
            note="n",  # type: ignore[arg-type]
            params={"outcome": "upheld", "name": "X Y", "email": "x@y.example", "days": 1},
        )
    session.rollback()
    fresh = session.get(Appeal, appeal.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


# --------------------------------------------------------------------------- the command line

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))


def test_cli_appeal_submit_refused_records_the_attempt(
    db_url: str, db: Engine, session: Session, world: World, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL")}
    env["PEERWATCH_DATABASE_URL"] = db_url
    proc = subprocess.run(
        [
            PEERWATCH,
            "--as-of",
            (P + timedelta(days=3)).isoformat(),
            "appeal",
            "submit",
            "--report",
            str(world.report_id),
            "--appellant",
            str(world.md.id),
            "--statement",
            STATEMENT,
            "--grounds",
            f"risk:{world.sc}",
            "--actor",
            "Ms Nora Office",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: appeal refused: "), lines
    assert f"Chief Executive of {MRH_TRUST}" in lines[0]
    with Session(db) as s:
        assert _count(s, Appeal) == 0
        (attempt,) = s.exec(select(RefusedAttempt)).all()
        assert (attempt.kind, attempt.trigger, attempt.actor, attempt.data["grounds"]) == (
            "appeal",
            "submit",
            "Ms Nora Office",
            [{"risk_id": world.sc}],
        )
        (letter,) = _letters(s, "report", world.report_id, "appeal_refusal")
        assert _emails(letter.to) == [world.md.email]
