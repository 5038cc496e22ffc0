"""The outbox as the operator lists it."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models import OutboxMessage, OutboxStatus
from models.types import is_row_id
from states.errors import InvalidInput, NotFound

STATUSES = tuple(s.value for s in OutboxStatus)


def check_status(status: str | None) -> None:
    """InvalidInput unless ``status`` (if given) is an outbox status, naming them."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")


def messages(session: Session, status: str | None = None) -> list[OutboxMessage]:
    """Every message (or those with this status), by id."""
    q = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if status:
        q = q.where(OutboxMessage.status == status)
    return list(session.exec(q))


def message(session: Session, message_id: int) -> OutboxMessage:
    """One message, or NotFound naming the command that lists them."""
    m = session.get(OutboxMessage, message_id) if is_row_id(message_id) else None
    if m is None:
        raise NotFound(f"outbox message {message_id} not found (peerwatch outbox list)")
    return m
