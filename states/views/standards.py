"""The standards library as the operator lists it: each set, which is in force, what superseded it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.selfassessment import StandardSet
from states.machines.standards import current_set, standards_of


def standard_sets(
    session: Session, today: date, kind: str | None = None, with_standards: bool = False
) -> list[dict[str, Any]]:
    """Standard sets (of one service kind) by kind and date, each saying whether it is in force
    ``today`` (and, ``with_standards``, its standards)."""
    q = select(StandardSet).order_by(col(StandardSet.service_kind), col(StandardSet.effective_from))
    if kind:
        q = q.where(StandardSet.service_kind == kind)
    sets = list(session.exec(q))
    in_force = {}
    for k in {x.service_kind for x in sets}:
        cur = current_set(session, k, today)
        in_force[k] = cur.id if cur else None
    return [
        {
            "id": x.id,
            "service_kind": x.service_kind,
            "name": x.name,
            "version": x.version,
            "effective_from": x.effective_from.isoformat(),
            "superseded_by": x.superseded_by_id,
            "in_force": in_force[x.service_kind] == x.id,
            **({"standards": [st.model_dump() for st in standards_of(session, x.id)]} if with_standards else {}),  # type: ignore[arg-type]
        }
        for x in sets
    ]
