"""The working-day calendar and the clock (DOMAIN.md "Time").

Every expected date below was counted by hand (day 0 is the start) and every expected
holiday is checked against what ``holidays.UK(subdiv=...)`` says through ``calendar_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from models import Risk
from models.tables import Deadline, Organisation, Service
from states import engine
from states.calendar import NATIONS, BankHolidays, WorkingCalendar, calendar_for
from states.clock import FixedClock, SystemClock, clock_from, local_date, parse_date, today
from states.errors import BadDate, InvalidInput
from states.machines.risk import FORMAL_NOTIFICATION_WORKING_DAYS, RESPONSE_WORKING_DAYS
from tests.factories import person

UTC = UTC
MRH = "Midland Royal Major Trauma Centre"
GB = ("ENG", "WLS")  # England and Wales share every bank holiday in 2025-2028


# --------------------------------------------------------------------------- holidays

# (nation, day, a word the holiday's name must contain, or None for "a working day")
HOLIDAYS = [
    # Christmas 2026: Fri 25, Sat 26, Boxing Day substitute Mon 28 -- in every nation.
    *[(n, date(2026, 12, 25), "Christmas") for n in NATIONS],
    *[(n, date(2026, 12, 28), "Boxing Day (observed)") for n in NATIONS],
    *[(n, date(2026, 12, 29), None) for n in NATIONS],
    # Christmas 2027 falls on a weekend: substitutes Mon 27 and Tue 28 everywhere.
    *[(n, date(2027, 12, 27), "Christmas Day (observed)") for n in NATIONS],
    *[(n, date(2027, 12, 28), "Boxing Day (observed)") for n in NATIONS],
    *[(n, date(2027, 12, 29), None) for n in NATIONS],
    # New Year: 1 Jan everywhere; 2 Jan (or its substitute) only in Scotland.
    *[(n, date(2027, 1, 1), "New Year") for n in NATIONS],
    ("SCT", date(2026, 1, 2), "New Year Holiday"),
    *[(n, date(2026, 1, 2), None) for n in ("ENG", "WLS", "NIR")],
    ("SCT", date(2027, 1, 4), "New Year Holiday (observed)"),  # 2 Jan 2027 is a Saturday
    *[(n, date(2027, 1, 4), None) for n in ("ENG", "WLS", "NIR")],
    # 1 Jan 2028 is a Saturday: Mon 3 Jan substitute everywhere, Tue 4 Jan in Scotland only.
    *[(n, date(2028, 1, 3), "New Year's Day (observed)") for n in NATIONS],
    ("SCT", date(2028, 1, 4), "New Year Holiday (observed)"),
    *[(n, date(2028, 1, 4), None) for n in ("ENG", "WLS", "NIR")],
    # Northern Ireland: St Patrick's Day and the Battle of the Boyne.
    ("NIR", date(2026, 3, 17), "Patrick"),
    ("NIR", date(2027, 3, 17), "Patrick"),
    *[(n, date(2027, 3, 17), None) for n in ("ENG", "WLS", "SCT")],
    ("NIR", date(2027, 7, 12), "Boyne"),
    ("NIR", date(2026, 7, 13), "Boyne"),  # 12 July 2026 is a Sunday: observed Monday
    *[(n, date(2027, 7, 12), None) for n in ("ENG", "WLS", "SCT")],
    *[(n, date(2026, 7, 13), None) for n in ("ENG", "WLS", "SCT")],
    # Easter 2027: Good Friday 26 Mar everywhere; Easter Monday 29 Mar not in Scotland.
    *[(n, date(2027, 3, 26), "Good Friday") for n in NATIONS],
    *[(n, date(2027, 3, 29), "Easter Monday") for n in ("ENG", "WLS", "NIR")],
    ("SCT", date(2027, 3, 29), None),
    # Scotland: St Andrew's Day (a weekday in 2026 and 2027) and the early August holiday.
    ("SCT", date(2026, 11, 30), "Andrew"),
    ("SCT", date(2027, 11, 30), "Andrew"),
    *[(n, date(2026, 11, 30), None) for n in ("ENG", "WLS", "NIR")],
    ("SCT", date(2026, 8, 3), "Summer"),
    *[(n, date(2026, 8, 3), None) for n in ("ENG", "WLS", "NIR")],
    *[(n, date(2026, 8, 31), "Late Summer") for n in ("ENG", "WLS", "NIR")],
    ("SCT", date(2026, 8, 31), None),
]


@pytest.mark.parametrize(("nation", "day", "name"), HOLIDAYS, ids=lambda v: str(v))
def test_bank_holidays_per_nation(nation: str, day: date, name: str | None) -> None:
    cal = calendar_for(nation)
    assert day.weekday() < 5, "the table only lists weekdays, so holiday status alone decides"
    if name is None:
        assert cal.holiday_name(day) is None
        assert cal.is_working_day(day)
    else:
        assert name in (cal.holiday_name(day) or ""), f"{nation} {day}: {cal.holiday_name(day)!r}"
        assert not cal.is_working_day(day)


@pytest.mark.parametrize("nation", NATIONS)
def test_weekends_are_never_working_days(nation: str) -> None:
    cal = calendar_for(nation)
    assert not cal.is_working_day(date(2027, 1, 9))  # Saturday
    assert not cal.is_working_day(date(2027, 1, 10))  # Sunday
    assert cal.is_working_day(date(2027, 1, 11))  # Monday


# --------------------------------------------------------------------------- adding working days

# (start, n, {nation: expected}) -- counted by hand from the holiday table above.
ADD_CASES = [
    # DOMAIN.md: formal notification Fri 18 Dec 2026, IR (10 working days) -> Wed 6 Jan 2027.
    # England skips 25, 28 Dec and 1 Jan; Scotland also skips Mon 4 Jan (2 Jan substitute).
    pytest.param(
        date(2026, 12, 18),
        10,
        {"ENG": date(2027, 1, 6), "WLS": date(2027, 1, 6), "NIR": date(2027, 1, 6), "SCT": date(2027, 1, 7)},
        id="IR-10-from-18-Dec-2026",
    ),
    # SC, 20 working days from the same letter.
    pytest.param(
        date(2026, 12, 18),
        20,
        {"ENG": date(2027, 1, 20), "WLS": date(2027, 1, 20), "NIR": date(2027, 1, 20), "SCT": date(2027, 1, 21)},
        id="SC-20-from-18-Dec-2026",
    ),
    # Christmas 2027 substitutes (27, 28 Dec) and New Year 2028 (3 Jan; SCT also 4 Jan).
    pytest.param(
        date(2027, 12, 23),
        5,
        {"ENG": date(2028, 1, 4), "WLS": date(2028, 1, 4), "NIR": date(2028, 1, 4), "SCT": date(2028, 1, 5)},
        id="xmas-2027",
    ),
    pytest.param(date(2027, 12, 24), 1, {n: date(2027, 12, 29) for n in NATIONS}, id="xmas-2027-next-day"),
    # Scotland's 2 January 2026 (a Friday).
    pytest.param(
        date(2025, 12, 31),
        1,
        {"ENG": date(2026, 1, 2), "WLS": date(2026, 1, 2), "NIR": date(2026, 1, 2), "SCT": date(2026, 1, 5)},
        id="2-Jan-2026",
    ),
    # Easter 2027: Thu 25 Mar + 1 skips Good Friday everywhere, Easter Monday except in Scotland.
    pytest.param(
        date(2027, 3, 25),
        1,
        {"ENG": date(2027, 3, 30), "WLS": date(2027, 3, 30), "NIR": date(2027, 3, 30), "SCT": date(2027, 3, 29)},
        id="easter-2027",
    ),
    # St Patrick's Day 2027 (Wed).
    pytest.param(
        date(2027, 3, 16),
        1,
        {"ENG": date(2027, 3, 17), "WLS": date(2027, 3, 17), "SCT": date(2027, 3, 17), "NIR": date(2027, 3, 18)},
        id="st-patrick-2027",
    ),
    # Battle of the Boyne 2027 (Mon 12 Jul).
    pytest.param(
        date(2027, 7, 9),
        1,
        {"ENG": date(2027, 7, 12), "WLS": date(2027, 7, 12), "SCT": date(2027, 7, 12), "NIR": date(2027, 7, 13)},
        id="boyne-2027",
    ),
    # St Andrew's Day 2026 (Mon 30 Nov).
    pytest.param(
        date(2026, 11, 27),
        1,
        {"ENG": date(2026, 11, 30), "WLS": date(2026, 11, 30), "NIR": date(2026, 11, 30), "SCT": date(2026, 12, 1)},
        id="st-andrew-2026",
    ),
]


@pytest.mark.parametrize(("start", "n", "expected"), ADD_CASES)
def test_add_working_days_per_nation(start: date, n: int, expected: dict[str, date]) -> None:
    got = {nation: calendar_for(nation).add_working_days(start, n) for nation in NATIONS}
    assert got == expected


@pytest.mark.parametrize(("start", "n", "expected"), ADD_CASES)
def test_results_differ_between_nations_where_holidays_differ(start: date, n: int, expected: dict[str, date]) -> None:
    got = {nation: calendar_for(nation).add_working_days(start, n) for nation in NATIONS}
    # England and Wales always agree; any nation with its own holiday in the window differs.
    assert got["ENG"] == got["WLS"]
    differing = {nation for nation in NATIONS if got[nation] != got["ENG"]}
    assert differing == {nation for nation in NATIONS if expected[nation] != expected["ENG"]}


def test_domain_example_scotland_differs_from_england() -> None:
    start = date(2026, 12, 18)
    assert calendar_for("ENG").add_working_days(start, 10) == date(2027, 1, 6)
    assert calendar_for("SCT").add_working_days(start, 10) == date(2027, 1, 7)
    assert calendar_for("SCT").add_working_days(start, 10) != calendar_for("ENG").add_working_days(start, 10)


@pytest.mark.parametrize(
    ("visit", "eng", "sct"),
    [
        (date(2026, 12, 11), date(2026, 12, 18), date(2026, 12, 18)),  # a plain week
        (date(2026, 12, 22), date(2026, 12, 31), date(2026, 12, 31)),  # over Christmas 2026
        (date(2026, 12, 30), date(2027, 1, 7), date(2027, 1, 8)),  # over New Year 2027 (SCT: 4 Jan)
    ],
)
def test_formal_notification_rule_five_working_days_after_visit(visit: date, eng: date, sct: date) -> None:
    assert FORMAL_NOTIFICATION_WORKING_DAYS == 5
    assert calendar_for("ENG").add_working_days(visit, 5) == eng
    assert calendar_for("SCT").add_working_days(visit, 5) == sct


# --------------------------------------------------------------------------- the engine uses the service's nation


def _set_nation(session: Session, service_id: int, nation: str) -> None:
    svc = session.get(Service, service_id)
    assert svc is not None
    org = session.get(Organisation, svc.organisation_id)
    assert org is not None
    org.nation = nation
    session.add(org)
    session.commit()


def _deadline(session: Session, risk_id: int, name: str) -> Deadline:
    found = session.exec(
        select(Deadline).where(
            Deadline.kind == "risk", Deadline.item_id == risk_id, Deadline.name == name, Deadline.status == "open"
        )
    ).all()
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(("nation", "notification_due"), [("ENG", date(2027, 1, 7)), ("SCT", date(2027, 1, 8))])
def test_engine_formal_notification_deadline_uses_service_nation(
    session: Session,
    services: dict[str, int],
    clock: FixedClock,
    raise_risk: Callable[..., Risk],
    nation: str,
    notification_due: date,
) -> None:
    _set_nation(session, services[MRH], nation)
    clock.set(date(2026, 12, 30))
    risk = raise_risk("IR", visit=date(2026, 12, 30))
    d = _deadline(session, risk.id, "formal_notification")  # type: ignore[arg-type]
    assert d.due_on == notification_due
    assert d.nation == nation


@pytest.mark.parametrize(
    ("nation", "level", "due"),
    [
        ("ENG", "IR", date(2027, 1, 6)),
        ("SCT", "IR", date(2027, 1, 7)),
        ("ENG", "SC", date(2027, 1, 20)),
        ("SCT", "SC", date(2027, 1, 21)),
        ("NIR", "SC", date(2027, 1, 20)),
        ("WLS", "IR", date(2027, 1, 6)),
    ],
)
def test_engine_response_deadline_counts_working_days_from_notification(
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
    nation: str,
    level: str,
    due: date,
) -> None:
    _set_nation(session, services[MRH], nation)
    risk = raise_risk(level)
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),  # type: ignore[arg-type]
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    d = _deadline(session, risk.id, "response")  # type: ignore[arg-type]
    assert d.due_on == due
    assert calendar_for(nation).working_days_between(date(2026, 12, 18), d.due_on) == RESPONSE_WORKING_DAYS[level]


# --------------------------------------------------------------------------- the counting rule

ENG = calendar_for("ENG")


def test_day_zero_is_the_start() -> None:
    # Mon 14 Dec 2026 + 1 is Tue 15: the start itself is not counted.
    assert ENG.add_working_days(date(2026, 12, 14), 1) == date(2026, 12, 15)
    assert ENG.add_working_days(date(2026, 12, 14), 5) == date(2026, 12, 21)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 12, 19), 1, date(2026, 12, 21)),  # Saturday start
        (date(2026, 12, 20), 1, date(2026, 12, 21)),  # Sunday start
        (date(2026, 12, 25), 1, date(2026, 12, 29)),  # Christmas Day start (28th is the substitute)
        (date(2026, 12, 26), 2, date(2026, 12, 30)),  # Boxing Day (Sat) start
        (date(2026, 12, 28), 4, date(2027, 1, 4)),  # substitute-day start, over New Year's Day
    ],
)
def test_start_on_weekend_or_holiday(start: date, n: int, expected: date) -> None:
    assert ENG.add_working_days(start, n) == expected


@pytest.mark.parametrize("start", [date(2026, 12, 18), date(2026, 12, 19), date(2026, 12, 25)])
def test_zero_working_days_is_the_start_itself(start: date) -> None:
    assert ENG.add_working_days(start, 0) == start
    assert ENG.subtract_working_days(start, 0) == start


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2027, 1, 6), 10, date(2026, 12, 18)),  # the DOMAIN example, backwards
        (date(2027, 1, 20), 2, date(2027, 1, 18)),  # the reminder before an SC response
        (date(2027, 1, 10), 1, date(2027, 1, 8)),  # Sunday -> Friday
        (date(2027, 1, 4), 1, date(2026, 12, 31)),  # over New Year's Day
        (date(2026, 12, 29), 1, date(2026, 12, 24)),  # over Christmas and its substitute
    ],
)
def test_subtract_working_days(start: date, n: int, expected: date) -> None:
    assert ENG.subtract_working_days(start, n) == expected


def test_negative_add_is_subtract() -> None:
    assert ENG.add_working_days(date(2027, 1, 6), -10) == date(2026, 12, 18)


def test_subtract_differs_in_scotland() -> None:
    # Back from Tue 5 Jan 2027: England lands on Mon 4 Jan, Scotland skips it to Thu 31 Dec.
    assert ENG.subtract_working_days(date(2027, 1, 5), 1) == date(2027, 1, 4)
    assert calendar_for("SCT").subtract_working_days(date(2027, 1, 5), 1) == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 12, 18), date(2027, 1, 6), 10),
        (date(2027, 1, 6), date(2026, 12, 18), -10),
        (date(2026, 12, 18), date(2026, 12, 18), 0),
        (date(2026, 12, 18), date(2026, 12, 20), 0),  # Fri -> Sun: no working day in (start, end]
        (date(2026, 12, 18), date(2026, 12, 21), 1),
        (date(2026, 12, 24), date(2026, 12, 29), 1),  # over Christmas: only the 29th counts
        (date(2026, 12, 29), date(2026, 12, 24), -1),
    ],
)
def test_working_days_between(start: date, end: date, expected: int) -> None:
    assert ENG.working_days_between(start, end) == expected


def test_working_days_between_differs_in_scotland() -> None:
    assert ENG.working_days_between(date(2026, 12, 18), date(2027, 1, 7)) == 11
    assert calendar_for("SCT").working_days_between(date(2026, 12, 18), date(2027, 1, 7)) == 10


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 12, 18), 1, date(2026, 12, 25)),  # calendar days: Christmas Day is not skipped
        (date(2026, 12, 18), 13, date(2027, 3, 19)),  # quarterly review: 91 days
        (date(2027, 3, 19), 0, date(2027, 3, 19)),
        (date(2027, 3, 19), 4, date(2027, 4, 16)),  # across the BST change
    ],
)
def test_add_weeks_is_seven_calendar_days_each(start: date, n: int, expected: date) -> None:
    assert WorkingCalendar.add_weeks(start, n) == expected
    assert calendar_for("SCT").add_weeks(start, n) == expected
    assert (expected - start).days == 7 * n


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [
        (date(2027, 1, 15), 23),  # GMT
        (date(2027, 7, 15), 22),  # BST
        (date(2027, 3, 27), 23),  # the Saturday before the clocks go forward
        (date(2027, 3, 28), 22),  # the day they do
        (date(2027, 10, 31), 23),  # the day they go back
    ],
)
def test_end_of_day_is_london_midnight_as_utc(day: date, utc_hour: int) -> None:
    moment = WorkingCalendar.end_of_day(day)
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)
    assert (moment.date(), moment.hour, moment.minute, moment.second) == (day, utc_hour, 59, 59)
    assert local_date(moment) == day
    assert local_date(moment + timedelta(seconds=1)) == day + timedelta(days=1)


# --------------------------------------------------------------------------- errors and the clock


@pytest.mark.parametrize("nation", ["XYZ", "UK", "", "England"])
def test_unknown_nation_is_invalid_input(nation: str) -> None:
    with pytest.raises(InvalidInput, match="unknown nation"):
        calendar_for(nation)
    with pytest.raises(InvalidInput):
        WorkingCalendar(nation)


def test_nation_is_case_insensitive() -> None:
    cal = WorkingCalendar("sct")
    assert cal.nation == "SCT"
    assert cal.holiday_name(date(2026, 11, 30)) is not None


def test_fixed_clock_refuses_naive_datetime() -> None:
    with pytest.raises(BadDate, match="naive"):
        FixedClock(datetime(2026, 12, 18, 12, 0))


def test_fixed_clock_on_a_date_is_london_noon() -> None:
    assert FixedClock(date(2027, 1, 15)).now() == datetime(2027, 1, 15, 12, tzinfo=UTC)
    assert FixedClock(date(2027, 7, 15)).now() == datetime(2027, 7, 15, 11, tzinfo=UTC)
    assert FixedClock(date(2027, 1, 15)).now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("day", [date(2026, 12, 18), date(2027, 7, 1), date(2027, 3, 28), date(2027, 10, 31)])
@pytest.mark.parametrize("hour", [0, 12, 23])
def test_today_of_a_fixed_clock_is_that_london_date(day: date, hour: int) -> None:
    assert today(FixedClock(day, hour=hour)) == day


def test_today_converts_an_instant_to_london() -> None:
    # 23:30 UTC on 1 July is 00:30 BST on 2 July; in January it is still the same day.
    assert today(FixedClock(datetime(2027, 7, 1, 23, 30, tzinfo=UTC))) == date(2027, 7, 2)
    assert today(FixedClock(datetime(2027, 1, 1, 23, 30, tzinfo=UTC))) == date(2027, 1, 1)


def test_fixed_clock_set_moves_it() -> None:
    c = FixedClock(date(2026, 12, 11))
    c.set(date(2027, 1, 6))
    assert today(c) == date(2027, 1, 6)


@pytest.mark.parametrize("bad", ["2026-13-01", "18/12/2026", "tomorrow", "2026-02-30", ""])
def test_parse_date_names_the_bad_value(bad: str) -> None:
    with pytest.raises(BadDate) as info:
        parse_date(bad, "visit date")
    assert repr(bad) in str(info.value)
    assert "visit date" in str(info.value)


def test_parse_date_accepts_iso_with_whitespace() -> None:
    assert parse_date(" 2026-12-18\n") == date(2026, 12, 18)


def test_clock_from_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWATCH_AS_OF", "2027-01-06")
    c = clock_from()
    assert isinstance(c, FixedClock)
    assert today(c) == date(2027, 1, 6)


def test_clock_from_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWATCH_AS_OF", "2027-01-06")
    assert today(clock_from("2027-02-01")) == date(2027, 2, 1)


def test_clock_from_without_either_is_the_system_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEERWATCH_AS_OF", raising=False)
    c = clock_from(None)
    assert isinstance(c, SystemClock)
    assert c.now().tzinfo is not None


def test_clock_from_bad_environment_names_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWATCH_AS_OF", "06/01/2027")
    with pytest.raises(BadDate, match="06/01/2027"):
        clock_from()


# --------------------------------------------------------------------------- property


@settings(max_examples=300, deadline=None)
@given(
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)),
    n=st.integers(min_value=0, max_value=60),
    nation=st.sampled_from(NATIONS),
)
def test_add_subtract_between_agree(start: date, n: int, nation: str) -> None:
    cal = calendar_for(nation)
    result = cal.add_working_days(start, n)
    if n > 0:
        assert result > start
        assert cal.is_working_day(result)
    else:
        assert result == start
    assert cal.working_days_between(start, result) == n
    assert cal.working_days_between(result, start) == -n
    back = cal.subtract_working_days(result, n)
    assert back <= start
    if n > 0:  # ... and it is the last working day on or before the start
        assert cal.is_working_day(back)
        assert cal.working_days_between(back, start) == 0


def test_bank_holidays_are_cached_per_package_version_and_the_cache_is_only_a_copy(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A year's dates come from the holidays package once, then from the cache file (a
    short-lived command does not import the package's every country); a damaged file is
    ignored and rewritten, and the answers never differ from the package's."""
    import holidays as package

    monkeypatch.setenv("PEERWATCH_CACHE_DIR", str(tmp_path))
    expected = dict(package.UK(subdiv="SCT", years=2027))
    first = BankHolidays("SCT")
    assert {d: first.get(d) for d in expected} == expected and first.get(date(2027, 1, 5)) is None
    (cached,) = tmp_path.glob("bank-holidays-*-SCT.json")

    def no_package(*_: object, **__: object) -> None:
        raise AssertionError("the cached year must not ask the package again")

    monkeypatch.setattr(package, "UK", no_package)
    second = BankHolidays("SCT")
    assert {d: second.get(d) for d in expected} == expected
    monkeypatch.undo()
    monkeypatch.setenv("PEERWATCH_CACHE_DIR", str(tmp_path))
    cached.write_text("{not json")
    third = BankHolidays("SCT")
    assert {d: third.get(d) for d in expected} == expected
    assert "2027" in cached.read_text()  # rewritten whole
