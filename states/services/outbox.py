"""The operator's word on the outbox: queue failed letters again, settle letters left in doubt.

Each is an audited change (who, role, when) in the caller's transaction, and refuses, changing
nothing, any row it may not touch, or any letter about an item outside the scope of the
person's staff grants. Sending is ``notifications.dispatch``'s; which rows may be
queued again, and what an operator's word on a letter in doubt does, are rules, so they are here.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models.tables import IN_DOUBT, OutboxMessage, OutboxStatus, is_in_doubt
from models.types import is_row_id
from states import engine
from states.clock import LONDON, Clock
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.principal import Principal
from states.roles import STAFF

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


def retry(
    session: Session, ids: list[int], *, all_failed: bool = False, principal: Principal, clock: Clock
) -> list[OutboxMessage]:
    """Queue failed or in-doubt messages to go on the next dispatch (``all_failed``: every failed
    one about an item in the principal's scopes).
    Refuses, changing nothing, a message being sent right now or one that is not failed or in doubt."""
    if not ids and not all_failed:
        raise InvalidInput("name the message id(s) to retry, or give --all-failed")
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
            if m.status == OutboxStatus.SENDING and not is_in_doubt(m) and m.next_attempt_at > now:
                raise InvalidInput(f"outbox message {i} is being sent right now: wait for the dispatch to finish")
            if m.status not in (OutboxStatus.FAILED, OutboxStatus.SENDING):
                reason = (
                    "nobody holds the role it needs: add the contact, the next step will write to them"
                    if m.status == OutboxStatus.UNDELIVERABLE
                    else f"it is {m.status}"
                )
                raise InvalidInput(f"outbox message {i} cannot be retried: {reason}")
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
        m = _get_visible(session, i, "peerwatch outbox list --incidents", principal)
        if not is_in_doubt(m):
            raise InvalidInput(f"outbox message {i} is not in doubt (it is {m.status}): nothing to settle")
        rows.append(m)
    roles = _roles(session, rows, principal, "settle")
    for m, role in zip(rows, roles, strict=True):
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
