"""Which services to visit next: the weighting of open risks and past visits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlmodel import Session, select

from models import Risk
from models.tables import Network, Service
from states import engine
from states.clock import FixedClock
from states.errors import NotFound
from states.policy import Policy
from states.views.weighting import candidates
from tests.factories import person
from tests.support_visits import BURNS, MERSEY, MRH, NM, SEVERNSIDE, T0, VISIT, fire, held, notified, propose

# --------------------------------------------------------------------------- weighting

TODAY = date(2026, 12, 11)


def _order(session: Session, policy: Policy | None = None) -> list[str]:
    return [c["service"] for c in candidates(session, "WMTN", TODAY, policy or Policy())]


def test_never_visited_services_rank_by_open_risks(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    assert _order(session) == [MRH, SEVERNSIDE, BURNS]  # all equal: by name
    assert len({c["score"] for c in candidates(session, "WMTN", TODAY, Policy())}) == 1
    raise_risk("SC", service=SEVERNSIDE)
    raise_risk("IR", service=BURNS)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    assert [(c["service"], c["score"], c["last_visit"]) for c in ranked] == [
        (BURNS, 46.0, None),
        (SEVERNSIDE, 41.0, None),
        (MRH, 36.0, None),
    ]
    assert {c["service"]: (c["open_ir"], c["open_sc"]) for c in ranked} == {
        BURNS: (1, 0),
        SEVERNSIDE: (0, 1),
        MRH: (0, 0),
    }


def test_closed_risks_do_not_count(session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR", service=BURNS)
    engine.fire(
        session,
        "risk",
        risk.id,
        "withdraw",
        principal=person("nm", NM),
        clock=FixedClock(TODAY),
        note="raised in error",
    )
    session.commit()
    assert {c["service"]: c["score"] for c in candidates(session, "WMTN", TODAY, Policy())}[BURNS] == 36.0


def test_open_risk_with_a_high_score_ranks_first(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    raise_risk("SC", service=SEVERNSIDE, impact=5, likelihood=5)
    raise_risk("SC", service=BURNS)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    assert [c["service"] for c in ranked] == [SEVERNSIDE, BURNS, MRH]
    assert ranked[0]["max_risk_score"] == 25 and ranked[0]["parts"]["max_risk_score"] == 12.5
    assert ranked[0]["score"] == 36 + 5 + 12.5


def test_recently_held_visit_lowers_the_score(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    held(session, services, VISIT)  # Midland Royal, 12 Nov 2026
    raise_risk("SC", service=MRH)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    mrh = next(c for c in ranked if c["service"] == MRH)
    assert mrh["last_visit"] == "2026-11-12"
    assert mrh["parts"]["months_since_visit"] == 1.0  # 29 days
    assert mrh["score"] == 6.0
    assert [c["service"] for c in ranked][-1] == MRH


def test_visit_in_progress_is_flagged_and_a_cancelled_one_does_not_count(
    session: Session, services: dict[str, int]
) -> None:
    notified(session, services, VISIT, start=T0, service=SEVERNSIDE, panel=())
    dropped = propose(session, services, BURNS)
    fire(session, dropped.id, "cancel", T0, note="not needed")
    by = {c["service"]: c for c in candidates(session, "WMTN", TODAY, Policy())}
    assert (by[SEVERNSIDE]["visit_in_progress"], by[BURNS]["visit_in_progress"], by[MRH]["visit_in_progress"]) == (
        True,
        False,
        False,
    )
    assert by[BURNS]["last_visit"] is None and by[BURNS]["score"] == 36.0


def test_policy_weights_change_the_order(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    raise_risk("IR", service=BURNS)
    raise_risk("SC", service=SEVERNSIDE)
    assert _order(session)[:2] == [BURNS, SEVERNSIDE]
    assert _order(session, Policy(weight_open_sc=20.0))[:2] == [SEVERNSIDE, BURNS]
    flat = Policy(weight_open_ir=0.0, weight_open_sc=0.0)
    assert [c["score"] for c in candidates(session, "WMTN", TODAY, flat)] == [36.0, 36.0, 36.0]


def test_unknown_network_is_not_found(session: Session, services: dict[str, int]) -> None:
    with pytest.raises(NotFound, match="'NOPE'"):
        candidates(session, "NOPE", TODAY, Policy())


def test_candidates_cover_only_the_networks_services(session: Session, services: dict[str, int]) -> None:
    cmmtn = {c["service"] for c in candidates(session, "CMMTN", TODAY, Policy())}
    net = session.exec(select(Network).where(Network.code == "CMMTN")).one()
    expected = {s.name for s in session.exec(select(Service).where(Service.network_id == net.id))}
    assert cmmtn == expected == {MERSEY, "Wirral Coast Trauma Unit"}
