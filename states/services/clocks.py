"""Which clock an action runs on. A person's action happens *now*; simulated dates exist only
in a training database.

- ``action_clock``: a manual action (a transition, a record made by a person). ``--as-of`` is
  refused unless the database was made with ``peerwatch init --training``.
- ``flow_clock``: a sweep or dispatch run. It may run as of a *past* date, to catch up on a
  missed day, never a future one (except in a training database, where the demo and the
  simulation move through their story's dates).
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from states.clock import Clock, FixedClock, SystemClock, local_date, parse_date
from states.errors import BadDate, PermissionDenied
from states.services.accounts import is_training


def _day(as_of: str | date) -> date:
    return as_of if isinstance(as_of, date) else parse_date(as_of, "--as-of date")


def action_clock(session: Session, as_of: str | date | None) -> Clock:
    """The server's clock for a person's action; a simulated date only in a training database."""
    if as_of is None or as_of == "":
        return SystemClock()
    day = _day(as_of)
    if not is_training(session):
        raise PermissionDenied(
            f"--as-of {day.isoformat()} refused: a person's action happens now, on the server's clock "
            "(simulated dates are for a training database: peerwatch init --training)"
        )
    return FixedClock(day)


def flow_clock(session: Session, as_of: str | date | None) -> Clock:
    """The clock of a sweep or dispatch run: now, or a past date to catch up on."""
    if as_of is None or as_of == "":
        return SystemClock()
    day = _day(as_of)
    today = local_date(SystemClock().now())
    if day == today:
        return SystemClock()
    if day > today and not is_training(session):
        raise BadDate(
            f"as-of {day.isoformat()} is after today ({today.isoformat()}): a run may catch up on a past "
            "date, never run ahead of the server's clock (only a training database runs on simulated dates)"
        )
    return FixedClock(day)
