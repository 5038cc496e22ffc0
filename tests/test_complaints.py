"""Complaints about the process or conduct of a review (DOMAIN.md "Complaints", seed 000 s8.2):
routing by category, the acknowledgement and resolution deadlines (local policy, working days,
configurable), the chase, complaints about a person closed as not acceptable, the outcome
letter, the complaint machine table-driven, and `peerwatch complaint receive` refusing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Complaint, Contact
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, PermissionDenied
from tests.factories import person
from tests.support_complaints import (
    COMPLAINANT,
    MRH,
    NM,
    NOT_ACCEPTABLE,
    OFFICE,
    OUTCOME,
    RECEIVED,
    RL,
    SPEC,
    SUMMARY,
    letters_to,
    network,
    row_counts,
)

CAL = calendar_for("ENG")
# 5 working days: Thu 24 Dec (1); Fri 25 Dec Christmas, Mon 28 Dec Boxing Day substitute; Tue 29 (2),
# Wed 30 (3), Thu 31 Dec (4); Fri 1 Jan New Year's Day; Mon 4 Jan 2027 (5)
ACK_DUE = date(2027, 1, 4)
ACKNOWLEDGED = date(2027, 1, 4)
# 20 working days after Mon 4 Jan 2027: 5-8 Jan (4), 11-15 (9), 18-22 (14), 25-29 (19), Mon 1 Feb (20)
RESOLUTION_DUE = date(2027, 2, 1)
RESOLUTION_REMIND = date(2027, 1, 28)  # Thu: 2 working days before


def _holder(session: Session, role: str) -> Contact:
    """Who holds a network role in WMTN (the demo data has exactly one each)."""
    (person,) = session.exec(
        select(Contact).where(Contact.role == role, Contact.network_id == network(session).id)
    ).all()
    return person


def _receive(
    session: Session,
    services: dict[str, int],
    *,
    category: str = "arrangements",
    received: date = RECEIVED,
    about_person: bool = False,
    day: date | None = None,
) -> Complaint:
    row = Complaint(
        network_id=network(session).id,
        service_id=services[MRH],
        category=category,
        owner_role="",  # type: ignore[arg-type]
        complainant_name=COMPLAINANT[0],
        complainant_email=COMPLAINANT[1],
        summary=SUMMARY,
        received_on=received,
        about_person=about_person,
        state="new",
    )
    out = engine.create(
        session,
        "complaint",
        row,
        "receive",
        principal=person("Ms Nora Office", OFFICE),
        clock=FixedClock(day or received),
        note=SUMMARY,
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def _fire(
    session: Session,
    complaint_id: int,
    trigger: str,
    day: date,
    *,
    role: str = NM,
    note: str | None = None,
    **params: Any,
) -> engine.Outcome:
    out = engine.fire(
        session,
        "complaint",
        complaint_id,
        trigger,
        principal=person("Dr Asha Patel", role),
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def _refused(
    session: Session,
    complaint_id: int,
    trigger: str,
    exc: type[Exception],
    match: str,
    *,
    role: str = NM,
    note: str | None = None,
    **params: Any,
) -> None:
    """The trigger is refused with ``exc`` naming the problem; nothing changes."""
    row = session.get(Complaint, complaint_id)
    assert row is not None
    before, counts = (row.state, row.version, row.about_person, row.outcome), row_counts(session)
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "complaint",
            complaint_id,
            trigger,
            principal=person("Dr Asha Patel", role),
            clock=FixedClock(ACKNOWLEDGED),
            note=note,
            params=params or None,
        )
    session.rollback()
    row = session.get(Complaint, complaint_id)
    assert row is not None and (row.state, row.version, row.about_person, row.outcome) == before
    assert row_counts(session) == counts


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("category", "owner"),
    [
        ("arrangements", OFFICE),
        ("conduct", NM),
        ("report_drafting", NM),
        ("factual_accuracy", NM),
    ],
)
def test_complaints_are_routed_by_category(
    session: Session, services: dict[str, int], category: str, owner: str
) -> None:
    row = _receive(session, services, category=category)
    assert (row.state, row.owner_role, row.version) == ("received", owner, 2)
    (event,) = engine.history(session, "complaint", row.id)  # type: ignore[arg-type]
    assert (event.trigger, event.from_state, event.to_state, event.note) == ("receive", "new", "received", SUMMARY)
    # the acknowledgement goes to the complainant, copied to whoever holds the owner's role
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    (ack,) = letters_to(session, row.id, "complaint_acknowledgement")  # type: ignore[arg-type]
    assert [p["email"] for p in ack.to] == [COMPLAINANT[1]]
    assert [(p["role"], p["email"]) for p in ack.cc] == [(owner, _holder(session, owner).email)]
    assert ("the network office" if owner == OFFICE else "the Network Manager") in rendered(ack).body_text


@pytest.mark.parametrize(
    ("category", "email", "match"),
    [
        ("gossip", COMPLAINANT[1], "category 'gossip'"),
        ("Conduct", COMPLAINANT[1], "category 'Conduct'"),
        ("conduct", "no-at-sign", "not a valid email address .An email address must have an @-sign"),
    ],
)
def test_bad_complaints_are_refused_and_nothing_is_stored(
    session: Session, services: dict[str, int], category: str, email: str, match: str
) -> None:
    counts = row_counts(session)
    row = Complaint(
        network_id=network(session).id,
        service_id=None,
        category=category,
        owner_role="",
        complainant_name="A",  # type: ignore[arg-type]
        complainant_email=email,
        summary=SUMMARY,
        received_on=RECEIVED,
        state="new",
    )
    with pytest.raises(InvalidInput, match=match):
        engine.create(
            session,
            "complaint",
            row,
            "receive",
            principal=person("Ms Nora Office", OFFICE),
            clock=FixedClock(RECEIVED),
            note=SUMMARY,
        )
    session.rollback()
    assert row_counts(session) == counts
    assert session.exec(select(Complaint)).all() == []


# --------------------------------------------------------------------------- deadlines and the chase


def test_acknowledgement_due_five_working_days_after_receipt_across_christmas(
    session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services)
    (d,) = engine.pending_deadlines(session, "complaint", row.id)  # type: ignore[arg-type]
    assert (d.name, d.due_on, d.remind_on, d.nation) == ("acknowledgement", ACK_DUE, None, "ENG")
    assert CAL.add_working_days(RECEIVED, 5) == ACK_DUE
    assert (CAL.holiday_name(date(2026, 12, 28)) or "").startswith("Boxing Day")


def test_acknowledgement_is_counted_from_the_date_received_not_recorded(
    session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services, received=date(2026, 12, 18), day=date(2026, 12, 21))  # Fri, recorded Mon
    (d,) = engine.pending_deadlines(session, "complaint", row.id)  # type: ignore[arg-type]
    assert d.due_on == date(2026, 12, 29)  # Mon 21 (1), 22, 23, Thu 24 (4), Tue 29 Dec (5)


@pytest.mark.parametrize(
    ("days", "due"), [("3", date(2026, 12, 30)), ("1", date(2026, 12, 24)), ("6", date(2027, 1, 5))]
)
def test_acknowledgement_working_days_are_configurable(
    session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch, days: str, due: date
) -> None:
    monkeypatch.setenv("PEERWATCH_COMPLAINT_ACKNOWLEDGE_WORKING_DAYS", days)
    row = _receive(session, services)
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "complaint", row.id)] == [
        ("acknowledgement", due)
    ]  # type: ignore[arg-type]
    assert CAL.add_working_days(RECEIVED, int(days)) == due


def test_acknowledge_writes_to_the_complainant_and_opens_the_resolution_deadline(
    session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services, category="conduct")
    out = _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    assert out.row.state == "acknowledged"
    (d,) = engine.pending_deadlines(session, "complaint", row.id)  # type: ignore[arg-type]
    assert (d.name, d.due_on, d.remind_on) == ("resolution", RESOLUTION_DUE, RESOLUTION_REMIND)
    assert CAL.add_working_days(ACKNOWLEDGED, 20) == RESOLUTION_DUE
    (ack,) = letters_to(session, row.id)  # type: ignore[arg-type]
    assert ack.template == "complaint_acknowledgement" and ack.category == "letter" and ack.status == "queued"
    assert [p["email"] for p in ack.to] == [COMPLAINANT[1]]
    assert [p["email"] for p in ack.cc] == [_holder(session, NM).email]
    assert (
        "Mon 01 Feb 2027" in rendered(ack).body_text
        and SUMMARY in rendered(ack).body_text
        and "Wed 23 Dec 2026" in rendered(ack).body_text
    )


def _complaint_actions(db: Engine, day: date) -> list[tuple[str, str]]:
    return [(a["deadline"], a["action"]) for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "complaint"]


def test_a_late_acknowledgement_is_chased_once(db: Engine, session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="arrangements")
    timeline = {
        date(2026, 12, 31): [],
        ACK_DUE: [],  # due today: not yet late
        date(2027, 1, 5): [("acknowledgement", "overdue_notice")],
        date(2027, 1, 6): [],
    }
    for day, expected in timeline.items():
        for n in range(2):
            assert _complaint_actions(db, day) == (expected if n == 0 else []), (day, n)
    session.expire_all()
    chases = letters_to(session, row.id)  # type: ignore[arg-type]
    owner, manager = _holder(session, OFFICE), _holder(session, NM)
    assert [(m.template, m.category, m.to[0]["email"], m.created_at.date()) for m in chases] == [
        ("complaint_overdue", "chase", owner.email, date(2027, 1, 5)),
        ("complaint_overdue", "chase", manager.email, date(2027, 1, 5)),
    ]
    assert "acknowledgement" in rendered(chases[0]).subject and "Mon 04 Jan 2027" in rendered(chases[0]).subject
    assert COMPLAINANT[0] in rendered(chases[0]).body_text


def test_an_acknowledgement_in_time_is_not_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="conduct")
    _fire(session, row.id, "acknowledge", date(2026, 12, 31), role=OFFICE)  # type: ignore[arg-type]
    assert _complaint_actions(db, date(2027, 1, 5)) == []
    session.expire_all()
    assert [m.template for m in letters_to(session, row.id)] == ["complaint_acknowledgement"]  # type: ignore[arg-type]


def test_the_resolution_is_reminded_and_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="conduct")
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    assert _complaint_actions(db, RESOLUTION_REMIND) == [("resolution", "reminded")]
    assert _complaint_actions(db, RESOLUTION_DUE) == []
    assert _complaint_actions(db, date(2027, 2, 2)) == [("resolution", "overdue_notice")]
    session.expire_all()
    manager = _holder(session, NM)
    assert [(m.template, m.to[0]["email"]) for m in letters_to(session, row.id)][1:] == [  # type: ignore[arg-type]
        ("complaint_due", manager.email),
        ("complaint_overdue", manager.email),
    ]


def test_the_resolution_deadline_survives_the_investigation(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services, category="conduct")
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    _fire(session, row.id, "investigate", date(2027, 1, 5))  # type: ignore[arg-type]
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "complaint", row.id)] == [
        ("resolution", RESOLUTION_DUE)
    ]  # type: ignore[arg-type]
    assert _complaint_actions(db, date(2027, 2, 2)) == [("resolution", "overdue_notice")]


def test_a_complaint_not_about_a_person_cannot_be_closed_as_not_acceptable(
    session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services, category="conduct")
    _refused(session, row.id, "close_not_acceptable", GuardRefused, "is_about_a_person", note=NOT_ACCEPTABLE)  # type: ignore[arg-type]
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    _refused(session, row.id, "close_not_acceptable", GuardRefused, "is_about_a_person", note=NOT_ACCEPTABLE)  # type: ignore[arg-type]


def test_a_complaint_about_a_person_at_receipt_is_closed_with_the_reason(
    session: Session, services: dict[str, int]
) -> None:
    row = _receive(session, services, category="conduct", about_person=True)
    _refused(session, row.id, "close_not_acceptable", InvalidInput, "needs a reason", note="  ")  # type: ignore[arg-type]
    _refused(
        session,
        row.id,
        "close_not_acceptable",
        PermissionDenied,
        "needs one of network-manager, regional-lead",  # type: ignore[arg-type]
        role=OFFICE,
        note=NOT_ACCEPTABLE,
    )
    out = _fire(session, row.id, "close_not_acceptable", ACKNOWLEDGED, role=RL, note=NOT_ACCEPTABLE)  # type: ignore[arg-type]
    assert (out.row.state, out.row.outcome) == ("not_acceptable", NOT_ACCEPTABLE)  # type: ignore[attr-defined]
    assert engine.pending_deadlines(session, "complaint", row.id) == []  # type: ignore[arg-type]
    (letter,) = letters_to(session, row.id)  # type: ignore[arg-type]
    assert letter.template == "complaint_not_acceptable"
    assert [p["email"] for p in letter.to] == [COMPLAINANT[1]] and [p["role"] for p in letter.cc] == [NM]
    assert NOT_ACCEPTABLE in rendered(letter).body_text
    assert SPEC.allowed_from("not_acceptable") == []


def test_classify_makes_a_complaint_about_a_person(session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="conduct")
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    _refused(session, row.id, "classify", InvalidInput, "needs about_person")  # type: ignore[arg-type]
    out = _fire(session, row.id, "classify", ACKNOWLEDGED, role=OFFICE, about_person="yes")  # type: ignore[arg-type]
    assert (out.row.state, out.row.about_person) == ("acknowledged", True)  # type: ignore[attr-defined]
    _fire(session, row.id, "classify", ACKNOWLEDGED, role=OFFICE, about_person="no")  # type: ignore[arg-type]
    _refused(session, row.id, "close_not_acceptable", GuardRefused, "is_about_a_person", note=NOT_ACCEPTABLE)  # type: ignore[arg-type]
    _fire(session, row.id, "classify", ACKNOWLEDGED, role=OFFICE, about_person="YES")  # type: ignore[arg-type]
    out = _fire(session, row.id, "close_not_acceptable", ACKNOWLEDGED, note=NOT_ACCEPTABLE)  # type: ignore[arg-type]
    assert out.row.state == "not_acceptable"
    (letter,) = letters_to(session, row.id, "complaint_not_acceptable")  # type: ignore[arg-type]
    assert NOT_ACCEPTABLE in rendered(letter).body_text
    assert [e.trigger for e in engine.history(session, "complaint", row.id)] == [  # type: ignore[arg-type]
        "receive",
        "acknowledge",
        "classify",
        "classify",
        "classify",
        "close_not_acceptable",
    ]


def test_resolve_needs_a_note_and_sends_the_outcome(session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="arrangements")
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    _fire(session, row.id, "investigate", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    _refused(session, row.id, "resolve", InvalidInput, "needs a reason")  # type: ignore[arg-type]
    out = _fire(session, row.id, "resolve", date(2027, 1, 20), role=OFFICE, note=OUTCOME)  # type: ignore[arg-type]
    assert (out.row.state, out.row.outcome) == ("resolved", OUTCOME)  # type: ignore[attr-defined]
    (letter,) = letters_to(session, row.id, "complaint_outcome")  # type: ignore[arg-type]
    assert [p["email"] for p in letter.to] == [COMPLAINANT[1]]
    assert [(p["role"], p["email"]) for p in letter.cc] == [(OFFICE, _holder(session, OFFICE).email)]
    assert OUTCOME in rendered(letter).body_text
    assert engine.pending_deadlines(session, "complaint", row.id) == [] and SPEC.allowed_from("resolved") == []  # type: ignore[arg-type]
