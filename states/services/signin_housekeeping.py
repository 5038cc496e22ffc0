"""Sign-in housekeeping: the web application's old sign-in records are deleted.

``purge_sign_ins`` deletes, in batches of ``BATCH`` rows (one transaction each, so neither
database holds a long write lock):

- sign-in attempts (``sign_in_attempt``) older than the retention;
- web sessions (``web_session``) that ended (signed out, ended by a password change or a
  disabled account) or passed their absolute lifetime, longer ago than the retention.

The retention is a default of 90 days, ``PEERWATCH_SIGNIN_RECORDS_DAYS`` (1 to 3650); it is never
shorter than the sign-in throttles' window and lock, so a purge never frees a locked account or
address. One audit event on the chain (kind ``installation``, ``purge_sign_ins``) gives the counts
and the cut-off, no email, address or account: what was deleted is not repeated there. Nothing
deleted, nothing recorded. Run by the daily chase flow (as the system principal) and by
``peerwatch user purge-sign-ins`` (an administrator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from models.db import begin_write
from models.installation import ROW_ID, installation_id
from models.web import SignInAttempt, WebSession
from states.clock import Clock
from states.engine.audit import record_change
from states.errors import InvalidInput, PermissionDenied
from states.principal import Principal
from states.roles import ADMINISTRATOR, SYSTEM
from states.services.signin_checks import Throttle

__all__ = ["BATCH", "DEFAULT_DAYS", "Purged", "purge_sign_ins", "retention_days"]

DEFAULT_DAYS = 90  # a default: PEERWATCH_SIGNIN_RECORDS_DAYS
MAX_DAYS = 3650
BATCH = 1000
ENV = "PEERWATCH_SIGNIN_RECORDS_DAYS"


@dataclass(frozen=True)
class Purged:
    """What one purge deleted, and the cut-off it used (records before it went)."""

    attempts: int
    sessions: int
    before: datetime
    days: int

    @property
    def total(self) -> int:
        return self.attempts + self.sessions


def retention_days(days: int | str | None = None) -> int:
    """The retention in days: ``days`` if given, else ``PEERWATCH_SIGNIN_RECORDS_DAYS``, else 90."""
    raw = str(days).strip() if days is not None else os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_DAYS
    where = "the days to keep" if days is not None else ENV
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidInput(f"{where} {raw[:20]!r}: give a whole number of days from 1 to {MAX_DAYS}")
    return int(raw)


def _role(principal: Principal) -> str:
    if principal.is_system:
        return SYSTEM
    if principal.holds(ADMINISTRATOR):
        return ADMINISTRATOR
    raise PermissionDenied(f"{principal.name} may not purge sign-in records: only an administrator may")


def _batches(db: Engine, model: type[SignInAttempt] | type[WebSession], where: ColumnElement[bool], batch: int) -> int:
    """Delete the rows ``where`` selects, ``batch`` at a time, each batch its own transaction."""
    deleted = 0
    while True:
        with Session(db) as s:
            begin_write(s)
            ids = list(
                s.execute(core_select(col(model.id)).where(where).order_by(col(model.id)).limit(batch)).scalars()
            )
            if ids:
                s.execute(delete(model).where(col(model.id).in_(ids)))
            s.commit()
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def purge_sign_ins(
    db: Engine, principal: Principal, clock: Clock, *, days: int | str | None = None, batch: int = BATCH
) -> Purged:
    """Delete the sign-in attempts and the ended or expired web sessions older than the retention
    (``days``, else the setting, else 90); one audit event with the counts when any went."""
    role = _role(principal)
    kept = retention_days(days)
    if not 1 <= batch <= 100_000:
        raise InvalidInput(f"batch {batch}: give 1 to 100000")
    now = clock.now()
    throttle = Throttle.from_env()
    before = min(now - timedelta(days=kept), now - throttle.window - throttle.lock)  # never a live throttle's
    attempts = _batches(db, SignInAttempt, col(SignInAttempt.at) < before, batch)
    sessions = _batches(
        db,
        WebSession,
        or_(
            col(WebSession.ended_at) < before,
            and_(col(WebSession.ended_at).is_(None), col(WebSession.expires_at) < before),
        ),
        batch,
    )
    done = Purged(attempts=attempts, sessions=sessions, before=before, days=kept)
    if done.total:
        with Session(db) as s:
            installation_id(s)  # made in a transaction of its own when missing: before the write lock
            begin_write(s)
            record_change(s, "installation", ROW_ID, "purge_sign_ins", principal=principal, role=role, clock=clock,
                          state="housekeeping",
                          data={"sign_in_attempts": attempts, "web_sessions": sessions,
                                "older_than": before.isoformat(), "days": kept})  # fmt: skip
            s.commit()
    return done
