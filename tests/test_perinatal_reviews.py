"""The monthly board review of a perinatal concern: reminders, escalation and late reviews."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import OutboxMessage
from models.perinatal import PerinatalConcern
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import InvalidInput
from states.machines.perinatal import board_review_due
from tests.factories import person
from tests.support_perinatal import LQSG, NM, RAISED, maternity, raise_concern, templates  # noqa: F401 (pytest fixtures)


def _sweep_days(
    db: Engine, start: date, end: date, on: dict[date, Callable[[], None]] | None = None
) -> dict[date, list[str]]:
    """Sweep every calendar day from start to end, twice a day; return each day's first-run actions."""
    seen: dict[date, list[str]] = {}
    day = start
    while day <= end:
        first = run_sweep(db, FixedClock(day))
        again = run_sweep(db, FixedClock(day))
        assert again.actions == [], day  # a second sweep on the same day does nothing more
        if first.actions:
            seen[day] = [a["action"] for a in first.actions]
        if on and day in on:
            on[day]()
        day = date.fromordinal(day.toordinal() + 1)
    return seen


def test_monthly_board_review_is_reminded_once_and_opens_next_month(
    db: Engine, session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert (d.due_on, d.remind_on) == (date(2026, 12, 31), date(2026, 12, 22))

    def record() -> None:
        with Session(db) as s:
            engine.fire(
                s,
                "perinatal",
                row.id,
                "record_board_review",
                principal=person("office", "network-office"),
                clock=FixedClock(date(2026, 12, 30)),
                note="board paper 12/26",
            )
            s.commit()

    # December's review is recorded on 30 Dec; January's is not recorded at all.
    seen = _sweep_days(db, RAISED, date(2027, 2, 20), on={date(2026, 12, 30): record})
    assert seen == {
        date(2026, 12, 22): ["reminded"],  # December: 5 working days before Thu 31 Dec
        date(2027, 1, 22): ["reminded"],  # January: due Fri 29 Jan
        date(2027, 1, 30): ["board_review_missed"],  # the day after January's passed
        date(2027, 2, 19): ["reminded"],  # February: due Fri 26 Feb
    }
    letters = templates(session, row.id)
    assert letters.count("perinatal_board_review_due") == 6  # 3 months x (Service Lead, Chief Executive)
    assert letters.count("perinatal_board_review_overdue") == 3  # Chief Executive, Service Lead, copied to the LMS lead
    session.expire_all()
    fresh = session.get(PerinatalConcern, row.id)
    assert fresh is not None and (fresh.board_reviews, fresh.last_board_review_on) == (1, date(2026, 12, 30))
    (nxt,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert nxt.due_on == date(2027, 2, 26)
    reminder = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "perinatal_board_review_due").order_by(OutboxMessage.id)
    ).first()
    assert reminder is not None and {p["role"] for p in reminder.to} <= {"service-lead", "chief-executive"}
    assert "Thu 31 Dec 2026" in rendered(reminder).subject


def test_escalating_carries_the_months_review_without_a_second_reminder(
    db: Engine, session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()

    def escalate() -> None:
        with Session(db) as s:
            engine.fire(
                s,
                "perinatal",
                row.id,
                "escalate",
                principal=person("nm", NM),
                clock=FixedClock(date(2026, 12, 23)),
                note="worse",
                params=LQSG,
            )
            s.commit()

    seen = _sweep_days(db, RAISED, date(2026, 12, 31), on={date(2026, 12, 23): escalate})
    assert seen == {date(2026, 12, 22): ["reminded"]}
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert d.due_on == date(2026, 12, 31)
    assert templates(session, row.id).count("perinatal_board_review_due") == 2


def test_a_late_review_of_an_earlier_month_keeps_this_months_deadline(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    engine.fire(
        session,
        "perinatal",
        row.id,
        "board_review_missed",
        principal=person("sweeper", "system"),
        clock=FixedClock(date(2027, 1, 1)),
    )
    engine.fire(
        session,
        "perinatal",
        row.id,
        "record_board_review",
        principal=person("o", "network-office"),
        clock=FixedClock(date(2027, 1, 4)),
        params={"reviewed_on": "2026-12-31"},
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert d.due_on == date(2027, 1, 29) and row.board_reviews == 1
    with pytest.raises(InvalidInput, match="after today"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_board_review",
            principal=person("o", "network-office"),
            clock=FixedClock(date(2027, 1, 4)),
            params={"reviewed_on": "2027-01-05"},
        )


@pytest.mark.parametrize(
    ("month_of", "today", "due"),
    [
        (
            date(2026, 12, 11),
            date(2026, 12, 11),
            date(2026, 12, 31),
        ),  # 25, 28 Dec are bank holidays; 31 Dec is a Thursday
        (date(2027, 1, 1), date(2027, 1, 1), date(2027, 1, 29)),
        (date(2027, 7, 5), date(2027, 7, 5), date(2027, 7, 30)),  # Sat 31 Jul -> Fri 30 Jul
        (date(2027, 8, 2), date(2027, 8, 2), date(2027, 8, 31)),  # summer bank holiday is Mon 30 Aug
        (date(2026, 12, 1), date(2027, 1, 15), date(2027, 1, 29)),  # a past month rolls on to this one
    ],
)
def test_board_review_is_due_on_the_last_working_day_of_the_month(month_of: date, today: date, due: date) -> None:
    assert board_review_due(calendar_for("ENG"), month_of, today) == due
