"""The one working-day calendar (DOMAIN.md "Time").

A working day is Monday-Friday and not a bank holiday in the organisation's UK nation
(``holidays.country_holidays("GB")`` with subdivision ENG, WLS, SCT or NIR; substitute days included).
"Within N working days of X" is the N-th working day after X, X itself being day 0, due at
the end of that day, Europe/London. "Within N weeks" is N x 7 calendar days.
Every deadline in peerwatch comes from here.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from states.errors import InvalidInput

LONDON = ZoneInfo("Europe/London")
NATIONS = ("ENG", "WLS", "SCT", "NIR")
DEFAULT_NATION = "ENG"


class BankHolidays:
    """One nation's bank holidays by year, from the ``holidays`` package.

    The package builds its calendars by importing every country it knows (0.15 s), which a
    short-lived command pays on each run; so each year's dates, once computed, are kept in a
    small JSON file per package version (``PEERWATCH_CACHE_DIR``, default ``var/cache``) and
    read from there next time. The file is only ever a copy: unreadable or absent, the package
    is asked again; unwritable, nothing is kept."""

    def __init__(self, nation: str) -> None:
        self.nation = nation
        self._years: dict[int, dict[date, str]] = {}
        self._file: Path | None = None
        self._stored: dict[str, dict[str, str]] | None = None

    def get(self, day: date) -> str | None:
        year = self._years.get(day.year)
        if year is None:
            year = self._years[day.year] = self._load(day.year)
        return year.get(day)

    def __contains__(self, day: date) -> bool:
        return self.get(day) is not None

    def _load(self, year: int) -> dict[date, str]:
        stored = self._cache().get(str(year))
        if stored is None:
            import holidays  # the package itself, only for a year not cached yet

            stored = {
                d.isoformat(): name
                for d, name in holidays.country_holidays("GB", subdiv=self.nation, years=year).items()
            }
            self._save(year, stored)
        return {date.fromisoformat(d): name for d, name in stored.items()}

    def _cache(self) -> dict[str, dict[str, str]]:
        if self._stored is None:
            from importlib.metadata import version

            folder = Path(os.environ.get("PEERWATCH_CACHE_DIR") or "var/cache")
            self._file = folder / f"bank-holidays-{version('holidays')}-{self.nation}.json"
            try:
                self._stored = json.loads(self._file.read_text())
            except (OSError, ValueError):
                self._stored = {}
        return self._stored

    def _save(self, year: int, dates: dict[str, str]) -> None:
        self._cache()[str(year)] = dates
        assert self._file is not None
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self._stored, sort_keys=True))
            temporary.replace(self._file)  # atomic: a concurrent reader sees the old file or the new
        except OSError:
            pass


class WorkingCalendar:
    """Working days of one UK nation."""

    def __init__(self, nation: str = DEFAULT_NATION) -> None:
        nation = nation.upper()
        if nation not in NATIONS:
            raise InvalidInput(f"unknown nation {nation!r}: use one of {', '.join(NATIONS)}")
        self.nation = nation
        self._holidays = BankHolidays(nation)
        self._working: dict[date, bool] = {}
        self._counted: dict[tuple[date, int], date] = {}  # (start, signed n) -> day: many items share dates

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
        return self._count(start, n)

    def subtract_working_days(self, start: date, n: int) -> date:
        """The n-th working day before ``start`` (``start`` itself for n <= 0)."""
        return self._count(start, -n) if n > 0 else start

    def _count(self, start: date, n: int) -> date:
        found = self._counted.get((start, n))
        if found is None:
            step = timedelta(days=1 if n > 0 else -1)
            day, counted = start, 0
            while counted < abs(n):
                day += step
                if self.is_working_day(day):
                    counted += 1
            found = self._counted[(start, n)] = day
        return found

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
