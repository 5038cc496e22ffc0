"""The operator's word on the outbox: queue failed letters again, settle letters left in doubt.

Each is an audited change (who, role, when) in the caller's transaction, and refuses, changing
nothing, any row it may not touch, or any letter about an item outside the scope of the
person's staff grants. Sending is ``notifications.dispatch``'s; which rows may be
queued again, and what an operator's word on a letter in doubt does, are rules, so they are here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, select

from models.tables import IN_DOUBT, OutboxMessage, OutboxStatus, is_in_doubt
from models.types import is_row_id
from states import engine
from states.clock import LONDON, Clock
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.principal import Principal
from states.roles import STAFF
from states.views.outbox import COUNT_CAP, check_status, counts, incident_clause, listed, scope_clause

SETTLE_ACTIONS = ("hold", "resend", "delivered")
SENDERS = sorted(STAFF)


def _when(at: datetime) -> str:
    return at.astimezone(ZoneInfo(LONDON)).strftime("%a %d %b %Y %H:%M %Z")


def _get(session: Session, i: int, where: str) -> OutboxMessage:
    m = session.get(OutboxMessage, i) if is_row_id(i) else None
    if m is None:
        raise NotFound(f"outbox message {i} not found ({where})")
    return m


def _where(session: Session, m: OutboxMessage) -> dict[str, int | None] | None:
    """Where the letter's item sits (None: a letter about no item of a kind: installation grants only)."""
    try:
        spec = get_spec(m.kind)
    except NotFound:
        return None
    row = session.get(spec.model, m.item_id)
    return spec.recipient_scope(session, row) if row is not None else None


def _roles(session: Session, rows: list[OutboxMessage], principal: Principal, what: str) -> list[str]:
    """The role ``principal`` acts in for each message, all decided before anything changes."""
    return [principal.require_any(SENDERS, f"{what} outbox message {m.id}", _where(session, m)) for m in rows]


def _in_scope(session: Session, m: OutboxMessage, principal: Principal) -> bool:
    """Is the letter's item in some scope of the principal's (whatever the role)?"""
    return principal.is_system or bool(principal.roles_at(_where(session, m)))


def _get_visible(session: Session, i: int, where: str, principal: Principal) -> OutboxMessage:
    """The message, or "not found" when it is missing or about an item in no scope of the
    principal's: whether such a letter exists, or what state it is in, is not told."""
    m = _get(session, i, where)
    if not _in_scope(session, m, principal):
        raise NotFound(f"outbox message {i} not found ({where})")
    return m


def retry_refusal(m: OutboxMessage, now: datetime) -> str | None:
    """Why ``m`` may not be queued again now (None: it may): only a failed letter, or one left
    ``sending`` (in doubt, or interrupted past its lease), is retried."""
    if m.status == OutboxStatus.SENDING and not is_in_doubt(m) and _aware(m.next_attempt_at) > now:
        return f"outbox message {m.id} is being sent right now: wait for the dispatch to finish"
    if m.status not in (OutboxStatus.FAILED, OutboxStatus.SENDING):
        reason = (
            "nobody holds the role it needs: add the contact, the next step will write to them"
            if m.status == OutboxStatus.UNDELIVERABLE
            else f"it is {m.status}"
        )
        return f"outbox message {m.id} cannot be retried: {reason}"
    return None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def retry(
    session: Session, ids: list[int], *, all_failed: bool = False, principal: Principal, clock: Clock
) -> list[OutboxMessage]:
    """Queue failed or in-doubt messages to go on the next dispatch (``all_failed``: every failed
    one about an item in the principal's scopes).
    Refuses, changing nothing, a message being sent right now or one that is not failed or in doubt."""
    if not ids and not all_failed:
        raise InvalidInput("name the letter(s) to retry, or ask to retry every failed letter")
    now = clock.now()
    if all_failed:  # every failed letter about an item in the principal's scopes
        rows = [
            m
            for m in session.exec(
                select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED).order_by(col(OutboxMessage.id))
            )
            if _in_scope(session, m, principal)
        ]
    else:
        rows = []
        for i in dict.fromkeys(ids):
            m = _get_visible(session, i, "peerwatch outbox list", principal)
            refused = retry_refusal(m, now)
            if refused is not None:
                raise InvalidInput(refused)
            rows.append(m)
    roles = _roles(session, rows, principal, "queue again")
    for m, role in zip(rows, roles, strict=True):
        was = "in doubt" if is_in_doubt(m) else str(m.status)
        m.status, m.next_attempt_at, m.message_id = OutboxStatus.QUEUED, now, None
        m.last_error = f"queued again by hand (was: {m.last_error})" if m.last_error else "queued again by hand"
        session.add(m)
        engine.record_change(
            session,
            "outbox",
            m.id,  # type: ignore[arg-type]
            "retry",
            principal=principal,
            role=role,
            clock=clock,
            from_state=was,
            state="queued",
            data={"item": f"{m.kind} {m.item_id}", "template": m.template},
        )
    return rows


def settle_in_doubt(
    session: Session, ids: list[int], action: str, *, principal: Principal, clock: Clock
) -> list[OutboxMessage]:
    """The operator's word on letters in doubt: ``hold`` (no automatic resend; an incident until
    retried), ``resend`` (resent on the next dispatch, same Message-ID), or ``delivered`` (the
    recipient has it: marked sent, never resent). Each is an audited change (who, role, when) in
    the caller's transaction. Refuses, changing nothing, any id not in doubt."""
    now = clock.now()
    if action not in SETTLE_ACTIONS:
        raise InvalidInput(f"{action!r}: use hold, resend or delivered")
    rows = []
    for i in dict.fromkeys(ids):
        m = _get_visible(session, i, "the outbox's incidents list them", principal)
        if not is_in_doubt(m):
            raise InvalidInput(f"outbox message {i} is not in doubt (it is {m.status}): nothing to settle")
        rows.append(m)
    roles = _roles(session, rows, principal, "settle")
    for m, role in zip(rows, roles, strict=True):
        if action == "hold":
            m.resend_at = None
            m.last_error = (
                IN_DOUBT
                + f"held by the operator on {_when(now)}: not resent until someone retries it or settles it as resend"
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
            m.id,  # type: ignore[arg-type]
            f"in_doubt_{action}",
            principal=principal,
            role=role,
            clock=clock,
            from_state="in doubt",
            state=str(m.status) if action == "delivered" else "in doubt",
            data={"item": f"{m.kind} {m.item_id}", "template": m.template, "message_id": m.message_id},
        )
    return rows


# ---------------------------------------------------------------- the outbox page

ROWS_SHOWN = 200  # each of the page's lists: the CLI (peerwatch outbox list) has them all


def staff_grants(principal: Principal) -> list[Any]:
    """The grants whose scope decides which letters a person sees and acts on (staff roles)."""
    return [g for g in principal.grants if g.role in STAFF]


def row(m: OutboxMessage, now: datetime) -> dict[str, Any]:
    """A letter as the page lists it, with whether it may be retried now (``retry_refusal``)."""
    status = str(m.status)
    return {
        "id": m.id,
        "status": "in doubt" if is_in_doubt(m) else status,
        "in_doubt": is_in_doubt(m),
        "retryable": retry_refusal(m, now) is None,
        "template": m.template,
        "kind": m.kind,
        "item_id": m.item_id,
        "to": ", ".join(p["email"] for p in m.to),
        "attempts": m.attempts,
        "next_try": m.next_attempt_at if status in ("queued", "failed") else None,
        "error": m.last_error or "",
    }


def page(
    session: Session, principal: Principal, clock: Clock, status: str | None = None, limit: int = ROWS_SHOWN
) -> dict[str, Any]:
    """What the outbox page shows ``principal``: the counts of open incidents and queued letters
    in the scope of its staff grants (each capped at COUNT_CAP), the oldest ``limit`` incidents,
    and (``status``) the newest ``limit`` letters with that status. A few queries whatever the
    size of the outbox: the scope is one SQL condition (states.views.outbox.scope_clause)."""
    check_status(status)
    now = clock.now()
    among = or_(incident_clause(now), col(OutboxMessage.status) == OutboxStatus.QUEUED)
    if status:
        among = or_(among, col(OutboxMessage.status) == status)
    scope = scope_clause(session, staff_grants(principal), among)
    open_incidents = listed(session, scope, now=now, limit=limit + 1)
    return {
        "counts": counts(session, scope, now),
        "cap": COUNT_CAP,
        "incidents": [row(m, now) for m in open_incidents[:limit]],
        "more": len(open_incidents) > limit,
        "listed": [row(m, now) for m in listed(session, scope, status=status, limit=limit)] if status else [],
        "may_act": bool(staff_grants(principal)),
    }
