"""Signing in to the web application: passwords (Argon2id, NCSC guidance), single sign-on by
OpenID Connect, server-side sessions, throttling; each sign-in, failure and sign-out audited.

- ``check_password_policy``: length over complexity (NCSC): at least 12 characters by default
  (``PEERWATCH_PASSWORD_MIN_LENGTH``), at most 256, no composition rules; refused if it is on
  the deny-list (``states/passwords-denylist.txt``, plus an optional file named by
  ``PEERWATCH_PASSWORD_DENYLIST``), a run of one or two characters or an alphabet sequence, or
  mostly the person's name, email or the service's name.
- ``set_password``: one's own, or an administrator for another account (audited
  ``password_set``; the account's web sessions end).
- ``sign_in``: email and password -> a new session (``SignedIn``: the cookie's token, shown
  once; only its SHA-256 is stored). Unknown email, wrong password, a disabled account and one
  with no password get the same refusal (``REFUSED``); a dummy hash is verified for an unknown
  account so the time taken does not tell. Throttles, by default: 5 failures for one account
  within 15 minutes lock its password sign-in for 15 minutes; 20 failures from one address
  within 15 minutes lock that address (``PEERWATCH_SIGNIN_ACCOUNT_FAILURES``,
  ``PEERWATCH_SIGNIN_ADDRESS_FAILURES``, ``PEERWATCH_SIGNIN_WINDOW_MINUTES``,
  ``PEERWATCH_SIGNIN_LOCK_MINUTES``).
- ``sign_in_oidc``: an identity the OpenID provider vouched for -> the account linked to it
  (issuer + subject), else the active account whose email is the identity's *verified* email
  (then linked, audited ``sso_linked``); anything else gets no access.
- ``session_principal``: the cookie's token -> the principal acting (``via`` ``web``) and the
  session; None when unknown, signed out, past its absolute lifetime (default 12 hours,
  ``PEERWATCH_WEB_SESSION_HOURS``), idle longer than the idle timeout (default 30 minutes,
  ``PEERWATCH_WEB_IDLE_MINUTES``) or its account is not active.
- ``sign_out``, ``end_sessions``, ``link_oidc``.

Times come from the clock handed in (a ``FixedClock`` in tests). Neither a password nor a
token is ever written to the audit data.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.accounts import User
from models.db import begin_write
from models.web import SignInAttempt, WebSession
from states.clock import Clock, SystemClock
from states.engine.audit import record_change, record_refusal
from states.errors import InvalidInput, NotFound, PermissionDenied, SignInRefused
from states.principal import Principal
from states.roles import ADMINISTRATOR
from states.services.accounts import ACTIVE, find_user, principal_for
from states.services.signin_checks import (
    MAX_EMAIL_KEPT,
    Throttle,
    clean_address,
    email_given,
    env_int,
    hash_password,
    minute,
    one_at_a_time,
    throttled,
    verify,
)
from states.services.signin_policy import check_password_policy
from states.text import check_text

__all__ = [
    "REFUSED",
    "UNKNOWN_IDENTITY",
    "SignedIn",
    "Throttle",
    "WebSessionInfo",
    "check_admin",
    "check_password_policy",
    "end_sessions",
    "hash_password",
    "idle_timeout",
    "link_oidc",
    "session_lifetime",
    "session_principal",
    "set_password",
    "sign_in",
    "sign_in_oidc",
    "sign_out",
    "start_session",
    "unlink_oidc",
]

REFUSED = "email or password not recognised"
UNKNOWN_IDENTITY = "no peerwatch account for this identity: ask an administrator"
MAX_PASSWORD_TRIED = 1024  # longer is refused without hashing (the policy allows 256)
MAX_OIDC = 255  # issuer URL, subject
TOUCH_EVERY = timedelta(minutes=1)  # a session's last_seen_at is written at most this often
NO_ROLE = "(none)"  # signing in or out is done in no role


def idle_timeout() -> timedelta:
    """How long a session may go unused (default 30 minutes, ``PEERWATCH_WEB_IDLE_MINUTES``)."""
    return timedelta(minutes=env_int("PEERWATCH_WEB_IDLE_MINUTES", 30, 1, 7 * 24 * 60))


def session_lifetime() -> timedelta:
    """A session's absolute lifetime (default 12 hours, ``PEERWATCH_WEB_SESSION_HOURS``)."""
    return timedelta(hours=env_int("PEERWATCH_WEB_SESSION_HOURS", 12, 1, 31 * 24))


@dataclass(frozen=True)
class SignedIn:
    """A new session: ``token`` is the cookie's value (shown once; only its hash is kept)."""

    token: str
    session_id: int
    user_id: int
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class WebSessionInfo:
    """A live session as the web application needs it (never its token)."""

    id: int
    user_id: int
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    via: str


# ---------------------------------------------------------------- hashing


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- passwords


def _is_admin(principal: Principal) -> bool:
    return not principal.is_system and principal.holds(ADMINISTRATOR)


def check_admin(principal: Principal, what: str) -> None:
    """Refuse ``what`` unless the principal is an administrator."""
    if not _is_admin(principal):
        raise PermissionDenied(f"{principal.name} may not {what}: only an administrator may")


def set_password(
    session: Session,
    principal: Principal,
    clock: Clock,
    ref: str | int | None,
    password: str,
    *,
    keep_session_id: int | None = None,
) -> User:
    """Set an account's password: one's own (``ref`` None or oneself), or an administrator for
    another account. Every web session of the account ends (except ``keep_session_id``: the
    one the person is using to change their own password)."""
    if principal.is_system:
        raise PermissionDenied("the system account has no password: nobody signs in as it")
    user = find_user(session, principal.user_id if ref is None or ref == "" else ref)
    own = user.id == principal.user_id
    if not own:
        check_admin(principal, "set another account's password")
    check_password_policy(password, name=user.name, email=user.email)
    user.password_hash = hash_password(password)
    user.password_set_at = clock.now()
    session.add(user)
    assert user.id is not None
    ended = end_sessions(session, user.id, clock, "password_set", keep=keep_session_id)
    record_change(session, "account", user.id, "password_set", principal=principal,
                  role=NO_ROLE if own else ADMINISTRATOR, clock=clock, state=user.status,
                  data={"own": own, "sessions_ended": ended})  # fmt: skip
    return user


# ---------------------------------------------------------------- throttles


# ---------------------------------------------------------------- signing in


def _user_by_email(session: Session, email: str) -> User | None:
    if not email or len(email) > 320 or not email.isprintable():  # PostgreSQL refuses a NUL in a query
        return None
    return session.exec(select(User).where(func.lower(User.email) == email)).first()


def _bare(user: User) -> Principal:
    assert user.id is not None
    return Principal(user.id, user.name, (), "web")


def _refuse(db: Engine, user: User | None, clock: Clock, why: str, params: dict[str, Any], shown: str) -> SignInRefused:
    """Record the refused sign-in (its own transaction) and return the error to raise."""
    who = _bare(user) if user is not None and user.id is not None else None
    record_refusal(db, "account", who.user_id if who else None, "sign_in", who, NO_ROLE, clock, why, params)
    return SignInRefused(shown)


def _start(session: Session, user: User, clock: Clock, address: str | None, via: str, email: str) -> SignedIn:
    """In the caller's write transaction: a new session row, the attempt, the audit event."""
    now = clock.now()
    assert user.id is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = WebSession(token_hash=_sha256(token), user_id=user.id, csrf=csrf, created_at=now, last_seen_at=now,
                     expires_at=now + session_lifetime(), address=address, via=via)  # fmt: skip
    session.add(row)
    session.add(SignInAttempt(at=now, account_id=user.id, email_given=email, address=address, via=via, ok=True))
    user.last_seen_at = now
    session.add(user)
    session.flush()
    assert row.id is not None
    record_change(session, "account", user.id, "signed_in", principal=principal_for(session, user, "web", clock=clock),
                  role=NO_ROLE, clock=clock, state=user.status,
                  data={"session_id": row.id, "method": via, "address": address})  # fmt: skip
    return SignedIn(token=token, session_id=row.id, user_id=user.id, csrf=csrf, expires_at=row.expires_at)


def start_session(session: Session, user: User, clock: Clock, address: str | None, via: str) -> SignedIn:
    """In the caller's write transaction: a new session for an active account whose person has
    just proved who they are another way (an accepted invitation, ``via`` "invitation"); audited
    ``signed_in`` as every sign-in is."""
    if user.status != ACTIVE:
        raise PermissionDenied(f"account {user.id} ({user.name}) is {user.status}: it may not sign in")
    return _start(session, user, clock, clean_address(address), via, email_given(user.email or ""))


def sign_in(db: Engine, email: str, password: str, address: str | None, clock: Clock) -> SignedIn:
    """Email and password -> a new session, or ``SignInRefused`` (``REFUSED`` whatever was
    wrong; a distinct message when throttled). The slow hash check runs outside any transaction."""
    given = email_given(email)
    address = clean_address(address)
    params: dict[str, Any] = {"email": given, "address": address, "method": "password"}
    # The attempt is reserved (stored as a failure) and the throttles count only those reserved
    # before it, in one transaction, one email at a time (PostgreSQL hands out ids before commit):
    # guesses sent at once each see the ones before them; no more than the limit reach the check.
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        one_at_a_time(s, given)
        user = _user_by_email(s, str(email or "").strip().lower())
        attempt = SignInAttempt(at=clock.now(), account_id=user.id if user is not None else None, email_given=given,
                                address=address, via="password", ok=False)  # fmt: skip
        s.add(attempt)
        s.flush()
        until = throttled(s, given, address, clock, before_id=attempt.id)
        if until is not None:  # a refused try is not a failure of its own: the lock is not lengthened
            s.delete(attempt)
        s.commit()
    if until is not None:
        shown = f"too many failed sign-ins: try again after {minute(until)}"
        raise _refuse(db, user, clock, f"throttled until {until.isoformat()}", params, shown)
    password = password if isinstance(password, str) else ""
    if len(password) > MAX_PASSWORD_TRIED:
        ok, rehash = False, None
    else:
        ok, rehash = verify(user.password_hash if user is not None else None, password)
    why = (
        "no account with that email" if user is None
        else f"account is {user.status}" if user.status != ACTIVE
        else "no password set" if user.password_hash is None
        else "wrong password" if not ok
        else None
    )  # fmt: skip
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        if why is None:
            assert user is not None
            fresh = s.get(User, user.id)
            if fresh is None or fresh.status != ACTIVE or fresh.password_hash != user.password_hash:
                why = "account changed while signing in"  # disabled, or its password set, meanwhile
            else:
                if rehash is not None:
                    fresh.password_hash = rehash
                reserved = s.get(SignInAttempt, attempt.id)
                if reserved is not None:
                    s.delete(reserved)  # _start records the successful attempt itself
                done = _start(s, fresh, clock, address, "password", given)
                s.commit()
                return done
    raise _refuse(db, user, clock, why, params, REFUSED)


def _check_identity(issuer: str, subject: str) -> tuple[str, str]:
    issuer, subject = str(issuer or "").strip(), str(subject or "").strip()
    for value, what in ((issuer, "issuer"), (subject, "subject")):
        check_text(value, f"the OpenID Connect {what}")
        if not value or len(value) > MAX_OIDC:
            raise InvalidInput(f"the OpenID Connect {what} must be 1 to {MAX_OIDC} characters")
    if not issuer.startswith(("https://", "http://")) or any(c.isspace() for c in issuer):
        raise InvalidInput(f"issuer {issuer!r}: give the provider's issuer URL (https://...)")
    return issuer, subject


def sign_in_oidc(
    db: Engine,
    *,
    issuer: str,
    subject: str,
    email: str | None,
    email_verified: bool,
    address: str | None,
    clock: Clock,
) -> SignedIn:
    """An identity the OpenID provider vouched for -> a new session for its account, or
    ``SignInRefused`` (``UNKNOWN_IDENTITY``). Mapped by issuer and subject; else, once, by a
    verified email to an active account not linked to another identity (then linked)."""
    issuer, subject = _check_identity(issuer, subject)
    given = email_given(email or "")
    address = clean_address(address)
    params: dict[str, Any] = {"issuer": issuer, "subject": subject[:MAX_EMAIL_KEPT], "email": given,
                              "email_verified": bool(email_verified), "address": address, "method": "oidc"}  # fmt: skip
    user: User | None = None
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        user = s.exec(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)).first()
        why: str | None = None
        linked = False
        if user is None:
            by_email = _user_by_email(s, str(email).strip().lower()) if given and email_verified is True else None
            if not given or email_verified is not True:
                why = "identity not linked, and no verified email to map it by"
            elif by_email is None:
                why = "identity not linked, and no account with its email"
            elif by_email.oidc_subject is not None:
                user, why = by_email, "the account with that email is linked to another identity"
            else:
                user, linked = by_email, by_email.status == ACTIVE
        if why is None and user is not None and user.status != ACTIVE:
            why = f"account is {user.status}"
        if why is None and user is not None:
            assert user.id is not None
            if linked:
                user.oidc_issuer, user.oidc_subject = issuer, subject
                s.add(user)
                s.flush()
                record_change(s, "account", user.id, "sso_linked", principal=principal_for(s, user, "web", clock=clock),
                              role=NO_ROLE, clock=clock, state=user.status,
                              data={"issuer": issuer, "subject": subject, "by": "verified email"})  # fmt: skip
            done = _start(s, user, clock, address, "oidc", given)
            s.commit()
            return done
        s.add(SignInAttempt(at=clock.now(), account_id=user.id if user is not None else None, email_given=given,
                            address=address, via="oidc", ok=False))  # fmt: skip
        s.commit()
    raise _refuse(db, user, clock, why or "refused", params, UNKNOWN_IDENTITY)


# ---------------------------------------------------------------- sessions


def _live(session: Session, token: str, clock: Clock) -> tuple[WebSession, User] | None:
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    row = session.exec(select(WebSession).where(WebSession.token_hash == _sha256(token))).first()
    if row is None or row.ended_at is not None:
        return None
    now = clock.now()
    if now >= row.expires_at or now - row.last_seen_at > idle_timeout():
        return None
    user = session.get(User, row.user_id)
    if user is None or user.status != ACTIVE:
        return None  # a disabled account's sessions are dead
    return row, user


def session_principal(session: Session, token: str, clock: Clock) -> tuple[Principal, WebSessionInfo] | None:
    """The principal a session cookie's token stands for, with its session; None when the token
    is unknown, signed out, expired (absolute or idle) or its account is not active.

    Records use (the session's and the account's ``last_seen_at``) at most once a minute, and
    commits that in ``session`` when it does: call it before any other work in the session."""
    found = _live(session, token, clock)
    if found is None:
        return None
    row, user = found
    principal = principal_for(session, user, "web", clock=clock)  # grants ended by a contact's retirement left out
    now = clock.now()
    touch = now - row.last_seen_at >= TOUCH_EVERY
    assert row.id is not None
    info = WebSessionInfo(id=row.id, user_id=row.user_id, csrf=row.csrf, created_at=row.created_at,
                          last_seen_at=now if touch else row.last_seen_at, expires_at=row.expires_at, via=row.via)  # fmt: skip
    if touch:  # read before the commit: nothing is loaded again after it
        session.execute(update(WebSession).where(col(WebSession.id) == info.id).values(last_seen_at=now))
        session.execute(update(User).where(col(User.id) == info.user_id).values(last_seen_at=now))
        session.commit()
    return principal, info


def sign_out(db: Engine, token: str, clock: Clock) -> bool:
    """End the session the token stands for (audited ``signed_out``); False if it was not live."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return False
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        row = s.exec(select(WebSession).where(WebSession.token_hash == _sha256(token))).first()
        if row is None or row.ended_at is not None:
            return False
        user = s.get(User, row.user_id)
        assert user is not None and row.id is not None
        row.ended_at, row.ended_reason = clock.now(), "signed_out"
        s.add(row)
        who = principal_for(s, user, "web", clock=clock) if user.status == ACTIVE else _bare(user)
        record_change(s, "account", row.user_id, "signed_out", principal=who, role=NO_ROLE, clock=clock,
                      state=user.status, data={"session_id": row.id})  # fmt: skip
        s.commit()
        return True


def end_sessions(
    session: Session, user_id: int, clock: Clock | None = None, reason: str = "ended", *, keep: int | None = None
) -> int:
    """End every live session of an account (in the caller's transaction); how many ended.
    (A disabled account's sessions are refused anyway: ``session_principal`` checks its status.)"""
    q = (
        update(WebSession)
        .where(col(WebSession.user_id) == user_id, col(WebSession.ended_at).is_(None))
        .values(ended_at=(clock or SystemClock()).now(), ended_reason=reason)
    )
    if keep is not None:
        q = q.where(col(WebSession.id) != keep)
    result = session.execute(q)
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------- single sign-on


def link_oidc(session: Session, principal: Principal, clock: Clock, ref: str | int, issuer: str, subject: str) -> User:
    """An administrator links an account to an OpenID Connect identity (issuer URL and subject)."""
    check_admin(principal, "link sign-on identities")
    issuer, subject = _check_identity(issuer, subject)
    user = find_user(session, ref)
    other = session.exec(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)).first()
    if other is not None and other.id != user.id:
        raise InvalidInput(f"that identity is already linked to account {other.id} ({other.name}); nothing was changed")
    if other is not None:
        raise InvalidInput(f"account {user.id} ({user.name}) is already linked to that identity")
    before = {"issuer": user.oidc_issuer, "subject": user.oidc_subject} if user.oidc_subject else None
    user.oidc_issuer, user.oidc_subject = issuer, subject
    session.add(user)
    session.flush()
    assert user.id is not None
    record_change(session, "account", user.id, "sso_linked", principal=principal, role=ADMINISTRATOR, clock=clock,
                  state=user.status, data={"issuer": issuer, "subject": subject, "before": before})  # fmt: skip
    return user


def unlink_oidc(session: Session, principal: Principal, clock: Clock, ref: str | int) -> User:
    """An administrator removes an account's single sign-on identity (audited ``sso_unlinked``)."""
    check_admin(principal, "unlink sign-on identities")
    user = find_user(session, ref)
    if user.oidc_subject is None:
        raise NotFound(f"account {user.id} ({user.name}) has no single sign-on identity")
    before = {"issuer": user.oidc_issuer, "subject": user.oidc_subject}
    user.oidc_issuer = user.oidc_subject = None
    session.add(user)
    assert user.id is not None
    record_change(session, "account", user.id, "sso_unlinked", principal=principal, role=ADMINISTRATOR,
                  clock=clock, state=user.status, data={"before": before})  # fmt: skip
    return user
