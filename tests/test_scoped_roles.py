"""Who is acting (issue 14): roles held in a scope, four eyes and two-person rules by account id,
the preferred role, and what the audit event records of the person.

Real accounts (tests/support_accounts.account) with grants scoped to a network or a service,
driven through the engine and the use cases directly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Network, OutboxMessage, Risk
from models.accounts import User
from models.cycle import ProgrammePhase
from models.tables import AccuracyItem, Appeal, Milestone, Proposal, RefusedAttempt, Service
from states import engine
from states.clock import FixedClock
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import GuardRefused, MissingActor, NotFound, PermissionDenied
from states.principal import Grant, Principal
from states.services import accounts, milestones, operator
from states.services import outbox as outbox_use
from states.services.cycle import plan_year
from tests.factories import MRH
from tests.support_accounts import account
from tests.support_appeals import (
    DECISION,
    World,
    considering,
    world,  # noqa: F401 (pytest fixture)
)
from tests.support_reports import CLAIM, with_items

NM, RL, OFFICE, OPERATOR, AUDITOR = "network-manager", "regional-lead", "network-office", "operator", "auditor"
MERSEY = "Mersey Harbour Major Trauma Centre"  # CMMTN
SEVERNSIDE = "Severnside Trauma Unit"  # WMTN, another Trust than MRH
DAY = FixedClock(date(2026, 12, 18))
LATER = FixedClock(date(2027, 3, 15))  # after the appeal's consideration began
ACCURACY_DAY = FixedClock(date(2026, 12, 22))  # after the inaccuracy was recorded


def _network(session: Session, code: str) -> Network:
    return session.exec(select(Network).where(Network.code == code)).one()


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one() for m in (AuditEvent, OutboxMessage, Milestone)
    )


def _state(session: Session, risk_id: int) -> tuple[str, int]:
    session.expire_all()
    row = session.get(Risk, risk_id)
    assert row is not None
    return row.state, row.version


# ----------------------------------------------------------------------------- scoped grants


def test_a_network_manager_of_wmtn_cannot_act_on_a_cmmtn_risk_and_the_refusal_names_the_account(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    wmtn = _network(session, "WMTN").id
    wendy = account(db, "Ms Wendy Midlands", (NM,), scope="network", scope_id=wmtn)
    assert wendy.grants == (Grant(NM, "network", wmtn),)
    mersey, midland = raise_risk("SC", service=MERSEY), raise_risk("SC", service=MRH)
    before, counts = _state(session, mersey.id), _counts(session)  # type: ignore[arg-type]

    with pytest.raises(PermissionDenied) as refused:
        engine.fire_or_record(db, "risk", mersey.id, "send_formal_notification", principal=wendy, clock=DAY)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "\n" not in message
    assert "Ms Wendy Midlands holds network-manager but not in the scope of" in message
    assert f"risk {mersey.id}" in message and "network, Trust or service" in message
    assert _state(session, mersey.id) == before and _counts(session) == counts  # type: ignore[arg-type]
    (attempt,) = session.exec(select(RefusedAttempt).where(RefusedAttempt.item_id == mersey.id)).all()
    assert (attempt.user_id, attempt.actor, attempt.trigger) == (
        wendy.user_id,
        "Ms Wendy Midlands",
        "send_formal_notification",
    )
    assert attempt.reason == message

    out, _ = engine.fire_or_record(db, "risk", midland.id, "send_formal_notification", principal=wendy, clock=DAY)  # type: ignore[arg-type]
    assert out.row.state == "awaiting_response"
    assert (out.event.user_id, out.event.role) == (wendy.user_id, NM)


def test_a_service_scoped_grant_reaches_only_that_service(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    sam = account(db, "Mr Sam Service", (NM,), scope="service", scope_id=services[MRH])
    own, neighbour = raise_risk("SC", service=MRH), raise_risk("SC", service=SEVERNSIDE)  # both in WMTN
    before = _state(session, neighbour.id)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="not in the scope of fire 'send_formal_notification' on risk"):
        engine.fire(session, "risk", neighbour.id, "send_formal_notification", principal=sam, clock=DAY)  # type: ignore[arg-type]
    session.rollback()
    assert _state(session, neighbour.id) == before  # type: ignore[arg-type]
    out = engine.fire(session, "risk", own.id, "send_formal_notification", principal=sam, clock=DAY)  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "awaiting_response" and out.event.user_id == sam.user_id


def test_use_cases_check_the_scope_too(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    """A milestone, a programme year, a service and a network, each in or out of a scoped grant."""
    wmtn, cmmtn = _network(session, "WMTN"), _network(session, "CMMTN")
    wendy = account(db, "Ms Wendy Midlands", (NM,), scope="network", scope_id=wmtn.id)
    mersey, midland = raise_risk("SC", service=MERSEY), raise_risk("SC", service=MRH)
    counts = _counts(session)
    with pytest.raises(PermissionDenied, match="not in the scope of add a milestone to risk"):
        milestones.add(session, mersey.id, text="Rota fixed", working_days=20, principal=wendy, clock=DAY)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="not in the scope of fire 'plan' on phase"):
        plan_year(session, cmmtn, 2027, FixedClock(date(2027, 4, 1)), principal=wendy)
    with pytest.raises(PermissionDenied, match="not in the scope of add a service to CMMTN"):
        operator.add_service(
            session,
            name="Wirral Burns",
            kind="Burns",
            organisation="Wirral Coast NHS Foundation Trust",
            network="CMMTN",
            nation="ENG",
            pathway=None,
            principal=wendy,
            clock=DAY,
        )
    with pytest.raises(PermissionDenied, match="not in the scope of add a network"):
        operator.add_network(session, "NETN", "North East", "annual", principal=wendy, clock=DAY)
    session.rollback()
    assert _counts(session) == counts
    assert session.exec(select(func.count()).select_from(ProgrammePhase)).one() == 0

    done = milestones.add(session, midland.id, text="Rota fixed", working_days=20, principal=wendy, clock=DAY)  # type: ignore[arg-type]
    planned = plan_year(session, wmtn, 2027, FixedClock(date(2027, 4, 1)), principal=wendy)
    svc = operator.add_service(
        session,
        name="Midland Burns",
        kind="Burns",
        organisation="Midland Royal Hospitals NHS Trust",
        network="WMTN",
        nation="ENG",
        pathway=None,
        principal=wendy,
        clock=DAY,
    )
    session.commit()
    assert done.row.id is not None and planned["phases"] > 0 and session.get(Service, svc.id) is not None
    events = session.exec(select(AuditEvent).where(AuditEvent.user_id == wendy.user_id)).all()
    assert {e.trigger for e in events} >= {"add_milestone", "plan", "add_service"}
    assert {e.role for e in events} == {NM}


def test_the_system_principal_plans_anywhere_and_a_person_must_be_named(
    session: Session, services: dict[str, int]
) -> None:
    cmmtn = _network(session, "CMMTN")
    with pytest.raises(TypeError, match="principal"):
        plan_year(session, cmmtn, 2027, FixedClock(date(2027, 4, 1)))  # type: ignore[call-arg]
    with pytest.raises(MissingActor, match="nobody is identified"):
        plan_year(session, cmmtn, 2027, FixedClock(date(2027, 4, 1)), principal=None)  # type: ignore[arg-type]
    session.rollback()
    out = plan_year(session, cmmtn, 2027, FixedClock(date(2027, 4, 1)), principal=SYSTEM_PRINCIPAL)
    session.commit()
    assert out["phases"] > 0
    roles = set(session.exec(select(AuditEvent.role).where(AuditEvent.kind == "phase")).all())
    assert roles == {"system"}


def test_administrators_add_networks_auditors_may_not(db: Engine, session: Session, services: dict[str, int]) -> None:
    admin = account(db, "Ms Ada Admin", ("administrator",))
    audrey = account(db, "Mr Audrey Auditor", (AUDITOR,))
    with pytest.raises(PermissionDenied, match="Mr Audrey Auditor may not add a network"):
        operator.add_network(session, "NETN", "North East", "annual", principal=audrey, clock=DAY)
    session.rollback()
    n = operator.add_network(session, "NETN", "North East", "annual", principal=admin, clock=DAY)
    session.commit()
    (event,) = session.exec(select(AuditEvent).where(AuditEvent.kind == "network", AuditEvent.item_id == n.id)).all()
    assert (event.user_id, event.role) == (admin.user_id, "administrator")


def test_an_outbox_letter_is_queued_again_only_within_the_scope(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    wmtn, cmmtn = _network(session, "WMTN").id, _network(session, "CMMTN").id
    west = account(db, "Mr Olu West", (OPERATOR,), scope="network", scope_id=wmtn)
    north = account(db, "Ms Orla North", (OPERATOR,), scope="network", scope_id=cmmtn)
    risk = raise_risk("SC", service=MERSEY)
    engine.fire(session, "risk", risk.id, "send_formal_notification", principal=_lead(), clock=DAY)  # type: ignore[arg-type]
    letter = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "risk")).first()
    assert letter is not None
    letter.status = "failed"
    session.add(letter)
    session.commit()
    # another network's letter is the same "not found" as a missing one (its existence is not told)
    with pytest.raises(NotFound, match=f"outbox message {letter.id} not found"):
        outbox_use.retry(session, [letter.id], principal=west, clock=DAY)  # type: ignore[list-item]
    session.rollback()
    assert session.get(OutboxMessage, letter.id).status == "failed"  # type: ignore[union-attr]
    assert outbox_use.retry(session, [], all_failed=True, principal=west, clock=DAY) == []  # none in their scope
    session.rollback()
    assert session.get(OutboxMessage, letter.id).status == "failed"  # type: ignore[union-attr]
    (done,) = outbox_use.retry(session, [letter.id], principal=north, clock=DAY)  # type: ignore[list-item]
    session.commit()
    assert done.status == "queued"
    event = session.exec(select(AuditEvent).where(AuditEvent.kind == "outbox", AuditEvent.item_id == letter.id)).one()
    assert (event.user_id, event.role, event.trigger) == (north.user_id, OPERATOR, "retry")


def _lead() -> Principal:
    return Principal(4242, "Dr Lee Lead", (Grant(NM),), via="test")


# ----------------------------------------------------------------------------- four eyes and two people, by account


def test_four_eyes_on_an_appeal_decision_compares_account_ids_not_names(
    db: Engine, session: Session, world: World
) -> None:
    row = considering(db, session, world)
    jo = Principal(5101, "Jo Smith", (Grant(NM), Grant(RL)), via="test")
    params = {"outcome": "not_upheld"}
    first = engine.fire(
        session, "appeal", row.id, "decide", principal=jo.acting_as(NM), clock=LATER, note=DECISION, params=params
    )  # type: ignore[arg-type]
    session.commit()
    assert first.proposed

    renamed = Principal(5101, "Jo  Smith", (Grant(RL),), via="test")  # the same account, its name typed otherwise
    counts = (
        session.exec(select(func.count()).select_from(AuditEvent)).one(),
        session.exec(select(func.count()).select_from(Proposal)).one(),
    )
    with pytest.raises(GuardRefused, match="needs four eyes: Jo Smith proposed it, so a different person"):
        engine.fire(session, "appeal", row.id, "decide", principal=renamed, clock=LATER, note=DECISION, params=params)  # type: ignore[arg-type]
    session.rollback()
    assert counts == (
        session.exec(select(func.count()).select_from(AuditEvent)).one(),
        session.exec(select(func.count()).select_from(Proposal)).one(),
    )
    assert session.get(Appeal, row.id).state == "initial_consideration"  # type: ignore[union-attr]

    namesake = Principal(5102, "Jo Smith", (Grant(RL),), via="test")  # another person of the same name
    out = engine.fire(
        session, "appeal", row.id, "decide", principal=namesake, clock=LATER, note=DECISION, params=params
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "decided"
    assert out.event.user_id == 5102
    assert out.event.data["four_eyes"]["proposed_by_user_id"] == 5101


def test_factual_accuracy_needs_two_accounts_whatever_the_names(session: Session, services: dict[str, int]) -> None:
    report, (item,) = with_items(session, services, CLAIM)

    def decide(who: Principal) -> Any:
        return engine.fire(
            session,
            "report",
            report.id,  # type: ignore[arg-type]
            "decide_inaccuracy",
            principal=who,
            clock=ACCURACY_DAY,
            params={"item_id": item, "decision": "accepted"},
        )

    decide(Principal(5201, "Dr Asha Patel", (Grant(NM),), via="test"))
    session.commit()
    with pytest.raises(GuardRefused, match="must be two people"):
        decide(Principal(5201, "Dr A. Patel (acting RL)", (Grant(RL),), via="test"))
    session.rollback()
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None and (fresh.manager_user_id, fresh.lead_decision) == (5201, None)

    decide(Principal(5202, "Dr Asha Patel", (Grant(RL),), via="test"))  # a namesake: another account
    session.commit()
    session.expire_all()
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None
    assert (fresh.manager_user_id, fresh.lead_user_id, fresh.outcome) == (5201, 5202, "accepted")


# ----------------------------------------------------------------------------- the role chosen, and what the event records


def test_an_account_with_two_fitting_roles_acts_in_the_one_it_prefers(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    both = account(db, "Dr Bea Both", (NM, RL))
    first, second = raise_risk("SC"), raise_risk("IR")
    default = engine.fire(session, "risk", first.id, "send_formal_notification", principal=both, clock=DAY)  # type: ignore[arg-type]
    preferred = engine.fire(
        session,
        "risk",
        second.id,  # type: ignore[arg-type]
        "send_formal_notification",
        principal=both.acting_as(RL),  # --role regional-lead
        clock=DAY,
    )
    session.commit()
    assert default.event.role == NM  # none preferred: the first that fits, in a fixed order
    assert preferred.event.role == RL
    stored = session.exec(select(AuditEvent).where(AuditEvent.kind == "risk", AuditEvent.item_id == second.id)).all()
    assert (stored[-1].role, stored[-1].user_id) == (RL, both.user_id)
    with pytest.raises(PermissionDenied, match="does not hold the role 'operator'"):
        both.acting_as(OPERATOR)


def test_the_event_stores_the_account_its_name_then_and_the_wall_clock_beside_the_effective_time(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    nina = account(db, "Ms Nina Early", (NM,))
    risk = raise_risk("SC")
    effective = FixedClock(date(2026, 12, 18))
    before = datetime.now(UTC)
    out = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=nina, clock=effective)  # type: ignore[arg-type]
    session.commit()
    after = datetime.now(UTC)

    with Session(db) as s:  # the account is renamed afterwards (marriage, a typo fixed)
        user = s.get(User, nina.user_id)
        assert user is not None
        user.name = "Ms Nina Later"
        s.add(user)
        s.commit()
        renamed = accounts.principal_for(s, user, "test")
    engine.fire(
        session, "risk", risk.id, "rescore", principal=renamed, clock=effective, params={"impact": 4, "likelihood": 4}
    )  # type: ignore[arg-type]
    session.commit()

    events = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "risk", AuditEvent.item_id == risk.id).order_by(col(AuditEvent.id))
    ).all()
    sent, rescored = events[-2], events[-1]
    assert out.event.hash == sent.hash
    assert (sent.user_id, sent.actor, sent.role) == (nina.user_id, "Ms Nina Early", NM)
    assert (rescored.user_id, rescored.actor) == (nina.user_id, "Ms Nina Later")
    assert sent.at == effective.now()  # the effective time, as the action's clock says
    assert sent.recorded_at is not None
    recorded = sent.recorded_at if sent.recorded_at.tzinfo else sent.recorded_at.replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= recorded <= after + timedelta(seconds=1)  # the wall clock, in UTC
    assert abs(recorded - sent.at) > timedelta(days=1)  # not the effective time (18 Dec 2026, noon)
