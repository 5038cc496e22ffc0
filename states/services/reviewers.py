"""The reviewer pool, changed by people: added, edited, retired, each audited with the account.

Reviewers keep one row (panel memberships point at it): an edit applies when recorded and is
audited with what it changed; a retirement takes effect at its date (``retired_on``). Network
staff change them in the reviewer's scope (``states.services.editing.may_change``).
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session

from models.tables import AuditEvent, Reviewer
from states import engine
from states.clock import Clock, local_date
from states.errors import InvalidInput, NotFound, StaleVersion
from states.machines.visit import DISCIPLINES
from states.principal import Principal
from states.services.editing import Change, in_range, may_change

_REVIEWER = Reviewer.__table__  # type: ignore[attr-defined]


def get_reviewer(session: Session, reviewer_id: int) -> Reviewer:
    in_range(reviewer_id, "reviewer")
    r = session.get(Reviewer, reviewer_id)
    if r is None:
        raise NotFound(f"reviewer {reviewer_id} not found (peerwatch reviewer list)")
    return r


REVIEWER_FIELDS = ("name", "email", "discipline", "trained")


def retired(r: Reviewer, today: date) -> bool:
    """Is the reviewer out of the pool ``today`` (retired on or before it: not invited onto panels)?"""
    return r.retired_on is not None and r.retired_on <= today


def add_reviewer(session: Session, reviewer: Reviewer, *, principal: Principal, clock: Clock) -> Reviewer:
    """A reviewer joins the pool (audited), added by network staff in the reviewer's scope."""
    if reviewer.discipline not in DISCIPLINES:
        raise InvalidInput(f"discipline {reviewer.discipline!r}: use one of {', '.join(DISCIPLINES)}")
    acting = may_change(session, principal, reviewer, "add a reviewer")
    session.add(reviewer)
    session.flush()
    assert reviewer.id is not None
    engine.record_change(
        session,
        "reviewer",
        reviewer.id,
        "add_reviewer",
        principal=principal,
        role=acting,
        clock=clock,
        state="current",
        data={
            "name": reviewer.name,
            "email": reviewer.email,
            "discipline": reviewer.discipline,
            "organisation_id": reviewer.organisation_id,
            "network_id": reviewer.network_id,
        },
    )
    return reviewer


def edit_reviewer(
    session: Session,
    reviewer_id: int,
    *,
    changes: dict[str, Any],
    effective: date | None = None,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """Change a reviewer's name, address, discipline or training. Panel memberships point at the
    row, so the change applies when recorded (``effective`` None: today); a future date is
    refused (record it then)."""
    r = get_reviewer(session, reviewer_id)
    acting = may_change(session, principal, r, f"change reviewer {reviewer_id}")
    today = local_date(clock.now())
    effective = today if effective is None else effective
    if effective > today:
        raise InvalidInput(
            f"a reviewer's details change when recorded: {effective.isoformat()} is after today "
            f"({today.isoformat()}); record it on that date"
        )
    if r.retired_on is not None and retired(r, today):
        raise InvalidInput(f"reviewer {reviewer_id} retired from {r.retired_on.isoformat()}")
    if "discipline" in changes and changes["discipline"] not in DISCIPLINES:
        raise InvalidInput(f"discipline {changes['discipline']!r}: use one of {', '.join(DISCIPLINES)}")
    diff = {k: v for k, v in changes.items() if k in REVIEWER_FIELDS and v is not None and v != getattr(r, k)}
    if not diff:
        raise InvalidInput(f"nothing to change on reviewer {reviewer_id}")
    was = {k: getattr(r, k) for k in diff}
    for k, v in diff.items():
        setattr(r, k, v)
    session.add(r)
    session.flush()  # the entry rule checks the new values here
    assert r.id is not None
    engine.record_change(
        session,
        "reviewer",
        r.id,
        "edit_reviewer",
        principal=principal,
        role=acting,
        clock=clock,
        from_state="current",
        state="current",
        note=note,
        data={"from": effective, "changes": {k: {"was": was[k], "now": v} for k, v in diff.items()}},
    )
    return Change(row=r)


def retire_reviewer(
    session: Session,
    reviewer_id: int,
    *,
    effective: date,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Change:
    r = get_reviewer(session, reviewer_id)
    acting = may_change(session, principal, r, f"retire reviewer {reviewer_id}")
    if r.retired_on is not None:
        raise InvalidInput(f"reviewer {reviewer_id} is already retired from {r.retired_on.isoformat()}")
    done = cast(
        CursorResult[Any],
        session.execute(
            update(_REVIEWER)
            .where(_REVIEWER.c.id == r.id, _REVIEWER.c.retired_on.is_(None))
            .values(retired_on=effective)
        ),
    )
    if done.rowcount != 1:
        raise StaleVersion(f"reviewer {reviewer_id} was changed by someone else meanwhile: show it again and retry")
    session.refresh(r)
    assert r.id is not None
    engine.record_change(
        session,
        "reviewer",
        r.id,
        "retire_reviewer",
        principal=principal,
        role=acting,
        clock=clock,
        from_state="current",
        state="retired",
        note=note,
        data={"from": effective},
    )
    return Change(row=r)


def reviewer_history(session: Session, reviewer_id: int) -> tuple[Reviewer, list[AuditEvent]]:
    r = get_reviewer(session, reviewer_id)
    return r, engine.changes(session, "reviewer", [reviewer_id])


__all__ = [
    "REVIEWER_FIELDS",
    "add_reviewer",
    "edit_reviewer",
    "get_reviewer",
    "retire_reviewer",
    "retired",
    "reviewer_history",
]
