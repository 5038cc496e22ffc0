"""What a member of network staff sees: My work, the lists of items, one item's page."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from models.tables import StatefulItem
from states.clock import Clock
from states.principal import Principal


def can_see(session: Session, principal: Principal, kind: str, row: StatefulItem) -> bool:
    """Some grant of the principal covers the item's scope."""
    raise NotImplementedError


def get_visible(session: Session, principal: Principal, kind: str, item_id: int) -> StatefulItem:
    """The row, or NotFound (the same message whether absent or hidden)."""
    raise NotImplementedError


def my_work(
    session: Session, principal: Principal, clock: Clock, *, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """deadlines, proposals (not mine), incidents, total."""
    raise NotImplementedError


def list_items(
    session: Session,
    principal: Principal,
    kind: str,
    *,
    state: str | None = None,
    network: str | None = None,
    service: int | None = None,
    due_before: date | None = None,
    overdue: bool = False,
    q: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    """rows, total, page, pages."""
    raise NotImplementedError


def item_page(session: Session, principal: Principal, kind: str, item_id: int, clock: Clock) -> dict[str, Any]:
    """summary, state, states (diagram), deadlines, history, letters, related, attachments, triggers."""
    raise NotImplementedError
