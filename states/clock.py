"""The one clock. Every rule reads "now" from a ``Clock`` so anything can run "as of" a date."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from states.errors import BadDate

LONDON = "Europe/London"
_LONDON_TZ = ZoneInfo(LONDON)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock stopped at a London date (noon by default) or an exact instant."""

    def __init__(self, at: date | datetime, hour: int = 12) -> None:
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise BadDate(f"naive datetime {at.isoformat()} refused: give a time zone")
            self._now = at.astimezone(UTC)
        else:
            self._now = datetime(at.year, at.month, at.day, hour, tzinfo=_LONDON_TZ).astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, day: date, hour: int = 12) -> None:
        self._now = FixedClock(day, hour)._now


def today(clock: Clock) -> date:
    """The London calendar date of the clock's now."""
    return local_date(clock.now())


def local_date(moment: datetime) -> date:
    if moment.tzinfo is None:  # stored values are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_LONDON_TZ).date()


def show(moment: datetime) -> str:
    """A timestamp as people read it: Europe/London, e.g. 2027-03-19 12:00 GMT (BST in summer).
    (zoneinfo, not pendulum: a page shows dozens of these, and pendulum's conversion cost about
    1 ms each, a fifth of an item page's time.)"""
    if moment.tzinfo is None:  # stored values are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_LONDON_TZ).strftime("%Y-%m-%d %H:%M %Z")


def parse_date(text: str, what: str = "date") -> date:
    """Parse YYYY-MM-DD, or raise BadDate naming the bad value."""
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise BadDate(f"malformed {what} {text!r}: expected YYYY-MM-DD") from None


def clock_from(as_of: str | None = None) -> Clock:
    """``--as-of`` if given, else ``PEERWATCH_AS_OF``, else the system clock."""
    value = as_of or os.environ.get("PEERWATCH_AS_OF")
    if value:
        return FixedClock(parse_date(value, "--as-of date"))
    return SystemClock()
