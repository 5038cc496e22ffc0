"""Drain the outbox: send each message at most once, retry failures with back-off.

A message is claimed (``sending``, with the Message-ID it will carry and a lease) and
committed before it is handed to the transport, then marked ``sent``. The claim is a
conditional UPDATE, so two dispatchers never hand the same row to a transport.

Crash recovery: a row still ``sending`` when its lease has run out was interrupted between
claim and ``sent``. If the transport can tell (``Transport.delivered``), the row is marked
``sent`` (it went) or requeued (it did not); if it cannot (SMTP), the row stays ``sending``
marked *in doubt*: an incident for a person to resolve (``peerwatch outbox retry``), never
resent automatically, so a letter goes at most once.

Outage: a failed send is retried after ``retry_backoff_seconds x 2^(attempts-1)``; after
``max_send_attempts`` failures the row is ``failed``, an incident, and is still retried on the
same doubling back-off capped at ``failed_retry_cap_seconds`` (24 h), so when the mail
service returns every message is delivered and its incident clears (status ``sent``).
Letters go one per message; a person's queued reminders and chases go as one digest.

Rendering: a row holds its letter's frozen context; the dispatcher renders it once claimed
and keeps the text on the row, committed with the claim, so the row says word for word what
was handed to the mail service. A letter that cannot be rendered (a template error) is not
sent: it becomes a ``failed`` incident naming the error, retried on the back-off like a
failed send, and the rest of its digest still goes.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from models.tables import Attachment, OutboxMessage, OutboxStatus
from notifications.outbox import rendered
from notifications.transports import Transport, TransportError
from states.clock import Clock
from states.errors import InvalidInput
from states.policy import Policy

DOMAIN = "peerwatch.invalid"


IN_DOUBT = "in doubt: "  # last_error prefix of a row interrupted mid-send whose delivery is unknown


@dataclass(frozen=True)
class DispatchPolicy:
    """Local policy defaults for the dispatcher, not the SOP; ``PEERWATCH_<NAME>`` overrides each."""

    sending_lease_seconds: int = 900  # a claim older than this was interrupted: recover it (one dispatch run, 15 min)
    failed_retry_cap_seconds: int = 86400  # longest wait between tries of a failed message (24 h)

    @classmethod
    def from_env(cls) -> DispatchPolicy:
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"PEERWATCH_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise InvalidInput(f"PEERWATCH_{f.name.upper()}={raw!r} is not a whole number") from None
        return cls(**values)


@dataclass
class DispatchSummary:
    sent_messages: int = 0  # emails handed to the transport
    sent_rows: int = 0  # outbox rows they carried
    retried: int = 0  # failed, queued again
    failed: int = 0  # newly failed: an incident
    still_failed: int = 0  # failed before, failed again (retried on the long back-off)
    redelivered: int = 0  # failed before, now sent: incident cleared
    recovered_sent: int = 0  # interrupted mid-send, found delivered: marked sent
    requeued: int = 0  # interrupted mid-send, found not delivered: queued again
    in_doubt: int = 0  # interrupted mid-send, delivery unknown: an incident, not resent
    errors: list[str] = field(default_factory=list)


def _addr(people: list[dict[str, str]]) -> str:
    return ", ".join(formataddr((p["name"], p["email"])) for p in people)


def _message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{DOMAIN}>"


def build_letter(row: OutboxMessage, sender: str, clock: Clock, attachments: list[Attachment] = ()) -> EmailMessage:  # type: ignore[assignment]
    letter = rendered(row)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = _addr(row.to)
    if row.cc:
        msg["Cc"] = _addr(row.cc)
    msg["Subject"] = letter.subject
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = _message_id(row.idempotency_key)
    msg["X-Peerwatch-Key"] = row.idempotency_key
    msg["X-Peerwatch-Template"] = row.template
    msg.set_content(letter.body_text)
    msg.add_alternative(letter.body_html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def build_digest(rows: list[OutboxMessage], sender: str, clock: Clock) -> EmailMessage:
    person = rows[0].to[0]
    letters = [rendered(r) for r in rows]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = formataddr((person["name"], person["email"]))
    msg["Subject"] = letters[0].subject if len(rows) == 1 else f"peerwatch: {len(rows)} items need your attention"
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = _message_id("digest:" + "|".join(r.idempotency_key for r in rows))
    msg["X-Peerwatch-Key"] = ",".join(r.idempotency_key for r in rows)
    msg["X-Peerwatch-Template"] = "digest" if len(rows) > 1 else rows[0].template
    sep = "\n" + "-" * 66 + "\n\n"
    intro = f"Dear {person['name']},\n\nThe following {len(rows)} items need your attention.\n\n" if len(rows) > 1 else ""
    msg.set_content(intro + sep.join(f"{r.subject}\n\n{r.body_text}" for r in letters))
    msg.add_alternative("<hr>".join(r.body_html for r in letters), subtype="html")
    return msg


def backoff(policy: Policy, dpolicy: DispatchPolicy, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed try: doubling from ``retry_backoff_seconds``, capped."""
    cap = dpolicy.failed_retry_cap_seconds
    if attempts > 40:
        return timedelta(seconds=cap)
    return timedelta(seconds=min(policy.retry_backoff_seconds * 2 ** max(attempts - 1, 0), cap))


def is_in_doubt(row: OutboxMessage) -> bool:
    return row.status == OutboxStatus.SENDING and (row.last_error or "").startswith(IN_DOUBT)


def incidents(session: Session, now: datetime) -> list[OutboxMessage]:
    """Open incidents: failed, undeliverable, and sending past the lease (interrupted or in doubt)."""
    return list(session.exec(select(OutboxMessage).where(or_(
        col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.UNDELIVERABLE]),
        (OutboxMessage.status == OutboxStatus.SENDING) & (col(OutboxMessage.next_attempt_at) <= now),
    )).order_by(col(OutboxMessage.id))))


def incident_rows(rows: list[OutboxMessage]) -> list[dict[str, object]]:
    """Incidents as table rows for artifacts and summaries."""
    return [{"id": m.id, "status": "in doubt" if is_in_doubt(m) else m.status, "template": m.template,
             "item": f"{m.kind} {m.item_id}", "to": ", ".join(p["email"] for p in m.to), "attempts": m.attempts,
             "error": m.last_error} for m in rows]


def recover(session: Session, transport: Transport, clock: Clock, dpolicy: DispatchPolicy | None = None,
            summary: DispatchSummary | None = None) -> DispatchSummary:
    """Settle rows left ``sending`` past their lease by a crash: sent, requeued, or in doubt."""
    summary = summary if summary is not None else DispatchSummary()
    now = clock.now()
    stuck = [r for r in session.exec(select(OutboxMessage).where(
        OutboxMessage.status == OutboxStatus.SENDING, col(OutboxMessage.next_attempt_at) <= now,
    ).order_by(col(OutboxMessage.id))) if not is_in_doubt(r)]
    ask = getattr(transport, "delivered", None)
    for r in stuck:
        mid = r.message_id or (_message_id(r.idempotency_key) if r.category == "letter" else None)
        answer = ask(mid) if ask is not None and mid else None
        if answer is True:
            r.status, r.sent_at, r.message_id = OutboxStatus.SENT, now, mid
            summary.recovered_sent += 1
        elif answer is False:
            r.status, r.next_attempt_at, r.message_id = OutboxStatus.QUEUED, now, None
            r.last_error = "send interrupted before delivery: queued again"
            summary.requeued += 1
        else:
            r.last_error = IN_DOUBT + (
                f"send of {mid or 'a digest'} was interrupted and the mail service cannot say whether it "
                "arrived: check with the recipient, then `peerwatch outbox retry` it or leave it")
            summary.in_doubt += 1
        session.add(r)
    session.commit()
    return summary


def _render(rows: list[OutboxMessage]) -> list[tuple[OutboxMessage, str]]:
    """Render each row not yet rendered, in place; returns the rows that could not be, with why."""
    failed = []
    for r in rows:
        if r.body_text is None:
            try:
                r.subject, r.body_text, r.body_html = rendered(r)
            except Exception as exc:  # noqa: BLE001 - any template error: an incident, never a crash of the run
                failed.append((r, f"letter could not be rendered from template {r.template!r}: {type(exc).__name__}: {exc}"))
    return failed


def _fail(r: OutboxMessage, before: str, error: str, now: datetime, policy: Policy, dpolicy: DispatchPolicy,
          summary: DispatchSummary, at_once: bool = False) -> None:
    """A try that did not deliver: queued again on the back-off, or failed (an incident) after N
    tries, or ``at_once`` for what retrying cannot mend."""
    r.last_error, r.message_id = error, None
    r.next_attempt_at = now + backoff(policy, dpolicy, r.attempts)
    if at_once or before == OutboxStatus.FAILED or r.attempts >= policy.max_send_attempts:
        r.status = OutboxStatus.FAILED  # an incident; still retried on the long back-off
        if before == OutboxStatus.FAILED:
            summary.still_failed += 1
        else:
            summary.failed += 1
    else:
        r.status = OutboxStatus.QUEUED
        summary.retried += 1


def _claim(session: Session, rows: list[OutboxMessage], read: dict[int, tuple[str, int]],
           lease_until: datetime) -> list[tuple[OutboxMessage, str]]:
    """Claim rows still as we read them (conditional UPDATE); returns (row, status before)."""
    claimed = []
    for r in rows:
        status, attempts = read[r.id]  # type: ignore[index]
        result = session.execute(
            update(OutboxMessage).where(
                col(OutboxMessage.id) == r.id, col(OutboxMessage.status) == status, col(OutboxMessage.attempts) == attempts,
            ).values(status=OutboxStatus.SENDING, attempts=attempts + 1, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append((r, status))
    return claimed


def dispatch(session: Session, transport: Transport, clock: Clock, policy: Policy | None = None, limit: int = 1000,
             dpolicy: DispatchPolicy | None = None) -> DispatchSummary:
    """Recover interrupted sends, then send what is due; commits as it goes so nothing goes twice."""
    policy = policy or Policy.from_env()
    dpolicy = dpolicy or DispatchPolicy.from_env()
    summary = recover(session, transport, clock, dpolicy)
    now = clock.now()
    due = list(session.exec(
        select(OutboxMessage).where(col(OutboxMessage.status).in_([OutboxStatus.QUEUED, OutboxStatus.FAILED]),
                                    col(OutboxMessage.next_attempt_at) <= now)
        .order_by(col(OutboxMessage.id)).limit(limit)
    ))
    read = {r.id: (r.status, r.attempts) for r in due}  # what we saw: the claim checks it is unchanged
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

    lease_until = now + timedelta(seconds=dpolicy.sending_lease_seconds)
    for batch in batches:
        claimed = _claim(session, batch, read, lease_until)
        if not claimed:
            session.commit()
            continue  # another dispatcher took them
        for r, _ in claimed:
            r.attempts = read[r.id][1] + 1  # type: ignore[index]  # as the claim wrote it
        broken = {id(r): error for r, error in _render([r for r, _ in claimed])}
        for r, before in claimed:
            if id(r) in broken:  # a template error will not mend itself: an incident at once
                _fail(r, before, broken[id(r)], now, policy, dpolicy, summary, at_once=True)
                summary.errors.append(broken[id(r)])
                session.add(r)
        claimed = [(r, before) for r, before in claimed if id(r) not in broken]
        if not claimed:
            session.commit()
            continue
        rows = [r for r, _ in claimed]
        msg = build_letter(rows[0], transport.sender, clock, files[rows[0].idempotency_key]) if rows[0].category == "letter" else build_digest(rows, transport.sender, clock)
        for r, _ in claimed:  # the same values the claim wrote, plus the Message-ID, for recovery
            r.status, r.attempts, r.next_attempt_at, r.message_id = OutboxStatus.SENDING, read[r.id][1] + 1, lease_until, str(msg["Message-ID"])  # type: ignore[index]
            session.add(r)
        session.commit()  # claimed: never handed to the transport twice
        try:
            transport.send(msg)
        except TransportError as exc:
            for r, before in claimed:
                _fail(r, before, str(exc), now, policy, dpolicy, summary)
                session.add(r)
            summary.errors.append(str(exc))
        else:
            for r, before in claimed:
                r.status, r.sent_at, r.last_error = OutboxStatus.SENT, now, None
                if before == OutboxStatus.FAILED:
                    summary.redelivered += 1
                session.add(r)
            summary.sent_messages += 1
            summary.sent_rows += len(rows)
        session.commit()
    return summary
