"""Acting on an item: the one use case the CLI (``peerwatch <kind> fire``) and the web
(``POST /items/{kind}/{id}/act/{trigger}``) share."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from states.clock import Clock
from states.principal import Principal


def fire(
    db: Engine,
    principal: Principal,
    clock: Clock,
    kind: str,
    item_id: int,
    trigger: str,
    *,
    note: str | None = None,
    params: dict[str, str] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Fire ``trigger`` in one transaction (engine.fire_or_record); result: id, kind, trigger,
    from, state, version, letters_queued, proposed, deadlines."""
    raise NotImplementedError
