"""Four eyes outside the state machines: a change one account proposes and a different account
confirms (a contact's escalation address, issue 14).

A proposal is a ``PendingChange`` row (``models/accounts.py``) holding what would change; it
changes nothing else. ``take`` marks it confirmed for the caller to apply in the same
transaction; ``withdraw`` drops it. Each step is an audit event on kind ``pending_change``
(propose, confirm, withdraw) with the account's user id. Who proposed and who confirms are
compared by user id, never by name. The status moves by a guarded UPDATE, so two people
confirming (or one confirming while the other withdraws) at once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from models.accounts import PendingChange
from models.types import is_row_id
from states import engine
from states.clock import Clock
from states.engine.audit import jsonable
from states.errors import InvalidInput, NotFound, PermissionDenied, StaleVersion
from states.principal import Principal

KIND = "pending_change"
PENDING, CONFIRMED, WITHDRAWN = "pending", "confirmed", "withdrawn"
_TABLE = PendingChange.__table__  # type: ignore[attr-defined]


def get_change(session: Session, change_id: int, kind: str) -> PendingChange:
    if not is_row_id(change_id):
        raise NotFound(f"change {change_id} not found")
    row = session.get(PendingChange, change_id)
    if row is None or row.kind != kind:
        raise NotFound(f"change {change_id} not found (peerwatch {kind} pending)")
    return row


def waiting_on(session: Session, kind: str, target_id: int) -> PendingChange | None:
    """The change still pending on this target, if any."""
    return session.exec(
        select(PendingChange)
        .where(PendingChange.kind == kind, PendingChange.target_id == target_id, PendingChange.status == PENDING)
        .order_by(col(PendingChange.id))
    ).first()


def propose(
    session: Session,
    kind: str,
    action: str,
    target_id: int | None,
    payload: Mapping[str, Any],
    *,
    principal: Principal,
    role: str,
    clock: Clock,
    note: str | None = None,
) -> PendingChange:
    """Record a proposal (audited "propose"); nothing else changes. The caller commits."""
    if target_id is not None:
        other = waiting_on(session, kind, target_id)
        if other is not None:
            raise InvalidInput(
                f"{kind} {target_id} already has change {other.id} waiting for a second person "
                f"(proposed by {other.proposed_name}): confirm or withdraw it first; nothing was changed"
            )
    data = jsonable(dict(payload))
    row = PendingChange(
        kind=kind,
        action=action,
        target_id=target_id,
        payload=data,
        proposed_by=principal.user_id,
        proposed_name=principal.name,
        proposed_at=clock.now(),
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    engine.record_change(
        session,
        KIND,
        row.id,
        "propose",
        principal=principal,
        role=role,
        clock=clock,
        state=PENDING,
        note=note,
        data={"kind": kind, "action": action, "target": target_id, **data},
    )
    return row


def _decide(session: Session, row: PendingChange, status: str, principal: Principal, clock: Clock) -> None:
    done = cast(
        CursorResult[Any],
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id == row.id, _TABLE.c.status == PENDING)
            .values(status=status, decided_by=principal.user_id, decided_at=clock.now())
        ),
    )
    if done.rowcount != 1:
        raise StaleVersion(f"change {row.id} was decided by someone else meanwhile: nothing was changed")
    session.refresh(row)


def _still_pending(row: PendingChange) -> None:
    if row.status != PENDING:
        raise InvalidInput(f"change {row.id} is already {row.status}: nothing was changed")


def check_confirmer(row: PendingChange, principal: Principal) -> None:
    """Refuse unless ``row`` is pending and ``principal`` is not the account that proposed it."""
    _still_pending(row)
    if principal.user_id == row.proposed_by:
        raise PermissionDenied(
            f"change {row.id} was proposed by your own account ({row.proposed_name}): "
            "a different person must confirm it; nothing was changed"
        )


def take(
    session: Session,
    row: PendingChange,
    *,
    principal: Principal,
    role: str,
    clock: Clock,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> PendingChange:
    """Mark ``row`` confirmed by ``principal`` (audited "confirm"), which must be a different
    account from the one that proposed it. The caller applies the change and commits."""
    check_confirmer(row, principal)
    _decide(session, row, CONFIRMED, principal, clock)
    assert row.id is not None
    engine.record_change(
        session,
        KIND,
        row.id,
        "confirm",
        principal=principal,
        role=role,
        clock=clock,
        from_state=PENDING,
        state=CONFIRMED,
        note=note,
        data={
            "kind": row.kind,
            "action": row.action,
            "target": row.target_id,
            "proposed_by": row.proposed_by,
            **dict(data or {}),
        },
    )
    return row


def withdraw(
    session: Session, row: PendingChange, *, principal: Principal, role: str, clock: Clock, note: str | None = None
) -> PendingChange:
    """The proposer drops its own proposal (audited "withdraw"); nothing else changes."""
    _still_pending(row)
    if principal.user_id != row.proposed_by:
        raise PermissionDenied(
            f"change {row.id} was proposed by {row.proposed_name}: only that account may withdraw it; nothing was changed"
        )
    _decide(session, row, WITHDRAWN, principal, clock)
    assert row.id is not None
    engine.record_change(
        session,
        KIND,
        row.id,
        "withdraw",
        principal=principal,
        role=role,
        clock=clock,
        from_state=PENDING,
        state=WITHDRAWN,
        note=note,
        data={"kind": row.kind, "action": row.action, "target": row.target_id},
    )
    return row


__all__ = [
    "CONFIRMED",
    "KIND",
    "PENDING",
    "WITHDRAWN",
    "check_confirmer",
    "get_change",
    "propose",
    "take",
    "waiting_on",
    "withdraw",
]
