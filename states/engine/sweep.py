"""The chase sweep: act on every deadline due as of a date, in batches, in one call.

Two indexed range scans over ``deadline`` (reminders due, deadlines passed) find the work
for every kind at once; rows are loaded per kind with one ``IN`` query per batch; each
item's step runs through the engine in a savepoint, so a row changed concurrently is
skipped and the rest of the batch still commits. Each step happens once per deadline:
firing closes the deadline, a reminder or overdue letter marks it done. Then the action
plans' milestones whose date passed undone are chased, once each
(``states.engine.milestone_chase.chase_overdue``).

Nothing is skipped silently: every item the sweep did not act on (changed or closed since the
scan, refused, stale, or failed for any other reason) is an incident in ``SweepSummary.skipped``
with its reason, and a warning in the log; the chase flow publishes them on the run's summary.
Only a failure of the database itself (``OperationalError``, ``InterfaceError``) stops the run.
The sweep acts as the built-in system principal (``states.engine.system``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from models.db import begin_write
from models.tables import Deadline, DeadlineStatus, OutboxMessage, OutboxStatus
from states import engine
from states.clock import Clock, local_date
from states.engine import letters as outbox
from states.engine import plan_chase
from states.engine.milestone_chase import FATAL, chase_overdue, failure
from states.engine.system import SYSTEM_PRINCIPAL
from states.machines.spec import get_spec, letter_for
from states.policy import Policy

log = logging.getLogger("peerwatch.sweep")
BATCH = 500


@dataclass
class SweepSummary:
    """What one sweep did (``actions``), what it did not and why (``skipped``: each an incident
    with ``kind``, ``id``, ``deadline``, ``step`` and ``reason``), and the letters it queued that
    no contact could receive (``undeliverable``: outbox incidents, ``peerwatch outbox list --incidents``)."""

    as_of: date
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    undeliverable: list[dict[str, Any]] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a["action"] == action)


def due_ids(session: Session, today: date) -> tuple[list[int], list[int], list[int]]:
    """The deadlines to remind, chase and mark today (public as a test seam: tests act after the scan)."""
    reminders = session.exec(
        select(Deadline.id)
        .where(
            Deadline.status == DeadlineStatus.OPEN,
            col(Deadline.remind_on) <= today,
            col(Deadline.reminded).is_(False),
            col(Deadline.due_on) >= today,
        )
        .order_by(Deadline.id)  # type: ignore[arg-type]
    ).all()
    passed = session.exec(
        select(Deadline.id)
        .where(Deadline.status == DeadlineStatus.OPEN, col(Deadline.due_on) < today)
        .order_by(Deadline.due_on, Deadline.id)  # type: ignore[arg-type]
    ).all()
    due_today = session.exec(
        select(Deadline.id)
        .where(
            Deadline.status == DeadlineStatus.OPEN, Deadline.due_on == today, col(Deadline.due_day_notified).is_(False)
        )
        .order_by(Deadline.id)  # type: ignore[arg-type]
    ).all()
    return (
        [i for i in reminders if i is not None],
        [i for i in passed if i is not None],
        [i for i in due_today if i is not None],
    )


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
        reminder_ids, passed_ids, today_ids = due_ids(session, today)
        last_letter = session.exec(select(func.max(OutboxMessage.id))).one() or 0
    for ids, handler in ((reminder_ids, _remind), (today_ids, _due_today), (passed_ids, _pass)):
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            with Session(db, expire_on_commit=False) as session:
                begin_write(session)  # SQLite: take the write lock before reading, so a rival sweeper waits its turn
                # re-check the status: an operator may have moved the item since the scan
                deadlines = list(
                    session.exec(
                        select(Deadline)
                        .where(col(Deadline.id).in_(chunk), Deadline.status == DeadlineStatus.OPEN)
                        .order_by(col(Deadline.due_on), col(Deadline.id))
                    )
                )
                _gone(session, chunk, deadlines, handler, summary)
                loaded = preload(session, deadlines)  # held so the identity map keeps them for the batch
                handler(session, deadlines, clock, today, policy, summary)
                session.commit()
                del loaded
            if on_progress:
                on_progress(len(chunk))
    # Overdue action-plan milestones: each chased once, in batches.
    actions, skipped = chase_overdue(db, clock, chase_working_days=policy.chase_response_working_days)
    summary.actions += actions
    summary.skipped += skipped
    plans = plan_chase.chase_overdue(db, clock, chase_working_days=policy.chase_response_working_days)  # issue 16
    summary.actions += plans[0]
    summary.skipped += plans[1]
    with Session(db) as session:
        summary.undeliverable = undeliverable(session, last_letter, clock)
    return summary


def undeliverable(session: Session, after_id: int, clock: Clock) -> list[dict[str, Any]]:
    """The letters this sweep queued that nobody can receive (no contact holds a role): outbox
    incidents written as the sweep's clock, after the last row that existed when it began."""
    rows = session.exec(
        select(OutboxMessage)
        .where(
            col(OutboxMessage.id) > after_id,
            OutboxMessage.status == OutboxStatus.UNDELIVERABLE,
            OutboxMessage.created_at == clock.now(),
        )
        .order_by(col(OutboxMessage.id))
    ).all()
    return [
        {"kind": r.kind, "id": r.item_id, "letter": r.template, "outbox_id": r.id, "reason": r.last_error or ""}
        for r in rows
    ]


_STEP = {"_remind": "reminder", "_due_today": "due_today"}


def _gone(
    session: Session, chunk: list[int], deadlines: list[Deadline], handler: Callable[..., None], summary: SweepSummary
) -> None:
    """Deadlines found by the scan that are no longer open when their batch is read: someone
    moved the item (or paused the deadline) in between. Each is recorded, never dropped; one
    closed by this sweep's own transition of the same item is recorded as superseded."""
    kept = {d.id for d in deadlines}
    missing = [i for i in chunk if i not in kept]
    if not missing:
        return
    moved = {(a["kind"], a["id"]) for a in summary.actions if a.get("to_state")}
    for d in session.exec(select(Deadline).where(col(Deadline.id).in_(missing)).order_by(col(Deadline.id))):
        step = _STEP.get(handler.__name__) or _on_due(d) or "overdue"
        if (d.kind, d.item_id) in moved and d.status == DeadlineStatus.CLOSED:
            _record(
                summary,
                d,
                "superseded",
                step=step,
                reason=f"closed by this sweep's earlier step on {d.kind} {d.item_id}",
            )
            continue
        _skip(
            summary,
            d,
            step,
            f"{d.kind} {d.item_id} changed since the sweep read it: its {d.name} deadline is now {d.status}",
        )


def _on_due(d: Deadline) -> str | None:
    rule = get_spec(d.kind).deadline_rules.get(d.name)
    return rule.on_due if rule else None


def _skip(summary: SweepSummary, d: Deadline, step: str, reason: str) -> None:
    """An item the sweep did not act on: an incident on the run's summary, and a warning."""
    log.warning("skipped %s %s %s: %s", d.kind, d.item_id, step, reason)
    summary.skipped.append({"kind": d.kind, "id": d.item_id, "deadline": d.name, "step": step, "reason": reason})


def preload(session: Session, deadlines: list[Deadline]) -> list[Any]:
    """One IN query per kind, so the engine's loads hit the identity map (the caller keeps the
    list: the session holds rows only while something references them).

    Public as a test seam: tests replace it to act between the scan and the batch."""
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
    summary.actions.append(
        {"kind": d.kind, "id": d.item_id, "deadline": d.name, "due_on": d.due_on.isoformat(), "action": action, **extra}
    )


def _notices(session: Session, marked: list[tuple[Deadline, str]], clock: Clock, today: date) -> set[int]:
    """Queue each deadline's ``which`` letter (reminder, due today, overdue), if its rule has
    one: composed per item, written in one go. Returns the ids of deadlines that had a letter."""
    by_kind: dict[str, list[tuple[Deadline, str]]] = defaultdict(list)
    for d, which in marked:
        by_kind[d.kind].append((d, which))
    messages: list[outbox.Message] = []
    sent: set[int] = set()
    now = clock.now()
    for kind, group in by_kind.items():
        spec = get_spec(kind)
        deadlines = outbox.open_deadlines(session, kind, list({d.item_id for d, _ in group}))
        letters = []
        for d, which in group:
            rule = spec.deadline_rules.get(d.name)
            row = _row(session, d)
            letter = letter_for(getattr(rule, which), session, row) if rule else None
            if letter is not None:
                letters.append((d, which, row, letter))
        outbox.prefetch_recipients(session, [(spec, row, [letter]) for _, _, row, letter in letters], on=today)
        for d, which, row, letter in letters:
            sent.add(d.id)  # type: ignore[arg-type]
            messages += outbox.compose(
                session,
                spec,
                row,
                [letter],
                key=f"deadline{d.id}:{which}",
                now=now,
                today=today,
                deadlines=deadlines.get(d.item_id, {}),
                extra={"deadline": {"name": d.name, "due_on": d.due_on}},
            )
    outbox.write(session, messages)
    return sent


def _mark(d: Deadline, which: str) -> None:
    if which == "reminder":
        d.reminded = True
    elif which == "due_today":
        d.due_day_notified = True
    else:
        d.status = DeadlineStatus.FIRED


_ACTION = {"reminder": "reminded", "due_today": "due_today", "overdue": "overdue_notice"}


def _notice_batch(
    session: Session, deadlines: list[Deadline], which: str, clock: Clock, today: date, summary: SweepSummary
) -> None:
    """Mark a batch of deadlines and queue their letters together; one at a time if that fails."""
    if not deadlines:
        return
    try:
        with session.begin_nested():
            for d in deadlines:
                _mark(d, which)
                session.add(d)
            session.flush()
            sent = _notices(session, [(d, which) for d in deadlines], clock, today)
    except FATAL:
        raise
    except Exception:  # one bad item must not hold back the rest: each on its own, its failure recorded
        for d in deadlines:
            _notice_one(session, d, which, clock, today, summary)
        return
    for d in deadlines:
        if which != "due_today" or d.id in sent:
            _record(summary, d, _ACTION[which])


def _notice_one(session: Session, d: Deadline, which: str, clock: Clock, today: date, summary: SweepSummary) -> None:
    try:
        with session.begin_nested():
            _mark(d, which)
            session.add(d)
            session.flush()
            sent = _notices(session, [(d, which)], clock, today)
    except FATAL:
        raise
    except Exception as exc:
        _skip(summary, d, which, failure(exc))
        return
    if which != "due_today" or d.id in sent:
        _record(summary, d, _ACTION[which])


def _remind(
    session: Session, deadlines: list[Deadline], clock: Clock, today: date, policy: Policy, summary: SweepSummary
) -> None:
    _notice_batch(session, deadlines, "reminder", clock, today, summary)


def _due_today(
    session: Session, deadlines: list[Deadline], clock: Clock, today: date, policy: Policy, summary: SweepSummary
) -> None:
    _notice_batch(session, deadlines, "due_today", clock, today, summary)


def _pass(
    session: Session, deadlines: list[Deadline], clock: Clock, today: date, policy: Policy, summary: SweepSummary
) -> None:
    """Passed deadlines: fire each rule's ``on_due`` trigger through the engine as one batch
    (one item at a time if the batch is refused, e.g. a row changed under us); a deadline
    without one gets its overdue letter, once."""
    firing: list[tuple[Deadline, str]] = []
    later: list[Deadline] = []  # a second passed deadline of an item already firing
    items: set[tuple[str, int]] = set()
    notices: list[Deadline] = []
    for d in deadlines:
        rule = get_spec(d.kind).deadline_rules.get(d.name)
        if not (rule and rule.on_due):
            notices.append(d)
        elif (d.kind, d.item_id) in items:
            later.append(d)
        else:
            items.add((d.kind, d.item_id))
            firing.append((d, rule.on_due))
    if firing:
        requests = [
            engine.Request(d.kind, d.item_id, trigger, note=f"{d.name} due {d.due_on.isoformat()} passed")
            for d, trigger in firing
        ]
        try:
            with session.begin_nested():
                outs = engine.fire_many(session, requests, principal=SYSTEM_PRINCIPAL, clock=clock, policy=policy)
        except FATAL:
            raise
        except Exception:  # refused or failed as a batch: each item on its own, each outcome recorded
            for d, _ in firing:
                _fire_one(session, d, clock, policy, summary, retry=True)
        else:
            for (d, trigger), out in zip(firing, outs):
                _record(summary, d, trigger, to_state=out.row.state)
    for d in later:
        _fire_one(session, d, clock, policy, summary)
    _notice_batch(session, notices, "overdue", clock, today, summary)


def _fire_one(
    session: Session, d: Deadline, clock: Clock, policy: Policy, summary: SweepSummary, retry: bool = False
) -> None:
    """One passed deadline on its own: after its batch was refused (``retry``), or when an
    earlier transition of its item in this batch may have closed it."""
    session.refresh(d)
    rule = get_spec(d.kind).deadline_rules[d.name]
    assert rule.on_due is not None  # only deadlines whose rule fires a trigger come here
    if d.status != DeadlineStatus.OPEN:
        if retry:  # someone else moved the item after the sweep read it
            reason = f"{d.kind} {d.item_id} changed since the sweep read it: its {d.name} deadline is now {d.status}"
            _skip(summary, d, rule.on_due, reason)
        else:  # its item's earlier passed deadline fired in this batch, and that transition closed it
            reason = f"closed by this sweep's earlier step on {d.kind} {d.item_id}"
            _record(summary, d, "superseded", step=rule.on_due, reason=reason)
        return
    try:
        with session.begin_nested():
            out = engine.fire(
                session,
                d.kind,
                d.item_id,
                rule.on_due,
                principal=SYSTEM_PRINCIPAL,
                clock=clock,
                note=f"{d.name} due {d.due_on.isoformat()} passed",
                policy=policy,
            )
    except FATAL:
        raise
    except Exception as exc:
        _skip(summary, d, rule.on_due, failure(exc))
        return
    _record(summary, d, rule.on_due, to_state=out.row.state)
