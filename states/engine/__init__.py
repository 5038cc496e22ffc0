"""The one engine: every transition of every kind goes through ``fire_many`` (``fire`` is a batch of one).

It loads the rows, checks each caller's version, the actor, the role and the date, fires
each trigger on the kind's shared machine, then in the caller's transaction writes the new
states, the audit events, the outbox rows and the next deadlines, and bumps the versions
(each row's UPDATE names the version it was read at, so a concurrent writer loses with
``StaleVersion``).
Any error leaves the session as it was: the caller rolls back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as select_core
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from models.bulk import execute_many
from models.db import begin_write
from models.tables import (
    OUTSTANDING,
    AuditEvent,
    AuditHead,
    Deadline,
    DeadlineStatus,
    Proposal,
    RefusedAttempt,
    StatefulItem,
)
from states import text as _entry_rule  # noqa: F401  (installs the one entry rule on every flush: states/text.py)
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.engine import deadlines as clock_stop
from states.engine import permissions
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
from states.machines.spec import CLOCK_TRIGGERS, Context, Effects, KindSpec, get_spec
from states.policy import Policy
from states.roles import AUDITOR, check_actor_role

_DEADLINE = Deadline.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_INSERT_DEADLINE = insert(_DEADLINE)
_INSERT_AUDIT = insert(_AUDIT)
_CLOSE_DEADLINE = (
    update(_DEADLINE).where(_DEADLINE.c.id == bindparam("d_id")).values(status=DeadlineStatus.CLOSED.value)
)


@dataclass(frozen=True)
class Request:
    """One transition asked of the engine."""

    kind: str
    item_id: int
    trigger: str
    note: str | None = None
    expected_version: int | None = None
    params: Mapping[str, Any] | None = None


@dataclass
class Event:
    """An audit event as written to the chain (``hash`` links it to the one before)."""

    kind: str
    item_id: int
    at: datetime
    actor: str
    role: str
    trigger: str
    from_state: str | None
    to_state: str
    note: str | None
    version: int
    data: dict[str, Any]
    prev_hash: str = ""
    hash: str = ""

    def row(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _EVENT_FIELDS}


_EVENT_FIELDS = (
    "kind",
    "item_id",
    "at",
    "actor",
    "role",
    "trigger",
    "from_state",
    "to_state",
    "note",
    "version",
    "data",
    "prev_hash",
    "hash",
)


@dataclass
class Outcome:
    row: StatefulItem
    event: Event
    queued: int
    proposed: bool = False  # a four-eyes trigger recorded, awaiting a second person


@dataclass
class _Plan:
    """A transition decided in memory, waiting for the batch's writes."""

    spec: KindSpec
    row: StatefulItem
    ctx: Context
    effects: Effects
    data: dict[str, Any]
    old_version: int
    event: Event | None = None
    queued: int = 0
    done: Outcome | None = None  # a four-eyes proposal: already written


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
    if not -(2**63) <= item_id < 2**63:  # beyond any database's integer: no such row (and no driver overflow)
        raise NotFound(f"{kind} {item_id} not found")
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
    """Fire ``trigger`` on one item (a batch of one); the caller commits."""
    return fire_many(
        session,
        [Request(kind, item_id, trigger, note, expected_version, params)],
        actor=actor,
        role=role,
        clock=clock,
        policy=policy,
    )[0]


def fire_many(
    session: Session,
    requests: list[Request],
    *,
    actor: str,
    role: str,
    clock: Clock,
    policy: Policy | None = None,
) -> list[Outcome]:
    """The one engine: fire each request, all or nothing; the caller commits (or rolls back on error).

    Every request is checked and fired on its kind's machine in memory first; then the batch
    is written at once: one executemany each for the rows' UPDATEs (version-checked, exactly
    one bump), closed deadlines, new deadlines, audit events (one lock of the
    chain head) and outbox rows, whatever the batch's size. The first refusal raises and
    names the item; a concurrent writer makes the batch raise ``StaleVersion``.
    """
    if not actor or not actor.strip():
        first = requests[0] if requests else None
        what = f" for {first.kind} {first.item_id} {first.trigger}" if first else ""
        raise MissingActor(f"no actor given{what}: name who is acting (--actor)")
    check_actor_role(role)
    if role == AUDITOR:
        raise PermissionDenied(
            "role 'auditor' is read-only: it may not fire "
            + ", ".join(f"{r.trigger!r} on {r.kind} {r.item_id}" for r in requests[:3])
        )
    seen: set[tuple[str, int]] = set()
    for r in requests:
        if (r.kind, r.item_id) in seen:
            raise InvalidInput(
                f"{r.kind} {r.item_id} appears twice in one batch: fire its transitions one after the other"
            )
        seen.add((r.kind, r.item_id))
    now = clock.now()
    today = local_date(now)
    policy = policy or Policy.from_env()
    if len(requests) > 1:
        session.flush()  # anything pending goes out before the batch is read
    loaded = _preload(session, requests)  # held until written: the identity map keeps rows only while referenced
    with session.no_autoflush:  # rows change in memory only until the batch is written
        plans = [_plan(session, r, actor.strip(), role, now, today, policy) for r in requests]
    _write(session, [p for p in plans if p.done is None], now, today)
    del loaded
    return [p.done or Outcome(row=p.row, event=p.event, queued=p.queued) for p in plans]  # type: ignore[arg-type]


def _preload(session: Session, requests: list[Request]) -> list[StatefulItem]:
    """A batch's rows in one IN query per kind, so each load is an identity-map hit."""
    if len(requests) < 2:
        return []
    by_kind: dict[str, list[int]] = {}
    for r in requests:
        by_kind.setdefault(r.kind, []).append(r.item_id)
    rows: list[StatefulItem] = []
    for kind, ids in by_kind.items():
        model = get_spec(kind).model
        for start in range(0, len(ids), 900):
            rows += session.exec(select(model).where(col(model.id).in_(ids[start : start + 900]))).all()
    return rows


def _plan(session: Session, req: Request, actor: str, role: str, now: datetime, today: date, policy: Policy) -> _Plan:
    """Check one request and fire it on the machine; the row changes in memory only."""
    kind, item_id, trigger, note = req.kind, req.item_id, req.trigger, req.note
    spec, row = load(session, kind, item_id)
    if req.expected_version is not None and row.version != req.expected_version:
        raise StaleVersion(
            f"{kind} {item_id} is at version {row.version}, not {req.expected_version}: "
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
    if local_date(row.updated_at) > today:
        raise BadDate(
            f"as-of {today.isoformat()} is before {kind} {item_id}'s last change on "
            f"{local_date(row.updated_at).isoformat()}: an item cannot move back in time"
        )
    ctx = Context(
        session=session,
        row=row,
        trigger=trigger,
        source=source,
        dest=source,
        params=dict(req.params or {}),
        now=now,
        today=today,
        calendar=calendar_for(spec.nation_of(session, row)),
        policy=policy,
        actor=actor,
        role=role,
        note=note,
    )

    # The kind's one machine fires its event on a throwaway carrier of the state and the
    # guards: no model is ever added to the machine, so nothing is bound or unbound.
    carrier = _Carrier(source, ctx, spec)
    fired = spec.machine.events[trigger].trigger(carrier)
    dest = carrier.state
    if not fired:
        unmet = [c for r in rows for c in (r.get("conditions") or []) if not spec.guards[c](ctx)]
        unmet += [f"not {c}" for r in rows for c in (r.get("unless") or []) if spec.guards[c](ctx)]
        raise GuardRefused(
            f"{trigger!r} on {kind} {item_id} refused in state '{source}': rule(s) {', '.join(dict.fromkeys(unmet))} not met"
        )
    ctx.dest = dest

    confirmed: dict[str, Any] = {}
    if permissions.is_four_eyes(spec, trigger):
        proposal = _proposal(session, spec, row, trigger)
        if proposal is None:
            return _Plan(spec, row, ctx, Effects(), {}, row.version, done=_propose(session, spec, row, ctx))
        if proposal.actor.strip().lower() == ctx.actor.lower():
            raise GuardRefused(
                f"{trigger!r} on {kind} {item_id} needs four eyes: {proposal.actor} proposed it, "
                "so a different person must confirm it"
            )
        if _normal(proposal.params) != _normal(ctx.params):
            raise GuardRefused(
                f"{trigger!r} on {kind} {item_id} differs from what {proposal.actor} proposed "
                f"({proposal.params}): confirm the same, or propose anew"
            )
        confirmed = {
            "four_eyes": {
                "proposed_by": proposal.actor,
                "proposed_role": proposal.role,
                "proposed_at": proposal.at.isoformat(),
            }
        }
        session.delete(proposal)

    old_version = row.version
    with session.no_autoflush:  # one UPDATE of the row, so exactly one version bump
        if trigger in CLOCK_TRIGGERS:
            data = clock_stop.apply(session, spec, row, ctx)
            effects = Effects()
        else:
            effects = spec.effects(ctx)  # may set fields on the row (counters, dates, scores)
            data = {"deadlines": {d.name: d.due_on.isoformat() for d in effects.deadlines}} if effects.deadlines else {}
        row.state = dest
        row.updated_at = now
        flag_modified(row, "state")  # an internal transition still bumps the version (the row is
        # already in the session: no add, which would walk its relationships for each row)
    data.update(confirmed)
    if ctx.params:
        data["params"] = _jsonable(ctx.params)
    return _Plan(spec, row, ctx, effects, data, old_version)


def _write(session: Session, plans: list[_Plan], now: datetime, today: date) -> None:
    """Write a batch of decided transitions: rows, deadlines, audit chain, outbox, follow-ups."""
    if not plans:
        return
    if not _update_rows(session, plans):
        raise StaleVersion(
            f"{plans[0].spec.name} {plans[0].row.id} was changed by someone else while {plans[0].ctx.trigger!r} fired; retry"
            if len(plans) == 1
            else f"one of {len(plans)} items was changed by someone else while the batch fired; retry"
        )
    try:
        session.flush()  # whatever else the effects changed (deadlines, a proposal consumed)
    except StaleDataError:
        raise StaleVersion(
            f"a row {plans[0].ctx.trigger!r} touched was changed by someone else meanwhile; retry"
        ) from None
    for p in plans:
        if p.row.version != p.old_version + 1:  # pragma: no cover - a bug, not an operator error
            raise RuntimeError(
                f"{p.spec.name} {p.row.id}: version moved {p.old_version} -> {p.row.version} in one transition"
            )
    _close_deadlines(
        session,
        [
            p
            for p in plans
            if p.effects.deadlines or (p.ctx.dest != p.ctx.source and p.ctx.trigger not in CLOCK_TRIGGERS)
        ],
    )
    new = [
        {
            "kind": p.spec.name,
            "item_id": p.row.id,
            "name": d.name,
            "due_on": d.due_on,
            "remind_on": d.remind_on,
            "reminded": False,
            "due_day_notified": False,
            "status": DeadlineStatus.OPEN.value,
            "paused_remaining": None,
            "nation": p.ctx.calendar.nation,
            "created_at": now,
        }
        for p in plans
        for d in p.effects.deadlines
    ]
    if new:
        execute_many(session.connection(), _INSERT_DEADLINE, new)
    for p in plans:
        c = p.ctx
        p.event = Event(
            kind=p.spec.name,
            item_id=p.row.id,
            at=now,
            actor=c.actor,
            role=c.role,
            trigger=c.trigger,  # type: ignore[arg-type]
            from_state=c.source,
            to_state=c.dest,
            note=c.note,
            version=p.row.version,
            data=p.data,
        )
    append_audit(session, [p.event for p in plans if p.event is not None])
    _letters(session, [p for p in plans if p.effects.letters], now, today)
    thens = [f for p in plans for f in p.effects.then]
    for follow_up in thens:
        follow_up()
    if thens:
        session.flush()


@lru_cache(maxsize=256)
def _versioned_update(model: type, names: tuple[str, ...]) -> Any:
    """UPDATE one row's ``names`` and its version, WHERE its id and the version it was read at
    (one statement object per kind and set of columns, so it is compiled once)."""
    table = model.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("_id"), table.c.version == bindparam("_read_version"))
        .values(
            {name: bindparam(f"_v_{name}", type_=table.c[name].type) for name in names}
            | {"version": bindparam("_version")}
        )
    )


def _update_rows(session: Session, plans: list[_Plan]) -> bool:
    """Write the batch's rows: one executemany per kind and set of changed columns, each row's
    WHERE naming its id and the version it was read at, so a row changed meanwhile matches
    nothing. Returns False if any did not match (the caller raises; the transaction is rolled
    back). The rows are then marked clean with the new version, as a flush leaves them.

    The ORM would send one UPDATE per versioned row; this is the same statement, batched.
    If any row's in-memory changes are not plain columns (a relationship), the batch goes
    through the ORM's flush instead, checked against each version there."""
    groups: dict[tuple[type, tuple[str, ...]], list[tuple[_Plan, Any]]] = {}
    for p in plans:
        state = sa_inspect(p.row)
        groups.setdefault((type(p.row), tuple(sorted(state.committed_state))), []).append((p, state))
    props_of = {group: [sa_inspect(group[0]).attrs.get(k) for k in group[1] if k != "version"] for group in groups}
    if not all(isinstance(prop, ColumnProperty) for props in props_of.values() for prop in props):
        try:
            session.flush()  # the ORM's own version-checked UPDATE per row
        except StaleDataError:
            return False
        return True
    conn = session.connection()
    done: list[tuple[Any, dict[str, Any]]] = []
    for (model, keys), members in groups.items():
        props = props_of[(model, keys)]
        columns = [(prop.key, prop.columns[0]) for prop in props]  # type: ignore[union-attr]
        stmt = _versioned_update(model, tuple(c.name for _, c in columns))
        params = [
            {
                **{f"_v_{c.name}": state.dict.get(key) for key, c in columns},
                "_id": p.row.id,
                "_read_version": p.old_version,
                "_version": p.old_version + 1,
            }
            for p, state in members
        ]
        if conn.dialect.supports_sane_multi_rowcount:
            matched = execute_many(conn, stmt, params)
        else:  # pragma: no cover - both supported dialects count an executemany's rows
            matched = sum(conn.execute(stmt, one).rowcount for one in params)
        if matched != len(members):
            return False
        for p, state in members:
            state.dict["version"] = p.old_version + 1
            done.append((state, state.dict))
    # What the ORM does to each row after its own flush (SQLAlchemy's internals, pinned in
    # constraints.txt): clean, at the new version, and known to the transaction as altered, so a
    # rolled-back savepoint or transaction expires them back to what the database holds.
    InstanceState._commit_all_states(done, session.identity_map)
    session._register_altered([state for state, _ in done])
    return True


def _letters(session: Session, plans: list[_Plan], now: datetime, today: date) -> None:
    """Compose every plan's letters (quoting its deadlines as now written) and write them at once."""
    from states.engine import letters as outbox  # Jinja2 loads with the first letter, not with the CLI

    by_kind: dict[str, list[_Plan]] = {}
    for p in plans:
        by_kind.setdefault(p.spec.name, []).append(p)
    composed: list[tuple[_Plan, Any]] = []
    outbox.prefetch_recipients(session, [(p.spec, p.row, p.effects.letters) for p in plans], on=today)
    for kind, group in by_kind.items():
        deadlines = outbox.open_deadlines(session, kind, [p.row.id for p in group])  # type: ignore[misc]
        for p in group:
            composed += [
                (p, m)
                for m in outbox.compose(
                    session,
                    p.spec,
                    p.row,
                    p.effects.letters,
                    key=f"v{p.row.version}",
                    now=now,
                    today=today,
                    deadlines=deadlines.get(p.row.id, {}),
                )
            ]  # type: ignore[arg-type]
    written = {id(m) for m in outbox.write(session, [m for _, m in composed])}
    for p, m in composed:
        p.queued += id(m) in written


def _proposal(session: Session, spec: KindSpec, row: StatefulItem, trigger: str) -> Proposal | None:
    """A proposal made at the item's current version (any later change voids it)."""
    return session.exec(
        select(Proposal).where(
            Proposal.kind == spec.name,
            Proposal.item_id == row.id,
            Proposal.trigger == trigger,
            Proposal.item_version == row.version,
        )
    ).first()


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
    session.add(
        Proposal(
            kind=spec.name,
            item_id=row.id,
            trigger=ctx.trigger,
            params=_jsonable(dict(ctx.params)),  # type: ignore[arg-type]
            note=ctx.note,
            actor=ctx.actor,
            role=ctx.role,
            at=ctx.now,
            item_version=row.version,
        )
    )
    event = Event(
        kind=spec.name,
        item_id=row.id,
        at=ctx.now,
        actor=ctx.actor,
        role=ctx.role,  # type: ignore[arg-type]
        trigger=f"propose:{ctx.trigger}",
        from_state=ctx.source,
        to_state=ctx.source,
        note=ctx.note,
        version=row.version,
        data={"awaiting_second_person": True, **({"params": _jsonable(dict(ctx.params))} if ctx.params else {})},
    )
    append_audit(session, [event])
    session.flush()
    return Outcome(row=row, event=event, queued=0, proposed=True)


def _canonical(event: AuditEvent) -> bytes:
    return json.dumps(
        {
            "kind": event.kind,
            "item_id": event.item_id,
            "at": event.at.astimezone(UTC).isoformat(),
            "actor": event.actor,
            "role": event.role,
            "trigger": event.trigger,
            "from": event.from_state,
            "to": event.to_state,
            "note": event.note,
            "version": event.version,
            "data": event.data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(event)).hexdigest()


def append_audit(session: Session, events: list[Event]) -> None:
    """Append events to the one hash chain, in order: the head row is locked (FOR UPDATE on
    PostgreSQL; SQLite's single writer) so concurrent appends queue, never fork."""
    if not events:
        return
    head = session.execute(select_core(_HEAD.c.hash, _HEAD.c.events).where(_HEAD.c.id == 1).with_for_update()).first()
    prev = head.hash if head is not None else ""
    for e in events:
        e.prev_hash = prev
        e.hash = prev = event_hash(prev, e)
    execute_many(session.connection(), _INSERT_AUDIT, [e.row() for e in events])
    if head is None:
        session.execute(insert(_HEAD), [{"id": 1, "hash": prev, "events": len(events)}])
    else:
        session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(hash=prev, events=head.events + len(events)))


def record_change(
    session: Session,
    kind: str,
    item_id: int,
    action: str,
    *,
    actor: str,
    role: str,
    clock: Clock,
    state: str,
    from_state: str | None = None,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Event:
    """Audit a change a person made that is not a state machine's transition (a contact edited,
    a milestone recorded or done, a letter queued again): who, in which role, when, what, on
    the same hash chain as every transition, in the caller's transaction (the caller commits).
    ``kind`` names the table (contact, reviewer, milestone, outbox); ``version`` counts the
    item's audited changes."""
    if not actor or not actor.strip():
        raise MissingActor(f"no actor given for {action} on {kind} {item_id}: name who is acting (--actor)")
    check_actor_role(role)
    if role == AUDITOR:
        raise PermissionDenied(f"role 'auditor' is read-only: it may not {action} {kind} {item_id}")
    session.flush()
    before = session.execute(
        select_core(func.count()).select_from(_AUDIT).where(_AUDIT.c.kind == kind, _AUDIT.c.item_id == item_id)
    ).scalar_one()
    event = Event(
        kind=kind,
        item_id=item_id,
        at=clock.now(),
        actor=actor.strip(),
        role=role,
        trigger=action,
        from_state=from_state,
        to_state=state,
        note=note,
        version=before + 1,
        data=_jsonable(dict(data or {})),
    )
    append_audit(session, [event])
    return event


def changes(session: Session, kind: str, item_ids: list[int]) -> list[AuditEvent]:
    """The audited changes of these items of a table (``record_change``), oldest first."""
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == kind, col(AuditEvent.item_id).in_(item_ids))
            .order_by(AuditEvent.id)
        )
    )  # type: ignore[arg-type]


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, AuditEvent | None, str | None]:
    """Recompute the chain: (events checked, first broken event or None, what is wrong)."""
    prev, checked, last_id = "", 0, 0
    while True:
        events = list(
            session.exec(select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch))
        )  # type: ignore[arg-type,operator]
        if not events:
            break
        for e in events:
            if e.prev_hash != prev:
                return (
                    checked,
                    e,
                    f"audit event {e.id} does not follow event {last_id or 'the start'}: the chain was cut or reordered",
                )
            if e.hash != event_hash(prev, e):
                return (
                    checked,
                    e,
                    f"audit event {e.id} ({e.kind} {e.item_id} {e.trigger}) was changed after it was written",
                )
            prev, last_id, checked = e.hash, e.id or last_id, checked + 1
    head = session.execute(select_core(_HEAD.c.hash).where(_HEAD.c.id == 1)).first()
    if head is not None and head.hash != prev:
        return checked, None, "the last audit events were deleted: the chain head does not match the last event"
    return checked, None, None


def record_refusal(
    db: Engine,
    kind: str,
    item_id: int | None,
    trigger: str,
    actor: str,
    role: str,
    clock: Clock,
    reason: str,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Audit a refused attempt in its own transaction (the attempt itself changed nothing)."""
    data: dict[str, Any] = {"params": _jsonable(dict(params or {}))}
    if item_id is not None and not -(2**63) <= item_id < 2**63:  # no such row can exist: keep the id as typed
        data["item_id"], item_id = str(item_id), None
    with Session(db) as s:
        s.add(
            RefusedAttempt(
                kind=kind,
                item_id=item_id,
                trigger=trigger,
                actor=(actor or "").strip() or "(none)",
                role=role or "(none)",
                at=clock.now(),
                reason=reason,
                data=data,
            )
        )
        s.commit()


def fire_or_record(
    db: Engine,
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
) -> tuple[Outcome, list[dict[str, Any]]]:
    """One manual transition in its own transaction; a refusal is audited and re-raised.

    Returns the outcome and the item's pending deadlines, read in the same transaction."""
    try:
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            out = fire(
                s,
                kind,
                item_id,
                trigger,
                actor=actor,
                role=role,
                clock=clock,
                note=note,
                expected_version=expected_version,
                params=params,
            )
            pending = [
                {"name": d.name, "due_on": d.due_on, "status": d.status} for d in pending_deadlines(s, kind, item_id)
            ]
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
    return create_many(
        session, kind, [row], trigger, actor=actor, role=role, clock=clock, note=note, params=[params or {}]
    )[0]


def create_many(
    session: Session,
    kind: str,
    rows: list[StatefulItem],
    trigger: str,
    *,
    actor: str,
    role: str,
    clock: Clock,
    note: str | None = None,
    params: list[Mapping[str, Any]] | None = None,
    policy: Policy | None = None,
) -> list[Outcome]:
    """Insert new items in their kind's initial state and fire each one's opening trigger, as
    one ``fire_many`` batch (``params``: one mapping per row)."""
    spec = get_spec(kind)
    if not actor or not actor.strip():
        raise MissingActor(f"no actor given to {trigger} a {kind}: name who is acting (--actor)")
    if params is not None and len(params) != len(rows):
        raise InvalidInput(f"{len(rows)} new {kind} rows but {len(params)} parameter sets")
    now = clock.now()
    for row in rows:
        row.state = spec.initial.value
        row.created_at = row.updated_at = now
    session.add_all(rows)
    session.flush()
    requests = [Request(kind, row.id, trigger, note, None, p) for row, p in zip(rows, params or [{}] * len(rows))]  # type: ignore[arg-type]
    return fire_many(session, requests, actor=actor, role=role, clock=clock, policy=policy) if requests else []


def _close_deadlines(session: Session, plans: list[_Plan]) -> None:
    """Leaving a state closes its outstanding deadlines, except those whose rule runs through
    the new state; a new deadline replaces an outstanding one of the same name. One query
    per kind, one executemany."""
    by_kind: dict[str, dict[int, _Plan]] = {}
    for p in plans:
        by_kind.setdefault(p.spec.name, {})[p.row.id] = p  # type: ignore[index]
    closing: list[int] = []
    for kind, items in by_kind.items():
        ids = list(items)
        for start in range(0, len(ids), 900):
            for d_id, item_id, name in session.execute(
                select_core(_DEADLINE.c.id, _DEADLINE.c.item_id, _DEADLINE.c.name).where(
                    _DEADLINE.c.kind == kind,
                    _DEADLINE.c.item_id.in_(ids[start : start + 900]),
                    _DEADLINE.c.status.in_([s.value for s in OUTSTANDING]),
                )
            ):
                p = items[item_id]
                rule = p.spec.deadline_rules.get(name)
                moved = p.ctx.dest != p.ctx.source and p.ctx.trigger not in CLOCK_TRIGGERS
                if (moved and (rule is None or p.ctx.dest not in rule.runs_through)) or any(
                    d.name == name for d in p.effects.deadlines
                ):
                    closing.append(d_id)
    if not closing:
        return
    execute_many(session.connection(), _CLOSE_DEADLINE, [{"d_id": i} for i in closing])
    for i in closing:  # keep loaded Deadline objects true to the database
        loaded = session.identity_map.get(identity_key(Deadline, i))
        if loaded is not None:
            set_committed_value(loaded, "status", DeadlineStatus.CLOSED)


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
    return list(
        session.exec(
            select(AuditEvent).where(AuditEvent.kind == kind, AuditEvent.item_id == item_id).order_by(AuditEvent.id)  # type: ignore[arg-type]
        )
    )


def pending_deadlines(session: Session, kind: str, item_id: int) -> list[Deadline]:
    """The item's outstanding deadlines (open, paused, or passed with the overdue letter sent), by date."""
    return list(
        session.exec(
            select(Deadline)
            .where(
                Deadline.kind == kind,
                Deadline.item_id == item_id,
                Deadline.status.in_(OUTSTANDING),  # type: ignore[attr-defined]
            )
            .order_by(Deadline.due_on)  # type: ignore[arg-type]
        )
    )
