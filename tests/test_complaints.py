"""Complaints about the process or conduct of a review (DOMAIN.md "Complaints", seed 000 s8.2):
routing by category, the acknowledgement and resolution deadlines (local policy, working days,
configurable), the chase, complaints about a person closed as not acceptable, the outcome
letter, the complaint machine table-driven, and `peerwatch complaint receive` refusing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Complaint, Contact, Deadline, OutboxMessage
from models.tables import Network
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, PermissionDenied
from states.machines.complaint import ComplaintState
from states.machines.spec import CLOCK_TRIGGERS, get_spec

C = ComplaintState
SPEC = get_spec("complaint")
CAL = calendar_for("ENG")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"

RECEIVED = date(2026, 12, 23)  # Wed, just before Christmas
# 5 working days: Thu 24 Dec (1); Fri 25 Dec Christmas, Mon 28 Dec Boxing Day substitute; Tue 29 (2),
# Wed 30 (3), Thu 31 Dec (4); Fri 1 Jan New Year's Day; Mon 4 Jan 2027 (5)
ACK_DUE = date(2027, 1, 4)
ACKNOWLEDGED = date(2027, 1, 4)
# 20 working days after Mon 4 Jan 2027: 5-8 Jan (4), 11-15 (9), 18-22 (14), 25-29 (19), Mon 1 Feb (20)
RESOLUTION_DUE = date(2027, 2, 1)
RESOLUTION_REMIND = date(2027, 1, 28)  # Thu: 2 working days before
COMPLAINANT = ("Mr Colin Plainer", "colin.plainer@midland-royal-hospitals.nhs.example")
SUMMARY = "The visit started an hour late and the walk-around was cut short without explanation."


def _network(session: Session, code: str = "WMTN") -> Network:
    return session.exec(select(Network).where(Network.code == code)).one()


def _holder(session: Session, role: str) -> Contact:
    """Who holds a network role in WMTN (the demo data has exactly one each)."""
    (person,) = session.exec(
        select(Contact).where(Contact.role == role, Contact.network_id == _network(session).id)
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
        network_id=_network(session).id,
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
        actor="Ms Nora Office",
        role=OFFICE,
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
        actor="Dr Asha Patel",
        role=role,
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (Complaint, AuditEvent, OutboxMessage, Deadline)
    )


def _letters(session: Session, complaint_id: int, template: str | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).where(OutboxMessage.kind == "complaint", OutboxMessage.item_id == complaint_id)
    if template:
        q = q.where(OutboxMessage.template == template)
    return list(session.exec(q.order_by(col(OutboxMessage.id))))


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
    before, counts = (row.state, row.version, row.about_person, row.outcome), _counts(session)
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "complaint",
            complaint_id,
            trigger,
            actor="Dr Asha Patel",
            role=role,
            clock=FixedClock(ACKNOWLEDGED),
            note=note,
            params=params or None,
        )
    session.rollback()
    row = session.get(Complaint, complaint_id)
    assert row is not None and (row.state, row.version, row.about_person, row.outcome) == before
    assert _counts(session) == counts


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
    (ack,) = _letters(session, row.id, "complaint_acknowledgement")  # type: ignore[arg-type]
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
    counts = _counts(session)
    row = Complaint(
        network_id=_network(session).id,
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
            actor="Ms Nora Office",
            role=OFFICE,
            clock=FixedClock(RECEIVED),
            note=SUMMARY,
        )
    session.rollback()
    assert _counts(session) == counts
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
    (ack,) = _letters(session, row.id)  # type: ignore[arg-type]
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
    chases = _letters(session, row.id)  # type: ignore[arg-type]
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
    assert [m.template for m in _letters(session, row.id)] == ["complaint_acknowledgement"]  # type: ignore[arg-type]


def test_the_resolution_is_reminded_and_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    row = _receive(session, services, category="conduct")
    _fire(session, row.id, "acknowledge", ACKNOWLEDGED, role=OFFICE)  # type: ignore[arg-type]
    assert _complaint_actions(db, RESOLUTION_REMIND) == [("resolution", "reminded")]
    assert _complaint_actions(db, RESOLUTION_DUE) == []
    assert _complaint_actions(db, date(2027, 2, 2)) == [("resolution", "overdue_notice")]
    session.expire_all()
    manager = _holder(session, NM)
    assert [(m.template, m.to[0]["email"]) for m in _letters(session, row.id)][1:] == [  # type: ignore[arg-type]
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


# --------------------------------------------------------------------------- not acceptable, and the outcome

NOT_ACCEPTABLE = "The complaint is about Dr Reid's personality, not the way she carried out her role on the panel."
OUTCOME = "The late start was caused by a room double-booking; the network office now confirms rooms 48 hours ahead."


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
    (letter,) = _letters(session, row.id)  # type: ignore[arg-type]
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
    (letter,) = _letters(session, row.id, "complaint_not_acceptable")  # type: ignore[arg-type]
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
    (letter,) = _letters(session, row.id, "complaint_outcome")  # type: ignore[arg-type]
    assert [p["email"] for p in letter.to] == [COMPLAINANT[1]]
    assert [(p["role"], p["email"]) for p in letter.cc] == [(OFFICE, _holder(session, OFFICE).email)]
    assert OUTCOME in rendered(letter).body_text
    assert engine.pending_deadlines(session, "complaint", row.id) == [] and SPEC.allowed_from("resolved") == []  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the machine, table-driven

DAY = date(2027, 1, 6)
OPEN_STATES = ("received", "acknowledged", "investigated")

# (source state, trigger, role, setup, expected destination, letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (C.NEW, "receive", OFFICE, {}, C.RECEIVED, set()),
    (C.NEW, "receive", OPERATOR, {}, C.RECEIVED, set()),
    (C.RECEIVED, "classify", OFFICE, {"params": {"about_person": "yes"}}, C.RECEIVED, set()),
    (C.ACKNOWLEDGED, "classify", NM, {"params": {"about_person": "no"}}, C.ACKNOWLEDGED, set()),
    (C.RECEIVED, "acknowledge", OFFICE, {}, C.ACKNOWLEDGED, {"complaint_acknowledgement"}),
    (C.ACKNOWLEDGED, "investigate", RL, {}, C.INVESTIGATED, set()),
    (C.INVESTIGATED, "resolve", NM, {"note": OUTCOME}, C.RESOLVED, {"complaint_outcome"}),
    (
        C.RECEIVED,
        "close_not_acceptable",
        NM,
        {"about_person": True, "note": NOT_ACCEPTABLE},
        C.NOT_ACCEPTABLE,
        {"complaint_not_acceptable"},
    ),
    (
        C.ACKNOWLEDGED,
        "close_not_acceptable",
        RL,
        {"about_person": True, "note": NOT_ACCEPTABLE},
        C.NOT_ACCEPTABLE,
        {"complaint_not_acceptable"},
    ),
    *[(s, "pause_clock", NM, {"deadline": "open", "note": "complainant on leave"}, s, set()) for s in OPEN_STATES],
    *[(s, "resume_clock", OPERATOR, {"deadline": "paused", "note": "back"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "extend_deadline", RL, {"deadline": "open", "note": "agreed", "params": {"days": 3}}, s, set())
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Complaint:
    """Test setup shortcut: place a complaint (conduct, owned by the Network Manager) in a given state."""
    setup = setup or {}
    at = FixedClock(RECEIVED).now()
    row = Complaint(
        network_id=_network(session).id,
        service_id=services[MRH],
        category="conduct",  # type: ignore[arg-type]
        owner_role="" if state == C.NEW else NM,
        complainant_name=COMPLAINANT[0],
        complainant_email=COMPLAINANT[1],
        summary=SUMMARY,
        received_on=RECEIVED,
        about_person=bool(setup.get("about_person")),
        state=str(state),
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="complaint",
                item_id=row.id,
                name="resolution",
                due_on=date(2027, 1, 25),  # type: ignore[arg-type]
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return row


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
    row = _put_in(session, services, source, setup)
    version = row.version
    out = engine.fire(
        session,
        "complaint",
        row.id,
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
    assert {m.template for m in _letters(session, row.id)} == letters  # type: ignore[arg-type]


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in C for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in C for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("new") == ["receive"]
    assert SPEC.terminal == {"resolved", "not_acceptable"}


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    row = _put_in(session, services, state, {"about_person": True, "deadline": "open"})
    version, counts = row.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "complaint",
            row.id,
            trigger,
            actor="tester",
            role=NM,
            clock=FixedClock(DAY),
            note="n",  # type: ignore[arg-type]
            params={"about_person": "yes", "days": 1},
        )
    session.rollback()
    fresh = session.get(Complaint, row.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


# --------------------------------------------------------------------------- the command line

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))


def test_cli_complaint_receive_refuses_an_unknown_category(
    db_url: str, db: Engine, services: dict[str, int], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL")}
    env["PEERWATCH_DATABASE_URL"] = db_url
    proc = subprocess.run(
        [
            PEERWATCH,
            "--as-of",
            "2026-12-23",
            "complaint",
            "receive",
            "--network",
            "WMTN",
            "--category",
            "gossip",
            "--from-name",
            COMPLAINANT[0],
            "--from-email",
            COMPLAINANT[1],
            "--summary",
            SUMMARY,
            "--service",
            str(services[MRH]),
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
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "category 'gossip'" in lines[0] and "arrangements" in lines[0]
    with Session(db) as s:
        assert _counts(s) == (0, 0, 0, 0)
