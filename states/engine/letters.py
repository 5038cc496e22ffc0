"""Write letters to the outbox inside the caller's transaction, addressed by contact role.

Each message has a unique idempotency key, so the same step can never queue the same
letter twice. Letters are one message per item (to + cc); reminders and chases are one row
per person, so the dispatcher can combine a person's rows into one digest.
A role nobody holds (to or cc) is written as an ``undeliverable`` row of category
``incident`` naming the role: never a silent loss; the letter still goes to the others.

A row holds what its letter says, frozen as JSON (``freeze``): the item, its service, Trust
and network, the deadlines it quotes, its recipients and signatories, as they were when the
transition fired. The dispatcher renders it (``notifications.render.rendered``, which
thaws it) when it sends it and keeps the text it sent; a transition never waits on a
template, and nothing here renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, or_
from sqlalchemy import select as select_core
from sqlmodel import Session, col, select

from models.bulk import execute_many
from models.tables import OUTSTANDING, Attachment, Contact, Deadline, OutboxMessage, OutboxStatus
from states.clock import Clock, SystemClock, local_date
from states.errors import InvalidInput
from states.roles import CONTACT_ROLES
from states.text import check_email, check_text

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_INSERT_OUTBOX = insert(_OUTBOX)

if TYPE_CHECKING:
    from states.machines.spec import KindSpec, Letter


SIGNATORIES = ("network-manager", "regional-lead")


Key = tuple[str, int | None, int | None, int | None, date]


def _scope_key(role: str, scope: dict[str, int | None], on: date) -> Key:
    return (role, scope.get("service_id"), scope.get("organisation_id"), scope.get("network_id"), on)


def _on(on: date | None) -> date:
    """The day recipients are resolved for: the caller's (the clock's) date; else the system clock's."""
    if on is not None:
        return on
    return local_date(SystemClock().now())


def _level(c: Contact) -> int:
    return 0 if c.service_id else 1 if c.organisation_id else 2 if c.network_id else 3


def prefetch_recipients(
    session: Session, items: list[tuple[KindSpec, Any, list[Letter]]], on: date | None = None
) -> None:
    """Resolve the recipients of a batch's letters in one query, into ``resolve``'s cache."""
    day = _on(on)
    wanted: set[Key] = set()
    for spec, row, letters in items:
        scope = spec.recipient_scope(session, row)
        for role in {*SIGNATORIES, *(r for letter in letters for r in (*letter.to, *letter.cc))}:
            wanted.add(_scope_key(role, scope, day))
    _look_up(session, wanted)


def resolve(session: Session, role: str, scope: dict[str, int | None], on: date | None = None) -> list[Contact]:
    """Contacts holding ``role`` on day ``on`` (the clock's date) at the most specific level:
    service, organisation, network, national. A contact counts from its ``valid_from`` and
    until the day before its ``valid_until`` (retired, or replaced by its successor)."""
    key = _scope_key(role, scope, _on(on))
    _look_up(session, {key})
    return session.info["recipient_cache"][key]  # type: ignore[no-any-return]


def forget_recipients(session: Session) -> None:
    """Drop the session's recipient cache (after a contact changed in this session)."""
    session.info.pop("recipient_cache", None)


def _look_up(session: Session, wanted: set[Key]) -> None:
    """Fill the session's recipient cache for each (role, service, organisation, network, day)
    not in it yet, in one query per day: per key, the holders at the most specific level that
    has any, among the contacts in force that day."""
    cache: dict[Any, list[Contact]] = session.info.setdefault("recipient_cache", {})
    wanted = wanted - cache.keys()
    if not wanted:
        return
    by_day: dict[date, set[Key]] = {}
    for k in wanted:
        by_day.setdefault(k[4], set()).add(k)
    for day, keys in by_day.items():
        _look_up_on(session, cache, keys, day)


def _look_up_on(session: Session, cache: dict[Any, list[Contact]], wanted: set[Key], day: date) -> None:
    # Only the levels the items have: comparing a column with None would be IS NULL in SQL and
    # match every Trust's or network's holder of the role.
    ids: dict[int, list[int]] = {
        level: sorted({v for k in wanted if isinstance(v := k[level], int)}) for level in (1, 2, 3)
    }
    no_service, no_organisation = Contact.service_id.is_(None), Contact.organisation_id.is_(None)  # type: ignore[union-attr]
    levels = [no_service & no_organisation & Contact.network_id.is_(None)]  # type: ignore[union-attr]
    if ids[1]:
        levels.append(col(Contact.service_id).in_(ids[1]))
    if ids[2]:
        levels.append(no_service & col(Contact.organisation_id).in_(ids[2]))
    if ids[3]:
        levels.append(no_service & no_organisation & col(Contact.network_id).in_(ids[3]))
    held: dict[tuple[str, int, int | None], list[Contact]] = {}
    in_force = and_(
        or_(col(Contact.valid_from).is_(None), col(Contact.valid_from) <= day),
        or_(col(Contact.valid_until).is_(None), col(Contact.valid_until) > day),
    )
    for c in session.exec(
        select(Contact)
        .where(col(Contact.role).in_({k[0] for k in wanted}), or_(*levels), in_force)
        .order_by(col(Contact.id))
    ):
        level = _level(c)
        held.setdefault((c.role, level, (c.service_id, c.organisation_id, c.network_id, None)[level]), []).append(c)
    for key in wanted:
        role, service_id, organisation_id, network_id, _day = key
        cache[key] = next(
            (
                found
                for found in (
                    held.get((role, 0, service_id)) if service_id is not None else None,
                    held.get((role, 1, organisation_id)) if organisation_id is not None else None,
                    held.get((role, 2, network_id)) if network_id is not None else None,
                    held.get((role, 3, None)),
                )
                if found
            ),
            [],
        )


_DATE, _DATETIME = "$peerwatch:date", "$peerwatch:datetime"  # tags no letter's own data uses (render.thaw reads them)


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    raise TypeError(f"{type(value).__name__} {value!r}")


def freeze(context: dict[str, Any]) -> str:
    """A letter's context as JSON, dates and times tagged so ``notifications.render.thaw`` gives them back.
    Anything else JSON cannot hold refuses the transition, naming it (never a crash of a sweep)."""
    try:
        return json.dumps(context, default=_tag, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a letter's context cannot hold {exc}: give the template text, numbers or dates") from None


def _person(c: Contact) -> dict[str, str]:
    return {"name": c.name, "email": c.email, "role": c.role, "role_name": CONTACT_ROLES.get(c.role, c.role)}


@dataclass
class Message:
    """One outbox row, composed but not yet written."""

    row: dict[str, Any]
    attachments: list[dict[str, Any]] = field(default_factory=list)


def enqueue_letters(
    session: Session,
    spec: KindSpec,
    row: Any,
    letters: list[Letter],
    *,
    key: str,
    clock: Clock,
    today: date,
    extra: dict[str, Any] | None = None,
) -> int:
    """Queue ``letters`` about ``row``; returns how many new messages were written."""
    if not letters:
        return 0
    session.flush()  # so the item's new deadlines are visible to the letter
    deadlines = open_deadlines(session, spec.name, [row.id]).get(row.id, {})
    return len(
        write(
            session,
            compose(
                session, spec, row, letters, key=key, now=clock.now(), today=today, deadlines=deadlines, extra=extra
            ),
        )
    )


def open_deadlines(session: Session, kind: str, item_ids: list[int]) -> dict[int, dict[str, date]]:
    """Each item's open and paused deadlines by name (what letters quote), in one query."""
    t = Deadline.__table__  # type: ignore[attr-defined]
    out: dict[int, dict[str, date]] = {i: {} for i in item_ids}
    for start in range(0, len(item_ids), 900):
        for item_id, name, due_on in session.execute(
            select_core(t.c.item_id, t.c.name, t.c.due_on)
            .where(
                t.c.kind == kind,
                t.c.item_id.in_(item_ids[start : start + 900]),
                t.c.status.in_(OUTSTANDING),
            )
            .order_by(t.c.due_on, t.c.id)
        ):
            out[item_id][name] = due_on
    return out


def compose(
    session: Session,
    spec: KindSpec,
    row: Any,
    letters: list[Letter],
    *,
    key: str,
    now: datetime,
    today: date,
    deadlines: dict[str, date],
    extra: dict[str, Any] | None = None,
) -> list[Message]:
    """Compose ``letters`` about ``row`` into outbox rows, each with its frozen context (nothing written yet)."""
    if not letters:
        return []
    scope = spec.recipient_scope(session, row)
    base = spec.letter_context(session, row)
    signatories = [_person(c) for r in SIGNATORIES for c in resolve(session, r, scope, today)]
    out: list[Message] = []
    for letter in letters:
        for name, email in letter.people:  # written to directly (e.g. from a trigger's parameters)
            check_text(name, "recipient name")
            check_email(email, "recipient email")
        to = [(r, resolve(session, r, scope, today)) for r in letter.to]
        cc = [(r, resolve(session, r, scope, today)) for r in letter.cc]
        missing_to = [r for r, people in to if not people]
        missing = missing_to + [r for r, people in cc if not people]
        to_people = [_person(c) for _, people in to for c in people]
        to_people += [{"name": n, "email": e, "role": "", "role_name": ""} for n, e in letter.people]
        cc_people = [_person(c) for _, people in cc for c in people]
        context = {
            **base,
            "today": today,
            "deadlines": deadlines,
            "to": to_people,
            "cc": cc_people,
            "signatories": signatories,
            **(extra or {}),
            **dict(letter.context),
        }
        frozen = freeze(context)
        stem = f"{spec.name}:{row.id}:{key}:{letter.template}{':' + letter.key if letter.key else ''}"
        note = (
            f"no contact holds the role(s) {', '.join(CONTACT_ROLES.get(r, r) for r in missing)} for this item"
            if missing
            else None
        )
        if letter.category == "letter":
            batches = [(stem, to_people, cc_people, letter.category)]
        else:
            batches = [(f"{stem}:{p['email']}", [p], [], letter.category) for p in to_people + cc_people]
        # Each role nobody holds is an incident of its own: the letter still goes to the others.
        batches += [(f"{stem}:missing:{r}", [], [], "incident") for r in missing]
        for idem, recipients, copies, category in batches:
            status, error = OutboxStatus.QUEUED, note
            if category == "incident":
                role = idem.rsplit(":", 1)[1]
                status, error = (
                    OutboxStatus.UNDELIVERABLE,
                    f"no contact holds the role {CONTACT_ROLES.get(role, role)} for this item: add one, then resend",
                )
            elif not recipients:
                status = OutboxStatus.UNDELIVERABLE
            files = [_attachment(idem, *a) for a in letter.attachments] if category == "letter" else []
            out.append(
                Message(
                    row={
                        "idempotency_key": idem,
                        "kind": spec.name,
                        "item_id": row.id,
                        "template": letter.template,
                        "category": category,
                        "context": frozen,
                        "subject": None,
                        "body_text": None,
                        "body_html": None,
                        "to": recipients,
                        "cc": copies,
                        "status": getattr(status, "value", status),
                        "attempts": 0,
                        "last_error": error,
                        "created_at": now,
                        "next_attempt_at": now,
                        "sent_at": None,
                        "message_id": None,
                    },
                    attachments=files,
                )
            )
    return out


def _attachment(key: str, filename: str, content_type: str, data: bytes | tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """An attachment row: its bytes, or the renderer that makes them and its data, frozen (the
    dispatcher renders it when it sends the letter, as it does the letter)."""
    row = {"idempotency_key": key, "filename": filename, "content_type": content_type}
    if isinstance(data, bytes):
        return {**row, "data": data, "renderer": None, "document": None}
    renderer, document = data
    return {**row, "data": None, "renderer": renderer, "document": freeze(document)}


def write(session: Session, messages: list[Message]) -> list[Message]:
    """Insert the messages whose idempotency key is new (one lookup, one executemany);
    returns those written."""
    if not messages:
        return []
    keys = [m.row["idempotency_key"] for m in messages]
    existing: set[str] = set()
    for start in range(0, len(keys), 900):
        existing.update(
            session.execute(
                select_core(_OUTBOX.c.idempotency_key).where(_OUTBOX.c.idempotency_key.in_(keys[start : start + 900]))
            ).scalars()
        )
    fresh: list[Message] = []
    for m in messages:
        k = m.row["idempotency_key"]
        if k not in existing:
            existing.add(k)
            fresh.append(m)
    if fresh:
        execute_many(session.connection(), _INSERT_OUTBOX, [m.row for m in fresh])
        files = [f for m in fresh for f in m.attachments]
        if files:
            session.execute(insert(Attachment.__table__), files)  # type: ignore[attr-defined]
    return fresh
