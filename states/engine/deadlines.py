"""The clock stop: pause, resume and extend an item's open deadlines, with a reason.

Called only by the engine for the ``pause_clock``, ``resume_clock`` and ``extend_deadline``
triggers, so each use is audited like any other transition. Dates come from the calendar.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from models.tables import Deadline, DeadlineStatus
from states.clock import parse_date
from states.errors import BadDate, GuardRefused, InvalidInput
from states.machines.spec import Context, KindSpec


def _deadlines(session: Session, spec: KindSpec, item_id: int, status: str) -> list[Deadline]:
    return list(
        session.exec(
            select(Deadline).where(Deadline.kind == spec.name, Deadline.item_id == item_id, Deadline.status == status)
        )
    )


def apply(session: Session, spec: KindSpec, row: Any, ctx: Context) -> dict[str, Any]:
    """Change the deadlines; return what changed, for the audit event."""
    cal = ctx.calendar
    changed: dict[str, Any] = {}
    if ctx.trigger == "pause_clock":
        found = _deadlines(session, spec, row.id, DeadlineStatus.OPEN)
        if not found:
            raise GuardRefused(f"{spec.name} {row.id} has no running deadline to pause")
        for d in found:
            d.paused_remaining = max(cal.working_days_between(ctx.today, d.due_on), 0)
            d.status = DeadlineStatus.PAUSED
            changed[d.name] = {"paused_with_working_days_left": d.paused_remaining}
    elif ctx.trigger == "resume_clock":
        found = _deadlines(session, spec, row.id, DeadlineStatus.PAUSED)
        if not found:
            raise GuardRefused(f"{spec.name} {row.id} has no paused deadline to resume")
        for d in found:
            _move(d, cal.add_working_days(ctx.today, d.paused_remaining or 0), ctx)
            d.status, d.paused_remaining = DeadlineStatus.OPEN, None
            changed[d.name] = {"due_on": d.due_on.isoformat()}
    else:  # extend_deadline
        found = _deadlines(session, spec, row.id, DeadlineStatus.OPEN)
        wanted = ctx.params.get("deadline")
        if wanted:
            found = [d for d in found if d.name == wanted]
        if not found:
            raise GuardRefused(
                f"{spec.name} {row.id} has no open deadline{' ' + repr(wanted) if wanted else ''} to extend"
            )
        days, until = ctx.params.get("days"), ctx.params.get("until")
        if (days is None) == (until is None):
            raise InvalidInput("extend_deadline needs exactly one of days=N (working days) or until=YYYY-MM-DD")
        for d in found:
            if until is not None:
                new_due = parse_date(str(until), "until date")
            else:
                try:
                    n = int(days)  # type: ignore[arg-type]
                except ValueError:
                    raise InvalidInput(f"days={days!r} is not a whole number") from None
                if n <= 0:
                    raise InvalidInput("days must be a positive number of working days")
                new_due = cal.add_working_days(d.due_on, n)
            if new_due <= d.due_on:
                raise BadDate(
                    f"{d.name} is due {d.due_on.isoformat()}; an extension must move it later, not to {new_due.isoformat()}"
                )
            limit = cal.add_working_days(d.due_on, ctx.policy.max_extension_working_days)
            if new_due > limit:  # one person's extension may not freeze the chase for ever
                raise BadDate(
                    f"{d.name} is due {d.due_on.isoformat()}; one extension moves it at most "
                    f"{ctx.policy.max_extension_working_days} working days (to {limit.isoformat()}), not to "
                    f"{new_due.isoformat()} (PEERWATCH_MAX_EXTENSION_WORKING_DAYS); nothing was changed"
                )
            changed[d.name] = {"from": d.due_on.isoformat(), "to": new_due.isoformat()}
            _move(d, new_due, ctx)
    for d in found:
        session.add(d)
    return {"deadlines": changed}


def _move(d: Deadline, new_due: Any, ctx: Context) -> None:
    """Set a new due date; a reminder not yet sent moves with it."""
    d.due_on = new_due
    if d.remind_on is not None and not d.reminded:
        d.remind_on = ctx.calendar.subtract_working_days(new_due, ctx.policy.reminder_working_days)
