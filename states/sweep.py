"""The chase sweep: act on every deadline due as of a date, in batches, in one call.

Two indexed range scans over ``deadline`` (reminders due, deadlines passed) find the work
for every kind at once; rows are loaded per kind with one ``IN`` query per batch; each
item's step runs through the engine in a savepoint, so a row changed concurrently is
skipped with a log line and the rest of the batch still commits. Each step happens once
per deadline: firing closes the deadline, a reminder or overdue letter marks it done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.tables import Deadline, DeadlineStatus
from notifications.outbox import enqueue_letters
from states import engine
from states.clock import Clock, local_date
from states.errors import PeerwatchError
from states.kinds import get_spec, letter_for
from states.policy import Policy
from states.roles import SYSTEM, SYSTEM_ACTOR

log = logging.getLogger("peerwatch.sweep")
BATCH = 500


@dataclass
class SweepSummary:
    as_of: date
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a["action"] == action)


def _due_ids(session: Session, today: date) -> tuple[list[int], list[int], list[int]]:
    reminders = session.exec(
        select(Deadline.id).where(
            Deadline.status == DeadlineStatus.OPEN, col(Deadline.remind_on) <= today,
            col(Deadline.reminded).is_(False), col(Deadline.due_on) >= today,
        ).order_by(Deadline.id)  # type: ignore[arg-type]
    ).all()
    passed = session.exec(
        select(Deadline.id).where(Deadline.status == DeadlineStatus.OPEN, col(Deadline.due_on) < today)
        .order_by(Deadline.due_on, Deadline.id)  # type: ignore[arg-type]
    ).all()
    due_today = session.exec(
        select(Deadline.id).where(Deadline.status == DeadlineStatus.OPEN, Deadline.due_on == today,
                                  col(Deadline.due_day_notified).is_(False)).order_by(Deadline.id)  # type: ignore[arg-type]
    ).all()
    return ([i for i in reminders if i is not None], [i for i in passed if i is not None],
            [i for i in due_today if i is not None])


def run_sweep(
    db: Engine,
    clock: Clock,
    policy: Policy | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SweepSummary:
    """Chase and escalate everything due as of the clock's date."""
    policy = policy or Policy.from_env()
    today = local_date(clock.now())
    summary = SweepSummary(as_of=today)
    with Session(db, expire_on_commit=False) as session:
        reminder_ids, passed_ids, today_ids = _due_ids(session, today)
    for ids, handler in ((reminder_ids, _remind), (today_ids, _due_today), (passed_ids, _pass)):
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            with Session(db, expire_on_commit=False) as session:
                # re-check the status: an operator may have moved the item since the scan
                deadlines = list(session.exec(select(Deadline).where(col(Deadline.id).in_(chunk), Deadline.status == DeadlineStatus.OPEN)
                                              .order_by(Deadline.due_on, Deadline.id)))  # type: ignore[arg-type]
                loaded = _preload(session, deadlines)  # held so the identity map keeps them for the batch
                for d in deadlines:
                    handler(session, d, clock, today, policy, summary)
                session.commit()
                del loaded
            if on_progress:
                on_progress(len(chunk))
    return summary


def _preload(session: Session, deadlines: list[Deadline]) -> list[Any]:
    """One IN query per kind, so the engine's loads hit the identity map (the caller keeps the
    list: the session holds rows only while something references them)."""
    by_kind: dict[str, set[int]] = defaultdict(set)
    for d in deadlines:
        by_kind[d.kind].add(d.item_id)
    rows: list[Any] = []
    for kind, ids in by_kind.items():
        model = get_spec(kind).model
        rows += list(session.exec(select(model).where(col(model.id).in_(ids))))
    return rows


def _row(session: Session, d: Deadline) -> Any:
    return session.get(get_spec(d.kind).model, d.item_id)


def _record(summary: SweepSummary, d: Deadline, action: str, **extra: Any) -> None:
    summary.actions.append({"kind": d.kind, "id": d.item_id, "deadline": d.name, "due_on": d.due_on.isoformat(), "action": action, **extra})


def _letter(session: Session, d: Deadline, which: str, clock: Clock, today: date) -> bool:
    """Queue the rule's ``which`` letter for a deadline, if it has one; True if it did."""
    spec = get_spec(d.kind)
    rule = spec.deadline_rules.get(d.name)
    row = _row(session, d)
    letter = letter_for(getattr(rule, which), session, row) if rule else None
    if letter is None:
        return False
    enqueue_letters(session, spec, row, [letter], key=f"deadline{d.id}:{which}", clock=clock, today=today,
                    extra={"deadline": {"name": d.name, "due_on": d.due_on}})
    return True


def _remind(session: Session, d: Deadline, clock: Clock, today: date, policy: Policy, summary: SweepSummary) -> None:
    with session.begin_nested():
        d.reminded = True
        session.add(d)
        _letter(session, d, "reminder", clock, today)
    _record(summary, d, "reminded")


def _due_today(session: Session, d: Deadline, clock: Clock, today: date, policy: Policy, summary: SweepSummary) -> None:
    with session.begin_nested():
        d.due_day_notified = True
        session.add(d)
        sent = _letter(session, d, "due_today", clock, today)
    if sent:
        _record(summary, d, "due_today")


def _pass(session: Session, d: Deadline, clock: Clock, today: date, policy: Policy, summary: SweepSummary) -> None:
    spec = get_spec(d.kind)
    rule = spec.deadline_rules.get(d.name)
    if rule and rule.on_due:
        try:
            with session.begin_nested():
                out = engine.fire(session, d.kind, d.item_id, rule.on_due, actor=SYSTEM_ACTOR, role=SYSTEM,
                                  clock=clock, note=f"{d.name} due {d.due_on.isoformat()} passed", policy=policy)
        except PeerwatchError as exc:
            log.warning("skipped %s %s %s: %s", d.kind, d.item_id, rule.on_due, exc)
            summary.skipped.append({"kind": d.kind, "id": d.item_id, "deadline": d.name, "reason": str(exc)})
            return
        _record(summary, d, rule.on_due, to_state=out.row.state)
        return
    with session.begin_nested():
        d.status = DeadlineStatus.FIRED
        session.add(d)
        _letter(session, d, "overdue", clock, today)
    _record(summary, d, "overdue_notice")
