"""Letters that carry a secret made only when they are sent: an account invitation's link.

The outbox keeps what it sent, word for word (``dispatch``); an invitation's link must not be
kept anywhere in the database. Its letter is rendered with ``TOKEN_MARK`` where the token goes,
and that is what the row keeps. ``seal`` runs on the message built for the mail service, just
before the claim is committed: it makes the token, stores only its SHA-256 on the invitation
(``access_token``, purpose ``invite``: a hash made earlier, or at an earlier try, stops
working) and puts the token into that message only. An invitation no longer live (used,
replaced, expired) gets the word ``expired`` instead: its link shows the portal's "not valid"
page. states/services/trust_accounts.py writes these letters and checks the token; the
template's name, the mark, the prefix and the purpose are the same text there.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage, MIMEPart

from sqlmodel import Session

from models.accounts import AccessToken
from models.tables import OutboxMessage

TEMPLATE = "account_invitation"
TOKEN_MARK = "TOKEN-WITHHELD-MADE-AT-SENDING"
TOKEN_PREFIX = "pwi_"
PURPOSE = "invite"
DEAD = "expired"  # in place of the token of an invitation no longer live


def _fill(msg: EmailMessage, value: str) -> None:
    """Put ``value`` where the mark is, in each text part of the message (not in the row)."""
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        body = part.get_content()
        if TOKEN_MARK in body:
            MIMEPart.set_content(part, body.replace(TOKEN_MARK, value), subtype=part.get_content_subtype())


def seal(session: Session, rows: Sequence[OutboxMessage], msg: EmailMessage, now: datetime) -> None:
    """Make the token of each invitation among ``rows`` and put it into ``msg``; its hash is
    stored in ``session`` (committed with the claim, before the message is handed over)."""
    for r in rows:
        if r.template != TEMPLATE:
            continue
        tok = session.get(AccessToken, r.item_id)
        if tok is None or tok.purpose != PURPOSE or tok.revoked_at is not None or tok.expires_at <= now:
            _fill(msg, DEAD)
            continue
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        tok.token_hash = hashlib.sha256(token.encode()).hexdigest()
        session.add(tok)
        _fill(msg, token)
