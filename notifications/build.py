"""Build the email for outbox rows: headers a mail service will carry, one letter or one digest.

Everything a header holds is checked here (``_safe``): a stored name or address holding a line
break, a control character or a Unicode line separator raises ``ValueError`` naming it, so the
dispatcher can set that row aside as an incident and send the rest. A message is serialised
once here (``build``), so anything it cannot hold fails now, not in the transport.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Protocol

from models.tables import Attachment, OutboxMessage
from notifications.render import Rendered, render_layout, rendered

DOMAIN = "peerwatch.invalid"


class Clock(Protocol):
    """What the sending side needs of a clock: the current instant, timezone-aware UTC."""

    def now(self) -> datetime: ...


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


def message_id_for(key: str) -> str:
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
        message_id or message_id_for(row.idempotency_key),
        row.idempotency_key,
        row.template,
    )
    msg.set_content(letter.body_text)
    msg.add_alternative(letter.body_html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        if a.data is None:
            raise ValueError(f"attachment {a.filename!r} is not rendered yet")
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
    return message_id_for("digest:" + "|".join(r.idempotency_key for r in rows))


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


def build(
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


def build_guarded(
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
        return build(rows, sender, clock, files, message_id), rows, {}
    except Exception as exc:
        if len(rows) == 1:
            return None, [], {id(rows[0]): why(exc)}
    broken: dict[int, str] = {}
    good = []
    for r in rows:
        try:
            build([r], sender, clock, files)
            good.append(r)
        except Exception as exc:
            broken[id(r)] = why(exc)
    if not good:
        return None, [], broken
    try:
        return build(good, sender, clock, files, message_id if not broken else None), good, broken
    except Exception as exc:
        return None, [], {**broken, **{id(r): why(exc) for r in good}}
