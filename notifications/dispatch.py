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
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from models.tables import Attachment, OutboxMessage, OutboxStatus
from notifications.transports import ConnectionFailed, Transport, TransportError
from states.clock import Clock
from states.engine.letters import Rendered, rendered
from states.errors import InvalidInput
from states.policy import Policy

DOMAIN = "peerwatch.invalid"


IN_DOUBT = "in doubt: "  # last_error prefix of a row interrupted mid-send whose delivery is unknown


@dataclass(frozen=True)
class DispatchPolicy:
    """Local policy defaults for the dispatcher, not the SOP; ``PEERWATCH_<NAME>`` overrides each."""

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
                    raise InvalidInput(f"PEERWATCH_{f.name.upper()}={raw!r} is not a whole number") from None
                if values[f.name] < (1 if f.name == "max_connection_failures" else 0):
                    raise InvalidInput(f"PEERWATCH_{f.name.upper()}={raw!r} is out of range")
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


# ------------------------------------------------------------------------------ building


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # no header may hold these (CR, LF, U+0085, U+2028 ...)


def _safe(what: str, value: str) -> str:
    """``value`` if it may go into a mail header; ``ValueError`` naming what and the character if not."""
    bad = _UNSAFE.search(value)
    if bad:
        ch = bad.group()
        name = unicodedata.name(ch, "a control character")
        raise ValueError(
            f"{what} {value!r} contains U+{ord(ch):04X} ({name}), which no mail header may hold: "
            "correct the stored value, then `peerwatch outbox retry` it"
        )
    return value


def _addr(people: list[dict[str, str]]) -> str:
    return ", ".join(formataddr((_safe("the name", p["name"]), _safe("the address", p["email"]))) for p in people)


def _message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{DOMAIN}>"


def _set_subject(msg: EmailMessage, subject: str) -> None:
    """The Subject, folded here rather than by ``email``'s folder: that one can start a subject
    of 70 to 77 characters on a continuation line, which Python's parser (and others) give
    back with a leading space. Short ASCII subjects go as they are; longer ones are folded at
    spaces, and any that cannot be (or are not ASCII) as RFC 2047 encoded words, each line
    within 78 characters."""
    subject = _safe("the subject", subject)
    if subject.isascii() and len(subject) + len("Subject: ") <= 78 and "=?" not in subject:
        msg["Subject"] = subject
        return
    charsets = ("us-ascii", "utf-8") if subject.isascii() and "=?" not in subject else ("utf-8",)
    for charset in charsets:
        value = Header(subject, charset, maxlinelen=78, header_name="Subject").encode(linesep="\n")
        if all(len(line) <= 78 for line in f"Subject: {value}".split("\n")):
            break
    msg.set_raw("Subject", value)


def _headers(
    msg: EmailMessage, sender: str, subject: str, clock: Clock, message_id: str, key: str, template: str
) -> None:
    msg["From"] = sender
    _set_subject(msg, subject)
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = message_id
    msg["X-Peerwatch-Key"] = _safe("the letter's key", key)
    msg["X-Peerwatch-Template"] = template


def build_letter(
    row: OutboxMessage, sender: str, clock: Clock, attachments: Sequence[Attachment] = (), message_id: str | None = None
) -> EmailMessage:
    letter = rendered(row)
    msg = EmailMessage()
    msg["To"] = _addr(row.to)
    if row.cc:
        msg["Cc"] = _addr(row.cc)
    _headers(
        msg,
        sender,
        letter.subject,
        clock,
        message_id or _message_id(row.idempotency_key),
        row.idempotency_key,
        row.template,
    )
    msg.set_content(letter.body_text)
    msg.add_alternative(letter.body_html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=_safe("the file name", a.filename))
    return msg


_BODY = re.compile(r"<body\b[^>]*>(.*)</body\s*>", re.S | re.I)
_SALUTATION = re.compile(r"^\s*<p>\s*Dear\b[^<]*</p>\s*", re.I)


def _inner(html: str) -> str:
    """What a letter's HTML document says inside its ``<body>``, without its salutation."""
    found = _BODY.search(html)
    inner = (
        found.group(1)
        if found
        else re.sub(r"(?is)<!doctype[^>]*>|</?(html|head|body)\b[^>]*>|<title>.*?</title>|<meta\b[^>]*>", "", html)
    )
    return _SALUTATION.sub("", inner, count=1)


def digest_parts(person: dict[str, str], letters: Sequence[Rendered]) -> tuple[str, str, str]:
    """(subject, text, html) of a digest of ``letters`` to one person: one HTML document, with an
    introduction ("2 items need your attention") and a heading per item."""
    if len(letters) == 1:
        return letters[0]
    from notifications.render import render_layout

    n = len(letters)
    subject = f"peerwatch: {n} items need your attention"
    intro = f"Dear {person['name']},\n\n{n} items need your attention.\n\n"
    sep = "\n" + "-" * 66 + "\n\n"
    text = intro + sep.join(
        f"{i}. {r.subject}\n{'=' * min(len(f'{i}. {r.subject}'), 66)}\n\n{r.body_text}"
        for i, r in enumerate(letters, 1)
    )
    html = render_layout(
        "_digest.html.j2",
        {
            "subject": subject,
            "person": person,
            "count": n,
            "items": [{"subject": r.subject, "body": _inner(r.body_html)} for r in letters],
        },
    )
    return subject, text, html


def digest_message_id(rows: Sequence[OutboxMessage]) -> str:
    return _message_id("digest:" + "|".join(r.idempotency_key for r in rows))


def build_digest(rows: list[OutboxMessage], sender: str, clock: Clock, message_id: str | None = None) -> EmailMessage:
    person = rows[0].to[0]
    subject, text, html = digest_parts(person, [rendered(r) for r in rows])
    msg = EmailMessage()
    msg["To"] = _addr([person])
    _headers(
        msg,
        sender,
        subject,
        clock,
        message_id or digest_message_id(rows),
        ",".join(r.idempotency_key for r in rows),
        "digest" if len(rows) > 1 else rows[0].template,
    )
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _build(
    rows: list[OutboxMessage],
    sender: str,
    clock: Clock,
    files: dict[str, list[Attachment]],
    message_id: str | None = None,
) -> EmailMessage:
    """The message for ``rows``, serialised once here so that anything it cannot hold fails now,
    inside the row's guard, not in the transport."""
    if rows[0].category == "letter":
        msg = build_letter(rows[0], sender, clock, files.get(rows[0].idempotency_key, []), message_id)
    else:
        msg = build_digest(rows, sender, clock, message_id)
    msg.as_bytes()
    return msg


def _build_guarded(
    rows: list[OutboxMessage],
    sender: str,
    clock: Clock,
    files: dict[str, list[Attachment]],
    message_id: str | None = None,
) -> tuple[EmailMessage | None, list[OutboxMessage], dict[int, str]]:
    """Build the message for ``rows``; returns (message or None, the rows it carries, {id(row): why not} for
    the rows that cannot go). A digest that cannot be built is tried row by row: the good rows still go."""

    def why(exc: Exception) -> str:
        return f"letter could not be built: {type(exc).__name__}: {exc}"

    try:
        return _build(rows, sender, clock, files, message_id), rows, {}
    except Exception as exc:
        if len(rows) == 1:
            return None, [], {id(rows[0]): why(exc)}
    broken: dict[int, str] = {}
    good = []
    for r in rows:
        try:
            _build([r], sender, clock, files)
            good.append(r)
        except Exception as exc:
            broken[id(r)] = why(exc)
    if not good:
        return None, [], broken
    try:
        return _build(good, sender, clock, files, message_id if not broken else None), good, broken
    except Exception as exc:
        return None, [], {**broken, **{id(r): why(exc) for r in good}}


# ------------------------------------------------------------------------------ incidents


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
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                or_(
                    col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.UNDELIVERABLE]),
                    (OutboxMessage.status == OutboxStatus.SENDING) & (col(OutboxMessage.next_attempt_at) <= now),
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
    from zoneinfo import ZoneInfo

    from states.clock import LONDON

    return at.astimezone(ZoneInfo(LONDON)).strftime("%a %d %b %Y %H:%M %Z")


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
        mid = r.message_id or (_message_id(r.idempotency_key) if r.category == "letter" else None)
        answer = ask(mid) if ask is not None and mid else None
        if answer is True:
            r.status, r.sent_at, r.message_id, r.resend_at = OutboxStatus.SENT, now, mid, None
            r.last_error = None
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


def settle_in_doubt(
    session: Session, ids: list[int], action: str, *, actor: str, role: str, clock: Clock
) -> list[OutboxMessage]:
    """The operator's word on letters in doubt: ``hold`` (no automatic resend; an incident until
    retried), ``resend`` (resent on the next dispatch, same Message-ID), or ``delivered`` (the
    recipient has it: marked sent, never resent). Each is an audited change (who, role, when) in
    the caller's transaction. Refuses, changing nothing, any id not in doubt."""
    from states import engine

    now = clock.now()
    if action not in ("hold", "resend", "delivered"):
        raise InvalidInput(f"{action!r}: use hold, resend or delivered")
    rows = []
    for i in dict.fromkeys(ids):
        m = session.get(OutboxMessage, i) if -(2**63) <= i < 2**63 else None
        if m is None:
            from states.errors import NotFound

            raise NotFound(f"outbox message {i} not found (peerwatch outbox list --incidents)")
        if not is_in_doubt(m):
            raise InvalidInput(f"outbox message {i} is not in doubt (it is {m.status}): nothing to settle")
        rows.append(m)
    for m in rows:
        if action == "hold":
            m.resend_at = None
            m.last_error = (
                IN_DOUBT
                + f"held by the operator on {_when(now)}: not resent until `peerwatch outbox retry` or `outbox in-doubt --resend`"
            )
        elif action == "resend":
            m.resend_at, m.resent_at = now, None
        else:
            m.status, m.sent_at, m.resend_at = OutboxStatus.SENT, now, None
            m.last_error = f"marked delivered by the operator on {_when(now)} after an interrupted send"
        session.add(m)
        engine.record_change(
            session,
            "outbox",
            m.id,
            f"in_doubt_{action}",
            actor=actor,
            role=role,
            clock=clock,  # type: ignore[arg-type]
            from_state="in doubt",
            state=str(m.status) if action == "delivered" else "in doubt",
            data={"item": f"{m.kind} {m.item_id}", "template": m.template, "message_id": m.message_id},
        )
    return rows


# ------------------------------------------------------------------------------ sending


def _render(rows: list[OutboxMessage]) -> list[tuple[OutboxMessage, str]]:
    """Render each row not yet rendered, in place; returns the rows that could not be, with why."""
    failed = []
    for r in rows:
        if r.body_text is None:
            try:
                r.subject, r.body_text, r.body_html = rendered(r)
            except Exception as exc:
                failed.append(
                    (r, f"letter could not be rendered from template {r.template!r}: {type(exc).__name__}: {exc}")
                )
    return failed


def _fail(
    r: OutboxMessage,
    before: str,
    error: str,
    now: datetime,
    policy: Policy,
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
    session: Session, rows: list[OutboxMessage], read: dict[int, tuple[str, int]], lease_until: datetime
) -> list[tuple[OutboxMessage, str]]:
    """Claim rows still as we read them (conditional UPDATE); returns (row, status before)."""
    claimed = []
    for r in rows:
        status, attempts = read[r.id]  # type: ignore[index]
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
        policy: Policy,
        dpolicy: DispatchPolicy,
        summary: DispatchSummary,
    ) -> None:
        self.session, self.transport, self.clock, self.policy, self.dpolicy = session, transport, clock, policy, dpolicy
        self.summary, self.now = summary, clock.now()
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
        msg, going, broken = _build_guarded(
            claimed, run.transport.sender, run.clock, files, None if mid.startswith("row:") else mid
        )
        for r in claimed:
            if id(r) in broken:
                run.unsendable(r, OutboxStatus.SENDING, broken[id(r)])
        if msg is not None:
            msg["X-Peerwatch-Resend"] = "resent after an interrupted send; same Message-ID"
            exc = run.send(msg)
            for r in going:
                if exc is None:
                    r.status, r.sent_at, r.last_error, r.message_id = (
                        OutboxStatus.SENT,
                        now,
                        None,
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
    policy: Policy | None = None,
    limit: int = 1000,
    dpolicy: DispatchPolicy | None = None,
) -> DispatchSummary:
    """Recover interrupted sends, resend those in doubt whose wait is over, then send what is due;
    commits as it goes so nothing goes twice in the normal path."""
    policy = policy or Policy.from_env()
    dpolicy = dpolicy or DispatchPolicy.from_env()
    summary = recover(session, transport, clock, dpolicy)
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
        msg, going, unbuilt = _build_guarded([r for r, _ in claimed], transport.sender, clock, files)
        for r, before in claimed:
            if id(r) in unbuilt:  # a value no mail can carry: an incident at once, the rest go on
                run.unsendable(r, before, unbuilt[id(r)])
        if msg is None:
            session.commit()
            continue
        claimed = [(r, before) for r, before in claimed if id(r) not in unbuilt]
        for r, _ in claimed:  # the same values the claim wrote, plus the Message-ID, for recovery
            r.status, r.attempts, r.next_attempt_at, r.message_id = (
                OutboxStatus.SENDING,
                read[r.id][1] + 1,
                lease_until,
                str(msg["Message-ID"]),
            )  # type: ignore[index]
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
                r.status, r.sent_at, r.last_error = OutboxStatus.SENT, now, None
                if before == OutboxStatus.FAILED:
                    summary.redelivered += 1
                session.add(r)
            summary.sent_messages += 1
            summary.sent_rows += len(going)
        session.commit()
    return summary
