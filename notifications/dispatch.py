"""Drain the outbox: send each message at most once, retry failures with back-off.

A message is claimed (``sending``, with the Message-ID it will carry and a lease) and
committed before it is handed to the transport, then marked ``sent``. The claim is a
conditional UPDATE, so two dispatchers never hand the same row to a transport.

One bad row never stops the others: each message is built (headers, body, serialised) and
sent inside its own guard. A message that cannot be built (a stored name or address holding a
line break, a control character or a Unicode line separator, which no mail header may carry)
or that the transport refuses to take for any reason other than the mail service being down
becomes a ``failed`` incident naming the reason, and the run goes on with the rest. In a
digest, only the rows that cannot be built are set aside; the others still go together.

Crash recovery: a row still ``sending`` when its lease has run out was interrupted between
claim and ``sent``. If the transport can tell (``Transport.delivered``), the row is marked
``sent`` (it went) or requeued (it did not); if it cannot (SMTP), the row is *in doubt*: an
incident, and after ``in_doubt_resend_seconds`` (default one hour) it is resent **once**, with
the **same Message-ID** (receivers de-duplicate on it), and ``resent_at`` records the resend.
The promise: at most once in the normal path; at least once, under one Message-ID, after a
crash mid-send. An operator may hold an in-doubt letter, resend it at once, or mark it
delivered (``peerwatch outbox in-doubt``).

Outage: a failed send is retried after ``retry_backoff_seconds x 2^(attempts-1)``; after
``max_send_attempts`` failures the row is ``failed``, an incident, and is still retried on the
same doubling back-off capped at ``failed_retry_cap_seconds`` (24 h), so when the mail
service returns every message is delivered and its incident clears (status ``sent``).
After ``max_connection_failures`` consecutive failures to reach the mail service the run stops
trying: the rest stay queued, untouched, for the next run.
Letters go one per message; a person's queued reminders and chases go as one digest, one
HTML document with an introduction and a heading per item.

Rendering: a row holds its letter's frozen context; the dispatcher renders it once claimed
and keeps the text on the row, committed with the claim, so the row says word for word what
was handed to the mail service. A letter that cannot be rendered (a template error) is not
sent: it becomes a ``failed`` incident naming the error, retried on the back-off like a
failed send, and the rest of its digest still goes.

Secrets made at sending: an account invitation's link is made when its letter is sent
(``notifications.sealed``): the row keeps the letter with a mark where the token goes, and
only the message handed to the mail service carries it.

Training: in a training database (``peerwatch init --training``) nothing goes over SMTP,
whatever ``PEERWATCH_MAIL`` says (``transports.for_database``): letters are written to the
outbox folder and their rows marked ``sent`` with a note saying so (``DispatchSummary.note``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from models.tables import IN_DOUBT, Attachment, OutboxMessage, OutboxStatus, is_in_doubt
from notifications.attachments import render_attachment
from notifications.build import Clock, build_guarded, message_id_for
from notifications.errors import InvalidSetting
from notifications.render import rendered
from notifications.sealed import seal
from notifications.transports import ConnectionFailed, Transport, TransportError, for_database

__all__ = [
    "IN_DOUBT",
    "DispatchPolicy",
    "DispatchSummary",
    "SendPolicy",
    "backoff",
    "dispatch",
    "incident_rows",
    "incidents",
    "is_in_doubt",
    "recover",
]

_LONDON = ZoneInfo("Europe/London")  # times in incident notes read as the network's


class SendPolicy(Protocol):
    """The two settings of ``states.policy.Policy`` the dispatcher reads (an entry point passes it)."""

    @property
    def max_send_attempts(self) -> int: ...

    @property
    def retry_backoff_seconds(self) -> int: ...


@dataclass(frozen=True)
class DispatchPolicy:
    """Local policy defaults for the dispatcher, not the SOP; ``PEERWATCH_<NAME>`` overrides each.

    ``max_send_attempts`` and ``retry_backoff_seconds`` are ``states.policy.Policy``'s, under the
    same names and variables: the entry points pass that ``Policy`` to ``dispatch``; these are
    what a caller that passes none gets."""

    max_send_attempts: int = 5  # then a message is failed: an incident
    retry_backoff_seconds: int = 300  # doubled on each failed try

    sending_lease_seconds: int = 900  # a claim older than this was interrupted: recover it (one dispatch run, 15 min)
    failed_retry_cap_seconds: int = 86400  # longest wait between tries of a failed message (24 h)
    in_doubt_resend_seconds: int = 3600  # a letter in doubt after a crash is resent once, this long after it was found
    max_connection_failures: int = 3  # consecutive failures to reach the mail service before a run stops trying

    @classmethod
    def from_env(cls) -> DispatchPolicy:
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"PEERWATCH_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise InvalidSetting(f"PEERWATCH_{f.name.upper()}={raw!r} is not a whole number") from None
                if values[f.name] < (1 if f.name == "max_connection_failures" else 0):
                    raise InvalidSetting(f"PEERWATCH_{f.name.upper()}={raw!r} is out of range")
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
    in_doubt: int = 0  # interrupted mid-send, delivery unknown: an incident, resent once after a wait
    resent: int = 0  # in doubt, resent (same Message-ID) after the wait
    unsendable: int = 0  # rows whose message could not be built or was refused: failed incidents
    not_tried: int = 0  # batches left queued because the mail service could not be reached
    errors: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. a training database: where its letters went instead of SMTP


# ------------------------------------------------------------------------------ incidents


def backoff(policy: SendPolicy, dpolicy: DispatchPolicy, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed try: doubling from ``retry_backoff_seconds``, capped."""
    cap = dpolicy.failed_retry_cap_seconds
    if attempts > 40:
        return timedelta(seconds=cap)
    return timedelta(seconds=min(policy.retry_backoff_seconds * 2 ** max(attempts - 1, 0), cap))


def incidents(session: Session, now: datetime) -> list[OutboxMessage]:
    """Open incidents: failed, undeliverable, and sending past the lease (interrupted or in doubt)."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                or_(
                    col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.UNDELIVERABLE]),
                    and_(col(OutboxMessage.status) == OutboxStatus.SENDING, col(OutboxMessage.next_attempt_at) <= now),
                )
            )
            .order_by(col(OutboxMessage.id))
        )
    )


def incident_rows(rows: list[OutboxMessage]) -> list[dict[str, object]]:
    """Incidents as table rows for artifacts and summaries."""
    return [
        {
            "id": m.id,
            "status": "in doubt" if is_in_doubt(m) else m.status,
            "template": m.template,
            "item": f"{m.kind} {m.item_id}",
            "to": ", ".join(p["email"] for p in m.to),
            "attempts": m.attempts,
            "error": m.last_error,
        }
        for m in rows
    ]


def _when(at: datetime) -> str:
    return at.astimezone(_LONDON).strftime("%a %d %b %Y %H:%M %Z")


def _in_doubt_note(mid: str | None, now: datetime, row: OutboxMessage, dpolicy: DispatchPolicy) -> str:
    what = f"send of {mid or 'a digest'} was interrupted and the mail service cannot say whether it arrived"
    if row.resent_at is not None:
        row.resend_at = None
        return (
            IN_DOUBT + f"{what}; it was already resent once after a crash ({_when(row.resent_at)}): check with the "
            "recipient, then `peerwatch outbox retry` it or leave it"
        )
    row.resend_at = now + timedelta(seconds=dpolicy.in_doubt_resend_seconds)
    return (
        IN_DOUBT + f"{what}: it will be resent once, with the same Message-ID, after {_when(row.resend_at)} "
        "(`peerwatch outbox in-doubt` holds it, resends it now, or marks it delivered)"
    )


def recover(
    session: Session,
    transport: Transport,
    clock: Clock,
    dpolicy: DispatchPolicy | None = None,
    summary: DispatchSummary | None = None,
) -> DispatchSummary:
    """Settle rows left ``sending`` past their lease by a crash: sent, requeued, or in doubt
    (resent once, same Message-ID, ``in_doubt_resend_seconds`` later)."""
    dpolicy = dpolicy or DispatchPolicy.from_env()
    summary = summary if summary is not None else DispatchSummary()
    now = clock.now()
    stuck = [
        r
        for r in session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.SENDING,
                col(OutboxMessage.next_attempt_at) <= now,
            )
            .order_by(col(OutboxMessage.id))
        )
        if not is_in_doubt(r)
    ]
    ask = getattr(transport, "delivered", None)
    for r in stuck:
        mid = r.message_id or (message_id_for(r.idempotency_key) if r.category == "letter" else None)
        answer = ask(mid) if ask is not None and mid else None
        if answer is True:
            r.status, r.sent_at, r.message_id, r.resend_at = OutboxStatus.SENT, now, mid, None
            r.last_error = getattr(transport, "note", None)
            summary.recovered_sent += 1
        elif answer is False:
            r.status, r.next_attempt_at, r.message_id, r.resend_at = OutboxStatus.QUEUED, now, None, None
            r.last_error = "send interrupted before delivery: queued again"
            summary.requeued += 1
        else:
            r.message_id = mid
            r.last_error = _in_doubt_note(mid, now, r, dpolicy)
            summary.in_doubt += 1
        session.add(r)
    session.commit()
    return summary


# ------------------------------------------------------------------------------ sending


def _render(rows: list[OutboxMessage], files: dict[str, list[Attachment]]) -> list[tuple[OutboxMessage, str]]:
    """Render each row not yet rendered, and its attachments, in place; returns the rows that
    could not be, with why."""
    failed = []
    for r in rows:
        if r.body_text is None:
            try:
                r.subject, r.body_text, r.body_html = rendered(r)
            except Exception as exc:
                failed.append(
                    (r, f"letter could not be rendered from template {r.template!r}: {type(exc).__name__}: {exc}")
                )
                continue
        for a in files.get(r.idempotency_key, []) if r.category == "letter" else []:
            if a.data is None:
                try:
                    render_attachment(a)
                except Exception as exc:
                    failed.append((r, f"attachment {a.filename!r} could not be rendered: {type(exc).__name__}: {exc}"))
                    break
    return failed


def _fail(
    r: OutboxMessage,
    before: str,
    error: str,
    now: datetime,
    policy: SendPolicy,
    dpolicy: DispatchPolicy,
    summary: DispatchSummary,
    at_once: bool = False,
) -> None:
    """A try that did not deliver: queued again on the back-off, or failed (an incident) after N
    tries, or ``at_once`` for what retrying cannot mend."""
    r.last_error, r.message_id, r.resend_at = error, None, None
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


def _claim(
    session: Session, rows: list[OutboxMessage], read: dict[int | None, tuple[str, int]], lease_until: datetime
) -> list[tuple[OutboxMessage, str]]:
    """Claim rows still as we read them (conditional UPDATE); returns (row, status before)."""
    claimed = []
    for r in rows:
        status, attempts = read[r.id]
        result = session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == r.id,
                col(OutboxMessage.status) == status,
                col(OutboxMessage.attempts) == attempts,
            )
            .values(status=OutboxStatus.SENDING, attempts=attempts + 1, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append((r, status))
    return claimed


class _Run:
    """One dispatch run's sending, with its count of consecutive connection failures."""

    def __init__(
        self,
        session: Session,
        transport: Transport,
        clock: Clock,
        policy: SendPolicy,
        dpolicy: DispatchPolicy,
        summary: DispatchSummary,
    ) -> None:
        self.session, self.transport, self.clock, self.policy, self.dpolicy = session, transport, clock, policy, dpolicy
        self.summary, self.now = summary, clock.now()
        self.sent_note: str | None = getattr(transport, "note", None)  # kept on each row sent (training)
        self.lease_until = self.now + timedelta(seconds=dpolicy.sending_lease_seconds)
        self.unreachable = 0  # consecutive connection failures

    @property
    def stopped(self) -> bool:
        return self.unreachable >= self.dpolicy.max_connection_failures

    def unsendable(self, r: OutboxMessage, before: str, error: str) -> None:
        _fail(r, before, error, self.now, self.policy, self.dpolicy, self.summary, at_once=True)
        self.summary.unsendable += 1
        self.summary.errors.append(f"outbox message {r.id}: {error}")
        self.session.add(r)

    def send(self, msg: EmailMessage) -> Exception | None:
        """Hand ``msg`` to the transport; the exception if it did not take it."""
        try:
            self.transport.send(msg)
        except ConnectionFailed as exc:
            self.unreachable += 1
            return exc
        except Exception as exc:
            self.unreachable = 0
            return exc
        self.unreachable = 0
        return None

    def stop_note(self, left: int) -> None:
        if self.stopped and left:
            self.summary.not_tried += left
            self.summary.errors.append(
                f"stopped after {self.unreachable} consecutive failures to reach the mail service: "
                f"{left} message(s) left queued for the next run"
            )


def _resend_in_doubt(run: _Run, files: dict[str, list[Attachment]]) -> None:
    """Resend, once and with the same Message-ID, each letter in doubt whose wait is over."""
    session, now, summary = run.session, run.now, run.summary
    due = [
        r
        for r in session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.SENDING,
                col(OutboxMessage.resend_at).is_not(None),
                col(OutboxMessage.resend_at) <= now,
                col(OutboxMessage.resent_at).is_(None),
            )
            .order_by(col(OutboxMessage.id))
            .execution_options(populate_existing=True)
        )
        if is_in_doubt(r)
    ]
    groups: dict[str, list[OutboxMessage]] = defaultdict(list)
    for r in due:
        groups[r.message_id or f"row:{r.id}"].append(r)
    left = len(groups)
    for mid, rows in groups.items():
        if run.stopped:
            break
        left -= 1
        claimed = []
        for r in rows:  # still in doubt and not settled by someone else since we read it
            result = session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == r.id,
                    col(OutboxMessage.status) == OutboxStatus.SENDING,
                    col(OutboxMessage.resend_at) == r.resend_at,
                    col(OutboxMessage.resent_at).is_(None),
                    col(OutboxMessage.attempts) == r.attempts,
                )
                .values(
                    resent_at=now,
                    resend_at=None,
                    attempts=r.attempts + 1,
                    next_attempt_at=run.lease_until,
                    last_error=f"being resent after a crash mid-send, same Message-ID {mid}",
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(r)
        if not claimed:
            session.commit()
            continue
        for r in claimed:
            r.resent_at, r.resend_at, r.attempts, r.next_attempt_at = now, None, r.attempts + 1, run.lease_until
            r.last_error = f"being resent after a crash mid-send, same Message-ID {mid}"
            session.add(r)
        session.commit()  # claimed: a crash now leaves it in doubt, never resent a second time
        msg, going, broken = build_guarded(
            claimed, run.transport.sender, run.clock, files, None if mid.startswith("row:") else mid
        )
        for r in claimed:
            if id(r) in broken:
                run.unsendable(r, OutboxStatus.SENDING, broken[id(r)])
        if msg is not None:
            msg["X-Peerwatch-Resend"] = "resent after an interrupted send; same Message-ID"
            seal(session, going, msg, now)  # an invitation's link: a new one (the first may not have arrived)
            session.commit()  # its hash, before the message is handed over
            exc = run.send(msg)
            for r in going:
                if exc is None:
                    r.status, r.sent_at, r.last_error, r.message_id = (
                        OutboxStatus.SENT,
                        now,
                        run.sent_note,
                        str(msg["Message-ID"]),
                    )
                else:  # not taken: still in doubt (the first send may have arrived), resend tried again later
                    r.resent_at, r.message_id = None, str(msg["Message-ID"])
                    r.resend_at = now + backoff(run.policy, run.dpolicy, r.attempts)
                    r.last_error = (
                        IN_DOUBT
                        + f"the resend after a crash was not taken ({exc}): tried again after {_when(r.resend_at)}"
                    )
                session.add(r)
            if exc is None:
                summary.resent += 1
                summary.sent_messages += 1
                summary.sent_rows += len(going)
            else:
                summary.errors.append(str(exc))
        session.commit()
    run.stop_note(left)


def dispatch(
    session: Session,
    transport: Transport,
    clock: Clock,
    policy: SendPolicy | None = None,
    limit: int = 1000,
    dpolicy: DispatchPolicy | None = None,
) -> DispatchSummary:
    """Recover interrupted sends, resend those in doubt whose wait is over, then send what is due;
    commits as it goes so nothing goes twice in the normal path."""
    dpolicy = dpolicy or DispatchPolicy.from_env()
    policy = policy or dpolicy
    transport = for_database(session, transport)  # a training database never sends over SMTP
    summary = recover(session, transport, clock, dpolicy)
    summary.note = getattr(transport, "note", None)
    run = _Run(session, transport, clock, policy, dpolicy, summary)
    now = run.now
    due = list(
        session.exec(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.status).in_([OutboxStatus.QUEUED, OutboxStatus.FAILED]),
                col(OutboxMessage.next_attempt_at) <= now,
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
    )
    read = {r.id: (r.status, r.attempts) for r in due}  # what we saw: the claim checks it is unchanged
    batches: list[list[OutboxMessage]] = []
    digests: dict[str, list[OutboxMessage]] = defaultdict(list)
    for row in due:
        if row.category == "letter" or not row.to:
            batches.append([row])
        else:
            digests[str(row.to[0].get("email", "")).lower()].append(row)
    batches.extend(digests.values())
    keys = [r.idempotency_key for r in due if r.category == "letter"]
    files: dict[str, list[Attachment]] = defaultdict(list)
    for start in range(0, len(keys), 500):
        for a in session.exec(select(Attachment).where(col(Attachment.idempotency_key).in_(keys[start : start + 500]))):
            files[a.idempotency_key].append(a)

    _resend_in_doubt(run, files)
    lease_until = run.lease_until
    for n, batch in enumerate(batches):
        if run.stopped:
            run.stop_note(len(batches) - n)
            break
        claimed = _claim(session, batch, read, lease_until)
        if not claimed:
            session.commit()
            continue  # another dispatcher took them
        for r, _ in claimed:
            r.attempts = read[r.id][1] + 1  # as the claim wrote it
        broken = {id(r): error for r, error in _render([r for r, _ in claimed], files)}
        for r, before in claimed:
            if id(r) in broken:  # a template error will not mend itself: an incident at once
                _fail(r, before, broken[id(r)], now, policy, dpolicy, summary, at_once=True)
                summary.errors.append(broken[id(r)])
                session.add(r)
        claimed = [(r, before) for r, before in claimed if id(r) not in broken]
        if not claimed:
            session.commit()
            continue
        msg, going, unbuilt = build_guarded([r for r, _ in claimed], transport.sender, clock, files)
        for r, before in claimed:
            if id(r) in unbuilt:  # a value no mail can carry: an incident at once, the rest go on
                run.unsendable(r, before, unbuilt[id(r)])
        if msg is None:
            session.commit()
            continue
        claimed = [(r, before) for r, before in claimed if id(r) not in unbuilt]
        seal(session, [r for r, _ in claimed], msg, now)  # an invitation's link: made now, in the message only
        for r, _ in claimed:  # the same values the claim wrote, plus the Message-ID, for recovery
            r.status, r.attempts, r.next_attempt_at, r.message_id = (
                OutboxStatus.SENDING,
                read[r.id][1] + 1,
                lease_until,
                str(msg["Message-ID"]),
            )
            session.add(r)
        session.commit()  # claimed: never handed to the transport twice
        exc = run.send(msg)
        if isinstance(exc, TransportError):
            for r, before in claimed:
                _fail(r, before, str(exc), now, policy, dpolicy, summary)
                session.add(r)
            summary.errors.append(str(exc))
        elif exc is not None:  # the transport could not take it at all: an incident at once
            for r, before in claimed:
                run.unsendable(r, before, f"letter could not be sent: {type(exc).__name__}: {exc}")
        else:
            for r, before in claimed:
                r.status, r.sent_at, r.last_error = OutboxStatus.SENT, now, run.sent_note
                if before == OutboxStatus.FAILED:
                    summary.redelivered += 1
                session.add(r)
            summary.sent_messages += 1
            summary.sent_rows += len(going)
        session.commit()
    return summary
