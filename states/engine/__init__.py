"""The one engine: every transition of every kind goes through ``fire_many`` (``fire`` is a batch of one).

It loads the rows, checks each caller's version, the principal's role in the item's scope and
the date, fires
each trigger on the kind's shared machine, then in the caller's transaction writes the new
states, the audit events, the outbox rows and the next deadlines, and bumps the versions
(each row's UPDATE names the version it was read at, so a concurrent writer loses with
``StaleVersion``); then it fires the follow-on requests the effects name (``FollowOn``).
Any error leaves the session as it was: the caller rolls back.

The batched writes are in ``states/engine/write.py``, the audit chain in
``states/engine/audit.py``; their public names are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col, select

from models.db import begin_write
from models.tables import AuditEvent, Deadline, Proposal, StatefulItem
from models.types import is_row_id
from states import permissions
from states import text as _entry_rule  # noqa: F401  (installs the one entry rule on every flush: states/text.py)
from states.calendar import calendar_for
from states.clock import Clock, FixedClock, local_date
from states.engine import deadlines as clock_stop
from states.engine.audit import (
    Event,
    append_audit,
    changes,
    event_hash,
    jsonable,
    record_change,
    record_refusal,
    verify_chain,
    with_via,
)
from states.engine.write import Outcome, Plan, link, write_letters, write_rows
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
from states.machines.spec import CLOCK_TRIGGERS, Context, Effects, KindSpec, get_spec, outstanding_deadlines
from states.policy import Policy
from states.principal import Principal
from states.roles import SYSTEM

__all__ = [
    "Event",
    "Outcome",
    "Request",
    "append_audit",
    "changes",
    "create",
    "create_many",
    "event_hash",
    "fire",
    "fire_many",
    "fire_or_record",
    "history",
    "load",
    "pending_deadlines",
    "record_change",
    "record_refusal",
    "verify_chain",
]


@dataclass(frozen=True)
class Request:
    """One transition asked of the engine."""

    kind: str
    item_id: int
    trigger: str
    note: str | None = None
    expected_version: int | None = None
    params: Mapping[str, Any] | None = None


def load(session: Session, kind: str, item_id: int) -> tuple[KindSpec, StatefulItem]:
    spec = get_spec(kind)
    if not is_row_id(item_id):  # beyond every database's integer: no such row (and no overflow)
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
    principal: Principal,
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
        principal=principal,
        clock=clock,
        policy=policy,
    )[0]


def fire_many(
    session: Session,
    requests: list[Request],
    *,
    principal: Principal,
    clock: Clock,
    policy: Policy | None = None,
) -> list[Outcome]:
    """The one engine: fire each request, all or nothing; the caller commits (or rolls back on error).

    Every request is checked and fired on its kind's machine in memory first; then the batch
    is written at once: one executemany each for the rows' UPDATEs (version-checked, exactly
    one bump), closed deadlines, new deadlines, audit events (one lock of the
    chain head) and outbox rows, whatever the batch's size. The first refusal raises and
    names the item; a concurrent writer makes the batch raise ``StaleVersion``.

    ``principal`` acts in a role it holds in each item's scope that the trigger allows
    (``Principal.choose``); the system principal acts as ``system`` everywhere. The
    permission table is read once per batch.
    """
    if not isinstance(principal, Principal) or principal.user_id is None:
        raise MissingActor("nobody is identified as acting: sign in (or map your OS account to a peerwatch user)")
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
    loaded = preload(session, requests)  # held until written: the identity map keeps rows only while referenced
    rules = permissions.rules(session)  # one read of the permission table per batch
    with session.no_autoflush:  # rows change in memory only until the batch is written
        plans = [_plan(session, r, principal, rules, now, today, policy) for r in requests]
    _write(session, [p for p in plans if p.done is None], principal, now, today)
    del loaded
    return [p.done or Outcome(row=p.row, event=p.event, queued=p.queued) for p in plans]  # type: ignore[arg-type]


def _write(session: Session, plans: list[Plan], principal: Principal, now: datetime, today: date) -> None:
    """Write a batch of decided transitions: rows and deadlines, linked follow-ons, audit chain,
    outbox, then the other follow-ons."""
    if not plans:
        return
    write_rows(session, plans, now, today)
    _follow_on(session, plans, principal, linked=True)
    _write_events(session, plans, principal, now, today)
    _follow_on(session, plans, principal, linked=False)
    thens = [f for p in plans for f in p.effects.then]
    for follow_up in thens:
        follow_up()
    if thens:
        session.flush()


def _write_events(session: Session, plans: list[Plan], principal: Principal, now: datetime, today: date) -> None:
    """Append the batch's audit events to the chain and write its letters."""
    for p in plans:
        c = p.ctx
        p.event = Event(
            kind=p.spec.name,
            item_id=p.row.id,  # type: ignore[arg-type]
            at=now,
            actor=c.actor,
            role=c.role,
            trigger=c.trigger,
            from_state=c.source,
            to_state=c.dest,
            note=c.note,
            version=p.row.version,
            data=with_via(p.data, principal.via),
            user_id=c.user_id,
        )
    append_audit(session, [p.event for p in plans if p.event is not None])
    write_letters(session, [p for p in plans if p.effects.letters], now, today)


def _follow_on(session: Session, plans: list[Plan], principal: Principal, *, linked: bool) -> None:
    """Fire the requests on other items the effects name, as the same principal in the same
    role (when it fits), at the same time."""
    for p in plans:
        for f in p.effects.follow_on:
            if (f.link is not None) != linked:
                continue
            acting = principal if principal.is_system else principal.acting_as(p.ctx.role)
            who = {"principal": acting, "clock": FixedClock(p.ctx.now), "note": f.note}
            if f.new is None:
                assert f.item_id is not None
                fire(session, f.kind, f.item_id, f.trigger, params=f.params, **who)  # type: ignore[arg-type]
                continue
            out = create(session, f.kind, f.new, f.trigger, params=f.params, **who)  # type: ignore[arg-type]
            if f.link is not None:
                link(session, p.row, f.link, out.row.id)


def preload(session: Session, requests: list[Request]) -> list[StatefulItem]:
    """A batch's rows in one IN query per kind, so each load is an identity-map hit.

    Public as a test seam: tests replace it to act between the read and the write."""
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


def _plan(
    session: Session,
    req: Request,
    principal: Principal,
    rules: permissions.Rules,
    now: datetime,
    today: date,
    policy: Policy,
) -> Plan:
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
    roles = permissions.roles_for(spec, trigger, rows, rules)
    if principal.is_system:
        if SYSTEM not in roles:
            raise PermissionDenied(f"the sweep may not fire {trigger!r} on {kind} {item_id}: it is a person's act")
        role = SYSTEM
    else:
        role = principal.choose(
            roles, lambda: spec.recipient_scope(session, row), f"fire {trigger!r} on {kind} {item_id}"
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
        actor=principal.name,
        role=role,
        note=note,
        kind=kind,
        user_id=principal.user_id,
        via=principal.via,
    )

    # The kind's one machine decides the destination and the guards (no model is bound to it).
    dest = spec.next_state(trigger, source, ctx)
    if dest is None:
        unmet = spec.unmet_guards(trigger, source, ctx)
        raise GuardRefused(
            f"{trigger!r} on {kind} {item_id} refused in state '{source}': rule(s) {', '.join(unmet)} not met"
        )
    ctx.dest = dest

    confirmed: dict[str, Any] = {}
    if permissions.is_four_eyes(spec, trigger, rules):
        proposal = _proposal(session, spec, row, trigger)
        if proposal is None:
            return Plan(spec, row, ctx, Effects(), {}, row.version, done=_propose(session, spec, row, ctx))
        if proposal.user_id == ctx.user_id:
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
                "proposed_by_user_id": proposal.user_id,
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
            effects = spec.act(ctx)  # may set fields on the row (counters, dates, scores)
            data = {"deadlines": {d.name: d.due_on.isoformat() for d in effects.deadlines}} if effects.deadlines else {}
            if effects.move:  # recorded, so the audit replay knows the new due date (states/engine/replay.py)
                data["moved_deadlines"] = {m.name: m.due_on.isoformat() for m in effects.move}
        row.state = dest
        row.updated_at = now
        flag_modified(row, "state")  # an internal transition still bumps the version (the row is
        # already in the session: no add, which would walk its relationships for each row)
    data.update(confirmed)
    if ctx.params:
        data["params"] = jsonable(ctx.params)
    return Plan(spec, row, ctx, effects, data, old_version)


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
            spec.act(ctx)
    finally:
        savepoint.rollback()
    session.refresh(row)  # the dry run's in-memory changes are gone
    row.updated_at = ctx.now
    flag_modified(row, "state")
    session.add(row)
    session.flush()
    assert row.id is not None
    session.add(
        Proposal(
            kind=spec.name,
            item_id=row.id,
            trigger=ctx.trigger,
            params=jsonable(dict(ctx.params)),
            note=ctx.note,
            actor=ctx.actor,
            role=ctx.role,
            at=ctx.now,
            item_version=row.version,
            user_id=ctx.user_id,
        )
    )
    event = Event(
        kind=spec.name,
        item_id=row.id,
        at=ctx.now,
        actor=ctx.actor,
        role=ctx.role,
        trigger=f"propose:{ctx.trigger}",
        from_state=ctx.source,
        to_state=ctx.source,
        note=ctx.note,
        version=row.version,
        data=with_via(
            {"awaiting_second_person": True, **({"params": jsonable(dict(ctx.params))} if ctx.params else {})},
            ctx.via,
        ),
        user_id=ctx.user_id,
    )
    append_audit(session, [event])
    session.flush()
    return Outcome(row=row, event=event, queued=0, proposed=True)


def fire_or_record(
    db: Engine,
    kind: str,
    item_id: int,
    trigger: str,
    *,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
    expected_version: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """One manual transition in its own transaction; a refusal is audited (with the account
    that tried) and re-raised.

    Returns the outcome and the item's pending deadlines, read in the same transaction."""
    try:
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            out = fire(
                s,
                kind,
                item_id,
                trigger,
                principal=principal,
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
        record_refusal(db, kind, item_id, trigger, principal, principal.prefer, clock, str(exc), params)
        exc.recorded = True  # type: ignore[attr-defined]  # the entry point need not record it again
        raise


def create(
    session: Session,
    kind: str,
    row: StatefulItem,
    trigger: str,
    *,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Outcome:
    """Insert a new item in its kind's initial state and fire its opening trigger."""
    return create_many(
        session, kind, [row], trigger, principal=principal, clock=clock, note=note, params=[params or {}]
    )[0]


def create_many(
    session: Session,
    kind: str,
    rows: list[StatefulItem],
    trigger: str,
    *,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
    params: list[Mapping[str, Any]] | None = None,
    policy: Policy | None = None,
) -> list[Outcome]:
    """Insert new items in their kind's initial state and fire each one's opening trigger, as
    one ``fire_many`` batch (``params``: one mapping per row)."""
    spec = get_spec(kind)
    if not isinstance(principal, Principal):
        raise MissingActor(f"nobody is identified as acting to {trigger} a {kind}: sign in")
    if params is not None and len(params) != len(rows):
        raise InvalidInput(f"{len(rows)} new {kind} rows but {len(params)} parameter sets")
    now = clock.now()
    for row in rows:
        row.state = spec.initial.value
        row.created_at = row.updated_at = now
    session.add_all(rows)
    session.flush()
    requests = [Request(kind, row.id, trigger, note, None, p) for row, p in zip(rows, params or [{}] * len(rows))]  # type: ignore[arg-type]
    return fire_many(session, requests, principal=principal, clock=clock, policy=policy) if requests else []


def _normal(value: Any) -> Any:
    """Parameters as they would be stored: JSON round-trip (int keys become strings)."""
    return json.loads(json.dumps(jsonable(dict(value)), default=str, sort_keys=True))


def history(session: Session, kind: str, item_id: int) -> list[AuditEvent]:
    load(session, kind, item_id)
    return list(
        session.exec(
            select(AuditEvent).where(AuditEvent.kind == kind, AuditEvent.item_id == item_id).order_by(AuditEvent.id)  # type: ignore[arg-type]
        )
    )


def pending_deadlines(session: Session, kind: str, item_id: int) -> list[Deadline]:
    """The item's outstanding deadlines (open, paused, or passed with the overdue letter sent), by date."""
    return outstanding_deadlines(session, kind, item_id)
