"""The one engine: every transition of every kind goes through ``fire``.

``fire`` loads the row, checks the caller's version, the actor, the role and the date,
fires the trigger on the kind's shared machine, then in the caller's transaction writes the
new state, the audit event, the outbox rows and the next deadlines, and bumps the version
(SQLAlchemy checks it again on UPDATE, so a concurrent writer loses with ``StaleVersion``).
Any error leaves the session as it was: the caller rolls back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from models.tables import AuditEvent, AuditHead, Deadline, DeadlineStatus, Proposal, RefusedAttempt, StatefulItem
from notifications.outbox import enqueue_letters
from states import deadlines as clock_stop
from states import permissions
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import (
    BadDate,
    GuardRefused,
    InvalidInput,
    InvalidTrigger,
    MissingActor,
    NotFound,
    PeerwatchError,
    PermissionDenied,
    StaleVersion,
)
from states.kinds import CLOCK_TRIGGERS, Context, Effects, KindSpec, get_spec
from states.policy import Policy
from states.roles import AUDITOR, check_actor_role


@dataclass
class Outcome:
    row: StatefulItem
    event: AuditEvent
    queued: int
    proposed: bool = False  # a four-eyes trigger recorded, awaiting a second person


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
    if role == AUDITOR:
        raise PermissionDenied(f"role 'auditor' is read-only: it may not fire {trigger!r} on {kind} {item_id}")
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
    roles = permissions.roles_for(spec, trigger, rows)
    if role not in roles:
        raise PermissionDenied(
            f"role {role!r} may not fire {trigger!r} on {kind} {item_id}: needs one of {', '.join(sorted(roles)) or 'no role'}"
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

    confirmed: dict[str, Any] = {}
    if permissions.is_four_eyes(spec, trigger):
        proposal = _proposal(session, spec, row, trigger)
        if proposal is None:
            return _propose(session, spec, row, ctx)
        if proposal.actor.strip().lower() == ctx.actor.lower():
            raise GuardRefused(f"{trigger!r} on {kind} {item_id} needs four eyes: {proposal.actor} proposed it, "
                               "so a different person must confirm it")
        if _normal(proposal.params) != _normal(ctx.params):
            raise GuardRefused(f"{trigger!r} on {kind} {item_id} differs from what {proposal.actor} proposed "
                               f"({proposal.params}): confirm the same, or propose anew")
        confirmed = {"four_eyes": {"proposed_by": proposal.actor, "proposed_role": proposal.role,
                                   "proposed_at": proposal.at.isoformat()}}
        session.delete(proposal)

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
        data={**data, **confirmed, **({"params": _jsonable(ctx.params)} if ctx.params else {})},
    )
    append_audit(session, event)
    queued = enqueue_letters(session, spec, row, effects.letters, key=f"v{row.version}", clock=clock, today=today)
    for follow_up in effects.then:
        follow_up()
    session.flush()
    return Outcome(row=row, event=event, queued=queued)


def _proposal(session: Session, spec: KindSpec, row: StatefulItem, trigger: str) -> Proposal | None:
    """A proposal made at the item's current version (any later change voids it)."""
    return session.exec(select(Proposal).where(Proposal.kind == spec.name, Proposal.item_id == row.id,
                                               Proposal.trigger == trigger, Proposal.item_version == row.version)).first()


def _propose(session: Session, spec: KindSpec, row: StatefulItem, ctx: Context) -> Outcome:
    """First pair of eyes: record the proposal, audited; nothing else changes.

    The transition's effects are tried in a savepoint and rolled back, so a proposal that
    would be refused is refused now, not when the second person confirms it."""
    savepoint = session.begin_nested()
    try:
        with session.no_autoflush:
            spec.effects(ctx)
    finally:
        savepoint.rollback()
    session.refresh(row)  # the dry run's in-memory changes are gone
    row.updated_at = ctx.now
    flag_modified(row, "state")
    session.add(row)
    session.flush()
    session.add(Proposal(kind=spec.name, item_id=row.id, trigger=ctx.trigger, params=_jsonable(dict(ctx.params)),  # type: ignore[arg-type]
                         note=ctx.note, actor=ctx.actor, role=ctx.role, at=ctx.now, item_version=row.version))
    event = AuditEvent(kind=spec.name, item_id=row.id, at=ctx.now, actor=ctx.actor, role=ctx.role,  # type: ignore[arg-type]
                       trigger=f"propose:{ctx.trigger}", from_state=ctx.source, to_state=ctx.source, note=ctx.note,
                       version=row.version, data={"awaiting_second_person": True, **({"params": _jsonable(dict(ctx.params))} if ctx.params else {})})
    append_audit(session, event)
    session.flush()
    return Outcome(row=row, event=event, queued=0, proposed=True)


def _canonical(event: AuditEvent) -> bytes:
    return json.dumps({
        "kind": event.kind, "item_id": event.item_id, "at": event.at.astimezone(timezone.utc).isoformat(),
        "actor": event.actor, "role": event.role, "trigger": event.trigger, "from": event.from_state, "to": event.to_state,
        "note": event.note, "version": event.version, "data": event.data,
    }, sort_keys=True, separators=(",", ":"), default=str).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(event)).hexdigest()


def append_audit(session: Session, event: AuditEvent) -> None:
    """Append to the one hash chain; the head row is locked so concurrent appends queue, never fork."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, hash="", events=0)
    event.prev_hash = head.hash
    event.hash = event_hash(head.hash, event)
    head.hash, head.events = event.hash, head.events + 1
    session.add(head)
    session.add(event)


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, AuditEvent | None, str | None]:
    """Recompute the chain: (events checked, first broken event or None, what is wrong)."""
    prev, checked, last_id = "", 0, 0
    while True:
        events = list(session.exec(select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)))  # type: ignore[arg-type,operator]
        if not events:
            break
        for e in events:
            if e.prev_hash != prev:
                return checked, e, f"audit event {e.id} does not follow event {last_id or 'the start'}: the chain was cut or reordered"
            if e.hash != event_hash(prev, e):
                return checked, e, f"audit event {e.id} ({e.kind} {e.item_id} {e.trigger}) was changed after it was written"
            prev, last_id, checked = e.hash, e.id or last_id, checked + 1
    head = session.get(AuditHead, 1)
    if head is not None and head.hash != prev:
        return checked, None, "the last audit events were deleted: the chain head does not match the last event"
    return checked, None, None


def record_refusal(db: Engine, kind: str, item_id: int | None, trigger: str, actor: str, role: str, clock: Clock,
                   reason: str, params: Mapping[str, Any] | None = None) -> None:
    """Audit a refused attempt in its own transaction (the attempt itself changed nothing)."""
    with Session(db) as s:
        s.add(RefusedAttempt(kind=kind, item_id=item_id, trigger=trigger, actor=(actor or "").strip() or "(none)", role=role or "(none)",
                             at=clock.now(), reason=reason, data={"params": _jsonable(dict(params or {}))}))
        s.commit()


def fire_or_record(db: Engine, kind: str, item_id: int, trigger: str, *, actor: str, role: str, clock: Clock,
                   note: str | None = None, expected_version: int | None = None,
                   params: Mapping[str, Any] | None = None) -> tuple[Outcome, list[dict[str, Any]]]:
    """One manual transition in its own transaction; a refusal is audited and re-raised.

    Returns the outcome and the item's pending deadlines, read in the same transaction."""
    try:
        with Session(db, expire_on_commit=False) as s:
            out = fire(s, kind, item_id, trigger, actor=actor, role=role, clock=clock, note=note,
                       expected_version=expected_version, params=params)
            pending = [{"name": d.name, "due_on": d.due_on, "status": d.status} for d in pending_deadlines(s, kind, item_id)]
            s.commit()
            return out, pending
    except PeerwatchError as exc:
        record_refusal(db, kind, item_id, trigger, actor, role, clock, str(exc), params)
        raise


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


def _normal(value: Any) -> Any:
    """Parameters as they would be stored: JSON round-trip (int keys become strings)."""
    return json.loads(json.dumps(_jsonable(dict(value)), default=str, sort_keys=True))


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
