"""Notifying the service, chasing declarations and unrecorded visits, postponing and cancelling."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import OutboxMessage
from models.tables import Contact, Network, Visit
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, InvalidTrigger, PermissionDenied
from tests.factories import person
from tests.support_visits import (
    CAL,
    NM,
    OFFICE,
    PANEL,
    RL,
    T0,
    VISIT,
    declare,
    fire,
    held,
    letters_to,
    notified,
    prepared,
    propose,
    row_counts,
)

# --------------------------------------------------------------------------- notification, deadlines and chasing


@pytest.mark.parametrize(
    ("visit_day", "notified_on", "declarations", "remind"),
    [
        (VISIT, T0, date(2026, 10, 29), date(2026, 10, 27)),  # Thu 12 Nov -> Thu 29 Oct, reminder Tue 27 Oct
        # across Christmas: Thu 14 Jan 2027 -> Wed 30 Dec 2026 (1 Jan, 28 and 25 Dec are holidays), reminder Thu 24 Dec
        (date(2027, 1, 14), date(2026, 12, 7), date(2026, 12, 30), date(2026, 12, 24)),
    ],
)
def test_notify_service_writes_letters_and_opens_deadlines(
    session: Session, services: dict[str, int], visit_day: date, notified_on: date, declarations: date, remind: date
) -> None:
    visit = notified(session, services, visit_day, start=notified_on)
    assert visit.state == "service_notified" and visit.prep_session == "offered"
    assert letters_to(session, visit.id)[-2:] == ["visit_notification", "prep_session_invitation"]
    notice = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visit", OutboxMessage.template == "visit_notification")
    ).one()
    assert sorted(p["role"] for p in notice.to) == ["chief-executive", "service-lead"]
    pending = {d.name: (d.due_on, d.remind_on) for d in engine.pending_deadlines(session, "visit", visit.id)}
    assert CAL.subtract_working_days(visit_day, 10) == declarations
    assert pending == {"declarations": (declarations, remind), "visit_day": (visit_day, None)}


def test_declarations_lead_time_is_local_policy(
    session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_DECLARATIONS_WORKING_DAYS_BEFORE_VISIT", "5")
    visit = notified(session, services, VISIT, start=T0)
    (decl,) = [d for d in engine.pending_deadlines(session, "visit", visit.id) if d.name == "declarations"]
    assert decl.due_on == date(2026, 11, 5)  # 5 working days before Thu 12 Nov


def test_declarations_due_no_earlier_than_notification(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=date(2026, 11, 2))  # only 8 working days' notice
    (decl,) = [d for d in engine.pending_deadlines(session, "visit", visit.id) if d.name == "declarations"]
    assert (decl.due_on, decl.remind_on) == (date(2026, 11, 2), None)


def _chased(db: Engine, visit_id: int) -> list[str]:
    with Session(db) as s:
        rows = s.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == "visit",
                OutboxMessage.item_id == visit_id,
                OutboxMessage.template == "declaration_chase",
            )
            .order_by(col(OutboxMessage.id))
        )
        return [p["email"] for m in rows for p in m.to]


def _office_email(session: Session) -> str:
    net = session.exec(select(Network).where(Network.code == "WMTN")).one()
    return (
        session.exec(select(Contact).where(Contact.role == "network-office", Contact.network_id == net.id)).one().email
    )


MAYA, CARYS, ROHAN = (
    "maya.fenwick@reviewers.nhs.example",
    "carys.holt@reviewers.nhs.example",
    "rohan.mehta@reviewers.nhs.example",
)


def test_reminder_day_chases_only_reviewers_who_have_not_declared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = notified(session, services, VISIT, start=T0)  # declarations due Thu 29 Oct, reminder Tue 27 Oct
    declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 20))
    office = _office_email(session)
    assert [a["action"] for a in run_sweep(db, FixedClock(date(2026, 10, 26))).actions] == []
    for n in range(2):
        summary = run_sweep(db, FixedClock(date(2026, 10, 27)))
        assert [(a["deadline"], a["action"]) for a in summary.actions] == (
            [("declarations", "reminded")] if n == 0 else []
        )
    assert sorted(_chased(db, visit.id)) == sorted([MAYA, ROHAN, office])


def test_overdue_day_chases_only_reviewers_still_undeclared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = notified(session, services, VISIT, start=date(2026, 10, 28))  # due Thu 29 Oct, too late for a reminder
    declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 28))
    for n in range(2):
        summary = run_sweep(db, FixedClock(date(2026, 10, 30)))
        assert [(a["deadline"], a["action"]) for a in summary.actions] == (
            [("declarations", "overdue_notice")] if n == 0 else []
        )
    assert sorted(_chased(db, visit.id)) == sorted([MAYA, ROHAN, _office_email(session)])


def test_reviewer_reminded_and_still_undeclared_is_chased_again_when_overdue(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = notified(session, services, VISIT, start=T0)  # declarations due Thu 29 Oct, reminder Tue 27 Oct
    run_sweep(db, FixedClock(date(2026, 10, 27)))  # all three reminded
    declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 28))
    declare(session, visit.id, "Mr Rohan Mehta", date(2026, 10, 28))
    run_sweep(db, FixedClock(date(2026, 10, 30)))  # overdue: Maya has still not declared
    chased = _chased(db, visit.id)
    assert chased.count(MAYA) == 2
    assert (chased.count(CARYS), chased.count(ROHAN)) == (1, 1)  # reminded, then declared: not chased again


def test_no_chase_once_everyone_has_declared(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0)
    for name in PANEL:
        declare(session, visit.id, name, date(2026, 10, 20))
    for day in (date(2026, 10, 27), date(2026, 10, 30)):
        run_sweep(db, FixedClock(day))
    assert _chased(db, visit.id) == []


def test_visit_not_recorded_is_chased_once_when_left_unprepared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = notified(session, services, VISIT, start=T0)
    for name in PANEL:
        declare(session, visit.id, name, date(2026, 10, 20))
    for day in (VISIT, date(2026, 11, 13), date(2026, 11, 16)):
        run_sweep(db, FixedClock(day))
    assert letters_to(session, visit.id).count("visit_not_recorded") == 3  # network office, cc NM and RL


def test_prepared_visit_not_recorded_as_held_is_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = prepared(session, services)
    for day in (VISIT, date(2026, 11, 13), date(2026, 11, 16)):
        run_sweep(db, FixedClock(day))
    assert letters_to(session, visit.id).count("visit_not_recorded") == 3  # network office, cc NM and RL, once


def test_visit_recorded_as_held_is_not_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = held(session, services)
    for day in (date(2026, 11, 13), date(2026, 11, 16)):
        assert [a for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "visit"] == []
    assert "visit_not_recorded" not in letters_to(session, visit.id)
    assert engine.pending_deadlines(session, "visit", visit.id) == []


# --------------------------------------------------------------------------- postpone and cancel


def test_postpone_before_notification_sends_no_letter(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services)
    fire(session, visit.id, "schedule", T0, date="2026-11-12")
    out = fire(session, visit.id, "postpone", date(2026, 10, 6), note="panel chair unavailable", date="2026-11-19")
    assert (out.row.state, out.row.visit_date, out.row.postponements) == ("scheduled", date(2026, 11, 19), 1)  # type: ignore[attr-defined]
    assert "visit_postponed" not in letters_to(session, visit.id)
    assert out.event.note == "panel chair unavailable"


def test_postpone_after_notification_tells_the_service_and_resets(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0)
    fire(session, visit.id, "record_preparation", T0, role=OFFICE, prep_session="held", panel_confirmed="yes")
    out = fire(
        session, visit.id, "postpone", date(2026, 10, 8), role=OFFICE, note="Trust under OPEL 4", date="2026-12-03"
    )
    row = out.row
    assert (row.state, row.visit_date, row.postponements, row.prep_session, row.panel_confirmed) == (  # type: ignore[attr-defined]
        "scheduled",
        date(2026, 12, 3),
        1,
        None,
        False,
    )
    assert letters_to(session, visit.id).count("visit_postponed") == 1
    msg = session.exec(select(OutboxMessage).where(OutboxMessage.template == "visit_postponed")).one()
    assert sorted(p["role"] for p in msg.to) == ["chief-executive", "service-lead"]
    assert engine.pending_deadlines(session, "visit", visit.id) == []  # the old dates no longer apply
    # notified again for the new date: new deadlines; a second postponement counts
    fire(session, visit.id, "notify_service", date(2026, 10, 8), role=OFFICE)
    assert {d.name: d.due_on for d in engine.pending_deadlines(session, "visit", visit.id)} == {
        "declarations": date(2026, 11, 19),
        "visit_day": date(2026, 12, 3),
    }
    out = fire(session, visit.id, "postpone", date(2026, 10, 9), role=OFFICE, note="again", date="2026-12-10")
    assert out.row.postponements == 2  # type: ignore[attr-defined]
    assert letters_to(session, visit.id).count("visit_postponed") == 2


@pytest.mark.parametrize(
    ("note", "params", "exc", "match"),
    [
        (None, {"date": "2026-12-03"}, InvalidInput, "needs a reason"),
        ("  ", {"date": "2026-12-03"}, InvalidInput, "needs a reason"),
        ("leave", {"date": "2026-10-01"}, InvalidInput, "in the past"),
        ("leave", {"date": "2026-12-26"}, InvalidInput, "not a working day"),
        ("leave", {}, InvalidInput, "needs date"),
    ],
)
def test_postpone_refusals_change_nothing(
    session: Session,
    services: dict[str, int],
    note: str | None,
    params: dict[str, str],
    exc: type[Exception],
    match: str,
) -> None:
    visit = notified(session, services, VISIT, start=T0)
    version, counts = visit.version, row_counts(session)
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "visit",
            visit.id,
            "postpone",
            principal=person("t", OFFICE),
            clock=FixedClock(date(2026, 10, 8)),
            note=note,
            params=params,
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version, fresh.visit_date, fresh.postponements) == (
        "service_notified",
        version,
        VISIT,
        0,
    )
    assert row_counts(session) == counts


def test_cancel_with_a_reason(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0)
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(
            session, "visit", visit.id, "cancel", principal=person("t", NM), clock=FixedClock(date(2026, 10, 8))
        )
    session.rollback()
    with pytest.raises(PermissionDenied, match="needs one of network-manager, regional-lead"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "cancel",
            principal=person("t", OFFICE),
            clock=FixedClock(date(2026, 10, 8)),
            note="x",
        )
    session.rollback()
    out = fire(session, visit.id, "cancel", date(2026, 10, 8), role=RL, note="service decommissioned")
    assert (out.row.state, out.row.closed_reason) == ("cancelled", "service decommissioned")  # type: ignore[attr-defined]
    assert letters_to(session, visit.id).count("visit_cancelled") == 1
    assert engine.pending_deadlines(session, "visit", visit.id) == []
    with pytest.raises(InvalidTrigger, match="none, the item is closed"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "postpone",
            principal=person("t", NM),
            clock=FixedClock(date(2026, 10, 9)),
            note="x",
        )


def test_cancel_a_proposed_visit_writes_to_nobody(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services)
    out = fire(session, visit.id, "cancel", T0, note="not needed this year")
    assert out.row.state == "cancelled" and letters_to(session, visit.id) == []
