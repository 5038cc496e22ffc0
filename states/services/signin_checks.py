"""The parts of password sign-in that more than one use case shares: Argon2id hashing and its
check, the throttles (failures per email given and per address, counted from the attempts
reserved before this one, under a per-email lock on PostgreSQL), and how the email given and
the client's address are kept. ``signin`` signs people in with them; ``account_self`` checks a
person's current password with exactly the same count, so a stolen session gets no more
guesses than the sign-in page."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, text
from sqlmodel import Session, col, select

from models.web import SignInAttempt
from states.clock import LONDON, Clock
from states.errors import InvalidInput
from states.services.signin_policy import normal

MAX_EMAIL_KEPT = 120  # the email given, as kept with a failed attempt
MAX_ADDRESS = 64


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r}: give a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name}={value}: give {low} to {high}")
    return value


@dataclass(frozen=True)
class Throttle:
    """The sign-in throttles in force (defaults; each set by its environment variable)."""

    account_failures: int
    address_failures: int
    window: timedelta
    lock: timedelta

    @classmethod
    def from_env(cls) -> Throttle:
        return cls(
            account_failures=env_int("PEERWATCH_SIGNIN_ACCOUNT_FAILURES", 5, 1, 1000),
            address_failures=env_int("PEERWATCH_SIGNIN_ADDRESS_FAILURES", 20, 1, 100000),
            window=timedelta(minutes=env_int("PEERWATCH_SIGNIN_WINDOW_MINUTES", 15, 1, 24 * 60)),
            lock=timedelta(minutes=env_int("PEERWATCH_SIGNIN_LOCK_MINUTES", 15, 1, 24 * 60)),
        )


HASHER = PasswordHasher()  # Argon2id, argon2-cffi's default parameters (RFC 9106 low-memory)
_DUMMY: list[str] = []


def hash_password(password: str) -> str:
    return HASHER.hash(normal(password))


def dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when the account is unknown (same cost)."""
    if not _DUMMY:
        _DUMMY.append(HASHER.hash(secrets.token_urlsafe(24)))
    return _DUMMY[0]


def verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Whether ``password`` matches ``stored`` (a dummy when None), and a new hash when the
    stored one was made with parameters other than today's."""
    try:
        HASHER.verify(stored or dummy_hash(), normal(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, hash_password(password) if HASHER.check_needs_rehash(stored) else None


def _locked_until(ats: list[datetime], limit: int, throttle: Throttle, now: datetime) -> datetime | None:
    """The end of the lock ``ats`` (failure times, oldest first) put in force, if still on:
    ``limit`` failures within the window lock for ``throttle.lock`` from the last of them."""
    until: datetime | None = None
    for i in range(limit - 1, len(ats)):
        if ats[i] - ats[i - limit + 1] < throttle.window and ats[i] + throttle.lock > now:
            until = max(until or ats[i], ats[i] + throttle.lock)
    return until


def _failures(session: Session, since: datetime, *, email: str | None = None, address: str | None = None,
              before_id: int | None = None) -> list[datetime]:  # fmt: skip
    """The password sign-in failures since ``since`` for one email given, or from one address
    (``before_id``: only attempts reserved before that one)."""
    q = select(SignInAttempt.at).where(
        col(SignInAttempt.ok).is_(False), SignInAttempt.via == "password", SignInAttempt.at > since
    )
    if before_id is not None:
        q = q.where(col(SignInAttempt.id) < before_id)
    if email is not None:
        last_ok = session.exec(
            select(func.max(SignInAttempt.at)).where(SignInAttempt.email_given == email, col(SignInAttempt.ok))
        ).one()
        q = q.where(SignInAttempt.email_given == email)
        if last_ok is not None:  # a successful sign-in starts the count again
            q = q.where(SignInAttempt.at > last_ok)
    else:
        q = q.where(SignInAttempt.address == address)
    return sorted(session.exec(q.order_by(col(SignInAttempt.at).desc()).limit(1000)).all())


def throttled(
    session: Session, email: str, address: str | None, clock: Clock, before_id: int | None = None
) -> datetime | None:
    """When password sign-in for this account (by the email given, whether an account has it or
    not: a lock tells nothing), or from this address, may be tried again; None if now."""
    throttle, now = Throttle.from_env(), clock.now()
    since = now - throttle.window - throttle.lock
    locks = []
    if email:
        locks.append(
            _locked_until(
                _failures(session, since, email=email, before_id=before_id), throttle.account_failures, throttle, now
            )
        )
    if address:
        locks.append(
            _locked_until(
                _failures(session, since, address=address, before_id=before_id),
                throttle.address_failures,
                throttle,
                now,
            )
        )
    found = [t for t in locks if t is not None]
    return max(found) if found else None


def minute(moment: datetime) -> str:
    """``moment`` rounded up to the minute, as a London HH:MM."""
    up = moment + timedelta(seconds=59, microseconds=999999)
    return up.astimezone(ZoneInfo(LONDON)).strftime("%H:%M")


def clean_address(address: str | None) -> str | None:
    if address is None:
        return None
    address = "".join(c for c in str(address) if c.isprintable()).strip()[:MAX_ADDRESS]
    return address or None


def email_given(email: str) -> str:
    return "".join(c for c in str(email) if c.isprintable()).strip().lower()[:MAX_EMAIL_KEPT]


def one_at_a_time(session: Session, email: str) -> None:
    """Lock this email's attempts to the transaction's end (PostgreSQL; SQLite writes one at a time)."""
    if (conn := session.connection()).dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"sign-in:{email}".encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
