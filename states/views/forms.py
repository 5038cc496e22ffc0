"""The triggers a person may fire now on an item, as forms with typed fields."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.tables import StatefulItem
from states.clock import Clock
from states.principal import Principal


def trigger_forms(
    session: Session, principal: Principal, kind: str, row: StatefulItem, clock: Clock
) -> list[dict[str, Any]]:
    """Each: trigger, label, fields[{name, type (date|int|choice|text|textarea|bool), label, choices,
    required}], note_required, four_eyes, confirm, roles."""
    raise NotImplementedError
