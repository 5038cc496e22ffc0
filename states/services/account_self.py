"""A person's own account (the web's ``/account``): who I am, my grants, my open sessions;
changing my own password and signing out of my other sessions. Each change is audited.

- ``my_account``: name, email, how I am signed in, whether the account has a password (an
  account with only single sign-on is told passwords are not used for it), my grants in force
  with where each is held, and my open sessions (started, last seen, this one marked).
- ``change_own_password``: the current password is required. Guesses at it are throttled as
  sign-in is, on the same count: each wrong current password is recorded as a failed password
  sign-in for the account's email (``states/services/signin.py``), so together a stolen session
  and the sign-in page get no more guesses than the sign-in page alone. The new password
  follows the one policy (``states/services/signin_policy.py``). My *other* sessions end;
  the one I am using is kept (I stay signed in). Audited ``password_set`` (``own``), and a
  wrong current password is a refusal on the audit trail.
- ``end_other_sessions``: "sign out of every other session": audited ``sessions_ended``.

Neither a password nor a session's token is ever written to the audit data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.accounts import User
from models.db import begin_write
from models.tables import Network, Organisation, Service
from models.web import SignInAttempt, WebSession
from states.clock import Clock
from states.engine.audit import record_change, record_refusal
from states.errors import InvalidInput, NotFound, PermissionDenied
from states.principal import INSTALLATION, NETWORK, ORGANISATION, Principal
from states.services import signin
from states.services.signin_checks import (
    clean_address,
    email_given,
    minute,
    one_at_a_time,
    throttled,
    verify,
)
from states.services.signin_policy import check_password_policy, normal

__all__ = ["NO_PASSWORD", "WRONG_CURRENT", "change_own_password", "end_other_sessions", "my_account"]

NO_ROLE = signin.NO_ROLE  # what one does to one's own account is done in no role
NO_PASSWORD = "this account signs in with single sign-on: passwords are not used for it"
WRONG_CURRENT = "your current password is not right: nothing was changed"
SESSIONS_SHOWN = 50


def _me(session: Session, principal: Principal) -> User:
    if principal.is_system:
        raise PermissionDenied("the system account has no account page: nobody signs in as it")
    user = session.get(User, principal.user_id)
    if user is None:
        raise NotFound(f"account {principal.user_id} not found")
    return user


def _where(session: Session, scope: str, scope_id: int | None) -> str:
    """A grant's scope as people name it."""
    if scope == INSTALLATION or scope_id is None:
        return "the whole installation"
    model: Any = {NETWORK: Network, ORGANISATION: Organisation}.get(scope, Service)
    row = session.get(model, scope_id)
    if row is None:
        return f"{scope} {scope_id} (gone)"
    if scope == NETWORK:
        return f"network {row.name} ({row.code})"
    return f"{'Trust' if scope == ORGANISATION else 'service'} {row.name}"


def open_sessions(session: Session, user_id: int, clock: Clock) -> list[WebSession]:
    """The account's sessions that still work: not ended, within their lifetime, not idle too long."""
    now = clock.now()
    rows = session.exec(
        select(WebSession)
        .where(
            WebSession.user_id == user_id,
            col(WebSession.ended_at).is_(None),
            col(WebSession.expires_at) > now,
            col(WebSession.last_seen_at) >= now - signin.idle_timeout(),
        )
        .order_by(col(WebSession.last_seen_at).desc(), col(WebSession.id).desc())
        .limit(SESSIONS_SHOWN)
    )
    return list(rows)


def my_account(session: Session, principal: Principal, clock: Clock, current_session_id: int | None) -> dict[str, Any]:
    """Who I am, my grants in force (role and where) and my open sessions (this one marked)."""
    user = _me(session, principal)
    assert user.id is not None
    sessions = [
        {
            "id": w.id,
            "started": w.created_at,
            "last_seen": w.last_seen_at,
            "expires": w.expires_at,
            "via": w.via,
            "address": w.address,
            "current": w.id == current_session_id,
        }
        for w in open_sessions(session, user.id, clock)
    ]
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "status": user.status,
        "via": principal.via,
        "has_password": user.password_hash is not None,
        "password_set_at": user.password_set_at,
        "sso": user.oidc_issuer if user.oidc_subject else None,
        "grants": [
            {"role": g.role, "scope": g.scope, "scope_id": g.scope_id, "where": _where(session, g.scope, g.scope_id)}
            for g in principal.grants
        ],
        "sessions": sessions,
        "others": sum(1 for s in sessions if not s["current"]),
    }


def _reserve(db: Engine, user: User, address: str | None, clock: Clock) -> tuple[int, datetime | None]:
    """Reserve a password attempt for the account's email, as sign-in does: stored as a failure,
    the throttles counting only those reserved before it, under the per-email lock. Returns the
    attempt's id and, when locked, until when (the reservation then removed)."""
    given = email_given(user.email or "")
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        one_at_a_time(s, given)
        attempt = SignInAttempt(at=clock.now(), account_id=user.id, email_given=given, address=address,
                                via="password", ok=False)  # fmt: skip
        s.add(attempt)
        s.flush()
        assert attempt.id is not None
        until = throttled(s, given, address, clock, before_id=attempt.id)
        if until is not None:  # a refused try is not a failure of its own: the lock is not lengthened
            s.delete(attempt)
        s.commit()
        return attempt.id, until


def change_own_password(
    db: Engine,
    principal: Principal,
    clock: Clock,
    *,
    current: str,
    new: str,
    again: str,
    session_id: int | None,
    address: str | None = None,
) -> int:
    """Change my own password, given my current one; my other sessions end and ``session_id``
    (the one I am using) is kept. Returns how many sessions ended. Refused, with nothing
    changed: no password on the account (single sign-on only), the two new ones differ, the new
    one fails the policy or is the current one, the current one is wrong, or too many wrong
    guesses (throttled as sign-in is)."""
    with Session(db, expire_on_commit=False) as s:
        user = _me(s, principal)
    if user.password_hash is None:
        raise InvalidInput(NO_PASSWORD)
    for value in (current, new, again):
        if not isinstance(value, str):
            raise InvalidInput("give your current password and the new one twice")
    if not current:
        raise InvalidInput("enter your current password")
    if new != again:
        raise InvalidInput("the two new passwords are not the same: nothing was changed")
    check_password_policy(new, name=user.name, email=user.email)
    if normal(new) == normal(current):
        raise InvalidInput("the new password is the one you have now: choose a different one")
    address = clean_address(address)
    attempt_id, until = _reserve(db, user, address, clock)
    params = {"address": address, "method": "password change"}
    if until is not None:
        record_refusal(db, "account", user.id, "password_set", principal, NO_ROLE, clock,
                       f"throttled until {until.isoformat()}", params)  # fmt: skip
        raise PermissionDenied(f"too many wrong passwords: try again after {minute(until)}; nothing was changed")
    ok = len(current) <= signin.MAX_PASSWORD_TRIED and verify(user.password_hash, current)[0]
    if not ok:  # the reserved attempt stays, a failure the throttles count
        record_refusal(db, "account", user.id, "password_set", principal, NO_ROLE, clock, "wrong current password",
                       params)  # fmt: skip
        raise InvalidInput(WRONG_CURRENT)
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        fresh = s.get(User, user.id)
        if fresh is None or fresh.password_hash != user.password_hash:
            raise InvalidInput("your password was changed meanwhile: nothing was changed; sign in again")
        reserved = s.get(SignInAttempt, attempt_id)
        if reserved is not None:
            s.delete(reserved)  # the right password: not a failure
        assert user.id is not None
        ended = sum(1 for w in open_sessions(s, user.id, clock) if w.id != session_id)
        signin.set_password(s, principal, clock, None, new, keep_session_id=session_id)
        s.commit()
    return ended


def end_other_sessions(session: Session, principal: Principal, clock: Clock, keep_session_id: int) -> int:
    """Sign out of every session of mine but ``keep_session_id`` (audited ``sessions_ended``); how many
    ended. The caller commits."""
    user = _me(session, principal)
    assert user.id is not None
    own = session.get(WebSession, keep_session_id)
    if own is None or own.user_id != user.id:
        raise NotFound("this session is not one of yours")
    ended = signin.end_sessions(session, user.id, clock, "signed_out_elsewhere", keep=keep_session_id)
    record_change(session, "account", user.id, "sessions_ended", principal=principal, role=NO_ROLE, clock=clock,
                  state=user.status, data={"sessions_ended": ended, "kept": keep_session_id})  # fmt: skip
    return ended
