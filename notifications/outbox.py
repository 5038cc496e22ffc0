"""Write letters to the outbox inside the caller's transaction, addressed by contact role.

Each message has a unique idempotency key, so the same step can never queue the same
letter twice. Letters are one message per item (to + cc); reminders and chases are one row
per person, so the dispatcher can combine a person's rows into one digest.
A role nobody holds (to or cc) is written as an ``undeliverable`` row of category
``incident`` naming the role: never a silent loss; the letter still goes to the others.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from models.tables import Attachment, Contact, OutboxMessage, OutboxStatus
from notifications.render import render
from states.roles import CONTACT_ROLES

if TYPE_CHECKING:
    from states.clock import Clock
    from states.kinds import KindSpec, Letter


def resolve(session: Session, role: str, scope: dict[str, int | None]) -> list[Contact]:
    """Contacts holding ``role`` at the most specific level: service, organisation, network, national."""
    cache: dict[Any, list[Contact]] = session.info.setdefault("recipient_cache", {})
    key = (role, scope.get("service_id"), scope.get("organisation_id"), scope.get("network_id"))
    if key in cache:
        return cache[key]
    found = list(session.exec(select(Contact).where(
        Contact.role == role,
        or_(
            Contact.service_id == scope.get("service_id"),
            (Contact.service_id.is_(None)) & (Contact.organisation_id == scope.get("organisation_id")),  # type: ignore[union-attr]
            (Contact.service_id.is_(None)) & (Contact.organisation_id.is_(None)) & (Contact.network_id == scope.get("network_id")),  # type: ignore[union-attr]
            (Contact.service_id.is_(None)) & (Contact.organisation_id.is_(None)) & (Contact.network_id.is_(None)),  # type: ignore[union-attr]
        ),
    ).order_by(Contact.id)))  # type: ignore[arg-type]

    def level(c: Contact) -> int:
        return 0 if c.service_id else 1 if c.organisation_id else 2 if c.network_id else 3

    best = min((level(c) for c in found), default=None)
    cache[key] = [c for c in found if level(c) == best]
    return cache[key]


def _person(c: Contact) -> dict[str, str]:
    return {"name": c.name, "email": c.email, "role": c.role, "role_name": CONTACT_ROLES.get(c.role, c.role)}


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
    from states.engine import pending_deadlines  # deadlines named in letters

    scope = spec.recipient_scope(session, row)
    base = spec.letter_context(session, row)
    session.flush()  # so new deadlines are visible to the letter
    deadlines = {d.name: d.due_on for d in pending_deadlines(session, spec.name, row.id)}
    signatories = [_person(c) for r in ("network-manager", "regional-lead") for c in resolve(session, r, scope)]
    now = clock.now()
    written = 0
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
        with session.no_autoflush:  # one query for the batch's keys, no flush per row
            existing = set(session.exec(select(OutboxMessage.idempotency_key).where(
                col(OutboxMessage.idempotency_key).in_([b[0] for b in batches]))).all())
        for idem, recipients, copies, category in batches:
            if idem in existing:
                continue
            status, error = OutboxStatus.QUEUED, note
            if category == "incident":
                role = idem.rsplit(":", 1)[1]
                status, error = OutboxStatus.UNDELIVERABLE, f"no contact holds the role {CONTACT_ROLES.get(role, role)} for this item: add one, then resend"
            elif not recipients:
                status = OutboxStatus.UNDELIVERABLE
            session.add(OutboxMessage(
                idempotency_key=idem, kind=spec.name, item_id=row.id, template=letter.template,
                category=category, subject=subject, body_text=text, body_html=html,
                to=recipients, cc=copies, status=status, last_error=error, created_at=now, next_attempt_at=now,
            ))
            if category == "letter":
                for filename, content_type, data in letter.attachments:
                    session.add(Attachment(idempotency_key=idem, filename=filename, content_type=content_type, data=data))
            written += 1
    return written
