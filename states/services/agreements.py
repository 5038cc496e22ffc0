"""A surveillance decision's agreement: the provider's and the commissioner's, recorded by two
different people; once both are in, the decision is agreed (002 s1.1.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from states import engine
from states.clock import Clock
from states.errors import InvalidInput
from states.principal import Principal

PARTIES = ("provider", "commissioner")


@dataclass
class Agreement:
    """The surveillance decision after one party's agreement: the row, letters queued, who is awaited."""

    row: Any
    letters_queued: int
    waiting_for: list[str]


def record_agreement(
    session: Session, item_id: int, party: str, *, principal: Principal, clock: Clock, note: str | None
) -> Agreement:
    """Record one party's agreement; when both are in, fire ``agree`` in the same transaction
    (the engine picks ``principal``'s role in the decision's scope; the two signatories are
    compared by account)."""
    if party not in PARTIES:
        raise InvalidInput(f"party {party!r}: use provider or commissioner")
    first = engine.fire(
        session, "surveillance", item_id, f"record_{party}_agreement", principal=principal, clock=clock, note=note
    )
    row: Any = first.row
    steps = [first]
    if row.provider_agreed_by and row.commissioner_agreed_by:
        steps.append(
            engine.fire(
                session,
                "surveillance",
                item_id,
                "agree",
                principal=principal,
                clock=clock,
                note="provider and commissioner agreement recorded",
            )
        )
    waiting = [p for p in PARTIES if not getattr(row, f"{p}_agreed_by")]
    return Agreement(row, sum(o.queued for o in steps), waiting)
