"""Drain the outbox: send each message at most once, retry failures with back-off.

A message is claimed (``sending``) and committed before it is handed to the transport,
then marked ``sent``; a crash in between leaves it ``sending``, reported as in doubt rather
than sent twice. Letters go one per message; a person's queued reminders and chases go
as one digest. After ``max_send_attempts`` failures a message is ``failed``: an incident.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlmodel import Session, col, select

from models.tables import Attachment, OutboxMessage, OutboxStatus
from notifications.transports import Transport, TransportError
from states.clock import Clock
from states.policy import Policy

DOMAIN = "peerwatch.invalid"


@dataclass
class DispatchSummary:
    sent_messages: int = 0  # emails handed to the transport
    sent_rows: int = 0  # outbox rows they carried
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _addr(people: list[dict[str, str]]) -> str:
    return ", ".join(formataddr((p["name"], p["email"])) for p in people)


def _message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{DOMAIN}>"


def build_letter(row: OutboxMessage, sender: str, clock: Clock, attachments: list[Attachment] = ()) -> EmailMessage:  # type: ignore[assignment]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = _addr(row.to)
    if row.cc:
        msg["Cc"] = _addr(row.cc)
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = _message_id(row.idempotency_key)
    msg["X-Peerwatch-Key"] = row.idempotency_key
    msg["X-Peerwatch-Template"] = row.template
    msg.set_content(row.body_text)
    msg.add_alternative(row.body_html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def build_digest(rows: list[OutboxMessage], sender: str, clock: Clock) -> EmailMessage:
    person = rows[0].to[0]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = formataddr((person["name"], person["email"]))
    msg["Subject"] = rows[0].subject if len(rows) == 1 else f"peerwatch: {len(rows)} items need your attention"
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = _message_id("digest:" + "|".join(r.idempotency_key for r in rows))
    msg["X-Peerwatch-Key"] = ",".join(r.idempotency_key for r in rows)
    msg["X-Peerwatch-Template"] = "digest" if len(rows) > 1 else rows[0].template
    sep = "\n" + "-" * 66 + "\n\n"
    intro = f"Dear {person['name']},\n\nThe following {len(rows)} items need your attention.\n\n" if len(rows) > 1 else ""
    msg.set_content(intro + sep.join(f"{r.subject}\n\n{r.body_text}" for r in rows))
    msg.add_alternative("<hr>".join(r.body_html for r in rows), subtype="html")
    return msg


def dispatch(session: Session, transport: Transport, clock: Clock, policy: Policy | None = None, limit: int = 1000) -> DispatchSummary:
    """Send what is due; commits as it goes so a sent message is never sent again."""
    policy = policy or Policy.from_env()
    now = clock.now()
    due = list(session.exec(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id).limit(limit)  # type: ignore[arg-type]
    ))
    batches: list[list[OutboxMessage]] = []
    digests: dict[str, list[OutboxMessage]] = defaultdict(list)
    for row in due:
        if row.category == "letter":
            batches.append([row])
        else:
            digests[row.to[0]["email"].lower()].append(row)
    batches.extend(digests.values())
    keys = [r.idempotency_key for r in due if r.category == "letter"]
    files: dict[str, list[Attachment]] = defaultdict(list)
    for start in range(0, len(keys), 500):
        for a in session.exec(select(Attachment).where(col(Attachment.idempotency_key).in_(keys[start:start + 500]))):
            files[a.idempotency_key].append(a)

    summary = DispatchSummary()
    for rows in batches:
        for r in rows:
            r.status = OutboxStatus.SENDING
            r.attempts += 1
            session.add(r)
        session.commit()  # claimed: never handed to the transport twice
        msg = build_letter(rows[0], transport.sender, clock, files[rows[0].idempotency_key]) if rows[0].category == "letter" else build_digest(rows, transport.sender, clock)
        try:
            transport.send(msg)
        except TransportError as exc:
            for r in rows:
                r.last_error = str(exc)
                if r.attempts >= policy.max_send_attempts:
                    r.status = OutboxStatus.FAILED
                    summary.failed += 1
                else:
                    r.status = OutboxStatus.QUEUED
                    r.next_attempt_at = now + timedelta(seconds=policy.retry_backoff_seconds * 2 ** (r.attempts - 1))
                    summary.retried += 1
                session.add(r)
            summary.errors.append(str(exc))
        else:
            for r in rows:
                r.status, r.sent_at, r.message_id = OutboxStatus.SENT, now, str(msg["Message-ID"])
                session.add(r)
            summary.sent_messages += 1
            summary.sent_rows += len(rows)
        session.commit()
    return summary
