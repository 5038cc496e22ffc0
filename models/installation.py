"""This installation's identity: one row, generated once per database and kept for ever.

Calendar feeds name every event with a UID that must be unique in the world (RFC 5545 3.8.4.7):
two networks on two peerwatch installations both had a ``visit-1``, and a calendar program
that subscribed to both overwrote one visit with the other. The installation id (a random
UUID, made the first time something asks for it) goes into every UID, so the UIDs stay stable
for this database (a backup restored keeps it) and differ from every other database's.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session

from models.types import Table, UTCDateTime, utcnow

ROW_ID = 1  # the only row: a second insert collides on the primary key


class Installation(Table, table=True):
    id: int | None = Field(default=None, primary_key=True)
    installation_id: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    training: bool = False  # made by ``peerwatch init --training``: simulated dates, no SMTP
    # The OS login that owns the database and the audit key, which people reach through sudo
    # (states/services/installation.py): set by an administrator, never by the environment.
    service_account: str | None = Field(default=None, max_length=64)
    # A training database's day: what "now" is for its people and flows when no --as-of is given
    # (states/services/clocks.py). The demo leaves it at its story's last day.
    training_today: date | None = None


def installation_id(session: Session) -> str:
    """The stored id, made (in its own short transaction, so the caller's is left alone) the
    first time it is asked for. Two processes asking at once both end with the same id: the
    loser of the insert reads the winner's."""
    row = session.get(Installation, ROW_ID)
    if row is not None:
        return row.installation_id
    with Session(session.get_bind()) as own:
        own.add(Installation(id=ROW_ID, installation_id=str(uuid.uuid4())))
        try:
            own.commit()
        except IntegrityError:
            own.rollback()
    with Session(session.get_bind()) as own:
        made = own.get(Installation, ROW_ID)
        assert made is not None
        return made.installation_id
