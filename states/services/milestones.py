"""Milestones of the action plan agreed for an IR or SC (000 s6 step 5): recorded, marked done,
chased when overdue. Every change is an audited event (``states.engine.record_change``).

A milestone is owned by the service: its ``owner_role`` (a contact role, the Service Lead by
default) is who the sweep writes to, copied to the Chief Executive and the Network Manager,
once, on the first working day after its due date passed without it being marked done. The
due date is a working day of the service's nation: a date given is kept if it is one, moved to
the next working day if not (and said so); or it is counted in working days from today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session

from models.tables import Milestone, Risk
from models.types import is_row_id
from states import engine
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import InvalidInput, NotFound, StaleVersion
from states.machines.spec import get_spec
from states.principal import Principal
from states.roles import STAFF, check_contact_role

RECORDERS = sorted(STAFF)  # network staff record and close milestones (the Trust portal, issue 12, may add its roles)


@dataclass
class Recorded:
    row: Milestone
    notes: list[str] = field(default_factory=list)


def _risk(session: Session, risk_id: int) -> Risk:
    spec, row = engine.load(session, "risk", risk_id)
    if row.state in spec.terminal:
        raise InvalidInput(f"risk {risk_id} is {row.state}: its action plan takes no more milestones")
    return row  # type: ignore[return-value]


def _scope(session: Session, risk: Any) -> dict[str, int | None]:
    return get_spec("risk").recipient_scope(session, risk)


def get(session: Session, milestone_id: int) -> Milestone:
    m = session.get(Milestone, milestone_id) if is_row_id(milestone_id) else None
    if m is None:
        raise NotFound(f"milestone {milestone_id} not found (peerwatch risk show RISK_ID)")
    return m


def add(
    session: Session,
    risk_id: int,
    *,
    text: str,
    due_on: date | None = None,
    working_days: int | None = None,
    owner_role: str = "service-lead",
    principal: Principal,
    clock: Clock,
) -> Recorded:
    """Record a milestone; audited. The caller commits. ``principal`` needs a staff role in the risk's scope."""
    check_contact_role(owner_role)
    risk = _risk(session, risk_id)
    role = principal.require_any(RECORDERS, f"add a milestone to risk {risk_id}", _scope(session, risk))
    today = local_date(clock.now())
    cal = calendar_for(get_spec("risk").nation_of(session, risk))
    notes: list[str] = []
    if (due_on is None) == (working_days is None):
        raise InvalidInput(
            "give the milestone's due date (YYYY-MM-DD) or a number of working days from today, not both"
        )
    if working_days is not None:
        if not 1 <= working_days <= 2000:
            raise InvalidInput(f"working days {working_days}: give 1 to 2000")
        due_on = cal.add_working_days(today, working_days)
    assert due_on is not None
    if not cal.is_working_day(due_on):
        moved = cal.add_working_days(due_on, 1)
        why = cal.holiday_name(due_on) or due_on.strftime("%A")
        notes.append(f"{due_on.isoformat()} is not a working day ({why}): due {moved.isoformat()} instead")
        due_on = moved
    if due_on <= today:
        raise InvalidInput(f"milestone due {due_on.isoformat()} is not after today ({today.isoformat()})")
    m = Milestone(risk_id=risk_id, due_on=due_on, text=text, owner_role=owner_role)
    session.add(m)
    session.flush()  # the entry rule (states/text.py) checks the text here
    assert m.id is not None
    engine.record_change(
        session,
        "milestone",
        m.id,
        "add_milestone",
        principal=principal,
        role=role,
        clock=clock,
        state="open",
        data={"risk_id": risk_id, "due_on": due_on.isoformat(), "text": text, "owner": owner_role},
    )
    return Recorded(m, notes)


def mark_done(
    session: Session,
    milestone_id: int,
    *,
    principal: Principal,
    clock: Clock,
    on: date | None = None,
    note: str | None = None,
) -> Milestone:
    """Mark a milestone done (on ``on``, default today; never in the future; an earlier date
    needs a note, and the event records the day it was recorded too); audited.
    ``principal`` needs a staff role in the risk's scope."""
    m = get(session, milestone_id)
    risk = engine.load(session, "risk", m.risk_id)[1]
    role = principal.require_any(RECORDERS, f"mark milestone {milestone_id} done", _scope(session, risk))
    today = local_date(clock.now())
    day = on or today
    if day > today:
        raise InvalidInput(f"a milestone cannot be done on {day.isoformat()}, after today ({today.isoformat()})")
    if day < today and not (note and note.strip()):
        raise InvalidInput(
            f"milestone {milestone_id} is recorded done today ({today.isoformat()}); a done date before it "
            f"({day.isoformat()}) needs a note saying how it is known; nothing was changed"
        )
    if m.done_on is not None:
        raise InvalidInput(
            f"milestone {milestone_id} was already marked done on {m.done_on.isoformat()} by {m.done_by}"
        )
    t = Milestone.__table__  # type: ignore[attr-defined]
    done = cast(
        CursorResult[Any],
        session.execute(
            update(t).where(t.c.id == m.id, t.c.done_on.is_(None)).values(done_on=day, done_by=principal.name)
        ),
    )
    if done.rowcount != 1:
        raise StaleVersion(f"milestone {milestone_id} was marked done by someone else meanwhile")
    session.refresh(m)
    assert m.id is not None
    engine.record_change(
        session,
        "milestone",
        m.id,
        "milestone_done",
        principal=principal,
        role=role,
        clock=clock,
        from_state="chased" if m.chased_on else "open",
        state="done",
        note=note,
        data={
            "risk_id": m.risk_id,
            "done_on": day.isoformat(),
            "due_on": m.due_on.isoformat(),
            "late": day > m.due_on,
            "recorded_on": today.isoformat(),  # a person's act happens now: a back-dated completion shows
            "recorded_late": today > m.due_on,
        },
    )
    return m
