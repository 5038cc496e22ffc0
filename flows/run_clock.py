"""The clock a flow run works to: now, or a past ``as_of`` date to catch up on a missed day.

``as_of`` is the run's parameter, else ``PEERWATCH_AS_OF``; a date after today is refused
unless the database is a training database (``states.services.clocks.flow_clock``), so no
parameter or setting can make a sweep run ahead of the server's clock (and escalate early).
"""

from __future__ import annotations

import os

from sqlmodel import Session

from models import init_db
from states.clock import Clock
from states.services.clocks import flow_clock


def sweep_clock(as_of: str | None) -> Clock:
    """The clock of a sweep, dispatch or views run (a past date allowed, a future one refused)."""
    with Session(init_db()) as session:
        return flow_clock(session, as_of or os.environ.get("PEERWATCH_AS_OF") or None)
