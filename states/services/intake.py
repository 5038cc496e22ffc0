"""New items opened by hand: a risk found at a visit or elsewhere, a visit proposed, a complaint
received. Each runs in the caller's transaction through the engine."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from models import Complaint, Risk, Visit
from models.perinatal import PerinatalConcern
from models.surveillance import Surveillance
from states import engine
from states.clock import Clock, local_date
from states.engine import Outcome
from states.errors import InvalidInput
from states.machines.perinatal_policy import PerinatalPolicy
from states.principal import Principal
from states.views.directory import network_by_code, service_by_id

LEVELS = ("IR", "SC", "GC")


def raise_risk(
    session: Session,
    *,
    service: int,
    level: str,
    title: str,
    standard: str | None,
    visit_date: date | None,
    identified: date | None,
    impact: int | None,
    likelihood: int | None,
    doctors_in_training: bool,
    principal: Principal,
    clock: Clock,
    note: str | None,
) -> Outcome:
    """A risk or concern found at a visit (``visit_date``) or elsewhere (``identified``), not after today."""
    level = level.upper()
    if level not in LEVELS:
        raise InvalidInput(f"level {level!r}: use IR, SC or GC")
    found = identified or visit_date
    if found is None:
        raise InvalidInput("give the visit date (found at a visit) or the date it was identified (found elsewhere)")
    today = local_date(clock.now())
    if found > today:
        raise InvalidInput(
            f"date {found.isoformat()} is after today ({today.isoformat()}): a risk is recorded once it is found"
        )
    service_by_id(session, service)
    row = Risk(
        service_id=service,
        level=level,
        title=title,
        standard_ref=standard,
        identified_on=found,
        visit_date=visit_date,
        impact=impact,
        likelihood=likelihood,
        doctors_in_training=doctors_in_training,
        state="new",
    )
    return engine.create(session, "risk", row, "raise", principal=principal, clock=clock, note=note)


def propose_visit(session: Session, service: int, *, principal: Principal, clock: Clock, reason: str | None) -> Outcome:
    """A visit to a service, proposed."""
    service_by_id(session, service)
    return engine.create(
        session,
        "visit",
        Visit(service_id=service, state="new"),
        "propose",
        principal=principal,
        clock=clock,
        params={"reason": reason} if reason else None,
    )


def receive_complaint(
    session: Session,
    *,
    network: str,
    category: str,
    from_name: str,
    from_email: str,
    summary: str,
    service: int | None,
    about_person: bool,
    received: date,
    principal: Principal,
    clock: Clock,
) -> Outcome:
    """A complaint received (routed to its owner by category), not after today: its deadlines
    count from the day it was received, so a future date would hold off the chase."""
    today = local_date(clock.now())
    if received > today:
        raise InvalidInput(
            f"received {received.isoformat()} is after today ({today.isoformat()}): a complaint is recorded once "
            "it is received; nothing was changed"
        )
    net = network_by_code(session, network)
    if service is not None:
        service_by_id(session, service, "")
    row = Complaint(
        network_id=net.id,  # type: ignore[arg-type]
        service_id=service,
        category=category,
        owner_role="",
        complainant_name=from_name,
        complainant_email=from_email,
        summary=summary,
        received_on=received,
        about_person=about_person,
        state="new",
    )
    return engine.create(session, "complaint", row, "receive", principal=principal, clock=clock, note=summary)


def raise_perinatal_concern(
    session: Session,
    *,
    service: int,
    title: str,
    raised: date,
    source: str | None,
    principal: Principal,
    clock: Clock,
    note: str | None,
) -> Outcome:
    """A perinatal concern raised at the provider (trust board) level, about a maternity or
    neonatal service (a service whose kind names one of the policy's service kinds)."""
    svc = service_by_id(session, service)
    kinds = PerinatalPolicy.from_env().service_kinds
    if not any(k in svc.kind.lower() for k in kinds):
        raise InvalidInput(
            f"service {service} ({svc.name}) is a {svc.kind} service: a perinatal concern is about a "
            f"service whose kind names one of {', '.join(kinds)}"
        )
    row = PerinatalConcern(service_id=service, title=title, raised_on=raised, source=source, state="new")
    return engine.create(session, "perinatal", row, "raise", principal=principal, clock=clock, note=note)


def assess_surveillance(
    session: Session,
    *,
    service: int,
    year: int,
    agreed: int,
    met: int,
    good_practice: float | None,
    threshold: float | None,
    principal: Principal,
    clock: Clock,
    note: str | None,
) -> Outcome:
    """The annual self-report recorded: a surveillance decision is required unless 100% and threshold met."""
    service_by_id(session, service)
    row = Surveillance(
        service_id=service,
        programme_year=year,
        indicators_agreed=agreed,
        indicators_met=met,
        good_practice_score=good_practice,
        good_practice_threshold=threshold,
        state="new",
    )
    return engine.create(session, "surveillance", row, "assess", principal=principal, clock=clock, note=note)
