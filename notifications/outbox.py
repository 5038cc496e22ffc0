"""Write letters to the outbox inside the caller's transaction, addressed by contact role.

Each message has a unique idempotency key, so the same step can never queue the same
letter twice. Letters are one message per item (to + cc); reminders and chases are one row
per person, so the dispatcher can combine a person's rows into one digest.
A role nobody holds (to or cc) is written as an ``undeliverable`` row of category
``incident`` naming the role: never a silent loss; the letter still goes to the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_
from sqlalchemy import select as select_core
from sqlmodel import Session, select

from models.tables import Attachment, Contact, OutboxMessage, OutboxStatus
from notifications.render import render
from states.roles import CONTACT_ROLES

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from states.clock import Clock
    from states.kinds import KindSpec, Letter


def resolve(session: Session, role: str, scope: dict[str, int | None]) -> list[Contact]:
    """Contacts holding ``role`` at the most specific level: service, organisation, network, national."""
    cache: dict[Any, list[Contact]] = session.info.setdefault("recipient_cache", {})
    key = (role, scope.get("service_id"), scope.get("organisation_id"), scope.get("network_id"))
    if key in cache:
        return cache[key]
    # Only the levels the item has: comparing a column with None would be IS NULL in SQL and
    # match every Trust's or network's holder of the role.
    service_id, organisation_id, network_id = scope.get("service_id"), scope.get("organisation_id"), scope.get("network_id")
    no_service, no_organisation = Contact.service_id.is_(None), Contact.organisation_id.is_(None)  # type: ignore[union-attr]
    levels = [no_service & no_organisation & Contact.network_id.is_(None)]  # type: ignore[union-attr]
    if service_id is not None:
        levels.append(Contact.service_id == service_id)
    if organisation_id is not None:
        levels.append(no_service & (Contact.organisation_id == organisation_id))
    if network_id is not None:
        levels.append(no_service & no_organisation & (Contact.network_id == network_id))
    found = list(session.exec(select(Contact).where(Contact.role == role, or_(*levels)).order_by(Contact.id)))  # type: ignore[arg-type]

    def level(c: Contact) -> int:
        return 0 if c.service_id else 1 if c.organisation_id else 2 if c.network_id else 3

    best = min((level(c) for c in found), default=None)
    cache[key] = [c for c in found if level(c) == best]
    return cache[key]


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
    return len(write(session, compose(session, spec, row, letters, key=key, now=clock.now(), today=today,
                                      deadlines=deadlines, extra=extra)))


def open_deadlines(session: Session, kind: str, item_ids: list[int]) -> dict[int, dict[str, date]]:
    """Each item's open and paused deadlines by name (what letters quote), in one query."""
    from models.tables import OUTSTANDING, Deadline

    t = Deadline.__table__  # type: ignore[attr-defined]
    out: dict[int, dict[str, date]] = {i: {} for i in item_ids}
    for start in range(0, len(item_ids), 900):
        for item_id, name, due_on in session.execute(
            select_core(t.c.item_id, t.c.name, t.c.due_on).where(
                t.c.kind == kind, t.c.item_id.in_(item_ids[start:start + 900]),
                t.c.status.in_(OUTSTANDING),
            ).order_by(t.c.due_on, t.c.id)
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
    """Render ``letters`` about ``row`` into outbox rows (nothing written yet)."""
    if not letters:
        return []
    scope = spec.recipient_scope(session, row)
    base = spec.letter_context(session, row)
    signatories = [_person(c) for r in ("network-manager", "regional-lead") for c in resolve(session, r, scope)]
    out: list[Message] = []
    for letter in letters:
        to = [(r, resolve(session, r, scope)) for r in letter.to]
        cc = [(r, resolve(session, r, scope)) for r in letter.cc]
        missing_to = [r for r, people in to if not people]
        missing = missing_to + [r for r, people in cc if not people]
        to_people = [_person(c) for _, people in to for c in people]
        to_people += [{"name": n, "email": e, "role": "", "role_name": ""} for n, e in letter.people]
        cc_people = [_person(c) for _, people in cc for c in people]
        context = {
            **base, "today": today, "deadlines": deadlines, "to": to_people, "cc": cc_people,
            "signatories": signatories, **(extra or {}), **dict(letter.context),
        }
        subject, text, html = render(letter.template, context)
        stem = f"{spec.name}:{row.id}:{key}:{letter.template}{':' + letter.key if letter.key else ''}"
        note = f"no contact holds the role(s) {', '.join(CONTACT_ROLES.get(r, r) for r in missing)} for this item" if missing else None
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
                status, error = OutboxStatus.UNDELIVERABLE, f"no contact holds the role {CONTACT_ROLES.get(role, role)} for this item: add one, then resend"
            elif not recipients:
                status = OutboxStatus.UNDELIVERABLE
            files = [{"idempotency_key": idem, "filename": f, "content_type": c, "data": d}
                     for f, c, d in letter.attachments] if category == "letter" else []
            out.append(Message(row={
                "idempotency_key": idem, "kind": spec.name, "item_id": row.id, "template": letter.template,
                "category": category, "subject": subject, "body_text": text, "body_html": html,
                "to": recipients, "cc": copies, "status": getattr(status, "value", status), "attempts": 0, "last_error": error,
                "created_at": now, "next_attempt_at": now, "sent_at": None, "message_id": None,
            }, attachments=files))
    return out


def write(session: Session, messages: list[Message]) -> list[Message]:
    """Insert the messages whose idempotency key is new (one lookup, one executemany);
    returns those written."""
    if not messages:
        return []
    keys = [m.row["idempotency_key"] for m in messages]
    existing: set[str] = set()
    for start in range(0, len(keys), 900):
        existing.update(session.execute(select_core(_OUTBOX.c.idempotency_key).where(
            _OUTBOX.c.idempotency_key.in_(keys[start:start + 900]))).scalars())
    fresh: list[Message] = []
    for m in messages:
        k = m.row["idempotency_key"]
        if k not in existing:
            existing.add(k)
            fresh.append(m)
    if fresh:
        session.execute(insert(_OUTBOX), [m.row for m in fresh])
        files = [f for m in fresh for f in m.attachments]
        if files:
            session.execute(insert(Attachment.__table__), files)  # type: ignore[attr-defined]
    return fresh
