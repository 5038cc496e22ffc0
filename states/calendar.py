"""The one working-day calendar (DOMAIN.md "Time").

A working day is Monday-Friday and not a bank holiday in the organisation's UK nation
(``holidays.UK`` with subdivision ENG, WLS, SCT or NIR; substitute days included).
"Within N working days of X" is the N-th working day after X, X itself being day 0, due at
the end of that day, Europe/London. "Within N weeks" is N x 7 calendar days.
Every deadline in peerwatch comes from here.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo


from states.errors import InvalidInput

LONDON = ZoneInfo("Europe/London")
NATIONS = ("ENG", "WLS", "SCT", "NIR")
DEFAULT_NATION = "ENG"


class WorkingCalendar:
    """Working days of one UK nation."""

    def __init__(self, nation: str = DEFAULT_NATION) -> None:
        nation = nation.upper()
        if nation not in NATIONS:
            raise InvalidInput(f"unknown nation {nation!r}: use one of {', '.join(NATIONS)}")
        self.nation = nation
        import holidays  # loaded with the first calendar, not at import

        self._holidays = holidays.UK(subdiv=nation)
        self._working: dict[date, bool] = {}

    def holiday_name(self, day: date) -> str | None:
        return self._holidays.get(day)

    def is_working_day(self, day: date) -> bool:
        known = self._working.get(day)
        if known is None:
            known = self._working[day] = day.weekday() < 5 and day not in self._holidays
        return known

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after ``start`` (``start`` is day 0)."""
        if n < 0:
            return self.subtract_working_days(start, -n)
        day, counted = start, 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def subtract_working_days(self, start: date, n: int) -> date:
        """The n-th working day before ``start``."""
        day, counted = start, 0
        while counted < n:
            day -= timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    @staticmethod
    def add_weeks(start: date, n: int) -> date:
        return start + timedelta(days=7 * n)

    @staticmethod
    def add_days(start: date, n: int) -> date:
        """Calendar days (for dates fixed by a programme, not by a working-day rule)."""
        return start + timedelta(days=n)

    @staticmethod
    def end_of_day(day: date) -> datetime:
        """The moment a deadline on ``day`` passes: 23:59:59 Europe/London, as aware UTC."""
        return datetime.combine(day, time(23, 59, 59), tzinfo=LONDON).astimezone(ZoneInfo("UTC"))


@cache
def calendar_for(nation: str = DEFAULT_NATION) -> WorkingCalendar:
    """The shared calendar of a nation (built once; holiday years load on demand)."""
    return WorkingCalendar(nation)
