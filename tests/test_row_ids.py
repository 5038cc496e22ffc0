"""An id no row can have (past PostgreSQL's 32-bit ``integer``, the type of every key) is "not
found" at every layer that looks a row up by a typed id: the engine, the views, the use cases,
and the machines that read an id from a parameter. It is never sent to the database, where
PostgreSQL would fail the statement ("integer out of range") and the caller would see a fault.
The suite runs this on SQLite and on PostgreSQL (.ci/run)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session

from models import Risk
from models.types import MAX_ROW_ID, is_row_id
from states import engine
from states.clock import FixedClock
from states.errors import NotFound
from states.principal import Principal
from states.services import accounts, outbox
from states.views import work
from tests.factories import person

TOO_BIG = (MAX_ROW_ID + 1, 2**40, 2**63 - 1, 2**64)


def test_the_bound_is_postgresqls_integer() -> None:
    assert is_row_id(1) and is_row_id(2**31 - 1)
    assert not any(is_row_id(n) for n in (0, -1, *TOO_BIG))


@pytest.mark.parametrize("big", TOO_BIG)
def test_every_lookup_by_a_typed_id_says_not_found(
    session: Session, me: Principal, clock: FixedClock, big: int
) -> None:
    with pytest.raises(NotFound):
        engine.load(session, "risk", big)
    with pytest.raises(NotFound):
        work.get_visible(session, person("Dr Asha Patel", "network-manager"), "risk", big)
    with pytest.raises(NotFound):
        accounts.revoke(session, me, clock, big)
    with pytest.raises(NotFound):
        outbox.retry(session, [big], principal=me, clock=clock)


def test_an_id_in_a_parameter_past_the_bound_is_not_found(
    session: Session, raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    """A machine reading a row's id from a parameter (the appeal's risks, a panel's reviewer)."""
    from models import Visit  # lazy: only this test

    visit = Visit(service_id=raise_risk().service_id, state="proposed")
    nm = person("Dr Asha Patel", "network-manager")
    session.add(visit)
    session.commit()
    assert visit.id is not None
    with pytest.raises(NotFound, match="reviewer"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "add_panel_member",
            principal=nm,
            clock=clock,
            params={"reviewer_id": str(2**40)},
        )
