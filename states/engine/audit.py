"""The audit chain: every transition and every audited change, one keyed hash chain.

Each event's hash is an HMAC-SHA-256, under a key kept outside the database
(``states/engine/keys.py``), of the hash before it (``prev_hash``) and its own canonical JSON,
so an event changed, removed or reordered after it was written breaks the chain
(``verify_chain``), and nobody without the key can re-hash a rewritten chain. Events written
before revision 0011 carry a plain SHA-256 (``key_id`` None).
The single ``audit_head`` row holds the last hash; appending locks it, so concurrent writers
queue and the chain never forks. Refused attempts are audited apart (``record_refusal``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy import select as select_core
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.bulk import execute_many
from models.tables import AuditEvent, AuditHead, RefusedAttempt
from models.types import is_row_id
from states.clock import Clock
from states.engine import keys as audit_keys
from states.errors import PermissionDenied
from states.principal import Principal
from states.roles import AUDITOR

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_INSERT_AUDIT = insert(_AUDIT)


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
    user_id: int | None = None
    recorded_at: datetime | None = None
    key_id: str | None = None
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
    "user_id",
    "recorded_at",
    "key_id",
    "prev_hash",
    "hash",
)


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: mappings and sequences walked, anything else as text."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# How an account was authenticated, recorded in the event's data when it is not the plain
# command line (peer authentication) or the system: through sudo as the service account, a
# personal access token, ``--as`` in a training database, or a web session.
NOTED_VIA = frozenset({"sudo", "token", "training", "web"})


def with_via(data: dict[str, Any], via: str | None) -> dict[str, Any]:
    """``data`` with ``{"via": ...}`` added when the authentication is worth recording."""
    return {**data, "via": via} if via in NOTED_VIA else data


def _canonical(event: Any) -> bytes:
    body = _body(event)
    if event.key_id is not None:  # keyed events (revision 0011 on) also cover who and when recorded
        recorded = event.recorded_at
        body |= {
            "user_id": event.user_id,
            "recorded_at": recorded.astimezone(UTC).isoformat() if recorded is not None else None,
            "key_id": event.key_id,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _body(event: Any) -> dict[str, Any]:
    return {
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
    }


def event_hash(prev_hash: str, event: AuditEvent | Event | Any, key: bytes | None = None) -> str:
    """The event's link in the chain: HMAC-SHA-256 under ``key`` (plain SHA-256 for the
    unkeyed events written before revision 0011, ``key`` None). ``event``: anything with the
    audit table's fields (an ``Event``, an ``AuditEvent``, a row of the table)."""
    message = prev_hash.encode() + b"\n" + _canonical(event)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def append_audit(session: Session, events: list[Event]) -> None:
    """Append events to the one hash chain, in order: the head row is locked (FOR UPDATE on
    PostgreSQL; SQLite's single writer) so concurrent appends queue, never fork."""
    if not events:
        return
    key_id, key = audit_keys.load().signing()  # type: ignore[union-attr]  # required: raises without a key
    recorded = datetime.now(UTC)  # the wall clock, whatever clock the action ran on
    head = session.execute(select_core(_HEAD.c.hash, _HEAD.c.events).where(_HEAD.c.id == 1).with_for_update()).first()
    prev = head.hash if head is not None else ""
    for e in events:
        e.recorded_at, e.key_id = recorded, key_id
        e.prev_hash = prev
        e.hash = prev = event_hash(prev, e, key)
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
    principal: Principal,
    role: str | None = None,
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
    item's audited changes. ``role`` is the role the use case decided the principal acts in
    (default: the one it asked for, else its first)."""
    role = role or principal.prefer or (principal.roles() or ["(none)"])[0]
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
        actor=principal.name,
        role=role,
        trigger=action,
        from_state=from_state,
        to_state=state,
        note=note,
        version=before + 1,
        data=with_via(jsonable(dict(data or {})), principal.via),
        user_id=principal.user_id,
    )
    append_audit(session, [event])
    return event


def changes(session: Session, kind: str, item_ids: list[int]) -> list[AuditEvent]:
    """The audited changes of these items of a table (``record_change``), oldest first."""
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == kind, col(AuditEvent.item_id).in_(item_ids))
            .order_by(col(AuditEvent.id))
        )
    )


@dataclass
class ChainReport:
    """What ``check_chain`` found: the events verified (``unkeyed`` of them the plain-SHA-256
    prefix written before revision 0011), the last one's id and hash, and the first problem."""

    checked: int = 0
    unkeyed: int = 0
    last_id: int = 0
    last_hash: str = ""
    broken: AuditEvent | None = None
    problem: str | None = None
    unsealed: bool = False  # the only problem: an unkeyed chain no keyed event seals (an old backup's)


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, AuditEvent | None, str | None]:
    """Recompute the chain: (events checked, first broken event or None, what is wrong).
    Raises ``NoAuditKey`` when it cannot verify (``check_chain``)."""
    report = check_chain(session, batch)
    return report.checked, report.broken, report.problem


def check_chain(session: Session, batch: int = 5000, after: int = 0) -> ChainReport:
    """Recompute the chain from its first event (or from the event after ``after``, taking
    that event's stored hash as proven, e.g. by an anchor), ``batch`` events a query.

    Raises ``NoAuditKey`` when no key is configured (or the key file can be read by others):
    without the key the chain cannot be verified, and saying "intact" would be a lie.
    Unkeyed events (plain SHA-256, written before revision 0011) are accepted only as a prefix
    that a keyed event seals (its HMAC covers the prefix's last hash); an unkeyed event after
    a keyed one, an unkeyed event carrying what only keyed events record (``user_id``,
    ``recorded_at``), and a chain of unkeyed events that no keyed event seals (what re-hashing
    the whole chain with plain SHA-256 leaves) are problems (``unsealed`` for the last)."""
    keys = audit_keys.load(required=False)
    if keys is None:  # even an empty or unkeyed chain: without the key nothing is said to be intact
        raise audit_keys.NoAuditKey(
            "cannot verify the audit chain: no audit key is configured "
            "(PEERWATCH_AUDIT_KEY or PEERWATCH_AUDIT_KEY_FILE); nothing was checked"
        )
    out = ChainReport()
    prev, keyed_seen = "", False
    if after:
        start = session.get(AuditEvent, after)
        if start is None:
            out.problem = f"audit event {after} is not in the chain: it was cut"
            return out
        prev, keyed_seen, out.last_id, out.last_hash = start.hash, start.key_id is not None, after, start.hash

    def broken(e: Any, problem: str) -> ChainReport:
        out.broken, out.problem = session.get(AuditEvent, e.id), problem
        return out

    while True:  # plain rows, not ORM objects: a third of the time on a large chain
        events = session.execute(
            select_core(_AUDIT).where(_AUDIT.c.id > out.last_id).order_by(_AUDIT.c.id).limit(batch)
        ).all()
        if not events:
            break
        for e in events:
            if e.prev_hash != prev:
                return broken(
                    e,
                    f"audit event {e.id} does not follow event {out.last_id or 'the start'}: the chain was cut or reordered",
                )
            key: bytes | None = None
            if e.key_id is None:
                if keyed_seen:
                    return broken(e, f"audit event {e.id} is unkeyed after keyed events: it was forged")
                if e.user_id is not None or e.recorded_at is not None:
                    return broken(
                        e,
                        f"audit event {e.id} is unkeyed but records who and when as only keyed events do: "
                        "it was re-hashed without the key",
                    )
            else:
                keyed_seen = True
                if e.key_id not in keys.keys:
                    return broken(e, f"audit event {e.id} is signed by key {e.key_id!r}, which is not among the keys")
                key = keys.keys[e.key_id]
            if e.hash != event_hash(prev, e, key):
                why = "" if key is None else f", or key {e.key_id!r} is not the one it was signed with"
                return broken(
                    e, f"audit event {e.id} ({e.kind} {e.item_id} {e.trigger}) was changed after it was written{why}"
                )
            prev, out.last_id, out.last_hash = e.hash, e.id or out.last_id, e.hash
            out.checked += 1
            out.unkeyed += e.key_id is None
    head = session.execute(select_core(_HEAD.c.hash).where(_HEAD.c.id == 1)).first()
    if head is not None and head.hash != prev:
        out.problem = "the last audit events were deleted: the chain head does not match the last event"
    elif out.unkeyed and not keyed_seen:
        out.unsealed = True
        out.problem = (
            f"the {out.unkeyed} audit event(s) up to event {out.last_id} are unkeyed and no keyed event seals them: "
            "anyone with the database could have re-hashed them (an upgraded database: run peerwatch audit seal)"
        )
    return out


def record_refusal(
    db: Engine,
    kind: str,
    item_id: int | None,
    trigger: str,
    principal: Principal | None,
    role: str | None,
    clock: Clock,
    reason: str,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Audit a refused attempt in its own transaction (the attempt itself changed nothing)."""
    data: dict[str, Any] = {"params": jsonable(dict(params or {}))}
    if item_id is not None and not is_row_id(item_id):  # no such row can exist: keep the id as typed
        data["item_id"], item_id = str(item_id), None
    with Session(db) as s:
        s.add(
            RefusedAttempt(
                kind=kind,
                item_id=item_id,
                trigger=trigger,
                actor=principal.name if principal is not None else "(nobody identified)",
                role=role or (principal.prefer if principal is not None else None) or "(none)",
                user_id=principal.user_id if principal is not None else None,
                at=clock.now(),
                reason=reason,
                data=data,
            )
        )
        s.commit()
