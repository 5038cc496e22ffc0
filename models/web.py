"""The web application's sign-in records: server-side sessions and sign-in attempts.

A ``WebSession`` is one signed-in browser: the cookie holds a random token, the row only its
SHA-256 hash, with the CSRF token the session's forms carry, when it was made and last used,
its absolute expiry and when it ended (signed out). ``SignInAttempt`` rows count failures for
the throttles (per account and per address). Nothing here decides anything:
``states/services/signin.py`` does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field

from models.types import Table, UTCDateTime, utcnow


class WebSession(Table, table=True):
    """A signed-in browser session (the cookie's token is stored only as a hash)."""

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_user", "user_id", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)  # SHA-256 hex of the cookie's token
    user_id: int = Field(foreign_key="account.id")
    csrf: str  # the token every state-changing form of this session carries
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)  # absolute: no use extends it
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_reason: str | None = None  # signed_out | disabled
    address: str | None = None  # the client's address at sign-in
    via: str = "password"  # password | oidc


class SignInAttempt(Table, table=True):
    """One sign-in attempt, successful or not: the throttles count the failures, per email given
    (known or not, so that a lock tells nothing about which accounts exist) and per address."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_email", "email_given", "ok", "at"),
        Index("ix_sign_in_attempt_address", "address", "ok", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    account_id: int | None = Field(default=None, foreign_key="account.id")  # None: no such account
    email_given: str | None = None  # lower-cased, truncated
    address: str | None = None
    via: str = "password"  # password | oidc
    ok: bool = False
