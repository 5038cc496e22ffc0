"""Which clock an action runs on. A person's action happens *now*; simulated dates exist only
in a training database.

- ``action_clock``: a manual action (a transition, a record made by a person). ``--as-of`` is
  refused unless the database was made with ``peerwatch init --training``.
- ``flow_clock``: a sweep or dispatch run. It may run as of a *past* date, to catch up on a
  missed day, never a future one (except in a training database, where the demo and the
  simulation move through their story's dates).

A training database may stand at a day of its own (``training_today``: the demo leaves it at
its story's last day, ``peerwatch installation training-day`` moves it): with no ``--as-of``,
its actions and runs happen on that day (at noon, London), so that the web application, which
has no ``--as-of``, acts in the story rather than before it.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from models.installation import ROW_ID, Installation, installation_id
from states.clock import Clock, FixedClock, SystemClock, local_date, parse_date
from states.engine.audit import record_change
from states.errors import BadDate, PermissionDenied
from states.principal import Principal
from states.roles import ADMINISTRATOR
from states.services.accounts import is_training


def _day(as_of: str | date) -> date:
    return as_of if isinstance(as_of, date) else parse_date(as_of, "--as-of date")


def training_today(session: Session) -> date | None:
    """The day a training database stands at, if one was set (None for any other database)."""
    row = session.get(Installation, ROW_ID)
    return row.training_today if row is not None and row.training else None


def set_training_today(session: Session, principal: Principal, clock: Clock, day: date | None) -> None:
    """Stand a training database at ``day`` (None: on the real clock again); an administrator's
    audited act, refused on any other database."""
    if principal.is_system or not principal.holds(ADMINISTRATOR):
        raise PermissionDenied(f"{principal.name} may not move a training database's day: only an administrator may")
    if not is_training(session):
        raise PermissionDenied("only a training database stands at a day of its own: this one runs on the real clock")
    installation_id(session)
    row = session.get(Installation, ROW_ID)
    assert row is not None
    before = row.training_today
    row.training_today = day
    session.add(row)
    record_change(session, "installation", ROW_ID, "set_training_day", principal=principal, role=ADMINISTRATOR,
                  clock=clock, state="training",
                  data={"day": day.isoformat() if day else None,
                        "before": before.isoformat() if before else None})  # fmt: skip


def action_clock(session: Session, as_of: str | date | None) -> Clock:
    """The server's clock for a person's action; a simulated date only in a training database
    (``as_of``, else the day it stands at)."""
    if as_of is None or as_of == "":
        day = training_today(session)
        return FixedClock(day) if day else SystemClock()
    day = _day(as_of)
    if not is_training(session):
        raise PermissionDenied(
            f"--as-of {day.isoformat()} refused: a person's action happens now, on the server's clock "
            "(simulated dates are for a training database: peerwatch init --training)"
        )
    return FixedClock(day)


def flow_clock(session: Session, as_of: str | date | None) -> Clock:
    """The clock of a sweep or dispatch run: now, or a past date to catch up on (a training
    database: its own day when no date is given)."""
    if as_of is None or as_of == "":
        day = training_today(session)
        return FixedClock(day) if day else SystemClock()
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
