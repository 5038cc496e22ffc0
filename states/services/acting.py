"""Acting on an item: the one use case the CLI (``peerwatch <kind> fire``) and the web
(``POST /items/{kind}/{id}/act/{trigger}``) share.

One transaction through the engine (``engine.fire_or_record``: a refusal is recorded with the
account that tried, then raised), then the account's last activity. A stale version is refused
by the engine before anything changes; ``changes_since`` says what happened since the version
the person read, so the page can show it beside the fresh form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.tables import AuditEvent
from states import engine
from states.clock import Clock
from states.principal import Principal
from states.services import accounts


def fire(
    db: Engine,
    principal: Principal,
    clock: Clock,
    kind: str,
    item_id: int,
    trigger: str,
    *,
    note: str | None = None,
    params: Mapping[str, Any] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Fire ``trigger`` in one transaction (engine.fire_or_record); result: id, kind, trigger,
    from, state, version, letters_queued, proposed, deadlines (each name, due_on ISO, status)."""
    out, pending = engine.fire_or_record(
        db,
        kind,
        item_id,
        trigger,
        principal=principal,
        clock=clock,
        note=note,
        expected_version=version,
        params=dict(params or {}),
    )
    with Session(db) as s:
        accounts.seen(s, principal)
        s.commit()
    return {
        "id": item_id,
        "kind": kind,
        "trigger": trigger,
        "from": out.event.from_state,
        "state": out.row.state,
        "version": out.event.version,
        "letters_queued": out.queued,
        "proposed": out.proposed,
        "deadlines": [{**d, "due_on": d["due_on"].isoformat()} for d in pending],
    }


def changes_since(session: Session, kind: str, item_id: int, version: int) -> list[dict[str, Any]]:
    """The audit events of an item after ``version`` (the one a form was read at): who did what, when."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.kind == kind, AuditEvent.item_id == item_id, col(AuditEvent.version) > version)
        .order_by(col(AuditEvent.id))
    )
    return [
        {
            "actor": e.actor,
            "role": e.role,
            "trigger": e.trigger,
            "from": e.from_state,
            "to": e.to_state,
            "at": e.at,
            "recorded_at": e.recorded_at,
            "note": e.note,
            "version": e.version,
        }
        for e in events
    ]
