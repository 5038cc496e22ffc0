"""The one engine: every transition of every kind goes through ``fire``.

``fire`` loads the row, checks the caller's version, the actor, the role and the date,
fires the trigger on the kind's shared machine, then in the caller's transaction writes the
new state, the audit event, the outbox rows and the next deadlines, and bumps the version
(SQLAlchemy checks it again on UPDATE, so a concurrent writer loses with ``StaleVersion``).
Any error leaves the session as it was: the caller rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from models.tables import AuditEvent, Deadline, DeadlineStatus, StatefulItem
from notifications.outbox import enqueue_letters
from states import deadlines as clock_stop
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import (
    BadDate,
    GuardRefused,
    InvalidInput,
    InvalidTrigger,
    MissingActor,
    NotFound,
    PermissionDenied,
    StaleVersion,
)
from states.kinds import CLOCK_TRIGGERS, Context, Effects, KindSpec, get_spec
from states.policy import Policy
from states.roles import check_actor_role


@dataclass
class Outcome:
    row: StatefulItem
    event: AuditEvent
    queued: int


class _Carrier:
    """What the shared machine sees while a trigger fires: a state and the guards."""

    def __init__(self, state: str, ctx: Context, spec: KindSpec) -> None:
        self.state = state
        self._ctx = ctx
        self._spec = spec

    def __getattr__(self, name: str) -> Any:
        guard = self._spec.guards.get(name)
        if guard is None:
            raise AttributeError(name)
        return lambda: guard(self._ctx)


def load(session: Session, kind: str, item_id: int) -> tuple[KindSpec, StatefulItem]:
    spec = get_spec(kind)
    row = session.get(spec.model, item_id)
    if row is None:
        raise NotFound(f"{kind} {item_id} not found")
    return spec, row


def fire(
    session: Session,
    kind: str,
    item_id: int,
    trigger: str,
    *,
    actor: str,
    role: str,
    clock: Clock,
    note: str | None = None,
    expected_version: int | None = None,
    params: Mapping[str, Any] | None = None,
    policy: Policy | None = None,
) -> Outcome:
    """Fire ``trigger`` on one item; the caller commits."""
    if not actor or not actor.strip():
        raise MissingActor(f"no actor given for {kind} {item_id} {trigger}: name who is acting (--actor)")
    check_actor_role(role)
    spec, row = load(session, kind, item_id)
    if expected_version is not None and row.version != expected_version:
        raise StaleVersion(
            f"{kind} {item_id} is at version {row.version}, not {expected_version}: "
            "it changed since you read it; show it again and retry"
        )
    if trigger not in spec.triggers():
        raise InvalidTrigger(f"unknown trigger {trigger!r} for {kind}: known triggers are {', '.join(spec.triggers())}")
    source = row.state
    rows = spec.rows_for(trigger, source)
    if not rows:
        allowed = spec.allowed_from(source)
        raise InvalidTrigger(
            f"{kind} {item_id} is '{source}': trigger {trigger!r} is not allowed from there "
            f"(allowed: {', '.join(allowed) or 'none, the item is closed'})"
        )
    roles = set().union(*(set(r.get("roles", ())) for r in rows))
    if role not in roles:
        raise PermissionDenied(
            f"role {role!r} may not fire {trigger!r} on {kind} {item_id}: needs one of {', '.join(sorted(roles))}"
        )
    if any(r.get("note_required") for r in rows) and not (note and note.strip()):
        raise InvalidInput(f"{trigger!r} on {kind} {item_id} needs a reason: give --note")

    now = clock.now()
    today = local_date(now)
    if local_date(row.updated_at) > today:
        raise BadDate(
            f"as-of {today.isoformat()} is before {kind} {item_id}'s last change on "
            f"{local_date(row.updated_at).isoformat()}: an item cannot move back in time"
        )
    policy = policy or Policy.from_env()
    ctx = Context(
        session=session, row=row, trigger=trigger, source=source, dest=source, params=dict(params or {}),
        now=now, today=today, calendar=calendar_for(spec.nation_of(session, row)), policy=policy,
        actor=actor.strip(), role=role, note=note,
    )

    carrier = _Carrier(source, ctx, spec)
    machine = spec.machine
    machine.add_model(carrier, initial=source)
    try:
        fired = carrier.trigger(trigger)
        dest = carrier.state
    finally:
        machine.remove_model(carrier)
    if not fired:
        unmet = [c for r in rows for c in (r.get("conditions") or []) if not spec.guards[c](ctx)]
        unmet += [f"not {c}" for r in rows for c in (r.get("unless") or []) if spec.guards[c](ctx)]
        raise GuardRefused(f"{trigger!r} on {kind} {item_id} refused in state '{source}': rule(s) {', '.join(dict.fromkeys(unmet))} not met")
    ctx.dest = dest

    old_version = row.version
    with session.no_autoflush:  # one UPDATE of the row, so exactly one version bump
        if trigger in CLOCK_TRIGGERS:
            data = clock_stop.apply(session, spec, row, ctx)
            effects = Effects()
        else:
            effects = spec.effects(ctx)  # may set fields on the row (counters, dates, scores)
            if dest != source:
                _close_deadlines(session, spec, item_id, dest)
            data = {}
            for d in effects.deadlines:
                session.add(Deadline(kind=spec.name, item_id=item_id, name=d.name, due_on=d.due_on,
                                     remind_on=d.remind_on, nation=ctx.calendar.nation))
                data.setdefault("deadlines", {})[d.name] = d.due_on.isoformat()
        row.state = dest
        row.updated_at = now
        flag_modified(row, "state")  # an internal transition still bumps the version
        session.add(row)
    try:
        session.flush()
    except StaleDataError:
        raise StaleVersion(f"{kind} {item_id} was changed by someone else while {trigger!r} fired; retry") from None
    if row.version != old_version + 1:  # pragma: no cover - a bug, not an operator error
        raise RuntimeError(f"{kind} {item_id}: version moved {old_version} -> {row.version} in one transition")
    event = AuditEvent(
        kind=spec.name, item_id=item_id, at=now, actor=ctx.actor, role=role, trigger=trigger,
        from_state=source, to_state=dest, note=note, version=row.version,
        data={**data, **({"params": _jsonable(ctx.params)} if ctx.params else {})},
    )
    session.add(event)
    queued = enqueue_letters(session, spec, row, effects.letters, key=f"v{row.version}", clock=clock, today=today)
    for follow_up in effects.then:
        follow_up()
    session.flush()
    return Outcome(row=row, event=event, queued=queued)


def create(
    session: Session,
    kind: str,
    row: StatefulItem,
    trigger: str,
    *,
    actor: str,
    role: str,
    clock: Clock,
    note: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Outcome:
    """Insert a new item in its kind's initial state and fire its opening trigger."""
    spec = get_spec(kind)
    if not actor or not actor.strip():
        raise MissingActor(f"no actor given to {trigger} a {kind}: name who is acting (--actor)")
    row.state = spec.initial.value
    row.created_at = row.updated_at = clock.now()
    session.add(row)
    session.flush()
    assert row.id is not None
    return fire(session, kind, row.id, trigger, actor=actor, role=role, clock=clock, note=note, params=params)


def _close_deadlines(session: Session, spec: KindSpec, item_id: int, dest: str) -> None:
    """Leaving a state closes its deadlines, except those whose rule runs through ``dest``."""
    for d in session.exec(
        select(Deadline).where(
            Deadline.kind == spec.name, Deadline.item_id == item_id,
            Deadline.status.in_([DeadlineStatus.OPEN, DeadlineStatus.PAUSED]),  # type: ignore[attr-defined]
        )
    ):
        rule = spec.deadline_rules.get(d.name)
        if rule is not None and dest in rule.runs_through:
            continue
        d.status = DeadlineStatus.CLOSED
        session.add(d)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def history(session: Session, kind: str, item_id: int) -> list[AuditEvent]:
    load(session, kind, item_id)
    return list(session.exec(
        select(AuditEvent).where(AuditEvent.kind == kind, AuditEvent.item_id == item_id).order_by(AuditEvent.id)  # type: ignore[arg-type]
    ))


def pending_deadlines(session: Session, kind: str, item_id: int) -> list[Deadline]:
    return list(session.exec(
        select(Deadline).where(
            Deadline.kind == kind, Deadline.item_id == item_id,
            Deadline.status.in_([DeadlineStatus.OPEN, DeadlineStatus.PAUSED]),  # type: ignore[attr-defined]
        ).order_by(Deadline.due_on)  # type: ignore[arg-type]
    ))
